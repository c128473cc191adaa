/* BPF_MAP_TYPE_RINGBUF and its helpers (docs/maps.md), as kernel/bpf/ringbuf.c.
 *
 * max_entries is the data size: a power of two, at least the 4096-byte page
 * (so a multiple of it); key_size and value_size are 0. Any other geometry is
 * refused: reserve gives NULL, output -EINVAL, query 0, consume -EINVAL.
 *
 * Records are the kernel's: an 8-byte header {u32 len, u32 pg_off} whose len
 * carries BPF_RINGBUF_BUSY_BIT while the record is reserved and
 * BPF_RINGBUF_DISCARD_BIT once discarded, then the data, the whole record
 * rounded up to 8 bytes. Producer and consumer positions count bytes from
 * the start and only grow; a record sits at position & (size - 1). Producers
 * reserve under a spin lock, in order; the consumer takes records in that
 * order and stops at the first one still busy (reserved, not submitted).
 *
 * Storage (position independent, all zero = empty):
 *   [0, 4096)              control: locks, consumer, producer and pending
 *                          positions, each on its own cache line
 *   [4096, 4096 + size)    the ring
 *   [4096 + size, 4096 + 2 * size)
 *                          overflow: the kernel maps the ring twice in a row
 *                          so that a record that wraps is contiguous; here a
 *                          record that wraps is reserved contiguously into
 *                          this area and its tail is copied to the ring's
 *                          start on submit, so that the ring itself holds
 *                          exactly the kernel's bytes.
 * pg_off holds the header's offset from the storage start in 8-byte units
 * (the kernel: in pages from its ring structure), so that submit and discard
 * find the ring from the data pointer alone.
 */
#include "maps.h"

#define RB_HDR_SZ 8u
#define RB_BUSY_BIT (1u << 31)
#define RB_DISCARD_BIT (1u << 30)
#define RB_MAX_RECORD_SZ (0xffffffffu / 4)
#define RB_PAGE 4096u
#define RB_CTRL RB_PAGE /* bytes of control area before the ring */

/* bpf_ringbuf_output flags and bpf_ringbuf_query selectors (uapi bpf.h). */
#define BPF_RB_NO_WAKEUP 1u
#define BPF_RB_FORCE_WAKEUP 2u
#define BPF_RB_AVAIL_DATA 0
#define BPF_RB_RING_SIZE 1
#define BPF_RB_CONS_POS 2
#define BPF_RB_PROD_POS 3

struct rb_ctrl {
    uint32_t lock;          /* producers */
    uint32_t cons_lock;     /* host consumers, should there be several */
    uint64_t data_size;     /* the ring's size, for submit/discard (set by reserve) */
    uint64_t pending_pos;   /* oldest record possibly still busy (producers, locked) */
    uint8_t pad0[40];
    uint64_t consumer_pos;
    uint8_t pad1[56];
    uint64_t producer_pos;
    uint8_t pad2[56];
};
_Static_assert(sizeof(struct rb_ctrl) <= RB_CTRL, "ringbuf control area");

struct rb_hdr {
    uint32_t len;
    uint32_t pg_off;
};

static inline int rb_geometry_ok(const struct bpf_map *m)
{
    uint32_t size = m->max_entries;
    return m->type == BPF_MAP_TYPE_RINGBUF && m->key_size == 0 && m->value_size == 0 &&
           size >= RB_PAGE && (size & (size - 1)) == 0;
}

static uint64_t rb_storage_size(const struct bpf_map *m)
{
    if (!rb_geometry_ok(m))
        return 0;
    return RB_CTRL + 2 * (uint64_t)m->max_entries;
}

static inline uint64_t rb_round8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

/* Bytes a record with this header len takes in the ring. */
static inline uint64_t rb_record_len(uint32_t len)
{
    return rb_round8((uint64_t)(len & ~(RB_BUSY_BIT | RB_DISCARD_BIT)) + RB_HDR_SZ);
}

/* Reserves room for `size` bytes of data: the data's address, or NULL. */
static void *rb_reserve(const struct bpf_map *m, uint64_t size)
{
    if (!rb_geometry_ok(m) || size > RB_MAX_RECORD_SZ)
        return 0;
    char *base = (char *)map_storage(m);
    if (!base)
        return 0;
    struct rb_ctrl *c = (struct rb_ctrl *)base;
    char *ring = base + RB_CTRL;
    uint64_t mask = (uint64_t)m->max_entries - 1;
    uint64_t len = rb_round8(size + RB_HDR_SZ);
    if (len > mask + 1)
        return 0;
    uint64_t cons = __atomic_load_n(&c->consumer_pos, __ATOMIC_ACQUIRE);

    map_lock(&c->lock);
    __atomic_store_n(&c->data_size, mask + 1, __ATOMIC_RELAXED);
    uint64_t prod = c->producer_pos;
    /* Skip the records already submitted or discarded: a busy record must
     * never be overwritten, even if a consumer moved past it. */
    uint64_t pend = c->pending_pos;
    while (pend < prod) {
        struct rb_hdr *h = (struct rb_hdr *)(ring + (pend & mask));
        uint32_t hlen = __atomic_load_n(&h->len, __ATOMIC_ACQUIRE);
        if (hlen & RB_BUSY_BIT)
            break;
        pend += rb_record_len(hlen);
    }
    c->pending_pos = pend;
    uint64_t new_prod = prod + len;
    /* The producer stays less than a whole ring ahead. */
    if (new_prod - cons > mask || new_prod - pend > mask) {
        map_unlock(&c->lock);
        return 0;
    }
    struct rb_hdr *h = (struct rb_hdr *)(ring + (prod & mask));
    h->pg_off = (uint32_t)(((char *)h - base) / 8);
    __atomic_store_n(&h->len, (uint32_t)size | RB_BUSY_BIT, __ATOMIC_RELAXED);
    __atomic_store_n(&c->producer_pos, new_prod, __ATOMIC_RELEASE);
    map_unlock(&c->lock);
    return h + 1;
}

/* Submits or discards the record whose data starts at `data`. */
static void rb_commit(void *data, int discard)
{
    struct rb_hdr *h = (struct rb_hdr *)((char *)data - RB_HDR_SZ);
    uint32_t len = __atomic_load_n(&h->len, __ATOMIC_RELAXED);
    char *base = (char *)h - (uint64_t)h->pg_off * 8;
    uint32_t new_len = len & ~RB_BUSY_BIT;
    if (discard) {
        new_len |= RB_DISCARD_BIT;
    } else {
        /* A record that runs past the ring's end was written into the
         * overflow area: move that part to the ring's start. */
        struct rb_ctrl *c = (struct rb_ctrl *)base;
        uint64_t size = __atomic_load_n(&c->data_size, __ATOMIC_RELAXED);
        char *ring = base + RB_CTRL;
        uint64_t end = (uint64_t)((char *)h - ring) + RB_HDR_SZ + new_len;
        if (end > size)
            __builtin_memcpy(ring, ring + size, end - size);
    }
    __atomic_store_n(&h->len, new_len, __ATOMIC_RELEASE);
}

static inline const struct bpf_map *as_map(u64 r)
{
    return (const struct bpf_map *)(uintptr_t)r;
}

/* long ringbuf_output(ringbuf, data, size, flags): reserve, copy, submit.
 * 0; -EAGAIN when there is no room; -EINVAL for unknown flags (only
 * BPF_RB_NO_WAKEUP and BPF_RB_FORCE_WAKEUP, both accepted: nothing sleeps
 * here, the host polls). */
BPF_HELPER(0130) /* ringbuf_output */
{
    (void)r5;
    const struct bpf_map *m = as_map(r1);
    if (r4 & ~(u64)(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP) || !rb_geometry_ok(m))
        return NEG_ERRNO(EINVAL);
    void *rec = rb_reserve(m, r3);
    if (!rec)
        return NEG_ERRNO(EAGAIN);
    if (r3)
        __builtin_memcpy(rec, (const void *)(uintptr_t)r2, r3);
    rb_commit(rec, 0);
    return 0;
}

/* void *ringbuf_reserve(ringbuf, size, flags): the record's data (8-byte
 * aligned), or NULL when there is no room or flags is not 0. */
BPF_HELPER(0131) /* ringbuf_reserve */
{
    (void)r4, (void)r5;
    if (r3 != 0)
        return 0;
    return (u64)(uintptr_t)rb_reserve(as_map(r1), r2);
}

/* void ringbuf_submit(data, flags) and ringbuf_discard(data, flags): the
 * wakeup flags change nothing here. */
BPF_HELPER(0132) /* ringbuf_submit */
{
    (void)r2, (void)r3, (void)r4, (void)r5;
    rb_commit((void *)(uintptr_t)r1, 0);
    return 0;
}

BPF_HELPER(0133) /* ringbuf_discard */
{
    (void)r2, (void)r3, (void)r4, (void)r5;
    rb_commit((void *)(uintptr_t)r1, 1);
    return 0;
}

/* u64 ringbuf_query(ringbuf, flags): BPF_RB_AVAIL_DATA (bytes produced and
 * not consumed, headers included), BPF_RB_RING_SIZE, BPF_RB_CONS_POS,
 * BPF_RB_PROD_POS; 0 for anything else. */
BPF_HELPER(0134) /* ringbuf_query */
{
    (void)r3, (void)r4, (void)r5;
    const struct bpf_map *m = as_map(r1);
    if (!rb_geometry_ok(m))
        return 0;
    if (r2 == BPF_RB_RING_SIZE)
        return m->max_entries;
    struct rb_ctrl *c = (struct rb_ctrl *)map_storage(m);
    if (!c)
        return 0;
    uint64_t cons = __atomic_load_n(&c->consumer_pos, __ATOMIC_ACQUIRE);
    uint64_t prod = __atomic_load_n(&c->producer_pos, __ATOMIC_ACQUIRE);
    switch (r2) {
    case BPF_RB_AVAIL_DATA:
        return prod - cons;
    case BPF_RB_CONS_POS:
        return cons;
    case BPF_RB_PROD_POS:
        return prod;
    default:
        return 0;
    }
}

/* Host API: copies the next submitted record's data into buf and returns its
 * length; skips discarded (and empty) records; 0 when no record is ready
 * (none, or the next one is still reserved); -E2BIG, consuming nothing, when
 * buf is smaller than the record; -EINVAL for a map that is not a valid
 * ringbuf. One consumer at a time (a lock serialises callers). */
long ebpf_lto_ringbuf_consume(const struct bpf_map *m, void *buf, uint64_t size)
{
    if (!rb_geometry_ok(m))
        return -EINVAL;
    char *base = (char *)map_storage(m);
    if (!base)
        return -ENOMEM;
    struct rb_ctrl *c = (struct rb_ctrl *)base;
    char *ring = base + RB_CTRL;
    uint64_t ring_size = m->max_entries, mask = ring_size - 1;
    long ret = 0;
    map_lock(&c->cons_lock);
    uint64_t cons = __atomic_load_n(&c->consumer_pos, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t prod = __atomic_load_n(&c->producer_pos, __ATOMIC_ACQUIRE);
        if (cons >= prod)
            break;
        struct rb_hdr *h = (struct rb_hdr *)(ring + (cons & mask));
        uint32_t len = __atomic_load_n(&h->len, __ATOMIC_ACQUIRE);
        if (len & RB_BUSY_BIT)
            break;
        uint64_t dlen = len & ~(RB_BUSY_BIT | RB_DISCARD_BIT);
        uint64_t next = cons + rb_record_len(len);
        if (!(len & RB_DISCARD_BIT) && dlen != 0) {
            if (dlen > size) {
                ret = -E2BIG;
                break;
            }
            uint64_t off = (cons & mask) + RB_HDR_SZ; /* may equal ring_size */
            uint64_t first = off < ring_size ? ring_size - off : 0;
            if (first > dlen)
                first = dlen;
            if (first)
                __builtin_memcpy(buf, ring + off, first);
            if (dlen > first)
                __builtin_memcpy((char *)buf + first, ring + (off + first - ring_size),
                                 dlen - first);
            __atomic_store_n(&c->consumer_pos, next, __ATOMIC_RELEASE);
            ret = (long)dlen;
            break;
        }
        cons = next;
        __atomic_store_n(&c->consumer_pos, cons, __ATOMIC_RELEASE);
    }
    map_unlock(&c->cons_lock);
    return ret;
}

/* Map operations: none of lookup/update/delete/get_next_key (the kernel
 * refuses them for a ringbuf); storage only. */
const struct map_ops ringbuf_ops = {
    .storage_size = rb_storage_size,
};
