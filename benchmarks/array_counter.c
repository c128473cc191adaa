/* Array-map counters, after the kernel's samples/bpf/xdp1_kern.c: count the
 * packet under its IP protocol and under its size class (64-byte steps).
 * Two bpf_map_lookup_elem calls on ARRAY maps and a little parsing: the
 * program is its map lookups. r0 is the protocol's count after the update. */
#include "bench.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, u32);
	__type(value, u64);
} rxcnt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 32);
	__type(key, u32);
	__type(value, u64);
} size_hist SEC(".maps");

SEC("xdp")
int array_counter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	u32 proto = 0;

	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return XDP_DROP;
		proto = ip->protocol;
	}
	u32 size_class = (u32)(end - data) >> 6;
	if (size_class > 31)
		size_class = 31;
	u64 *sized = bpf_map_lookup_elem(&size_hist, &size_class);
	if (sized)
		__sync_fetch_and_add(sized, 1);
	u64 *count = bpf_map_lookup_elem(&rxcnt, &proto);
	if (!count)
		return XDP_ABORTED;
	__sync_fetch_and_add(count, 1);
	return *count;
}
