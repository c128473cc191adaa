/* 64 binary searches in a sorted array of 1024 32-bit keys. */
#include "bench.h"

struct table {
	u32 sorted[1024];
	u32 keys[64];
};

SEC("raw")
u64 binary_search(struct table *t)
{
	u64 acc = 0;
	for (u32 k = 0; k < 64; k++) {
		u32 key = t->keys[k], lo = 0, hi = 1024;
		while (lo < hi) {
			u32 mid = (lo + hi) / 2;
			if (t->sorted[mid] < key)
				lo = mid + 1;
			else
				hi = mid;
		}
		acc = acc * 1031 + lo;
	}
	return acc;
}
