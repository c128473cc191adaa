/* Programs written against the kernel's struct xdp_md and struct __sk_buff;
 * tests/test_contexts.py runs them unchanged on packets and checks the
 * kernel's results. Rebuild: bash build.sh */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Drop TCP to port 22, bounce anything else over IPv4 that is not TCP,
 * pass the rest; XDP_ABORTED for truncated headers. */
SEC("xdp")
int xdp_firewall(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_ABORTED;
	if (ip->protocol != IPPROTO_TCP)
		return XDP_TX;
	struct tcphdr *tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > end)
		return XDP_ABORTED;
	return tcp->dest == bpf_htons(22) ? XDP_DROP : XDP_PASS;
}

/* The context passed to a subprogram: its accesses are rewritten too. */
static __attribute__((noinline)) long packet_length(struct xdp_md *ctx)
{
	return (long)ctx->data_end - (long)ctx->data;
}

SEC("xdp")
int xdp_length(struct xdp_md *ctx)
{
	/* No metadata in front of the packet: data_meta == data, as in the kernel. */
	if (ctx->data_meta != ctx->data)
		return -1;
	return packet_length(ctx) + 1000 * ctx->ingress_ifindex;
}

/* Writes mark and cb[], reads them back, answers with what it read. */
SEC("tc")
int tc_mark(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	if (data + ETH_HLEN > end)
		return TC_ACT_SHOT;
	skb->mark = skb->len * 3 + (skb->protocol == bpf_htons(ETH_P_IP));
	skb->cb[2] = skb->mark ^ 0x5a;
	if ((skb->cb[2] ^ 0x5a) != skb->mark)
		return TC_ACT_SHOT;
	return skb->mark;
}

char LICENSE[] SEC("license") = "GPL";
