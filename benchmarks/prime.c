/* Count the primes below a limit by trial division. */
#include "bench.h"

struct limit {
	u32 n;
};

SEC("raw")
u64 prime_count(struct limit *p)
{
	u32 n = p->n, count = 0;
	for (u32 i = 2; i < n && i < 100000; i++) {
		int prime = 1;
		for (u32 d = 2; d * d <= i; d++) {
			if (i % d == 0) {
				prime = 0;
				break;
			}
		}
		count += prime;
	}
	return count;
}
