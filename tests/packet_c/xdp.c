/* XDP programs for the packet helpers xdp_adjust_head (44), xdp_adjust_meta
 * (54) and xdp_adjust_tail (65), written against the kernel's struct xdp_md.
 * tests/test_packet_helpers.py runs them on packets; programs that take
 * arguments read them from the first bytes of the packet (little-endian).
 * Rebuild: sh build.sh */
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define DATA(ctx) ((void *)(long)(ctx)->data)
#define DATA_END(ctx) ((void *)(long)(ctx)->data_end)
#define DATA_META(ctx) ((void *)(long)(ctx)->data_meta)

/* Pops an 802.1Q tag: the MAC addresses move 4 bytes up over the tag, and
 * adjust_head(+4) drops the 4 bytes in front. */
SEC("xdp")
int xdp_pop_vlan(struct xdp_md *ctx)
{
	void *data = DATA(ctx), *end = DATA_END(ctx);
	struct ethhdr *eth = data;
	__u8 macs[2 * ETH_ALEN];

	if (data + ETH_HLEN + 4 > end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_8021Q))
		return XDP_PASS;
	__builtin_memcpy(macs, eth, sizeof(macs));
	if (bpf_xdp_adjust_head(ctx, 4))
		return XDP_ABORTED;
	data = DATA(ctx);
	end = DATA_END(ctx);
	if (data + ETH_HLEN > end)
		return XDP_ABORTED;
	__builtin_memcpy(data, macs, sizeof(macs));
	return XDP_TX;
}

/* IP-in-IP decapsulation: drops the outer IPv4 header (options included),
 * keeping the Ethernet header. */
SEC("xdp")
int xdp_decap_ipip(struct xdp_md *ctx)
{
	void *data = DATA(ctx), *end = DATA_END(ctx);
	struct ethhdr *eth = data, copy;
	struct iphdr *outer = (void *)(eth + 1);
	int hlen;

	if ((void *)(outer + 1) > end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || outer->protocol != IPPROTO_IPIP)
		return XDP_PASS;
	hlen = outer->ihl * 4;
	if (hlen < (int)sizeof(*outer))
		return XDP_DROP;
	copy = *eth;
	if (bpf_xdp_adjust_head(ctx, hlen))
		return XDP_ABORTED;
	data = DATA(ctx);
	end = DATA_END(ctx);
	eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	*eth = copy;
	return XDP_TX;
}

#define OUTER_SRC 0xc0a80001 /* 192.168.0.1 */
#define OUTER_DST 0xc0a80002 /* 192.168.0.2 */

/* IP-in-IP encapsulation: adjust_head(-20) makes room for an outer IPv4
 * header between the Ethernet header and the packet's own IPv4 header. */
SEC("xdp")
int xdp_encap_ipip(struct xdp_md *ctx)
{
	void *data = DATA(ctx), *end = DATA_END(ctx);
	struct ethhdr *eth = data, copy;
	struct iphdr *ip = (void *)(eth + 1);
	__u16 inner_len;
	__u32 sum = 0;

	if ((void *)(ip + 1) > end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	copy = *eth;
	inner_len = bpf_ntohs(ip->tot_len);
	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
		return XDP_ABORTED;
	data = DATA(ctx);
	end = DATA_END(ctx);
	eth = data;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_ABORTED;
	*eth = copy;
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(inner_len + sizeof(struct iphdr));
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = 64;
	ip->protocol = IPPROTO_IPIP;
	ip->check = 0;
	ip->saddr = bpf_htonl(OUTER_SRC);
	ip->daddr = bpf_htonl(OUTER_DST);
	/* RFC 1071 by hand: the ones'-complement sum of the header's words. */
	for (int i = 0; i < (int)sizeof(struct iphdr) / 2; i++)
		sum += ((__u16 *)ip)[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip->check = (__u16)~sum;
	return XDP_TX;
}

/* adjust_head by the s32 at the start of the packet; r0 = its result. */
SEC("xdp")
long xdp_head_delta(struct xdp_md *ctx)
{
	void *data = DATA(ctx), *end = DATA_END(ctx);

	if (data + 4 > end)
		return -1000;
	return bpf_xdp_adjust_head(ctx, *(__s32 *)data);
}

/* adjust_tail by the s32 at the start of the packet; r0 = its result. */
SEC("xdp")
long xdp_tail_delta(struct xdp_md *ctx)
{
	void *data = DATA(ctx), *end = DATA_END(ctx);

	if (data + 4 > end)
		return -1000;
	return bpf_xdp_adjust_tail(ctx, *(__s32 *)data);
}

/* Shrinks the tail by the u32 at the start of the packet, then grows it
 * back: the bytes that come back must be zeros, not the old ones. */
SEC("xdp")
long xdp_tail_regrow(struct xdp_md *ctx)
{
	void *data = DATA(ctx), *end = DATA_END(ctx);
	int n;
	long r;

	if (data + 4 > end)
		return -1000;
	n = *(__s32 *)data;
	r = bpf_xdp_adjust_tail(ctx, -n);
	if (r)
		return r;
	return bpf_xdp_adjust_tail(ctx, n);
}

/* adjust_meta by the two s32 at the start of the packet, in turn; r0 = the
 * first error, or the metadata length data - data_meta after both. */
SEC("xdp")
long xdp_meta_delta(struct xdp_md *ctx)
{
	void *data = DATA(ctx), *end = DATA_END(ctx);
	int d1, d2;
	long r;

	if (data + 8 > end)
		return -1000;
	d1 = ((__s32 *)data)[0];
	d2 = ((__s32 *)data)[1];
	r = bpf_xdp_adjust_meta(ctx, d1);
	if (r)
		return r;
	r = bpf_xdp_adjust_meta(ctx, d2);
	if (r)
		return r;
	return (long)ctx->data - (long)ctx->data_meta;
}

#define META_VALUE 0x1122334455667788ull

/* Reserves 8 bytes of metadata, writes them through ctx->data_meta, moves
 * data by the s32 at the start of the packet and reads the metadata back
 * in front of the new data. r0 = the metadata, or an error. */
SEC("xdp")
long xdp_meta_head(struct xdp_md *ctx)
{
	void *data = DATA(ctx), *end = DATA_END(ctx), *meta;
	int delta;
	long r;

	if (data + 4 > end)
		return -1000;
	delta = *(__s32 *)data;
	r = bpf_xdp_adjust_meta(ctx, -8);
	if (r)
		return r;
	meta = DATA_META(ctx);
	data = DATA(ctx);
	if (meta + 8 > data)
		return -1001;
	*(__u64 *)meta = META_VALUE;
	r = bpf_xdp_adjust_head(ctx, delta);
	if (r)
		return r;
	meta = DATA_META(ctx);
	data = DATA(ctx);
	if (meta + 8 != data)
		return -1002;
	return *(__u64 *)meta;
}

/* The metadata written through data_meta shows in a later read of the
 * field, as a TC program sees what XDP left: two u32, (mark, packet length). */
SEC("xdp")
long xdp_meta_write(struct xdp_md *ctx)
{
	__u32 *meta;
	void *data;

	if (bpf_xdp_adjust_meta(ctx, -(int)(2 * sizeof(__u32))))
		return -1;
	meta = DATA_META(ctx);
	data = DATA(ctx);
	if ((void *)(meta + 2) > data)
		return -2;
	meta[0] = 0xcafe;
	meta[1] = (long)ctx->data_end - (long)ctx->data;
	/* Read back through a fresh load of the field. */
	meta = DATA_META(ctx);
	if ((void *)(meta + 2) > DATA(ctx))
		return -3;
	return ((long)meta[0] << 32) | meta[1];
}

char LICENSE[] SEC("license") = "GPL";
