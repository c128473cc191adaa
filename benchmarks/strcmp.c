/* Compare two 1 KiB strings that differ only near the end. r0 holds the
 * index of the first difference and the byte difference. */
#include "bench.h"

struct strs {
	u8 a[1024];
	u8 b[1024];
};

SEC("raw")
u64 strcmp_1k(struct strs *s)
{
	u32 i = 0;
	for (; i < 1023; i++)
		if (s->a[i] != s->b[i] || !s->a[i])
			break;
	return (u64)i << 32 | (u32)(s->a[i] - s->b[i]);
}
