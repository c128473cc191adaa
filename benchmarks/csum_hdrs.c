/* Sixteen IPv4 header checksums, one bpf_csum_diff call each: a
 * helper-heavy program with no loop once clang has unrolled it, so DPDK's
 * validator (which refuses loops) can take it. Memory: 16 headers of 20
 * bytes; each gets its checksum written; r0 is the sum of the checksums. */
#include "bench.h"

struct hdrs {
	u8 h[16][20];
};

SEC("raw")
u64 csum_hdrs(struct hdrs *m)
{
	u64 acc = 0;
#pragma clang loop unroll(full)
	for (int i = 0; i < 16; i++) {
		u16 *check = (u16 *)(m->h[i] + 10);
		*check = 0;
		s64 sum = bpf_csum_diff(0, 0, (void *)m->h[i], 20, 0);
		*check = ~sum & 0xffff;
		acc += *check;
	}
	return acc;
}
