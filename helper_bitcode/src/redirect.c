/* Userspace XDP and tc forwarding (docs/helpers.md): the redirect maps
 * BPF_MAP_TYPE_DEVMAP, CPUMAP and XSKMAP (DEVMAP_HASH is a hash: map_hash.c),
 * the helpers redirect (23), redirect_map (51), redirect_peer (155), and the
 * lookups a host without routing or socket tables answers "not found":
 * fib_lookup (69), sk_lookup_tcp (84), sk_lookup_udp (85), skc_lookup_tcp (99),
 * with sk_release (86), and get_route_realm (24).
 *
 * The kernel's redirect helpers only record the target in the per-cpu
 * bpf_redirect_info and return XDP_REDIRECT or TC_ACT_REDIRECT; the driver
 * does the redirect after the program returns. Here they record it in the
 * exported `struct ebpf_lto_redirect` (abi.h), which the host clears before
 * a run and reads after it (docs/abi.md).
 *
 * Redirect map storage: max_entries elements of 8 + round_up(value_size, 8)
 * bytes: a u32 "present" word, then the value; all-zero is an empty map. Keys
 * are u32 indices. As the kernel's: an index past max_entries is -E2BIG to
 * update and -EINVAL to delete; delete of an empty slot is 0; a program's
 * lookup gives the value (devmap: struct bpf_devmap_val, cpumap: struct
 * bpf_cpumap_val, xskmap: the socket) or NULL.
 */
#include "maps.h"

struct ebpf_lto_redirect ebpf_lto_redirect;

/* include/uapi/linux/bpf.h */
#define BPF_F_INGRESS (1ull << 0)
#define BPF_F_BROADCAST (1ull << 3)
#define BPF_F_EXCLUDE_INGRESS (1ull << 4)
#define XDP_ACTION_MASK 3ull /* XDP_ABORTED | XDP_DROP | XDP_PASS | XDP_TX */
#define EAFNOSUPPORT 97

#define SLOT_HEADER 8u

static inline int redirect_geometry_ok(const struct bpf_map *m)
{
    if (m->key_size != 4 || m->max_entries == 0)
        return 0;
    if (m->type == BPF_MAP_TYPE_XSKMAP)
        return m->value_size == 4;
    return m->value_size == 4 || m->value_size == 8;
}

static uint64_t slot_size(const struct bpf_map *m)
{
    return SLOT_HEADER + map_value_stride(m);
}

static uint64_t slots_storage_size(const struct bpf_map *m)
{
    return redirect_geometry_ok(m) ? (uint64_t)m->max_entries * slot_size(m) : 0;
}

static inline uint32_t *slot(const struct bpf_map *m, char *base, uint32_t index)
{
    return (uint32_t *)(base + (uint64_t)index * slot_size(m));
}

static void *slots_lookup(const struct bpf_map *m, const void *key)
{
    uint32_t index = *(const uint32_t *)key;
    if (index >= m->max_entries)
        return 0;
    char *base = (char *)map_storage(m);
    if (base == 0)
        return 0;
    uint32_t *s = slot(m, base, index);
    return __atomic_load_n(s, __ATOMIC_ACQUIRE) ? (char *)s + SLOT_HEADER : 0;
}

static long slots_delete(const struct bpf_map *m, const void *key)
{
    uint32_t index = *(const uint32_t *)key;
    if (index >= m->max_entries)
        return -EINVAL;
    char *base = (char *)map_storage(m);
    if (base == 0)
        return -ENOMEM;
    __atomic_store_n(slot(m, base, index), 0u, __ATOMIC_RELEASE);
    return 0;
}

/* Stores the value in slot `index`, or empties it when `present` is 0. */
static long slots_store(const struct bpf_map *m, uint32_t index, const void *value, int present)
{
    char *base = (char *)map_storage(m);
    if (base == 0)
        return -ENOMEM;
    uint32_t *s = slot(m, base, index);
    if (!present) {
        __atomic_store_n(s, 0u, __ATOMIC_RELEASE);
        return 0;
    }
    __atomic_store_n(s, 0u, __ATOMIC_RELEASE); /* readers never see a half-written value */
    __builtin_memcpy((char *)s + SLOT_HEADER, value, m->value_size);
    __atomic_store_n(s, 1u, __ATOMIC_RELEASE);
    return 0;
}

/* The update flags and index checks the three array types share; where every
 * index exists (devmap, cpumap), BPF_NOEXIST is -EEXIST. */
static long slots_check(const struct bpf_map *m, const void *key, uint64_t flags,
                        int every_index_exists)
{
    uint64_t mode = flags & ~(uint64_t)MAP_F_ALLCPUS;
    if (!redirect_geometry_ok(m) || mode > BPF_EXIST)
        return -EINVAL;
    if (*(const uint32_t *)key >= m->max_entries)
        return -E2BIG;
    return every_index_exists && mode == BPF_NOEXIST ? -EEXIST : 0;
}

/* DEVMAP (kernel/bpf/devmap.c): every index exists (BPF_NOEXIST: -EEXIST);
 * ifindex 0 empties the slot. */
static long devmap_update(const struct bpf_map *m, const void *key, const void *value,
                          uint64_t flags)
{
    long err = slots_check(m, key, flags, 1);
    if (err)
        return err;
    uint32_t index = *(const uint32_t *)key;
    if (*(const uint32_t *)value == 0) /* no device: the kernel empties the slot */
        return m->value_size == 8 && ((const int32_t *)value)[1] > 0 ? -EINVAL
                                                                    : slots_store(m, index, value, 0);
    err = devmap_value_check(m, value);
    return err ? err : slots_store(m, index, value, 1);
}

/* CPUMAP (kernel/bpf/cpumap.c): struct bpf_cpumap_val {u32 qsize; prog};
 * qsize 0 empties the slot; BPF_NOEXIST -EEXIST. */
static long cpumap_update(const struct bpf_map *m, const void *key, const void *value,
                          uint64_t flags)
{
    long err = slots_check(m, key, flags, 1);
    if (err)
        return err;
    uint32_t qsize = *(const uint32_t *)value;
    if (qsize != 0 && m->value_size == 8 && ((const int32_t *)value)[1] > 0)
        return -EOPNOTSUPP; /* a cpumap program is not run here */
    return slots_store(m, *(const uint32_t *)key, value, qsize != 0);
}

/* XSKMAP (net/xdp/xskmap.c): the value is the AF_XDP socket (the kernel: its
 * fd; here any u32 the host names a socket by). BPF_NOEXIST on a set slot
 * -EEXIST, BPF_EXIST on an empty one -ENOENT. */
static long xskmap_update(const struct bpf_map *m, const void *key, const void *value,
                          uint64_t flags)
{
    long err = slots_check(m, key, flags, 0);
    if (err)
        return err;
    uint64_t mode = flags & ~(uint64_t)MAP_F_ALLCPUS;
    int present = slots_lookup(m, key) != 0;
    if (mode == BPF_NOEXIST && present)
        return -EEXIST;
    if (mode == BPF_EXIST && !present)
        return -ENOENT;
    return slots_store(m, *(const uint32_t *)key, value, 1);
}

#define SLOTS_OPS(update_fn)                                                               \
    {                                                                                      \
        .storage_size = slots_storage_size, .lookup = slots_lookup, .update = update_fn,   \
        .delete = slots_delete, .get_next_key = index_get_next_key,                        \
    }
const struct map_ops devmap_ops = SLOTS_OPS(devmap_update);
const struct map_ops cpumap_ops = SLOTS_OPS(cpumap_update);
const struct map_ops xskmap_ops = SLOTS_OPS(xskmap_update);

/* -- helpers ------------------------------------------------------------------ */

/* long redirect_map(map, key, flags), as __bpf_xdp_redirect_map(): flags
 * other than the action bits and (devmap) BPF_F_BROADCAST |
 * BPF_F_EXCLUDE_INGRESS give XDP_ABORTED; a key with no target gives the
 * low two bits of flags (XDP_ABORTED, XDP_DROP, XDP_PASS or XDP_TX) and
 * clears the target; otherwise the target is recorded and the result is
 * XDP_REDIRECT (with BPF_F_BROADCAST, even for a missing key). A map that
 * is not a redirect map (the kernel's verifier refuses it) gives XDP_ABORTED. */
BPF_HELPER(0051) /* redirect_map */
{
    (void)r4, (void)r5;
    const struct bpf_map *m = (const struct bpf_map *)(uintptr_t)r1;
    uint32_t key = (uint32_t)r2;
    const struct map_ops *ops;
    uint64_t allowed = XDP_ACTION_MASK;
    switch (m ? m->type : 0) {
    case BPF_MAP_TYPE_DEVMAP:
        ops = &devmap_ops;
        allowed |= BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS;
        break;
    case BPF_MAP_TYPE_DEVMAP_HASH:
        ops = &devmap_hash_ops;
        allowed |= BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS;
        break;
    case BPF_MAP_TYPE_CPUMAP:
        ops = &cpumap_ops;
        break;
    case BPF_MAP_TYPE_XSKMAP:
        ops = &xskmap_ops;
        break;
    default:
        return ACT_XDP_ABORTED;
    }
    if (r3 & ~allowed)
        return ACT_XDP_ABORTED;
    const uint32_t *value = ops->lookup ? (const uint32_t *)ops->lookup(m, &key) : 0;
    struct ebpf_lto_redirect *rec = &ebpf_lto_redirect;
    if (!value && !(r3 & BPF_F_BROADCAST)) {
        rec->helper = 0;
        return r3 & XDP_ACTION_MASK;
    }
    rec->helper = 51;
    rec->map_type = m->type;
    rec->map_index = m->index;
    rec->key = key;
    /* devmap: the ifindex; xskmap: the socket; cpumap: the cpu, which is the key */
    rec->target = m->type == BPF_MAP_TYPE_CPUMAP ? key : value ? *value : 0;
    rec->flags = r3 & (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS);
    return ACT_XDP_REDIRECT;
}

static u64 record_device(uint32_t helper, uint32_t ifindex, uint64_t flags)
{
    struct ebpf_lto_redirect *rec = &ebpf_lto_redirect;
    rec->helper = helper;
    rec->map_type = 0;
    rec->map_index = EBPF_LTO_NO_MAP;
    rec->key = 0;
    rec->target = ifindex;
    rec->flags = flags;
    return rec->xdp ? ACT_XDP_REDIRECT : ACT_TC_ACT_REDIRECT;
}

/* long redirect(ifindex, flags). XDP (bpf_xdp_redirect): any flag gives
 * XDP_ABORTED. tc: flags other than BPF_F_INGRESS give TC_ACT_SHOT. */
BPF_HELPER(0023) /* redirect */
{
    (void)r3, (void)r4, (void)r5;
    if (ebpf_lto_redirect.xdp ? r2 != 0 : (r2 & ~BPF_F_INGRESS) != 0)
        return ebpf_lto_redirect.xdp ? ACT_XDP_ABORTED : ACT_TC_ACT_SHOT;
    return record_device(23, (uint32_t)r1, r2);
}

/* long redirect_peer(ifindex, flags): tc only (the kernel's verifier refuses
 * it elsewhere; in an XDP program it gives XDP_ABORTED); any flag gives
 * TC_ACT_SHOT. */
BPF_HELPER(0155) /* redirect_peer */
{
    (void)r3, (void)r4, (void)r5;
    if (ebpf_lto_redirect.xdp)
        return ACT_XDP_ABORTED;
    if (r2 != 0)
        return ACT_TC_ACT_SHOT;
    return record_device(155, (uint32_t)r1, 0);
}

/* long fib_lookup(ctx, params, plen, flags): the checks of
 * bpf_{xdp,skb}_fib_lookup() in their order, then, since a userspace host
 * has no forwarding table, the kernel's answer for a destination without a
 * route: BPF_FIB_LKUP_RET_NOT_FWDED (the packet goes to the stack), with
 * params unchanged. */
#define FIB_PARAMS_SIZE 64 /* sizeof(struct bpf_fib_lookup) */
#define FIB_FLAGS 0x3full  /* DIRECT, OUTPUT, SKIP_NEIGH, TBID, SRC, MARK */
#define AF_INET 2
#define AF_INET6 10
#define BPF_FIB_LKUP_RET_NOT_FWDED 4
BPF_HELPER(0069) /* fib_lookup */
{
    (void)r1, (void)r5;
    const uint8_t *params = (const uint8_t *)(uintptr_t)r2;
    if ((int32_t)r3 < FIB_PARAMS_SIZE || (r4 & 0xffffffffull & ~FIB_FLAGS))
        return NEG_ERRNO(EINVAL);
    uint8_t family = params[0];
    if (family != AF_INET && family != AF_INET6)
        return NEG_ERRNO(EAFNOSUPPORT);
    return BPF_FIB_LKUP_RET_NOT_FWDED;
}

/* struct bpf_sock *sk_lookup_{tcp,udp}(ctx, tuple, tuple_size, netns, flags)
 * and skc_lookup_tcp: a userspace host has no socket table, so no socket
 * matches: NULL, as the kernel gives for a tuple nothing listens on. And
 * long sk_release(sock): these lookups give nothing to release; the verifier
 * lets a program call it only with a socket, so it never has work to do. */
#define NO_SOCKET(id)                                                                      \
    BPF_HELPER(id)                                                                         \
    {                                                                                      \
        UNUSED_ARGS();                                                                     \
        return 0;                                                                          \
    }
NO_SOCKET(0084) /* sk_lookup_tcp */
NO_SOCKET(0085) /* sk_lookup_udp */
NO_SOCKET(0099) /* skc_lookup_tcp */
NO_SOCKET(0086) /* sk_release */

/* get_route_realm(skb) is dst_tclassid(): the realm of the route the packet
 * was given, 0 when it has none (no dst_entry), as every packet here has:
 * the host has no routing table. */
BPF_HELPER(0024) /* get_route_realm */
{
    UNUSED_ARGS();
    return 0;
}
