/* A Katran-style L4 load balancer (after facebookincubator/katran's
 * balancer_kern.c, IPv4 and TCP/UDP only): parse Ethernet, IPv4 and the
 * ports, look the VIP up, hash the 5-tuple (jhash) onto the VIP's
 * consistent-hashing ring, find the backend, count per-VIP stats, then
 * encapsulate IP-in-IP with bpf_xdp_adjust_head and write the outer
 * headers with their checksum. katran_setup fills the maps first. */
#include "bench.h"

#define RING_SIZE 1024
#define MAX_VIPS 16
#define MAX_REALS 64
#define NUM_REALS 16
#define PCKT_FRAGMENTED 0x3fff
#define JHASH_INITVAL 0xdeadbeef

struct vip_definition {
	u32 vip;
	u16 port;
	u8 proto;
	u8 pad;
};

struct vip_meta {
	u32 flags;
	u32 vip_num;
};

struct real_definition {
	u32 dst;
	u8 flags;
	u8 pad[3];
};

struct lb_stats {
	u64 v1, v2;
};

struct ctl_value {
	u8 mac[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512);
	__type(key, struct vip_definition);
	__type(value, struct vip_meta);
} vip_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_VIPS * RING_SIZE);
	__type(key, u32);
	__type(value, u32);
} ch_rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_REALS);
	__type(key, u32);
	__type(value, struct real_definition);
} reals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_VIPS);
	__type(key, u32);
	__type(value, struct lb_stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, u32);
	__type(value, struct ctl_value);
} ctl_array SEC(".maps");

static ALWAYS_INLINE u32 rol32(u32 word, unsigned int shift)
{
	return (word << shift) | (word >> ((-shift) & 31));
}

#define __jhash_final(a, b, c)                                                                     \
	{                                                                                          \
		c ^= b; c -= rol32(b, 14);                                                         \
		a ^= c; a -= rol32(c, 11);                                                         \
		b ^= a; b -= rol32(a, 25);                                                         \
		c ^= b; c -= rol32(b, 16);                                                         \
		a ^= c; a -= rol32(c, 4);                                                          \
		b ^= a; b -= rol32(a, 14);                                                         \
		c ^= b; c -= rol32(b, 24);                                                         \
	}

static ALWAYS_INLINE u32 jhash_2words(u32 a, u32 b, u32 initval)
{
	u32 c = 0;
	initval += JHASH_INITVAL + (2 << 2);
	a += initval;
	b += initval;
	c += initval;
	__jhash_final(a, b, c);
	return c;
}

static ALWAYS_INLINE u16 ipv4_csum_inline(void *iph)
{
	u16 *words = iph;
	u64 csum = 0;
#pragma clang loop unroll(full)
	for (int i = 0; i < (int)sizeof(struct iphdr) >> 1; i++)
		csum += words[i];
	return ~csum_fold32((u32)csum + (u32)(csum >> 32));
}

SEC("xdp")
int katran_lb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct vip_definition vip = {};
	u32 ports, zero = 0;

	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > end)
		return XDP_DROP;
	if (iph->ihl != 5 || (iph->frag_off & bpf_htons(PCKT_FRAGMENTED)))
		return XDP_DROP;
	if (iph->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(iph + 1);
		if ((void *)(tcp + 1) > end)
			return XDP_DROP;
		vip.port = tcp->dest;
		ports = (u32)tcp->source << 16 | tcp->dest;
	} else if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(iph + 1);
		if ((void *)(udp + 1) > end)
			return XDP_DROP;
		vip.port = udp->dest;
		ports = (u32)udp->source << 16 | udp->dest;
	} else {
		return XDP_PASS;
	}
	vip.vip = iph->daddr;
	vip.proto = iph->protocol;
	struct vip_meta *meta = bpf_map_lookup_elem(&vip_map, &vip);
	if (!meta)
		return XDP_PASS;

	u32 saddr = iph->saddr;
	u16 pkt_bytes = bpf_ntohs(iph->tot_len);
	u8 tos = iph->tos;
	u32 hash = jhash_2words(saddr, ports, RING_SIZE) % RING_SIZE;
	u32 ring_key = meta->vip_num * RING_SIZE + hash;
	u32 *real_pos = bpf_map_lookup_elem(&ch_rings, &ring_key);
	if (!real_pos)
		return XDP_DROP;
	u32 real_key = *real_pos;
	struct real_definition *real = bpf_map_lookup_elem(&reals, &real_key);
	if (!real)
		return XDP_DROP;
	u32 vip_num = meta->vip_num;
	struct lb_stats *st = bpf_map_lookup_elem(&stats, &vip_num);
	if (!st)
		return XDP_DROP;
	st->v1 += 1;
	st->v2 += pkt_bytes;
	struct ctl_value *gw = bpf_map_lookup_elem(&ctl_array, &zero);
	if (!gw)
		return XDP_DROP;
	u32 dst = real->dst;

	/* IP-in-IP: room for the outer header in front of the packet. */
	if (bpf_xdp_adjust_head(ctx, 0 - (int)sizeof(struct iphdr)))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	struct ethhdr *new_eth = data;
	struct iphdr *outer = data + sizeof(struct ethhdr);
	struct ethhdr *old_eth = data + sizeof(struct iphdr);
	if ((void *)(new_eth + 1) > end || (void *)(old_eth + 1) > end ||
	    (void *)(outer + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(new_eth->h_source, old_eth->h_dest, 6);
	__builtin_memcpy(new_eth->h_dest, gw->mac, 6);
	new_eth->h_proto = bpf_htons(ETH_P_IP);

	outer->version = 4;
	outer->ihl = 5;
	outer->frag_off = 0;
	outer->protocol = IPPROTO_IPIP;
	outer->check = 0;
	outer->tos = tos;
	outer->tot_len = bpf_htons(pkt_bytes + sizeof(struct iphdr));
	outer->id = 0;
	outer->daddr = dst;
	outer->saddr = bpf_htonl(0xac100000 | (ports >> 16));
	outer->ttl = 64;
	outer->check = ipv4_csum_inline(outer);
	return XDP_TX;
}

SEC("raw")
u64 katran_setup(void *ctx)
{
	struct vip_definition vip = {.vip = bpf_htonl(0x0a640001), .port = bpf_htons(80),
				     .proto = IPPROTO_TCP};
	struct vip_meta meta = {.flags = 0, .vip_num = 3};
	struct ctl_value gw = {.mac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01}};
	u32 zero = 0;

	bpf_map_update_elem(&vip_map, &vip, &meta, BPF_ANY);
	for (u32 i = 0; i < RING_SIZE; i++) {
		u32 key = meta.vip_num * RING_SIZE + i, real = (i * 7) % NUM_REALS;
		bpf_map_update_elem(&ch_rings, &key, &real, BPF_ANY);
	}
	for (u32 r = 0; r < NUM_REALS; r++) {
		struct real_definition real = {.dst = bpf_htonl(0x0ac80001 + r)};
		bpf_map_update_elem(&reals, &r, &real, BPF_ANY);
	}
	bpf_map_update_elem(&ctl_array, &zero, &gw, BPF_ANY);
	return 0;
}
