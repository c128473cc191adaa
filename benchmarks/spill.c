/* Register pressure: twelve accumulators live across a loop. eBPF has ten
 * registers (r1-r5 scratch, r6-r9 kept across calls, r0), so clang for eBPF
 * keeps some of them in stack slots, stored and reloaded each iteration;
 * x86-64 has room for all twelve. */
#include "bench.h"

struct words {
	u64 w[512];
};

SEC("raw")
u64 spill(struct words *m)
{
	u64 a0 = 1, a1 = 2, a2 = 3, a3 = 4, a4 = 5, a5 = 6;
	u64 a6 = 7, a7 = 8, a8 = 9, a9 = 10, a10 = 11, a11 = 12;

	for (u32 i = 0; i < 512; i++) {
		u64 x = m->w[i];
		a0 += x;
		a1 ^= x;
		a2 += x >> 3;
		a3 ^= x << 5;
		a4 += x ^ a0;
		a5 = (a5 ^ x) + a1;
		a6 += x & 0xff00ff00ff00ff00ull;
		a7 ^= x >> 17;
		a8 = (a8 | x) + (a8 >> 9);
		a9 += (x >> 29) ^ a9;
		a10 ^= x + a2;
		a11 = (a11 << 1) ^ x;
	}
	return a0 ^ (a1 << 1) ^ (a2 << 2) ^ (a3 << 3) ^ (a4 << 4) ^ (a5 << 5) ^
	       (a6 << 6) ^ (a7 << 7) ^ (a8 << 8) ^ (a9 << 9) ^ (a10 << 10) ^ (a11 << 11);
}
