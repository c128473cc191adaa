/* Copy 4 KiB, 8 bytes at a time. */
#include "bench.h"

#define WORDS 512

struct mem {
	u64 src[WORDS];
	u64 dst[WORDS];
};

SEC("raw")
u64 memcpy_4k(struct mem *m)
{
	for (u32 i = 0; i < WORDS; i++)
		m->dst[i] = m->src[i];
	return m->dst[0] ^ m->dst[WORDS - 1];
}
