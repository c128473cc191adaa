/* Packet helpers: xdp_adjust_head (44), xdp_adjust_meta (54),
 * xdp_adjust_tail (65) on struct xdp_md_userspace; skb_store_bytes (9),
 * l3_csum_replace (10), l4_csum_replace (11), skb_vlan_push (18),
 * skb_vlan_pop (19), skb_load_bytes (26), skb_change_proto (31),
 * skb_change_tail (38) and skb_change_head (43) on struct sk_buff_userspace
 * (abi.h, docs/abi.md). r1 is the userspace context the program was given.
 *
 * The semantics are net/core/filter.c's, with the userspace buffer standing
 * in for the kernel's:
 *
 * - XDP: the packet lives in [buffer_start, buffer_end) (the runner gives it
 *   XDP_PACKET_HEADROOM bytes in front and 256 behind). The kernel keeps
 *   sizeof(struct xdp_frame) at data_hard_start for XDP_REDIRECT and the
 *   skb_shared_info at the end of the frame; userspace has neither, so the
 *   whole buffer is usable: data may move down to buffer_start + metalen
 *   (the kernel: data_hard_start + sizeof(struct xdp_frame) + metalen) and
 *   data_end up to buffer_end. The metadata area is data - data_meta .. data
 *   (xdp_md_userspace.data_meta holds its LENGTH), so moving data moves the
 *   metadata with it, as the kernel's memmove does.
 * - skb: the packet is data .. data_end, linear, as a socket buffer after
 *   skb_ensure_writable(); a range past data_end is what pskb_may_pull()
 *   refuses, so -EFAULT. It may grow into [buffer_start, buffer_end), where
 *   the kernel would reallocate the buffer (skb_cow(), pskb_expand_head()).
 *   There is no skb->csum (CHECKSUM_COMPLETE) or CHECKSUM_PARTIAL state in
 *   userspace: every checksum in the packet is a full one (CHECKSUM_NONE),
 *   which decides the csum flags below.
 */
#include "host.h"
#include "abi.h"
#include "csum.h"

#define ETH_HLEN 14
#define INT_MAX 0x7fffffffu

/* xdp_metalen_invalid() since Linux 6.6 ("net, xdp: allow metadata > 32"):
 * a multiple of 4 and at most type_max(skb_shared_info.meta_len), a u8, so
 * 255 (252 in practice). Before 6.6 the limit was 32. */
#define XDP_META_MAX 255u

/* include/uapi/linux/bpf.h */
#define BPF_F_RECOMPUTE_CSUM (1ull << 0)
#define BPF_F_INVALIDATE_HASH (1ull << 1)
#define BPF_F_HDR_FIELD_MASK 0xfull
#define BPF_F_PSEUDO_HDR (1ull << 4)
#define BPF_F_MARK_MANGLED_0 (1ull << 5)
#define BPF_F_MARK_ENFORCE (1ull << 6)
#define BPF_F_IPV6 (1ull << 7) /* Linux 6.16+ */
#define CSUM_MANGLED_0 0xffffu

/* Pointers as signed 64-bit numbers: user addresses are below 2^63, so a
 * negative delta never wraps a comparison. */
typedef int64_t addr_t;

/* -- XDP ------------------------------------------------------------------ */

static struct xdp_md_userspace *xdp_ctx(u64 r1)
{
    return (struct xdp_md_userspace *)(uintptr_t)r1;
}

BPF_HELPER(0044) /* xdp_adjust_head(xdp_md, int delta) */
{
    struct xdp_md_userspace *xdp = xdp_ctx(r1);
    int64_t offset = (int32_t)r2;
    addr_t metalen = xdp->data_meta;
    addr_t data = (addr_t)xdp->data + offset;
    (void)r3, (void)r4, (void)r5;

    /* No sizeof(struct xdp_frame) reserved: see the top of the file. */
    if (data < (addr_t)xdp->buffer_start + metalen || data > (addr_t)xdp->data_end - ETH_HLEN)
        return NEG_ERRNO(EINVAL);
    if (metalen)
        __builtin_memmove((u8 *)(uintptr_t)(data - metalen),
                          (const u8 *)(uintptr_t)((addr_t)xdp->data - metalen), (u64)metalen);
    xdp->data = (u64)data;
    return 0;
}

BPF_HELPER(0054) /* xdp_adjust_meta(xdp_md, int delta) */
{
    struct xdp_md_userspace *xdp = xdp_ctx(r1);
    int64_t offset = (int32_t)r2;
    addr_t data = (addr_t)xdp->data;
    addr_t meta = data - (addr_t)xdp->data_meta + offset;
    (void)r3, (void)r4, (void)r5;

    if (meta < (addr_t)xdp->buffer_start || meta > data)
        return NEG_ERRNO(EINVAL);
    u64 metalen = (u64)(data - meta);
    if ((metalen & 3) || metalen > XDP_META_MAX)
        return NEG_ERRNO(EACCES);
    xdp->data_meta = (u32)metalen;
    return 0;
}

BPF_HELPER(0065) /* xdp_adjust_tail(xdp_md, int delta) */
{
    struct xdp_md_userspace *xdp = xdp_ctx(r1);
    int64_t offset = (int32_t)r2;
    addr_t data_end = (addr_t)xdp->data_end + offset;
    (void)r3, (void)r4, (void)r5;

    if (data_end > (addr_t)xdp->buffer_end || data_end < (addr_t)xdp->data + ETH_HLEN)
        return NEG_ERRNO(EINVAL);
    /* The kernel clears the grown part ("can contain uninit kernel memory"). */
    if (offset > 0)
        __builtin_memset((u8 *)(uintptr_t)xdp->data_end, 0, (u64)offset);
    xdp->data_end = (u64)data_end;
    return 0;
}

/* -- skb: bytes ----------------------------------------------------------- */

static struct sk_buff_userspace *skb_ctx(u64 r1)
{
    return (struct sk_buff_userspace *)(uintptr_t)r1;
}

/* The packet bytes [offset, offset + len), or NULL when they are not all in
 * data .. data_end. */
static u8 *skb_range(const struct sk_buff_userspace *skb, u64 offset, u64 len)
{
    u64 size = skb->data_end - skb->data;
    if (offset > size || len > size - offset)
        return 0;
    return (u8 *)(uintptr_t)(skb->data + offset);
}

BPF_HELPER(0026) /* skb_load_bytes(skb, u32 offset, void *to, u32 len) */
{
    u32 offset = (u32)r2, len = (u32)r4;
    u8 *to = (u8 *)(uintptr_t)r3;
    const u8 *from = offset > INT_MAX ? 0 : skb_range(skb_ctx(r1), offset, len);
    (void)r5;

    if (!from) {
        __builtin_memset(to, 0, len);
        return NEG_ERRNO(EFAULT);
    }
    __builtin_memmove(to, from, len);
    return 0;
}

/* BPF_F_RECOMPUTE_CSUM keeps skb->csum right for CHECKSUM_COMPLETE; there is
 * no skb->csum here, so the flag is accepted and has nothing to update. */
BPF_HELPER(0009) /* skb_store_bytes(skb, u32 offset, const void *from, u32 len, u64 flags) */
{
    struct sk_buff_userspace *skb = skb_ctx(r1);
    u32 offset = (u32)r2, len = (u32)r4;
    u64 flags = r5;

    if (flags & ~(BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH))
        return NEG_ERRNO(EINVAL);
    if (offset > INT_MAX)
        return NEG_ERRNO(EFAULT);
    u8 *to = skb_range(skb, offset, len);
    if (!to)
        return NEG_ERRNO(EFAULT);
    __builtin_memmove(to, (const u8 *)(uintptr_t)r3, len);
    if (flags & BPF_F_INVALIDATE_HASH)
        skb->hash = 0;
    return 0;
}

/* -- skb: size ------------------------------------------------------------ */

/* __bpf_skb_change_tail(): flags must be 0 and the new length at least the
 * network header's offset (__bpf_skb_min_len(): the packet starts with its
 * Ethernet header, and no transport header is recorded) and at most the
 * buffer's room past data (the kernel's limit is the device's MTU plus its
 * header, which a userspace packet has no device for); -EINVAL otherwise.
 * Grown bytes are zeroed (bpf_skb_grow_rcsum()); skb->len follows. */
BPF_HELPER(0038) /* skb_change_tail(skb, u32 len, u64 flags) */
{
    struct sk_buff_userspace *skb = skb_ctx(r1);
    u64 new_len = (u32)r2, len = skb->data_end - skb->data;
    (void)r4, (void)r5;

    if (r3 || new_len < ETH_HLEN || new_len > skb->buffer_end - skb->data)
        return NEG_ERRNO(EINVAL);
    if (new_len > len)
        __builtin_memset((u8 *)(uintptr_t)skb->data_end, 0, new_len - len);
    skb->data_end = skb->data + new_len;
    skb->len = (u32)new_len;
    return 0;
}

/* __bpf_skb_change_head(): flags must be 0 and the new length must not wrap
 * a u32 (-EINVAL); the room comes from the buffer's headroom, where the
 * kernel's skb_cow() would reallocate, so more than the headroom is -ENOMEM,
 * the kernel's answer when it cannot get the memory. The new bytes in front
 * are zeroed, skb->len grows, and the metadata (data_meta..data) keeps its
 * length. */
BPF_HELPER(0043) /* skb_change_head(skb, u32 head_room, u64 flags) */
{
    struct sk_buff_userspace *skb = skb_ctx(r1);
    u64 room = (u32)r2, len = skb->data_end - skb->data;
    (void)r4, (void)r5;

    if (r3 || len + room > 0xffffffffu)
        return NEG_ERRNO(EINVAL);
    if (room > skb->data - skb->buffer_start)
        return NEG_ERRNO(ENOMEM);
    skb->data -= room;
    skb->data_meta -= room;
    __builtin_memset((u8 *)(uintptr_t)skb->data, 0, room);
    skb->len = (u32)(len + room);
    return 0;
}

/* bpf_skb_proto_xlat(): between IPv4 and IPv6 the network header grows or
 * shrinks by 20 bytes right after the 14-byte Ethernet header (the mac
 * header's length: a tagged packet's protocol is its VLAN's, which is no
 * translation), the bytes the program then rewrites; the new ones are zeroed
 * (bpf_skb_generic_push()). -ENOMEM where the kernel's skb_cow() or
 * pskb_may_pull() fails: not 20 bytes of headroom, or a packet shorter than
 * the headers. skb->protocol becomes the new one and the hash is cleared
 * (skb_clear_hash()). Any other pair is -ENOTSUPP (524, a kernel-internal
 * errno), flags -EINVAL. `proto` and skb->protocol are both in network byte
 * order. */
#define ENOTSUPP 524
#define IPV6_GROWTH 20
#define ETH_P_IP_BE 0x0008u
#define ETH_P_IPV6_BE 0xdd86u

BPF_HELPER(0031) /* skb_change_proto(skb, __be16 proto, u64 flags) */
{
    struct sk_buff_userspace *skb = skb_ctx(r1);
    u16 to = (u16)r2;
    u64 len = skb->data_end - skb->data;
    u8 *data = (u8 *)(uintptr_t)skb->data;
    (void)r4, (void)r5;

    if (r3)
        return NEG_ERRNO(EINVAL);
    if (skb->protocol == ETH_P_IP_BE && to == ETH_P_IPV6_BE) {
        if (skb->data - skb->buffer_start < IPV6_GROWTH)
            return NEG_ERRNO(ENOMEM);
        __builtin_memmove(data - IPV6_GROWTH, data, ETH_HLEN);
        __builtin_memset(data - IPV6_GROWTH + ETH_HLEN, 0, IPV6_GROWTH);
        skb->data -= IPV6_GROWTH;
        skb->data_meta -= IPV6_GROWTH;
        skb->len = (u32)(len + IPV6_GROWTH);
    } else if (skb->protocol == ETH_P_IPV6_BE && to == ETH_P_IP_BE) {
        if (len < ETH_HLEN + IPV6_GROWTH)
            return NEG_ERRNO(ENOMEM);
        __builtin_memmove(data + IPV6_GROWTH, data, ETH_HLEN);
        skb->data += IPV6_GROWTH;
        skb->data_meta += IPV6_GROWTH;
        skb->len = (u32)(len - IPV6_GROWTH);
    } else {
        return NEG_ERRNO(ENOTSUPP);
    }
    skb->protocol = to;
    skb->hash = 0;
    return 0;
}

/* -- skb: VLAN tags ------------------------------------------------------- */

/* The kernel keeps a packet's outer tag out of the data when it can (the
 * "accelerated" tag: skb->vlan_proto and vlan_tci, which the program reads
 * as __sk_buff.vlan_present, vlan_tci and vlan_proto) and in the data
 * otherwise. skb_vlan_push() moves a present accelerated tag into the data,
 * after the MAC addresses, and makes the new tag the accelerated one;
 * skb_vlan_pop() drops the accelerated tag, or else the first tag in the
 * data, and then makes the next tag in the data, if any, the accelerated
 * one (net/core/skbuff.c). skb->protocol is the network protocol past the
 * tags in the data. Protocols are in network byte order, the TCI in host
 * order; the packet starts with its MAC header, as __skb_vlan_pop() and
 * skb_vlan_push() require. */
#define VLAN_HLEN 4
#define MACS_LEN 12
#define ETH_P_8021Q_BE 0x0081u
#define ETH_P_8021AD_BE 0xa888u
#define ETH_P_802_3_MIN 0x0600u
#define ETH_P_802_3_BE 0x0100u
#define ETH_P_802_2_BE 0x0400u

static int is_vlan(u32 proto)
{
    return proto == ETH_P_8021Q_BE || proto == ETH_P_8021AD_BE;
}

/* __skb_vlan_pop(): the first tag in the data removed; its TCI, or -ENOMEM
 * when the packet is shorter than a tagged Ethernet header
 * (skb_ensure_writable() fails). skb->protocol becomes the protocol the tag
 * held (vlan_set_encap_proto(): below 0x600 a length, so 802.3 when the
 * payload starts 0xffff, else 802.2). */
static int64_t vlan_pop_data(struct sk_buff_userspace *skb)
{
    u8 *data = (u8 *)(uintptr_t)skb->data;
    if (skb->data_end - skb->data < ETH_HLEN + VLAN_HLEN)
        return -ENOMEM;
    u16 tci = (u16)(data[14] << 8 | data[15]), proto = (u16)(data[16] << 8 | data[17]);
    if (proto >= ETH_P_802_3_MIN)
        skb->protocol = (u32)(data[16] | data[17] << 8);
    else if (skb->data_end - skb->data >= ETH_HLEN + VLAN_HLEN + 2 && data[18] == 0xff &&
             data[19] == 0xff)
        skb->protocol = ETH_P_802_3_BE;
    else
        skb->protocol = ETH_P_802_2_BE;
    __builtin_memmove(data + VLAN_HLEN, data, MACS_LEN);
    skb->data += VLAN_HLEN;
    skb->data_meta += VLAN_HLEN;
    skb->len -= VLAN_HLEN;
    return tci;
}

static void vlan_accel(struct sk_buff_userspace *skb, u32 proto, u32 tci)
{
    skb->vlan_present = 1;
    skb->vlan_proto = proto;
    skb->vlan_tci = tci;
}

BPF_HELPER(0018) /* skb_vlan_push(skb, __be16 vlan_proto, u16 vlan_tci) */
{
    struct sk_buff_userspace *skb = skb_ctx(r1);
    u32 proto = (u16)r2;
    (void)r4, (void)r5;

    if (!is_vlan(proto))   /* bpf_skb_vlan_push(): anything else is 802.1Q */
        proto = ETH_P_8021Q_BE;
    if (skb->vlan_present) {   /* __vlan_insert_tag() of the present one */
        if (skb->data - skb->buffer_start < VLAN_HLEN)
            return NEG_ERRNO(ENOMEM);   /* where skb_cow_head() fails */
        u8 *data = (u8 *)(uintptr_t)skb->data - VLAN_HLEN;
        __builtin_memmove(data, data + VLAN_HLEN, MACS_LEN);
        data[12] = (u8)skb->vlan_proto, data[13] = (u8)(skb->vlan_proto >> 8);
        data[14] = (u8)(skb->vlan_tci >> 8), data[15] = (u8)skb->vlan_tci;
        skb->data -= VLAN_HLEN;
        skb->data_meta -= VLAN_HLEN;
        skb->len += VLAN_HLEN;
        skb->protocol = skb->vlan_proto;
    }
    vlan_accel(skb, proto, (u16)r3);
    return 0;
}

BPF_HELPER(0019) /* skb_vlan_pop(skb) */
{
    struct sk_buff_userspace *skb = skb_ctx(r1);
    UNUSED_ARGS();

    if (skb->vlan_present) {
        skb->vlan_present = skb->vlan_tci = skb->vlan_proto = 0;
    } else {
        if (!is_vlan(skb->protocol))
            return 0;
        int64_t popped = vlan_pop_data(skb);
        if (popped < 0)
            return NEG_ERRNO(-popped);
    }
    if (!is_vlan(skb->protocol))   /* the next tag in the data becomes the accelerated one */
        return 0;
    u32 proto = skb->protocol;
    int64_t tci = vlan_pop_data(skb);
    if (tci < 0)
        return NEG_ERRNO(-tci);
    vlan_accel(skb, proto, (u32)tci);
    return 0;
}

/* -- skb: checksums ------------------------------------------------------- */

/* include/net/checksum.h, on values as loaded from memory (native byte
 * order): ones'-complement sums do not depend on the byte order, so the
 * program's from/to, loaded from the packet as they are, combine with the
 * checksum field loaded the same way. */
static u16 csum16_add(u16 c, u16 a)
{
    u16 r = (u16)(c + a);
    return (u16)(r + (r < a));
}

static u16 csum16_sub(u16 c, u16 a)
{
    return csum16_add(c, (u16)~a);
}

/* csum_replace2(): RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), in 16 bits. */
static u16 csum_replace2(u16 sum, u16 from, u16 to)
{
    return (u16)~csum16_add(csum16_sub((u16)~sum, from), to);
}

/* csum_replace4(): the same in 32 bits, folded. */
static u16 csum_replace4(u16 sum, u32 from, u32 to)
{
    return csum_fold(csum_add(csum_sub(~(u32)sum, from), to));
}

static u16 csum_replace_by_diff(u16 sum, u32 diff)
{
    return csum_fold(csum_add(diff, ~(u32)sum));
}

/* The 16-bit checksum field at offset, or NULL: -EFAULT for an odd offset,
 * one past 0xffff, or one whose 2 bytes are not in the packet. */
static u8 *csum_field(const struct sk_buff_userspace *skb, u32 offset)
{
    if (offset > 0xffff || (offset & 1))
        return 0;
    return skb_range(skb, offset, 2);
}

static u16 load16(const u8 *p)
{
    u16 v;
    __builtin_memcpy(&v, p, 2);
    return v;
}

static void store16(u8 *p, u16 v)
{
    __builtin_memcpy(p, &v, 2);
}

BPF_HELPER(0010) /* l3_csum_replace(skb, u32 offset, u64 from, u64 to, u64 size) */
{
    u64 from = r3, to = r4, flags = r5;
    u8 *field;
    u16 sum;

    if (flags & ~BPF_F_HDR_FIELD_MASK)
        return NEG_ERRNO(EINVAL);
    field = csum_field(skb_ctx(r1), (u32)r2);
    if (!field)
        return NEG_ERRNO(EFAULT);
    sum = load16(field);
    switch (flags & BPF_F_HDR_FIELD_MASK) {
    case 0:
        if (from != 0)
            return NEG_ERRNO(EINVAL);
        sum = csum_replace_by_diff(sum, (u32)to);
        break;
    case 2:
        sum = csum_replace2(sum, (u16)from, (u16)to);
        break;
    case 4:
        sum = csum_replace4(sum, (u32)from, (u32)to);
        break;
    default:
        return NEG_ERRNO(EINVAL);
    }
    store16(field, sum);
    return 0;
}

/* inet_proto_csum_replace*() for a packet that is not CHECKSUM_PARTIAL:
 * the field is updated the same way with or without BPF_F_PSEUDO_HDR (the
 * flag only matters for skb->csum of CHECKSUM_COMPLETE, or for the
 * pseudo-header seed of CHECKSUM_PARTIAL), and BPF_F_IPV6 only matters for
 * skb->csum, so both are accepted and change nothing here. A 2-byte field
 * goes through the 32-bit csum_replace4(), as inet_proto_csum_replace2()
 * does. */
BPF_HELPER(0011) /* l4_csum_replace(skb, u32 offset, u64 from, u64 to, u64 flags) */
{
    u64 from = r3, to = r4, flags = r5;
    int mangled_0 = (flags & BPF_F_MARK_MANGLED_0) != 0;
    int enforce = (flags & BPF_F_MARK_ENFORCE) != 0;
    u8 *field;
    u16 sum;

    if (flags & ~(BPF_F_MARK_MANGLED_0 | BPF_F_MARK_ENFORCE | BPF_F_PSEUDO_HDR |
                  BPF_F_HDR_FIELD_MASK | BPF_F_IPV6))
        return NEG_ERRNO(EINVAL);
    field = csum_field(skb_ctx(r1), (u32)r2);
    if (!field)
        return NEG_ERRNO(EFAULT);
    sum = load16(field);
    /* A UDP checksum of 0 means "none": left alone unless enforced. */
    if (mangled_0 && !enforce && sum == 0)
        return 0;
    switch (flags & BPF_F_HDR_FIELD_MASK) {
    case 0:
        if (from != 0)
            return NEG_ERRNO(EINVAL);
        sum = csum_replace_by_diff(sum, (u32)to);
        break;
    case 2:
        sum = csum_replace4(sum, (u16)from, (u16)to);
        break;
    case 4:
        sum = csum_replace4(sum, (u32)from, (u32)to);
        break;
    default:
        return NEG_ERRNO(EINVAL);
    }
    if (mangled_0 && sum == 0)
        sum = CSUM_MANGLED_0;
    store16(field, sum);
    return 0;
}
