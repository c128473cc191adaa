/* Multiplies by small constants (3, 5, 9, 10, 31, 33), which x86-64 does
 * with lea and shifts: a string hash and four scaled sums over 512 words. */
#include "bench.h"

struct words {
	u64 w[512];
};

SEC("raw")
u64 mulconst(struct words *m)
{
	u64 h = 5381, a = 0, b = 0, c = 0, d = 1;

	for (u32 i = 0; i < 512; i++) {
		u64 x = m->w[i];
		h = h * 33 + x;
		a += x * 3;
		b ^= x * 5 + (x >> 7) * 9;
		c += (x & 0xffff) * 10;
		d = d * 31 + (x >> 40);
	}
	return h ^ a ^ (b << 1) ^ (c << 2) ^ (d << 3);
}
