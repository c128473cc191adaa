/* TC programs for the packet helpers skb_store_bytes (9), l3_csum_replace
 * (10), l4_csum_replace (11), skb_vlan_push (18), skb_vlan_pop (19),
 * get_route_realm (24), skb_load_bytes (26), skb_change_proto (31),
 * get_hash_recalc (34), skb_change_tail (38) and skb_change_head (43),
 * written against the
 * kernel's struct __sk_buff. tests/test_packet_helpers.py runs them on
 * packets; programs that take arguments read them from the first bytes of
 * the packet (little-endian). Rebuild: sh build.sh */
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define DATA(skb) ((void *)(long)(skb)->data)
#define DATA_END(skb) ((void *)(long)(skb)->data_end)

#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))
#define IP_DST_OFF (ETH_HLEN + offsetof(struct iphdr, daddr))
#define NEW_DST 0x0a090807 /* 10.9.8.7 */
#define OLD_PORT 80
#define NEW_PORT 8080

/* Where the TCP or UDP checksum is and the l4_csum_replace flags for it
 * (UDP: a zero checksum means "none" and stays zero). 0, or -1 for a packet
 * that is neither. Reads the headers with skb_load_bytes. */
static __always_inline int l4_info(struct __sk_buff *skb, struct iphdr *ip, __u32 *l4_off,
				   __u32 *csum_off, __u64 *flags)
{
	if (bpf_skb_load_bytes(skb, ETH_HLEN, ip, sizeof(*ip)))
		return -1;
	*l4_off = ETH_HLEN + ip->ihl * 4;
	if (ip->protocol == IPPROTO_TCP) {
		*csum_off = *l4_off + offsetof(struct tcphdr, check);
		*flags = 0;
	} else if (ip->protocol == IPPROTO_UDP) {
		*csum_off = *l4_off + offsetof(struct udphdr, check);
		*flags = BPF_F_MARK_MANGLED_0;
	} else {
		return -1;
	}
	return 0;
}

/* Destination NAT to 10.9.8.7, the kernel samples' way (tcbpf1_kern.c):
 * both checksums fixed for the 4-byte address (the L4 one as part of the
 * pseudo header), then the address stored. r0 = 0 or the first error. */
SEC("tc")
long tc_nat4(struct __sk_buff *skb)
{
	struct iphdr ip;
	__u32 l4_off, csum_off;
	__u64 flags;
	__be32 old, new = bpf_htonl(NEW_DST);
	long r;

	if (l4_info(skb, &ip, &l4_off, &csum_off, &flags))
		return TC_ACT_OK;
	old = ip.daddr;
	r = bpf_l4_csum_replace(skb, csum_off, old, new, flags | BPF_F_PSEUDO_HDR | sizeof(new));
	if (r)
		return r;
	r = bpf_l3_csum_replace(skb, IP_CSUM_OFF, old, new, sizeof(new));
	if (r)
		return r;
	return bpf_skb_store_bytes(skb, IP_DST_OFF, &new, sizeof(new), 0);
}

/* The same NAT as two 16-bit fields (csum_replace2 in l3, the 2-byte case
 * of l4), and the destination port 80 -> 8080 (an L4 field outside the
 * pseudo header). */
SEC("tc")
long tc_nat2(struct __sk_buff *skb)
{
	struct iphdr ip;
	__u32 l4_off, csum_off;
	__u64 flags;
	__be32 new = bpf_htonl(NEW_DST);
	__be16 port, new_port = bpf_htons(NEW_PORT);
	long r;

	if (l4_info(skb, &ip, &l4_off, &csum_off, &flags))
		return TC_ACT_OK;
	for (int i = 0; i < 2; i++) {
		__u16 from = ((__u16 *)&ip.daddr)[i], to = ((__u16 *)&new)[i];
		r = bpf_l4_csum_replace(skb, csum_off, from, to, flags | BPF_F_PSEUDO_HDR | 2);
		if (r)
			return r;
		r = bpf_l3_csum_replace(skb, IP_CSUM_OFF, from, to, 2);
		if (r)
			return r;
	}
	r = bpf_skb_store_bytes(skb, IP_DST_OFF, &new, sizeof(new), 0);
	if (r)
		return r;
	/* Both TCP and UDP have the destination port at offset 2. */
	r = bpf_skb_load_bytes(skb, l4_off + 2, &port, sizeof(port));
	if (r)
		return r;
	if (port != bpf_htons(OLD_PORT))
		return 0;
	r = bpf_l4_csum_replace(skb, csum_off, port, new_port, flags | sizeof(port));
	if (r)
		return r;
	return bpf_skb_store_bytes(skb, l4_off + 2, &new_port, sizeof(new_port),
				   BPF_F_RECOMPUTE_CSUM);
}

/* The same NAT with a checksum difference from csum_diff (size 0). */
SEC("tc")
long tc_nat_diff(struct __sk_buff *skb)
{
	struct iphdr ip;
	__u32 l4_off, csum_off;
	__u64 flags;
	__be32 old, new = bpf_htonl(NEW_DST);
	__s64 diff;
	long r;

	if (l4_info(skb, &ip, &l4_off, &csum_off, &flags))
		return TC_ACT_OK;
	old = ip.daddr;
	diff = bpf_csum_diff(&old, sizeof(old), &new, sizeof(new), 0);
	if (diff < 0)
		return diff;
	r = bpf_l4_csum_replace(skb, csum_off, 0, diff, flags | BPF_F_PSEUDO_HDR);
	if (r)
		return r;
	r = bpf_l3_csum_replace(skb, IP_CSUM_OFF, 0, diff, 0);
	if (r)
		return r;
	return bpf_skb_store_bytes(skb, IP_DST_OFF, &new, sizeof(new), BPF_F_INVALIDATE_HASH);
}

/* Calls l3_csum_replace (which == 3) or l4_csum_replace (which == 4) with
 * the arguments at the start of the packet:
 *   u32 which, u32 offset, u64 from, u64 to, u64 flags.
 * r0 = the helper's result. */
struct csum_args {
	__u32 which, offset;
	__u64 from, to, flags;
};

SEC("tc")
long tc_csum_call(struct __sk_buff *skb)
{
	struct csum_args *a = DATA(skb);

	if ((void *)(a + 1) > DATA_END(skb))
		return -1000;
	if (a->which == 3)
		return bpf_l3_csum_replace(skb, a->offset, a->from, a->to, a->flags);
	return bpf_l4_csum_replace(skb, a->offset, a->from, a->to, a->flags);
}

/* skb_load_bytes of 8 bytes at the u32 offset at the start of the packet.
 * r0 = the 8 bytes (little-endian) on success; on an error, the error if
 * the destination was zeroed, else 1. */
SEC("tc")
long tc_load8(struct __sk_buff *skb)
{
	void *data = DATA(skb), *end = DATA_END(skb);
	__u64 buf = 0xaaaaaaaaaaaaaaaaull;
	long r;

	if (data + 4 > end)
		return -1000;
	r = bpf_skb_load_bytes(skb, *(__u32 *)data, &buf, sizeof(buf));
	if (r)
		return buf == 0 ? r : 1;
	return buf;
}

/* skb_load_bytes of the first 64 bytes into the stack, then skb_store_bytes
 * of them reversed at the same place. */
SEC("tc")
long tc_reverse64(struct __sk_buff *skb)
{
	__u8 buf[64], rev[64];
	long r;

	r = bpf_skb_load_bytes(skb, 0, buf, sizeof(buf));
	if (r)
		return r;
	for (int i = 0; i < 64; i++)
		rev[i] = buf[63 - i];
	return bpf_skb_store_bytes(skb, 0, rev, sizeof(rev), 0);
}

/* skb_store_bytes of "0123456789abcdef" with the u32 offset and the u64
 * flags at the start of the packet; r0 = its result. */
SEC("tc")
long tc_store16(struct __sk_buff *skb)
{
	void *data = DATA(skb), *end = DATA_END(skb);
	char text[16] = "0123456789abcdef";
	__u32 offset;
	__u64 flags;

	if (data + 12 > end)
		return -1000;
	offset = *(__u32 *)data;
	flags = *(__u64 *)(data + 4);
	return bpf_skb_store_bytes(skb, offset, text, sizeof(text), flags);
}

/* get_hash_recalc: r0 = the hash << 32 | skb->hash after the call. */
SEC("tc")
long tc_hash(struct __sk_buff *skb)
{
	__u64 hash = bpf_get_hash_recalc(skb);

	return hash << 32 | skb->hash;
}

/* get_hash_recalc, then the TCP destination port of an IPv4 packet without
 * options incremented by skb_store_bytes with `flags`, then get_hash_recalc
 * again: r0 = the first hash << 32 | the second. */
static __always_inline long hash_around_store(struct __sk_buff *skb, __u64 flags)
{
	__u64 first = bpf_get_hash_recalc(skb);
	__u16 port;

	if (bpf_skb_load_bytes(skb, ETH_HLEN + 22, &port, 2))
		return -1000;
	port = bpf_htons(bpf_ntohs(port) + 1);
	if (bpf_skb_store_bytes(skb, ETH_HLEN + 22, &port, 2, flags))
		return -1001;
	return first << 32 | bpf_get_hash_recalc(skb);
}

SEC("tc")
long tc_hash_invalidated(struct __sk_buff *skb)
{
	return hash_around_store(skb, BPF_F_INVALIDATE_HASH);
}

SEC("tc")
long tc_hash_kept(struct __sk_buff *skb)
{
	return hash_around_store(skb, 0);
}

/* The arguments of the size programs: two sizes and the flags. */
struct size_args {
	__u32 first, second;
	__u64 flags;
};

/* r0 = the first result << 32 | the second (each as a u32), or -2000 when
 * skb->len is not data_end - data afterwards. */
static __always_inline long sizes(struct __sk_buff *skb, long first, long second)
{
	if (skb->len != (__u32)(DATA_END(skb) - DATA(skb)))
		return -2000;
	return (__u64)(__u32)first << 32 | (__u32)second;
}

/* skb_change_tail to `first`, then to `second` (head: skb_change_head by
 * them), with `flags`. */
static __always_inline long change_twice(struct __sk_buff *skb, int head)
{
	struct size_args *a = DATA(skb), args;
	long first;

	if ((void *)(a + 1) > DATA_END(skb))
		return -1000;
	args = *a;
	first = head ? bpf_skb_change_head(skb, args.first, args.flags)
		     : bpf_skb_change_tail(skb, args.first, args.flags);
	return sizes(skb, first, head ? bpf_skb_change_head(skb, args.second, args.flags)
				      : bpf_skb_change_tail(skb, args.second, args.flags));
}

SEC("tc")
long tc_change_tail(struct __sk_buff *skb)
{
	return change_twice(skb, 0);
}

SEC("tc")
long tc_change_head(struct __sk_buff *skb)
{
	return change_twice(skb, 1);
}

/* skb_change_proto to IPv6, to IPv4, and with a flag: r0 = the result << 32
 * | skb->protocol, or -2000 if skb->len is not the packet's length after. */
SEC("tc")
long tc_to_ipv6(struct __sk_buff *skb)
{
	return sizes(skb, bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0), skb->protocol);
}

SEC("tc")
long tc_to_ipv4(struct __sk_buff *skb)
{
	return sizes(skb, bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0), skb->protocol);
}

SEC("tc")
long tc_to_ipv6_flagged(struct __sk_buff *skb)
{
	return sizes(skb, bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 1), skb->protocol);
}

/* The VLAN state after a helper: the result, vlan_present, vlan_tci and
 * skb->protocol (each 16 bits), or -2000 if skb->len is not the packet's
 * length. */
static __always_inline long vlan_state(struct __sk_buff *skb, long r)
{
	if (skb->len != (__u32)(DATA_END(skb) - DATA(skb)))
		return -2000;
	return (__u64)(__u16)r << 48 | (__u64)(__u16)skb->vlan_present << 32 |
	       (__u64)(__u16)skb->vlan_tci << 16 | (__u16)skb->protocol;
}

/* skb_vlan_push of 802.1ad tag 0x123 (kept accelerated), then of an 802.1Q tag
 * 0x456 with a bad protocol (made 802.1Q), which moves the first into the data. */
SEC("tc")
long tc_vlan_push(struct __sk_buff *skb)
{
	long r = bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021AD), 0x123);

	if (r || !skb->vlan_present || skb->vlan_proto != bpf_htons(ETH_P_8021AD))
		return vlan_state(skb, r ? r : -1);
	r = bpf_skb_vlan_push(skb, bpf_htons(0x1234), 0x456);
	if (skb->vlan_proto != bpf_htons(ETH_P_8021Q))
		return -3000;
	return vlan_state(skb, r);
}

/* skb_vlan_pop once, or twice when the packet's first byte is odd. */
SEC("tc")
long tc_vlan_pop(struct __sk_buff *skb)
{
	__u8 *first = DATA(skb);
	long r;

	if ((void *)(first + 1) > DATA_END(skb))
		return -1000;
	if (*first & 1) {
		r = bpf_skb_vlan_pop(skb);
		if (r)
			return vlan_state(skb, r);
	}
	return vlan_state(skb, bpf_skb_vlan_pop(skb));
}

/* get_route_realm: r0 = the realm + 1000. */
SEC("tc")
long tc_realm(struct __sk_buff *skb)
{
	return bpf_get_route_realm(skb) + 1000;
}

char LICENSE[] SEC("license") = "GPL";
