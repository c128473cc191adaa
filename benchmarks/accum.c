/* Independent accumulators: one loop over 1024 words keeping 4 (accum_4) or
 * 8 (accum_8) running sums, each word mixed into the sum of its lane. With
 * 8 sums, the loop's pointer and counter and a temporary, eBPF's ten
 * registers are all taken. */
#include "bench.h"

struct words {
	u64 w[1024];
};

#define MIX(s, x) ((s) += (x) ^ ((x) >> 11))

SEC("raw")
u64 accum_4(struct words *m)
{
	u64 s0 = 0, s1 = 0, s2 = 0, s3 = 0;

	for (u32 i = 0; i < 1024; i += 4) {
		MIX(s0, m->w[i]);
		MIX(s1, m->w[i + 1]);
		MIX(s2, m->w[i + 2]);
		MIX(s3, m->w[i + 3]);
	}
	return s0 ^ (s1 << 1) ^ (s2 << 2) ^ (s3 << 3);
}

SEC("raw")
u64 accum_8(struct words *m)
{
	u64 s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;

	for (u32 i = 0; i < 1024; i += 8) {
		MIX(s0, m->w[i]);
		MIX(s1, m->w[i + 1]);
		MIX(s2, m->w[i + 2]);
		MIX(s3, m->w[i + 3]);
		MIX(s4, m->w[i + 4]);
		MIX(s5, m->w[i + 5]);
		MIX(s6, m->w[i + 6]);
		MIX(s7, m->w[i + 7]);
	}
	return s0 ^ (s1 << 1) ^ (s2 << 2) ^ (s3 << 3) ^ (s4 << 4) ^ (s5 << 5) ^ (s6 << 6) ^
	       (s7 << 7);
}
