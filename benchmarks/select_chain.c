/* Select chains: each of 512 random pairs goes through six dependent
 * `cond ? a : b` steps. eBPF has no conditional move, so the bytecode
 * branches around each step; on this input they are unpredictable. */
#include "bench.h"

struct pairs {
	u32 v[1024];
};

SEC("raw")
u64 select_chain(struct pairs *p)
{
	u64 acc = 0;

	for (u32 i = 0; i < 1024; i += 2) {
		u32 x = p->v[i], y = p->v[i + 1];
		u32 r = x < y ? x : y;
		r = r > 0x40000000 ? r - 0x40000000 : r + 0x1000;
		r = (y & 1) ? r ^ x : r;
		r = (__s32)(x ^ y) < 0 ? r + y : r - x;
		r = (r & 0x300) == 0x100 ? r >> 3 : r << 1;
		acc += x > 0x80000000 ? r : (u64)r << 32;
	}
	return acc;
}
