/* A loop summing the packet's bytes: the case a vectorizer should turn
 * into SIMD code. r0 is the 32-bit sum. */
#include "bench.h"

SEC("xdp")
int sum_bytes(struct xdp_md *ctx)
{
	u8 *data = (void *)(long)ctx->data;
	u8 *end = (void *)(long)ctx->data_end;
	u32 len = end - data;
	u32 sum = 0;

	if (len > 1500)
		len = 1500;
	for (u32 i = 0; i < len; i++)
		sum += data[i];
	return sum;
}
