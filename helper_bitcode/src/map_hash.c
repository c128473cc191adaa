/* BPF_MAP_TYPE_HASH, PERCPU_HASH, LRU_HASH and LRU_PERCPU_HASH
 * (docs/maps.md), modelled on the kernel's preallocated hash maps
 * (kernel/bpf/hashtab.c).
 *
 * Storage (all-zero = empty; links are indices, never pointers):
 *
 *   struct htab_header                      64 bytes
 *   struct htab_bucket[nbuckets]            nbuckets = roundup_pow_of_two(max_entries)
 *   element[max_entries]                    elem_size bytes each:
 *       struct htab_elem                    16 bytes
 *       key                                 round_up(key_size, 8)
 *       value x ncopies                     round_up(value_size, 8) each
 *
 * Elements come from a pool of max_entries: a lock-free free list (a tagged
 * Treiber stack) of deleted elements, then a bump counter over never-used
 * ones. An update of a new key when the pool is empty is -E2BIG, except for
 * the LRU types, which evict with a CLOCK sweep (an approximate LRU, as the
 * kernel's is): lookups set an element's `ref` bit, the sweeping hand clears
 * set bits and evicts the first element whose bit is clear.
 *
 * Concurrency. Lookups take no lock. Updates and deletes take the bucket's
 * spinlock (a word in storage), so no insert or delete is ever lost and a key
 * is never in a map twice. An element is published by a release store of the
 * link to it (after its hash, key and value are written) and readers follow
 * links with acquire loads. A deleted element goes back to the free list at
 * once and may be reused for another key while a reader still holds it, as
 * with the kernel's preallocated maps: a program may see a value change under
 * it. Its chain link is kept while it is free; a chain ends in a "nulls"
 * marker naming its bucket (the kernel's hlist_nulls), and a reader that
 * followed a reused element into another bucket's chain ends on that
 * bucket's marker and restarts. An update of an existing key copies the new
 * value in place (a reader may see it torn, as in the kernel without
 * BPF_F_LOCK); pointers a program got from lookup stay valid for the key.
 */
#include "maps.h"

/* Links: 0 = empty bucket (heads only); even = element (index + 1) << 1; odd
 * = end-of-chain marker (bucket << 1) | 1. A linked element's `next` is
 * never 0. */
#define LINK_NONE 0u
#define LINK_ELEM(i) (((uint32_t)(i) + 1) << 1)
#define LINK_MARKER(b) (((uint32_t)(b) << 1) | 1)
#define LINK_IS_ELEM(x) ((x) != 0 && ((x) & 1) == 0)
#define LINK_INDEX(x) (((x) >> 1) - 1)

#define HTAB_MAX_ENTRIES (1u << 30)
#define HTAB_HEADER_SIZE 64

struct htab_header {
    uint64_t free_head; /* (tag << 32) | (index + 1) of the first free element; 0 = none */
    uint32_t bump;      /* elements [bump, max_entries) were never used */
    uint32_t lru_hand;  /* CLOCK hand: the next element to consider, mod max_entries */
};
_Static_assert(sizeof(struct htab_header) <= HTAB_HEADER_SIZE, "htab header");

struct htab_bucket {
    uint32_t head; /* link to the first element */
    uint32_t lock; /* spinlock for updates and deletes */
};

struct htab_elem {
    uint32_t next;      /* chain link; kept while the element is free */
    uint32_t hash;
    uint32_t free_next; /* free list: index + 1 of the next free element, 0 = end */
    uint8_t linked;     /* in a chain (written under the bucket lock) */
    uint8_t ref;        /* LRU: looked up since the hand last passed */
    uint16_t pad;
    /* key, then the value copies */
};
_Static_assert(sizeof(struct htab_elem) == 16, "htab elem");

static inline int htab_is_lru(const struct bpf_map *m)
{
    return m->type == BPF_MAP_TYPE_LRU_HASH || m->type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

static inline uint32_t htab_nbuckets(const struct bpf_map *m)
{
    /* roundup_pow_of_two without a loop (and no shift by 32: htab_storage_size
     * refuses max_entries above HTAB_MAX_ENTRIES = 2^30). */
    return m->max_entries <= 1 ? 1 : 1u << (32 - __builtin_clz(m->max_entries - 1));
}

static inline uint64_t htab_key_stride(const struct bpf_map *m)
{
    return MAP_ROUND8(m->key_size);
}

static inline uint64_t htab_elem_size(const struct bpf_map *m)
{
    return sizeof(struct htab_elem) + htab_key_stride(m) + map_ncopies(m) * map_value_stride(m);
}

static inline struct htab_header *htab_header(char *base)
{
    return (struct htab_header *)base;
}

static inline struct htab_bucket *htab_bucket(char *base, uint32_t b)
{
    return (struct htab_bucket *)(base + HTAB_HEADER_SIZE) + b;
}

static inline struct htab_elem *htab_elem(const struct bpf_map *m, char *base, uint32_t index)
{
    uint64_t off = HTAB_HEADER_SIZE + (uint64_t)htab_nbuckets(m) * sizeof(struct htab_bucket);
    return (struct htab_elem *)(base + off + (uint64_t)index * htab_elem_size(m));
}

static inline uint32_t htab_index_of(const struct bpf_map *m, char *base, struct htab_elem *e)
{
    return (uint32_t)(((char *)e - (char *)htab_elem(m, base, 0)) / htab_elem_size(m));
}

static inline char *htab_key(struct htab_elem *e)
{
    return (char *)(e + 1);
}

static inline char *htab_value(const struct bpf_map *m, struct htab_elem *e, uint32_t cpu)
{
    return htab_key(e) + htab_key_stride(m) + cpu * map_value_stride(m);
}

static uint64_t htab_storage_size(const struct bpf_map *m)
{
    if (m->max_entries == 0 || m->max_entries > HTAB_MAX_ENTRIES || m->key_size == 0 ||
        m->value_size == 0)
        return 0;
    return HTAB_HEADER_SIZE + (uint64_t)htab_nbuckets(m) * sizeof(struct htab_bucket) +
           (uint64_t)m->max_entries * htab_elem_size(m);
}

/* The key's 8-byte word at byte i; a last partial word is zero-padded, and
 * nothing past the key is read. */
static inline uint64_t htab_key_word(const unsigned char *p, uint32_t i, uint32_t size)
{
    uint64_t w = 0;
    if (i + 8 <= size) {
        __builtin_memcpy(&w, p + i, 8);
        return w;
    }
    NO_VECTORIZE /* at most 7 bytes */
    for (uint32_t j = 0; i + j < size; j++)
        w |= (uint64_t)p[i + j] << (8 * j);
    return w;
}

/* A 64-bit multiply-xorshift over the key's words, then murmur3's finaliser.
 * key_size is a link-time constant, so after inlining this is straight-line
 * code over the key. */
static inline uint32_t htab_hash(const void *key, uint32_t size)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ size;
    for (uint32_t i = 0; i < size; i += 8) {
        h = (h ^ htab_key_word((const unsigned char *)key, i, size)) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
    }
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return (uint32_t)h;
}

/* Word by word rather than memcmp: after inlining, the program's key words
 * are values in registers (GVN forwards the stores that built the key), so
 * the compare reads only the element; a memcmp, expanded late in code
 * generation, would reload the key with wide loads that stall on the narrow
 * stores behind them. */
static inline int htab_key_eq(const struct bpf_map *m, struct htab_elem *e, const void *key)
{
    const unsigned char *a = (const unsigned char *)htab_key(e), *k = (const unsigned char *)key;
    uint64_t diff = 0;
    NO_VECTORIZE /* a few words, the last perhaps partial */
    for (uint32_t i = 0; i < m->key_size; i += 8)
        diff |= htab_key_word(a, i, m->key_size) ^ htab_key_word(k, i, m->key_size);
    return diff == 0;
}

/* Lock-free lookup: the element holding key, or NULL. Always inlined, so
 * that each lookup's copy sees the map's key size as a constant once the
 * lookup is spliced into a program. */
static __attribute__((always_inline)) inline struct htab_elem *
htab_find_rcu(const struct bpf_map *m, char *base, const void *key, uint32_t hash)
{
    uint32_t b = hash & (htab_nbuckets(m) - 1);
    struct htab_bucket *bk = htab_bucket(base, b);
    for (;;) {
        uint32_t x = __atomic_load_n(&bk->head, __ATOMIC_ACQUIRE);
        while (LINK_IS_ELEM(x)) {
            struct htab_elem *e = htab_elem(m, base, LINK_INDEX(x));
            if (__atomic_load_n(&e->hash, __ATOMIC_RELAXED) == hash && htab_key_eq(m, e, key))
                return e;
            x = __atomic_load_n(&e->next, __ATOMIC_ACQUIRE);
        }
        if (x == LINK_NONE || x == LINK_MARKER(b))
            return 0;
        /* ended in another bucket's chain: an element moved; start again */
    }
}

/* Under the bucket lock: the element holding key and the link word pointing
 * at it, or NULL. */
static struct htab_elem *htab_find_locked(const struct bpf_map *m, char *base,
                                          struct htab_bucket *bk, const void *key,
                                          uint32_t hash, uint32_t **prev)
{
    uint32_t *link = &bk->head;
    uint32_t x = __atomic_load_n(link, __ATOMIC_RELAXED);
    while (LINK_IS_ELEM(x)) {
        struct htab_elem *e = htab_elem(m, base, LINK_INDEX(x));
        if (e->hash == hash && htab_key_eq(m, e, key)) {
            if (prev)
                *prev = link;
            return e;
        }
        link = &e->next;
        x = __atomic_load_n(link, __ATOMIC_RELAXED);
    }
    return 0;
}

/* Under the bucket lock: unlinks e, whose link word is *prev. */
static void htab_unlink(struct htab_elem *e, uint32_t *prev)
{
    __atomic_store_n(prev, __atomic_load_n(&e->next, __ATOMIC_RELAXED), __ATOMIC_RELEASE);
    __atomic_store_n(&e->linked, 0, __ATOMIC_RELAXED);
}

/* Under the bucket lock: publishes e (hash, key and value written) at the
 * head of bucket b. */
static void htab_link(struct htab_bucket *bk, uint32_t b, struct htab_elem *e, uint32_t index)
{
    uint32_t head = __atomic_load_n(&bk->head, __ATOMIC_RELAXED);
    __atomic_store_n(&e->next, head == LINK_NONE ? LINK_MARKER(b) : head, __ATOMIC_RELAXED);
    __atomic_store_n(&e->linked, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&bk->head, LINK_ELEM(index), __ATOMIC_RELEASE);
}

/* -- the element pool --------------------------------------------------------- */

static void htab_free_push(const struct bpf_map *m, char *base, uint32_t index)
{
    struct htab_header *hdr = htab_header(base);
    struct htab_elem *e = htab_elem(m, base, index);
    uint64_t old = __atomic_load_n(&hdr->free_head, __ATOMIC_RELAXED);
    uint64_t new_head;
    do {
        __atomic_store_n(&e->free_next, (uint32_t)old, __ATOMIC_RELAXED);
        new_head = (((old >> 32) + 1) << 32) | ((uint64_t)index + 1);
    } while (!__atomic_compare_exchange_n(&hdr->free_head, &old, new_head, 1, __ATOMIC_RELEASE,
                                          __ATOMIC_RELAXED));
}

/* A free element's index, or -1 when the pool is empty. */
static int64_t htab_free_pop(const struct bpf_map *m, char *base)
{
    struct htab_header *hdr = htab_header(base);
    uint64_t old = __atomic_load_n(&hdr->free_head, __ATOMIC_ACQUIRE);
    while ((uint32_t)old != 0) {
        uint32_t index = (uint32_t)old - 1;
        uint32_t next = __atomic_load_n(&htab_elem(m, base, index)->free_next, __ATOMIC_RELAXED);
        uint64_t new_head = (((old >> 32) + 1) << 32) | next;
        /* the tag makes a stale `next` fail the exchange (no ABA) */
        if (__atomic_compare_exchange_n(&hdr->free_head, &old, new_head, 1, __ATOMIC_ACQUIRE,
                                        __ATOMIC_ACQUIRE))
            return index;
    }
    uint32_t b = __atomic_load_n(&hdr->bump, __ATOMIC_RELAXED);
    while (b < m->max_entries) {
        if (__atomic_compare_exchange_n(&hdr->bump, &b, b + 1, 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            return b;
    }
    return -1;
}

/* LRU: takes an element out of the map with a CLOCK sweep and returns its
 * index. Never fails: the pool is retried after each full turn, since other
 * threads may hold elements they have not linked yet. */
static uint32_t htab_lru_evict(const struct bpf_map *m, char *base)
{
    struct htab_header *hdr = htab_header(base);
    uint32_t mask = htab_nbuckets(m) - 1;
    for (uint64_t step = 1;; step++) {
        uint32_t i = __atomic_fetch_add(&hdr->lru_hand, 1, __ATOMIC_RELAXED) % m->max_entries;
        struct htab_elem *e = htab_elem(m, base, i);
        if (__atomic_load_n(&e->linked, __ATOMIC_RELAXED)) {
            if (__atomic_load_n(&e->ref, __ATOMIC_RELAXED)) {
                __atomic_store_n(&e->ref, 0, __ATOMIC_RELAXED); /* second chance */
            } else {
                uint32_t b = __atomic_load_n(&e->hash, __ATOMIC_RELAXED) & mask;
                struct htab_bucket *bk = htab_bucket(base, b);
                map_lock(&bk->lock);
                /* still in this bucket? (it may have moved meanwhile) */
                uint32_t *link = &bk->head;
                uint32_t x = *link;
                while (LINK_IS_ELEM(x) && LINK_INDEX(x) != i) {
                    link = &htab_elem(m, base, LINK_INDEX(x))->next;
                    x = *link;
                }
                if (LINK_IS_ELEM(x)) {
                    htab_unlink(e, link);
                    map_unlock(&bk->lock);
                    return i;
                }
                map_unlock(&bk->lock);
            }
        }
        if (step % m->max_entries == 0) {
            int64_t idx = htab_free_pop(m, base);
            if (idx >= 0)
                return (uint32_t)idx;
            sched_yield(); /* every element is held by an unfinished insert */
        }
    }
}

/* Writes a value into e: `fresh` for an element new to the map (other copies
 * and padding zeroed, as the kernel's pcpu_init_value). */
static void htab_set_value(const struct bpf_map *m, struct htab_elem *e, const void *value,
                           uint64_t flags, int fresh)
{
    uint64_t stride = map_value_stride(m);
    uint32_t n = map_ncopies(m);
    if (flags & MAP_F_ALLCPUS) {
        __builtin_memcpy(htab_value(m, e, 0), value, n * stride);
        return;
    }
    if (fresh)
        __builtin_memset(htab_value(m, e, 0), 0, n * stride);
    __builtin_memcpy(htab_value(m, e, map_this_cpu(m)), value, m->value_size);
}

/* -- operations ----------------------------------------------------------------- */

__attribute__((always_inline)) static inline void *htab_lookup(const struct bpf_map *m, const void *key)
{
    char *base = (char *)map_storage(m);
    if (__builtin_expect(base == 0, 0))
        return 0;
    struct htab_elem *e = htab_find_rcu(m, base, key, htab_hash(key, m->key_size));
    if (!e)
        return 0;
    if (htab_is_lru(m) && !__atomic_load_n(&e->ref, __ATOMIC_RELAXED))
        __atomic_store_n(&e->ref, 1, __ATOMIC_RELAXED);
    return htab_value(m, e, map_this_cpu(m));
}

static void *htab_lookup_percpu(const struct bpf_map *m, const void *key, uint32_t cpu)
{
    if (cpu >= map_ncopies(m))
        return 0;
    char *base = (char *)map_storage(m);
    if (__builtin_expect(base == 0, 0))
        return 0;
    struct htab_elem *e = htab_find_rcu(m, base, key, htab_hash(key, m->key_size));
    if (!e)
        return 0;
    if (htab_is_lru(m) && !__atomic_load_n(&e->ref, __ATOMIC_RELAXED))
        __atomic_store_n(&e->ref, 1, __ATOMIC_RELAXED);
    return htab_value(m, e, cpu);
}

/* The host's lookup: cpu's copy without marking an LRU element referenced
 * (as the syscall, which does not count as a use). */
void *map_htab_lookup_sys(const struct bpf_map *m, const void *key, uint32_t cpu)
{
    char *base = (char *)map_storage(m);
    if (base == 0 || cpu >= map_ncopies(m))
        return 0;
    struct htab_elem *e = htab_find_rcu(m, base, key, htab_hash(key, m->key_size));
    return e ? htab_value(m, e, cpu) : 0;
}

static long htab_update(const struct bpf_map *m, const void *key, const void *value,
                        uint64_t flags)
{
    uint64_t mode = flags & ~(MAP_F_ALLCPUS | BPF_F_LOCK);
    if (mode > BPF_EXIST)
        return -EINVAL;
    char *base = (char *)map_storage(m);
    if (base == 0)
        return -ENOMEM;
    uint32_t hash = htab_hash(key, m->key_size);
    uint32_t b = hash & (htab_nbuckets(m) - 1);
    struct htab_bucket *bk = htab_bucket(base, b);

    map_lock(&bk->lock);
    struct htab_elem *e = htab_find_locked(m, base, bk, key, hash, 0);
    if (e) {
        if (mode == BPF_NOEXIST) {
            map_unlock(&bk->lock);
            return -EEXIST;
        }
        htab_set_value(m, e, value, flags, 0);
        if (htab_is_lru(m))
            __atomic_store_n(&e->ref, 1, __ATOMIC_RELAXED);
        map_unlock(&bk->lock);
        return 0;
    }
    if (mode == BPF_EXIST) {
        map_unlock(&bk->lock);
        return -ENOENT;
    }
    int64_t idx = htab_free_pop(m, base);
    if (idx < 0 && !htab_is_lru(m)) {
        map_unlock(&bk->lock);
        return -E2BIG;
    }
    if (idx < 0) {
        /* Eviction locks the victim's bucket: never while holding ours. */
        map_unlock(&bk->lock);
        idx = htab_lru_evict(m, base);
        map_lock(&bk->lock);
        e = htab_find_locked(m, base, bk, key, hash, 0);
        if (e) { /* another thread inserted the key meanwhile */
            long ret = -EEXIST;
            if (mode != BPF_NOEXIST) {
                htab_set_value(m, e, value, flags, 0);
                __atomic_store_n(&e->ref, 1, __ATOMIC_RELAXED);
                ret = 0;
            }
            map_unlock(&bk->lock);
            htab_free_push(m, base, (uint32_t)idx);
            return ret;
        }
    }
    struct htab_elem *n = htab_elem(m, base, (uint32_t)idx);
    __atomic_store_n(&n->hash, hash, __ATOMIC_RELAXED);
    __builtin_memcpy(htab_key(n), key, m->key_size);
    htab_set_value(m, n, value, flags, 1);
    __atomic_store_n(&n->ref, 0, __ATOMIC_RELAXED);
    htab_link(bk, b, n, (uint32_t)idx);
    map_unlock(&bk->lock);
    return 0;
}

static long htab_delete(const struct bpf_map *m, const void *key)
{
    char *base = (char *)map_storage(m);
    if (base == 0)
        return -ENOENT;
    uint32_t hash = htab_hash(key, m->key_size);
    struct htab_bucket *bk = htab_bucket(base, hash & (htab_nbuckets(m) - 1));
    uint32_t *prev;
    map_lock(&bk->lock);
    struct htab_elem *e = htab_find_locked(m, base, bk, key, hash, &prev);
    if (!e) {
        map_unlock(&bk->lock);
        return -ENOENT;
    }
    htab_unlink(e, prev);
    map_unlock(&bk->lock);
    htab_free_push(m, base, htab_index_of(m, base, e));
    return 0;
}

/* Order: bucket by bucket, each chain from its head. A missing or NULL key
 * gives the first key. */
static long htab_get_next_key(const struct bpf_map *m, const void *key, void *next)
{
    char *base = (char *)map_storage(m);
    if (base == 0)
        return -ENOENT;
    uint32_t nb = htab_nbuckets(m);
    uint32_t start = 0;
    if (key) {
        uint32_t hash = htab_hash(key, m->key_size);
        uint32_t b = hash & (nb - 1);
        struct htab_bucket *bk = htab_bucket(base, b);
        map_lock(&bk->lock);
        struct htab_elem *e = htab_find_locked(m, base, bk, key, hash, 0);
        if (e) {
            uint32_t x = e->next;
            if (LINK_IS_ELEM(x)) {
                __builtin_memcpy(next, htab_key(htab_elem(m, base, LINK_INDEX(x))), m->key_size);
                map_unlock(&bk->lock);
                return 0;
            }
            start = b + 1;
        }
        map_unlock(&bk->lock);
    }
    for (uint32_t b = start; b < nb; b++) {
        struct htab_bucket *bk = htab_bucket(base, b);
        if (!LINK_IS_ELEM(__atomic_load_n(&bk->head, __ATOMIC_ACQUIRE)))
            continue;
        map_lock(&bk->lock);
        uint32_t x = bk->head;
        if (LINK_IS_ELEM(x)) {
            __builtin_memcpy(next, htab_key(htab_elem(m, base, LINK_INDEX(x))), m->key_size);
            map_unlock(&bk->lock);
            return 0;
        }
        map_unlock(&bk->lock);
    }
    return -ENOENT;
}

/* callback(map, key, value, ctx, env) per element, lock-free like lookup (the
 * callback may update or delete elements, also the current one: its
 * successor is read first). A chain that ends in another bucket's marker was
 * changed under the walk and is left; elements may then be missed, as the
 * kernel may under concurrent updates. A per-cpu map passes this cpu's copy. */
static long htab_for_each(const struct bpf_map *m, void *callback, void *ctx, uint64_t env)
{
    char *base = (char *)map_storage(m);
    if (base == 0)
        return 0;
    map_foreach_cb cb = (map_foreach_cb)callback;
    uint32_t nb = htab_nbuckets(m);
    uint32_t cpu = map_this_cpu(m);
    long visited = 0;
    for (uint32_t b = 0; b < nb; b++) {
        uint32_t x = __atomic_load_n(&htab_bucket(base, b)->head, __ATOMIC_ACQUIRE);
        while (LINK_IS_ELEM(x)) {
            struct htab_elem *e = htab_elem(m, base, LINK_INDEX(x));
            x = __atomic_load_n(&e->next, __ATOMIC_ACQUIRE);
            visited++;
            if (cb((uint64_t)(uintptr_t)m, (uint64_t)(uintptr_t)htab_key(e),
                   (uint64_t)(uintptr_t)htab_value(m, e, cpu), (uint64_t)(uintptr_t)ctx, env))
                return visited;
        }
    }
    return visited;
}

/* The LRU variants share these: eviction is the update's, by map type. */
const struct map_ops hash_ops = {
    .storage_size = htab_storage_size,
    .lookup = htab_lookup,
    .update = htab_update,
    .delete = htab_delete,
    .get_next_key = htab_get_next_key,
    .for_each = htab_for_each,
};

const struct map_ops percpu_hash_ops = {
    .storage_size = htab_storage_size,
    .lookup = htab_lookup,
    .update = htab_update,
    .delete = htab_delete,
    .get_next_key = htab_get_next_key,
    .lookup_percpu = htab_lookup_percpu,
    .for_each = htab_for_each,
};

/* BPF_MAP_TYPE_DEVMAP_HASH (kernel/bpf/devmap.c): a hash of devmap values by a
 * u32 key, the target bpf_redirect_map() looks up (redirect.c). */
static uint64_t devmap_hash_storage_size(const struct bpf_map *m)
{
    int ok = m->key_size == 4 && (m->value_size == 4 || m->value_size == 8);
    return ok ? htab_storage_size(m) : 0;
}

static long devmap_hash_update(const struct bpf_map *m, const void *key, const void *value,
                               uint64_t flags)
{
    long err = devmap_value_check(m, value);
    return err ? err : htab_update(m, key, value, flags);
}

const struct map_ops devmap_hash_ops = {
    .storage_size = devmap_hash_storage_size,
    .lookup = htab_lookup,
    .update = devmap_hash_update,
    .delete = htab_delete,
    .get_next_key = htab_get_next_key,
};
