/* BPF_MAP_TYPE_QUEUE (FIFO) and BPF_MAP_TYPE_STACK (LIFO) (docs/maps.md),
 * as kernel/bpf/queue_stack_maps.c.
 *
 * No key (key_size 0); up to max_entries values of value_size bytes. Reached
 * through map_push_elem (87), map_pop_elem (88) and map_peek_elem (89);
 * lookup, update, delete and get_next_key are not supported (-EINVAL, as in
 * the kernel; the host API's lookup and update peek and push).
 *
 * Storage: a 16-byte header {lock, first, count} and max_entries slots of
 * round_up(value_size, 8) bytes, a ring: `first` is the oldest value's slot,
 * the newest is at (first + count - 1) % max_entries. All zero is empty.
 * Every operation holds the lock.
 */
#include "maps.h"

struct queue_hdr {
    uint32_t lock;
    uint32_t first; /* slot of the oldest value */
    uint32_t count; /* values held */
    uint32_t pad;
};

/* The kernel refuses to create a queue/stack with a key, an empty value or
 * no entries; here the operations refuse such a map with -EINVAL. */
static inline int queue_geometry_ok(const struct bpf_map *m)
{
    return m->key_size == 0 && m->value_size != 0 && m->max_entries != 0;
}

static uint64_t queue_storage_size(const struct bpf_map *m)
{
    if (!queue_geometry_ok(m))
        return 0;
    return sizeof(struct queue_hdr) + (uint64_t)m->max_entries * map_value_stride(m);
}

static inline char *queue_slot(const struct bpf_map *m, struct queue_hdr *h, uint32_t i)
{
    return (char *)(h + 1) + (uint64_t)i * map_value_stride(m);
}

static inline struct queue_hdr *queue_hdr_of(const struct bpf_map *m, long *err)
{
    if (!queue_geometry_ok(m)) {
        *err = -EINVAL;
        return 0;
    }
    struct queue_hdr *h = (struct queue_hdr *)map_storage(m);
    if (!h)
        *err = -ENOMEM;
    return h;
}

/* flags: BPF_ANY (-E2BIG when full) or BPF_EXIST (when full, the oldest
 * value is dropped to make room); anything else -EINVAL. */
static long queue_push(const struct bpf_map *m, const void *value, uint64_t flags)
{
    if ((flags & BPF_NOEXIST) || flags > BPF_EXIST)
        return -EINVAL;
    long err = 0;
    struct queue_hdr *h = queue_hdr_of(m, &err);
    if (!h)
        return err;
    uint32_t max = m->max_entries;
    map_lock(&h->lock);
    if (h->count >= max) {
        if (!(flags & BPF_EXIST)) {
            map_unlock(&h->lock);
            return -E2BIG;
        }
        h->first = h->first + 1 >= max ? 0 : h->first + 1;
        h->count--;
    }
    uint64_t slot = (uint64_t)h->first + h->count;
    if (slot >= max)
        slot -= max;
    __builtin_memcpy(queue_slot(m, h, (uint32_t)slot), value, m->value_size);
    h->count++;
    map_unlock(&h->lock);
    return 0;
}

/* The slot pop/peek reads: the oldest (queue) or the newest (stack). */
static inline uint32_t queue_take_slot(const struct bpf_map *m, const struct queue_hdr *h,
                                       int lifo)
{
    if (!lifo)
        return h->first;
    uint64_t slot = (uint64_t)h->first + h->count - 1;
    return (uint32_t)(slot >= m->max_entries ? slot - m->max_entries : slot);
}

static inline long queue_take(const struct bpf_map *m, void *value, int lifo, int remove)
{
    long err = 0;
    struct queue_hdr *h = queue_hdr_of(m, &err);
    if (!h)
        return err;
    map_lock(&h->lock);
    if (h->count == 0) {
        map_unlock(&h->lock);
        return -ENOENT;
    }
    __builtin_memcpy(value, queue_slot(m, h, queue_take_slot(m, h, lifo)), m->value_size);
    if (remove) {
        if (!lifo)
            h->first = h->first + 1 >= m->max_entries ? 0 : h->first + 1;
        h->count--;
    }
    map_unlock(&h->lock);
    return 0;
}

static long queue_pop(const struct bpf_map *m, void *value)
{
    return queue_take(m, value, 0, 1);
}

static long queue_peek(const struct bpf_map *m, void *value)
{
    return queue_take(m, value, 0, 0);
}

static long stack_pop(const struct bpf_map *m, void *value)
{
    return queue_take(m, value, 1, 1);
}

static long stack_peek(const struct bpf_map *m, void *value)
{
    return queue_take(m, value, 1, 0);
}

const struct map_ops queue_ops = {
    .storage_size = queue_storage_size,
    .push = queue_push,
    .pop = queue_pop,
    .peek = queue_peek,
};

const struct map_ops stack_ops = {
    .storage_size = queue_storage_size,
    .push = queue_push,
    .pop = stack_pop,
    .peek = stack_peek,
};
