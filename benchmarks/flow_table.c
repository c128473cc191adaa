/* A flow table: parse the IPv4 5-tuple, look the flow up in a hash map,
 * count packets and bytes, insert new flows. flow_setup fills the table
 * with 1000 other flows first. r0 is the flow's packet count. */
#include "bench.h"

struct flow_key {
	u32 saddr, daddr;
	u16 sport, dport;
	u8 proto, pad[3];
};

struct flow_stats {
	u64 packets, bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct flow_key);
	__type(value, struct flow_stats);
} flows SEC(".maps");

SEC("xdp")
int flow_table(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct flow_key key = {};

	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_ABORTED;
	key.saddr = ip->saddr;
	key.daddr = ip->daddr;
	key.proto = ip->protocol;
	void *l4 = (void *)ip + ip->ihl * 4;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > end)
			return XDP_ABORTED;
		key.sport = tcp->source;
		key.dport = tcp->dest;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > end)
			return XDP_ABORTED;
		key.sport = udp->source;
		key.dport = udp->dest;
	}
	u64 len = end - data;
	struct flow_stats *st = bpf_map_lookup_elem(&flows, &key);
	if (st) {
		__sync_fetch_and_add(&st->packets, 1);
		__sync_fetch_and_add(&st->bytes, len);
		return st->packets;
	}
	struct flow_stats init = {1, len};
	bpf_map_update_elem(&flows, &key, &init, BPF_NOEXIST);
	return 1;
}

SEC("raw")
u64 flow_setup(void *ctx)
{
	for (u32 i = 0; i < 1000; i++) {
		struct flow_key key = {.saddr = bpf_htonl(0x0a000000 + i), .daddr = bpf_htonl(0x0a640001),
				       .sport = bpf_htons(1024 + i), .dport = bpf_htons(80),
				       .proto = IPPROTO_TCP};
		struct flow_stats st = {i, 64 * i};
		bpf_map_update_elem(&flows, &key, &st, BPF_ANY);
	}
	return 0;
}
