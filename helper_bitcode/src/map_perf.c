/* BPF_MAP_TYPE_PERF_EVENT_ARRAY and perf_event_output (docs/maps.md).
 *
 * In the kernel each entry of the map is a perf event (one per cpu) with its
 * own ring that userspace reads. Here the map keeps ONE record stream: every
 * record carries the cpu index the program chose, and the host reads the
 * stream with ebpf_lto_perf_consume(). max_entries bounds the index; 0 (left
 * for libbpf to fill in) means the number of cpus.
 *
 * Storage (position independent, all zero = empty): a 4096-byte control area
 * (lock, consumer and producer positions on separate cache lines), then a
 * ring of PERF_RING_BYTES. A record is {u32 cpu, u32 size, data}, rounded up
 * to 8 bytes, and may wrap around the ring's end. Producers append under the
 * lock; positions only grow, as in the ringbuf.
 */
#include "maps.h"

#define PERF_CTRL 4096u
#define PERF_RING_BYTES (512u * 1024u) /* the one stream's ring */
#define PERF_REC_HDR 8u

#define BPF_F_INDEX_MASK 0xffffffffull
#define BPF_F_CURRENT_CPU BPF_F_INDEX_MASK

/* glibc and musl (sys/sysinfo.h): the cpus configured, for max_entries 0. */
int get_nprocs_conf(void);

struct perf_ctrl {
    uint32_t lock;
    uint32_t cons_lock;
    uint8_t pad0[56];
    uint64_t consumer_pos;
    uint8_t pad1[56];
    uint64_t producer_pos;
    uint8_t pad2[56];
};
_Static_assert(sizeof(struct perf_ctrl) <= PERF_CTRL, "perf control area");

struct perf_rec {
    uint32_t cpu;
    uint32_t size;
};

static inline int perf_geometry_ok(const struct bpf_map *m)
{
    return m->type == BPF_MAP_TYPE_PERF_EVENT_ARRAY;
}

static uint64_t perf_storage_size(const struct bpf_map *m)
{
    return perf_geometry_ok(m) ? PERF_CTRL + PERF_RING_BYTES : 0;
}

/* Valid indexes: max_entries, or when that is 0 the cpu count. */
static inline uint32_t perf_entries(const struct bpf_map *m)
{
    if (m->max_entries)
        return m->max_entries;
    if (m->ncpus > 1)
        return m->ncpus;
    int n = get_nprocs_conf();
    return n > 0 ? (uint32_t)n : 1;
}

static inline uint64_t perf_round8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

/* Copies n bytes into the ring at ring offset off, wrapping. */
static inline void perf_put(char *ring, uint64_t off, const void *src, uint64_t n)
{
    uint64_t first = PERF_RING_BYTES - off;
    if (first > n)
        first = n;
    if (first)
        __builtin_memcpy(ring + off, src, first);
    if (n > first)
        __builtin_memcpy(ring, (const char *)src + first, n - first);
}

static inline void perf_get(void *dst, const char *ring, uint64_t off, uint64_t n)
{
    uint64_t first = PERF_RING_BYTES - off;
    if (first > n)
        first = n;
    if (first)
        __builtin_memcpy(dst, ring + off, first);
    if (n > first)
        __builtin_memcpy((char *)dst + first, ring, n - first);
}

static long perf_output(const struct bpf_map *m, uint64_t flags, const void *data, uint64_t size)
{
    if (!perf_geometry_ok(m) || (flags & ~BPF_F_INDEX_MASK))
        return -EINVAL;
    uint64_t index = flags & BPF_F_INDEX_MASK;
    if (index == BPF_F_CURRENT_CPU) {
        int cpu = sched_getcpu();
        index = cpu < 0 ? 0 : (uint64_t)cpu;
    }
    if (index >= perf_entries(m))
        return -E2BIG;
    uint64_t len = perf_round8(PERF_REC_HDR + size);
    if (size > 0xffffffffu || len > PERF_RING_BYTES)
        return -E2BIG;
    char *base = (char *)map_storage(m);
    if (!base)
        return -ENOMEM;
    struct perf_ctrl *c = (struct perf_ctrl *)base;
    char *ring = base + PERF_CTRL;
    map_lock(&c->lock);
    uint64_t cons = __atomic_load_n(&c->consumer_pos, __ATOMIC_ACQUIRE);
    uint64_t prod = c->producer_pos;
    if (prod + len - cons > PERF_RING_BYTES) {
        map_unlock(&c->lock);
        return -ENOSPC; /* the record is lost, as with a full perf ring */
    }
    uint64_t off = prod & (PERF_RING_BYTES - 1);
    struct perf_rec rec = {(uint32_t)index, (uint32_t)size};
    __builtin_memcpy(ring + off, &rec, sizeof(rec)); /* 8-aligned: never wraps */
    if (size)
        perf_put(ring, (off + PERF_REC_HDR) & (PERF_RING_BYTES - 1), data, size);
    __atomic_store_n(&c->producer_pos, prod + len, __ATOMIC_RELEASE);
    map_unlock(&c->lock);
    return 0;
}

/* long perf_event_output(ctx, map, flags, data, size): appends a record of
 * `size` bytes for cpu `flags & BPF_F_INDEX_MASK` (BPF_F_CURRENT_CPU: the
 * calling thread's cpu). 0; -EINVAL for other flag bits (BPF_F_CTXLEN_MASK,
 * packet bytes of an skb/xdp context, is not supported); -E2BIG for an
 * index >= max_entries or a record larger than the ring; -ENOSPC when the
 * ring is full (the record is dropped). */
BPF_HELPER(0025) /* perf_event_output */
{
    (void)r1;
    return (u64)perf_output((const struct bpf_map *)(uintptr_t)r2, r3,
                            (const void *)(uintptr_t)r4, r5);
}

/* Host API: the next record: its data into buf, its cpu into *cpu_out (if
 * not NULL); returns its size. 0 when there is none (empty records are
 * skipped); -E2BIG, consuming nothing, when buf is too small; -EINVAL for a
 * map that is not a perf event array. */
long ebpf_lto_perf_consume(const struct bpf_map *m, uint32_t *cpu_out, void *buf, uint64_t size)
{
    if (!perf_geometry_ok(m))
        return -EINVAL;
    char *base = (char *)map_storage(m);
    if (!base)
        return -ENOMEM;
    struct perf_ctrl *c = (struct perf_ctrl *)base;
    char *ring = base + PERF_CTRL;
    long ret = 0;
    map_lock(&c->cons_lock);
    uint64_t cons = __atomic_load_n(&c->consumer_pos, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t prod = __atomic_load_n(&c->producer_pos, __ATOMIC_ACQUIRE);
        if (cons >= prod)
            break;
        uint64_t off = cons & (PERF_RING_BYTES - 1);
        struct perf_rec rec;
        __builtin_memcpy(&rec, ring + off, sizeof(rec));
        uint64_t next = cons + perf_round8(PERF_REC_HDR + (uint64_t)rec.size);
        if (rec.size) {
            if (rec.size > size) {
                ret = -E2BIG;
                break;
            }
            perf_get(buf, ring, (off + PERF_REC_HDR) & (PERF_RING_BYTES - 1), rec.size);
            if (cpu_out)
                *cpu_out = rec.cpu;
            __atomic_store_n(&c->consumer_pos, next, __ATOMIC_RELEASE);
            ret = (long)rec.size;
            break;
        }
        cons = next;
        __atomic_store_n(&c->consumer_pos, cons, __ATOMIC_RELEASE);
    }
    map_unlock(&c->cons_lock);
    return ret;
}

/* No lookup/update/delete: in the kernel those hold perf event fds, which do
 * not exist here. */
const struct map_ops perf_event_array_ops = {
    .storage_size = perf_storage_size,
};
