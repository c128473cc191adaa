/* Integer log2 of 16 values by binary search on the bits; unrolled, so no
 * loop is left (DPDK's validator takes it). */
#include "bench.h"

struct vals {
	u64 v[16];
};

static ALWAYS_INLINE u64 log2_u64(u64 v)
{
	u64 r = 0;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

SEC("raw")
u64 log2_16(struct vals *m)
{
	u64 acc = 0;
#pragma clang loop unroll(full)
	for (int i = 0; i < 16; i++)
		acc = acc * 67 + log2_u64(m->v[i]);
	return acc;
}
