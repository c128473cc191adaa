/* Population count of 256 64-bit words (SWAR, as eBPF has no popcount). */
#include "bench.h"

struct words {
	u64 w[256];
};

static ALWAYS_INLINE u64 popcount64(u64 x)
{
	x = x - ((x >> 1) & 0x5555555555555555ull);
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (x * 0x0101010101010101ull) >> 56;
}

SEC("raw")
u64 bitcount(struct words *m)
{
	u64 total = 0;
	for (u32 i = 0; i < 256; i++)
		total += popcount64(m->w[i]);
	return total;
}
