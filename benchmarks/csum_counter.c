/* The seed's checksum example on packets: bpf_csum_diff over the whole
 * packet, plus a packet counter in an array map. r0 is the complemented
 * checksum (not an XDP action) so that every mode's answer can be compared.
 * Run on 64, 512 and 1500-byte packets. */
#include "bench.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} pkt_count SEC(".maps");

SEC("xdp")
int csum_counter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	u32 len = end - data;
	u32 key = 0;

	if (len > 1500)
		return XDP_ABORTED;
	s64 sum = bpf_csum_diff(0, 0, data, len, 0);
	u64 *count = bpf_map_lookup_elem(&pkt_count, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	return ~sum & 0xffff;
}
