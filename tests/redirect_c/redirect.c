/* XDP and tc programs for the forwarding helpers: redirect_map (51) over each
 * redirect map type, redirect (23), redirect_peer (155), get_prandom_u32 (7),
 * fib_lookup (69) and the socket lookups (84, 85, 99, with sk_release 86). tests/test_redirect.py runs them on
 * packets whose first bytes are the arguments (little-endian).
 * Rebuild: sh build.sh */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct args {
	__u32 key;     /* redirect_map's key, or the ifindex */
	__u32 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} tx_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} tx_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val);
} cpus SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

#define ARGS(ctx) ({                                                       \
	struct args *a = (void *)(long)(ctx)->data;                        \
	if ((void *)(a + 1) > (void *)(long)(ctx)->data_end)               \
		return -1;                                                 \
	a; })

#define REDIRECT_MAP(name, map)                                            \
	SEC("xdp") int name(struct xdp_md *ctx)                            \
	{                                                                  \
		struct args *a = ARGS(ctx);                                \
		return bpf_redirect_map(&map, a->key, a->flags);           \
	}
REDIRECT_MAP(xdp_devmap, tx_port)
REDIRECT_MAP(xdp_devmap_hash, tx_hash)
REDIRECT_MAP(xdp_cpumap, cpus)
REDIRECT_MAP(xdp_xskmap, xsks)

/* The AF_XDP pattern: redirect to the queue's socket when one is bound. */
SEC("xdp")
int xdp_sock(struct xdp_md *ctx)
{
	__u32 queue = ctx->rx_queue_index;

	if (bpf_map_lookup_elem(&xsks, &queue))
		return bpf_redirect_map(&xsks, queue, XDP_DROP);
	return XDP_PASS;
}

SEC("xdp")
int xdp_redirect_dev(struct xdp_md *ctx)
{
	struct args *a = ARGS(ctx);
	return bpf_redirect(a->key, a->flags);
}

SEC("tc")
int tc_redirect(struct __sk_buff *skb)
{
	struct args *a = ARGS(skb);
	return bpf_redirect(a->key, a->flags);
}

SEC("tc")
int tc_redirect_peer(struct __sk_buff *skb)
{
	struct args *a = ARGS(skb);
	return bpf_redirect_peer(a->key, a->flags);
}

/* Writes four draws of get_prandom_u32 over the packet's first 16 bytes. */
SEC("xdp")
int xdp_random(struct xdp_md *ctx)
{
	__u32 *p = (void *)(long)ctx->data;

	if ((void *)(p + 4) > (void *)(long)ctx->data_end)
		return XDP_ABORTED;
	for (int i = 0; i < 4; i++)
		p[i] = bpf_get_prandom_u32();
	return XDP_PASS;
}

/* fib_lookup with the packet's first 64 bytes as struct bpf_fib_lookup, its
 * size from byte 64 and its flags from bytes 68..71; returns the result. */
SEC("xdp")
int xdp_fib(struct xdp_md *ctx)
{
	struct bpf_fib_lookup params;
	void *data = (void *)(long)ctx->data;
	__u32 *tail = data + sizeof(params);

	if ((void *)(tail + 2) > (void *)(long)ctx->data_end)
		return -1;
	__builtin_memcpy(&params, data, sizeof(params));
	return bpf_fib_lookup(ctx, &params, tail[0] > sizeof(params) ? sizeof(params) : tail[0],
			      tail[1]);
}

/* fib_lookup with the packet itself as params, proven only 14 bytes long: the
 * kernel's verifier refuses this; a checked build checks the 64 bytes at run
 * time and gives -EFAULT when the packet is shorter. */
SEC("xdp")
int xdp_fib_unchecked(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;

	if (data + 14 > (void *)(long)ctx->data_end)
		return -1;
	return bpf_fib_lookup(ctx, data, sizeof(struct bpf_fib_lookup), 0);
}

/* sk_lookup_tcp, sk_lookup_udp and skc_lookup_tcp on a tuple from the packet:
 * TC_ACT_OK when no socket matches any. */
SEC("tc")
int tc_sk_lookup(struct __sk_buff *skb)
{
	struct bpf_sock_tuple *t = (void *)(long)skb->data;
	struct bpf_sock *sk;

	if ((void *)t + sizeof(t->ipv4) > (void *)(long)skb->data_end)
		return TC_ACT_SHOT;
	sk = bpf_sk_lookup_tcp(skb, t, sizeof(t->ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		sk = bpf_sk_lookup_udp(skb, t, sizeof(t->ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		sk = bpf_skc_lookup_tcp(skb, t, sizeof(t->ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return TC_ACT_OK;
	bpf_sk_release(sk);
	return TC_ACT_REDIRECT;
}

char _license[] SEC("license") = "GPL";
