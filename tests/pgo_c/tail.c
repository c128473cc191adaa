/* Two XDP programs that tail-call each other through a program array, so that
 * any one's link lifts both: `corpus --profile` links such an object whole and
 * trains one profile on all its programs (tests/test_corpus_profile.py). The
 * array is empty in userspace, so each tail call falls through. xdp_poke calls
 * a helper only a kernel has: it alone is not run. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} jumps SEC(".maps");

/* Frames seen by ethertype class: 0 IPv4, 1 other. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

SEC("xdp")
int xdp_classify(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__u32 k = eth->h_proto == bpf_htons(ETH_P_IP) ? 0 : 1;
	__u64 *n = bpf_map_lookup_elem(&seen, &k);
	if (n)
		__sync_fetch_and_add(n, 1);
	bpf_tail_call(ctx, &jumps, k);
	return XDP_PASS;
}

/* Drops IPv4 whose TTL would expire, decrements the others' TTL. */
SEC("xdp")
int xdp_ttl(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (ip->ttl <= 1)
		return XDP_DROP;
	__u32 sum = ip->check + bpf_htons(0x0100);
	ip->check = sum + (sum >> 16);
	ip->ttl--;
	bpf_tail_call(ctx, &jumps, 1);
	return XDP_TX;
}

SEC("xdp")
int xdp_poke(struct xdp_md *ctx)
{
	char byte = 0;

	bpf_probe_write_user((void *)0x1000, &byte, 1);
	bpf_tail_call(ctx, &jumps, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
