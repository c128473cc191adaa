/* Straight-line code: one block of about 500 (straight_500) or 1000
 * (straight_1000) eBPF instructions of loads and mixed 64-bit arithmetic,
 * no branch. */
#include "bench.h"

struct words {
	u64 w[32];
};

/* One round: a load and eight arithmetic instructions, each round's shift
 * and constant its own (i is a constant once the loop is unrolled). */
static ALWAYS_INLINE u64 block(struct words *m, const int rounds)
{
	u64 a = 0x6a09e667f3bcc908ull, b = 0xbb67ae8584caa73bull;
	u64 c = 0x3c6ef372fe94f82bull, d = 0xa54ff53a5f1d36f1ull;

#pragma clang loop unroll(full)
	for (int i = 0; i < rounds; i++) {
		a += m->w[i & 31] ^ b;
		b = (b >> (i % 13 + 1)) ^ (c + (u64)i * 0x9e3779b97f4a7c15ull);
		c -= d | (a << (i % 7 + 3));
		d = (d ^ a) * 3 + c;
	}
	return a ^ b ^ c ^ d;
}

SEC("raw")
u64 straight_500(struct words *m)
{
	return block(m, 31);
}

SEC("raw")
u64 straight_1000(struct words *m)
{
	return block(m, 60);
}
