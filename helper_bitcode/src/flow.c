/* get_hash_recalc (34): the flow hash of the packet of a struct
 * sk_buff_userspace (abi.h, docs/abi.md).
 *
 * The kernel's bpf_get_hash_recalc() is skb_get_hash(): the hash already set,
 * else __skb_get_hash(), which dissects the packet into struct flow_keys
 * (net/core/flow_dissector.c, FLOW_DISSECTOR_F_STOP_AT_FLOW_LABEL), orders
 * the flow's ends (__flow_hash_consistentify(), so both directions hash
 * alike), hashes the keys with SipHash-2-4 under hashrnd, a random key drawn
 * once per boot, turns 0 into 1 and stores the result in skb->hash. Here
 * hash 0 means "none" (the host's start, and what skb_store_bytes'
 * BPF_F_INVALIDATE_HASH leaves). The keys are the kernel's, hashed as one
 * record in network byte order (docs/helpers.md); the key is fixed
 * (FLOW_HASH_K0/K1), since the kernel's random one makes no value something
 * a program can rely on, and a fixed one makes runs repeat.
 *
 * Dissected: Ethernet, one or two 802.1Q/802.1ad tags (the outer tag's VLAN
 * id is a key), IPv4 (addresses, protocol; a fragment, first or not, gives no
 * ports, as without FLOW_DISSECTOR_F_PARSE_1ST_FRAG), IPv6 (addresses, next
 * header; a nonzero flow label is a key and ends the dissection, before the
 * ports), and the ports of TCP, UDP, UDP-Lite, SCTP and DCCP. A header cut
 * short ends the dissection with what was found so far.
 */
#include "host.h"
#include "abi.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86dd
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88a8

struct flow_record {
    u8 n_proto[2];     /* the network protocol, as in the packet */
    u8 ip_proto;
    u8 pad0;
    u8 vlan_id[2];     /* the outer tag's VLAN id, big-endian; 0 untagged */
    u8 pad1[2];
    u8 flow_label[4];  /* IPv6's, big-endian */
    u8 ports[4];       /* source, destination, as in the packet */
    u8 addrs[32];      /* source, destination: 4 bytes each for IPv4, 16 for IPv6 */
};

static u16 be16(const u8 *p)
{
    return (u16)(p[0] << 8 | p[1]);
}

static u32 le32(const u8 *p)
{
    return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static void swap_bytes(u8 *a, u8 *b, u32 n)
{
    for (u32 i = 0; i < n; i++) {
        u8 t = a[i];
        a[i] = b[i];
        b[i] = t;
    }
}

/* __flow_hash_consistentify(): the lower address first, the lower port
 * first, each compared as the kernel compares them, the raw bytes as a
 * little-endian host loads them (IPv4, ports) or with memcmp (IPv6). */
static void consistentify(struct flow_record *k, u32 addr_len)
{
    if (addr_len == 4 && le32(k->addrs + 4) < le32(k->addrs))
        swap_bytes(k->addrs, k->addrs + 4, 4);
    if (addr_len == 16 && __builtin_memcmp(k->addrs + 16, k->addrs, 16) < 0)
        swap_bytes(k->addrs, k->addrs + 16, 16);
    if ((u16)(k->ports[2] | k->ports[3] << 8) < (u16)(k->ports[0] | k->ports[1] << 8))
        swap_bytes(k->ports, k->ports + 2, 2);
}

static int has_ports(u8 proto)
{
    return proto == 6 || proto == 17 || proto == 33 || proto == 132 || proto == 136;
}

/* The keys of the packet [p, p + len); returns the bytes of the record to hash. */
static u32 dissect(const u8 *p, u64 len, struct flow_record *k)
{
    u64 off = 14;
    u32 addr_len = 0, label = 0;
    u64 l4 = 0;

    if (len < 14)
        goto out;
    u16 proto = be16(p + 12);
    for (int tags = 0; tags < 2 && (proto == ETH_P_8021Q || proto == ETH_P_8021AD); tags++) {
        if (len < off + 4)
            goto out;
        if (tags == 0) {
            u16 vid = be16(p + off) & 0xfff;
            k->vlan_id[0] = (u8)(vid >> 8), k->vlan_id[1] = (u8)vid;
        }
        proto = be16(p + off + 2);
        off += 4;
    }
    k->n_proto[0] = (u8)(proto >> 8), k->n_proto[1] = (u8)proto;
    if (proto == ETH_P_IP) {
        u64 ihl;
        if (len < off + 20 || (ihl = (u64)(p[off] & 0xf) * 4) < 20)
            goto out;
        k->ip_proto = p[off + 9];
        addr_len = 4;
        __builtin_memcpy(k->addrs, p + off + 12, 8);
        if (be16(p + off + 6) & 0x3fff)   /* MF or a fragment offset: no ports */
            goto out;
        l4 = off + ihl;
    } else if (proto == ETH_P_IPV6) {
        if (len < off + 40)
            goto out;
        k->ip_proto = p[off + 6];
        addr_len = 16;
        __builtin_memcpy(k->addrs, p + off + 8, 32);
        label = (u32)(p[off + 1] & 0xf) << 16 | (u32)p[off + 2] << 8 | p[off + 3];
        if (label) {   /* FLOW_DISSECTOR_F_STOP_AT_FLOW_LABEL */
            k->flow_label[1] = (u8)(label >> 16), k->flow_label[2] = (u8)(label >> 8);
            k->flow_label[3] = (u8)label;
            goto out;
        }
        l4 = off + 40;
    } else {
        goto out;
    }
    if (has_ports(k->ip_proto) && len >= l4 + 4)
        __builtin_memcpy(k->ports, p + l4, 4);
out:
    consistentify(k, addr_len);
    return (u32)__builtin_offsetof(struct flow_record, addrs) + 2 * addr_len;
}

/* SipHash-2-4 (Aumasson and Bernstein), as the kernel's siphash(). */
#define ROTL(x, b) (u64)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                              \
    do {                                                                      \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);             \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);             \
    } while (0)

static u64 siphash(const u8 *in, u32 len, u64 k0, u64 k1)
{
    u64 v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    u64 v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    u64 b = (u64)len << 56, m;
    u32 i = 0;

    for (; i + 8 <= len; i += 8) {
        __builtin_memcpy(&m, in + i, 8);   /* little-endian on both targets */
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (u32 j = 0; i + j < len; j++)
        b |= (u64)in[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* The hash of a packet's flow, never 0 (the kernel's 0 -> 1). */
static u32 flow_hash(const u8 *packet, u64 len)
{
    struct flow_record k;
    __builtin_memset(&k, 0, sizeof(k));
    u32 n = dissect(packet, len, &k);
    u32 hash = (u32)siphash((const u8 *)&k, n, FLOW_HASH_K0, FLOW_HASH_K1);
    return hash ? hash : 1;
}

BPF_HELPER(0034) /* get_hash_recalc(skb) */
{
    struct sk_buff_userspace *skb = (struct sk_buff_userspace *)(uintptr_t)r1;
    (void)r2, (void)r3, (void)r4, (void)r5;

    if (skb->hash == 0)
        skb->hash = flow_hash((const u8 *)(uintptr_t)skb->data,
                            skb->data_end - skb->data);
    return skb->hash;
}
