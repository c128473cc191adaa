/* The map runtime: lazy storage, dispatch by map type, the map helpers and
 * the host API (docs/maps.md).
 *
 * Helpers: map_lookup_elem (1), map_update_elem (2), map_delete_elem (3),
 * map_push_elem (87), map_pop_elem (88), map_peek_elem (89),
 * for_each_map_elem (164), map_lookup_percpu_elem (195). Where the kernel
 * passes a `struct bpf_map *`, these take the link step's constant
 * descriptor, so after inlining the dispatch below folds to the one type's
 * code.
 *
 * Host API (functions named ebpf_lto_*, for a C host or the Python runner):
 * storage size, lookup/update/delete/get_next_key with the syscall's
 * semantics (values copied; per-cpu maps carry all ncpus copies), release.
 */
#include "maps.h"

/* The other types' tables live in files that a helper set may leave out.
 * Empty weak definitions here stand in for them (every operation NULL:
 * -EINVAL), and a file's strong definition replaces them when it is linked.
 * (Weak references instead would leave undefined symbols, which LLVM's JIT
 * refuses to load.) */
#define MAP_OPS_PLACEHOLDER(name) const struct map_ops name __attribute__((weak)) = {0}
MAP_OPS_PLACEHOLDER(queue_ops);
MAP_OPS_PLACEHOLDER(stack_ops);
MAP_OPS_PLACEHOLDER(ringbuf_ops);
MAP_OPS_PLACEHOLDER(perf_event_array_ops);
MAP_OPS_PLACEHOLDER(lpm_trie_ops);
MAP_OPS_PLACEHOLDER(prog_array_ops);
MAP_OPS_PLACEHOLDER(array_of_maps_ops);
MAP_OPS_PLACEHOLDER(hash_of_maps_ops);
MAP_OPS_PLACEHOLDER(devmap_ops);
MAP_OPS_PLACEHOLDER(cpumap_ops);
MAP_OPS_PLACEHOLDER(xskmap_ops);
MAP_OPS_PLACEHOLDER(devmap_hash_ops);

#define MAP_TYPE_LIMIT 28 /* one past the highest BPF_MAP_TYPE_* implemented */

static const struct map_ops *const map_ops_table[MAP_TYPE_LIMIT] = {
    [BPF_MAP_TYPE_HASH] = &hash_ops,
    [BPF_MAP_TYPE_ARRAY] = &array_ops,
    [BPF_MAP_TYPE_PROG_ARRAY] = &prog_array_ops,
    [BPF_MAP_TYPE_PERF_EVENT_ARRAY] = &perf_event_array_ops,
    [BPF_MAP_TYPE_PERCPU_HASH] = &percpu_hash_ops,
    [BPF_MAP_TYPE_PERCPU_ARRAY] = &percpu_array_ops,
    [BPF_MAP_TYPE_LRU_HASH] = &hash_ops,
    [BPF_MAP_TYPE_LRU_PERCPU_HASH] = &percpu_hash_ops,
    [BPF_MAP_TYPE_LPM_TRIE] = &lpm_trie_ops,
    [BPF_MAP_TYPE_ARRAY_OF_MAPS] = &array_of_maps_ops,
    [BPF_MAP_TYPE_HASH_OF_MAPS] = &hash_of_maps_ops,
    [BPF_MAP_TYPE_DEVMAP] = &devmap_ops,
    [BPF_MAP_TYPE_CPUMAP] = &cpumap_ops,
    [BPF_MAP_TYPE_XSKMAP] = &xskmap_ops,
    [BPF_MAP_TYPE_DEVMAP_HASH] = &devmap_hash_ops,
    [BPF_MAP_TYPE_QUEUE] = &queue_ops,
    [BPF_MAP_TYPE_STACK] = &stack_ops,
    [BPF_MAP_TYPE_RINGBUF] = &ringbuf_ops,
};

/* The type's table, or NULL for a type this runtime does not have. */
static inline const struct map_ops *map_ops_of(const struct bpf_map *m)
{
    if (m == 0 || m->type >= MAP_TYPE_LIMIT)
        return 0;
    return map_ops_table[m->type];
}

/* -- storage ---------------------------------------------------------------- */

static uint64_t storage_size(const struct bpf_map *m)
{
    const struct map_ops *ops = map_ops_of(m);
    return ops && ops->storage_size ? ops->storage_size(m) : 0;
}

/* First use: map zeroed memory and publish it with a compare-and-swap; of
 * two threads initialising at once, the loser unmaps its copy and takes the
 * winner's. */
__attribute__((noinline, cold)) static void *map_storage_alloc(const struct bpf_map *m)
{
    struct bpf_map_state *st = (struct bpf_map_state *)m->state;
    uint64_t size = storage_size(m);
    if (size == 0)
        return 0; /* unknown type or impossible geometry */
    void *mem = mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (mem == MAP_FAILED)
        return 0;
    void *expected = 0;
    if (__atomic_compare_exchange_n(&st->storage, &expected, mem, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&st->storage_bytes, size, __ATOMIC_RELAXED);
        return mem;
    }
    munmap(mem, size);
    return expected;
}

void *map_storage(const struct bpf_map *m)
{
    struct bpf_map_state *st = (struct bpf_map_state *)m->state;
    void *p = __atomic_load_n(&st->storage, __ATOMIC_ACQUIRE);
    if (__builtin_expect(p != 0, 1))
        return p;
    return map_storage_alloc(m);
}

long ref_slot_store(const struct bpf_map *m, uint32_t index, uint32_t ref)
{
    uint32_t *slots = (uint32_t *)map_storage(m);
    if (!slots)
        return -ENOMEM;
    __atomic_store_n(&slots[index], ref + 1, __ATOMIC_RELEASE);
    return 0;
}

long ref_slot_delete(const struct bpf_map *m, const void *key)
{
    uint32_t index = *(const uint32_t *)key;
    if (index >= m->max_entries)
        return -E2BIG;
    uint32_t *slots = (uint32_t *)map_storage(m);
    if (!slots)
        return -ENOMEM;
    return __atomic_exchange_n(&slots[index], 0u, __ATOMIC_ACQ_REL) ? 0 : -ENOENT;
}

long ref_sys_lookup(uint32_t ref, void *value_out)
{
    if (ref == REF_NONE)
        return -ENOENT;
    __builtin_memcpy(value_out, &ref, sizeof(ref));
    return 0;
}

long index_get_next_key(const struct bpf_map *m, const void *key, void *next)
{
    uint32_t index = key ? *(const uint32_t *)key : 0xFFFFFFFFu;
    if (index >= m->max_entries) {
        if (m->max_entries == 0)
            return -ENOENT;
        *(uint32_t *)next = 0;
        return 0;
    }
    if (index == m->max_entries - 1)
        return -ENOENT;
    *(uint32_t *)next = index + 1;
    return 0;
}

/* -- helpers ------------------------------------------------------------------ */

static inline const struct bpf_map *as_map(u64 r)
{
    return (const struct bpf_map *)(uintptr_t)r;
}

static inline void *as_ptr(u64 r)
{
    return (void *)(uintptr_t)r;
}

/* void *map_lookup_elem(map, key): the value, or NULL. For a per-cpu map,
 * the current cpu's copy. */
BPF_HELPER(0001) /* map_lookup_elem */
{
    (void)r3, (void)r4, (void)r5;
    const struct map_ops *ops = map_ops_of(as_map(r1));
    if (!ops || !ops->lookup)
        return 0;
    return (u64)(uintptr_t)ops->lookup(as_map(r1), as_ptr(r2));
}

/* long map_update_elem(map, key, value, flags): flags BPF_ANY, BPF_NOEXIST
 * or BPF_EXIST (BPF_F_LOCK accepted); a per-cpu map's update from a program
 * writes the current cpu's copy. */
BPF_HELPER(0002) /* map_update_elem */
{
    (void)r5;
    const struct map_ops *ops = map_ops_of(as_map(r1));
    if (!ops || !ops->update || !map_update_flags_ok(r4))
        return NEG_ERRNO(EINVAL);
    return (u64)ops->update(as_map(r1), as_ptr(r2), as_ptr(r3), r4);
}

BPF_HELPER(0003) /* map_delete_elem */
{
    (void)r3, (void)r4, (void)r5;
    const struct map_ops *ops = map_ops_of(as_map(r1));
    if (!ops || !ops->delete)
        return NEG_ERRNO(EINVAL);
    return (u64)ops->delete(as_map(r1), as_ptr(r2));
}

BPF_HELPER(0087) /* map_push_elem(map, value, flags) */
{
    (void)r4, (void)r5;
    const struct map_ops *ops = map_ops_of(as_map(r1));
    if (!ops || !ops->push)
        return NEG_ERRNO(EINVAL);
    return (u64)ops->push(as_map(r1), as_ptr(r2), r3);
}

BPF_HELPER(0088) /* map_pop_elem(map, value) */
{
    (void)r3, (void)r4, (void)r5;
    const struct map_ops *ops = map_ops_of(as_map(r1));
    if (!ops || !ops->pop)
        return NEG_ERRNO(EINVAL);
    return (u64)ops->pop(as_map(r1), as_ptr(r2));
}

BPF_HELPER(0089) /* map_peek_elem(map, value) */
{
    (void)r3, (void)r4, (void)r5;
    const struct map_ops *ops = map_ops_of(as_map(r1));
    if (!ops || !ops->peek)
        return NEG_ERRNO(EINVAL);
    return (u64)ops->peek(as_map(r1), as_ptr(r2));
}

/* long for_each_map_elem(map, callback, ctx, flags): calls
 * callback(map, key, value, ctx, 0) per element until it returns nonzero;
 * returns the number of elements visited (including the one that stopped
 * the walk). flags must be 0. */
BPF_HELPER(0164) /* for_each_map_elem */
{
    const struct map_ops *ops = map_ops_of(as_map(r1));
    if (!ops || !ops->for_each || r4 != 0)
        return NEG_ERRNO(EINVAL);
    return (u64)ops->for_each(as_map(r1), as_ptr(r2), as_ptr(r3), r5);
}

/* void *map_lookup_percpu_elem(map, key, cpu): cpu's copy, NULL when cpu >=
 * ncpus or the map is not per-cpu. */
BPF_HELPER(0195) /* map_lookup_percpu_elem */
{
    (void)r4, (void)r5;
    const struct bpf_map *m = as_map(r1);
    const struct map_ops *ops = map_ops_of(m);
    if (!ops || !ops->lookup_percpu || r3 >= map_ncopies(m))
        return 0;
    return (u64)(uintptr_t)ops->lookup_percpu(m, as_ptr(r2), (uint32_t)r3);
}

/* -- host API ----------------------------------------------------------------- */

/* Bytes of storage the map needs (what a host providing the storage must
 * give, zeroed, at least 8-byte aligned); 0 for an unsupported type. */
uint64_t ebpf_lto_map_storage_size(const struct bpf_map *m)
{
    return storage_size(m);
}

/* Copies the value of `key` to value_out, as the BPF_MAP_LOOKUP_ELEM
 * syscall: value_size bytes, or for a per-cpu map ncpus copies of
 * round_up(value_size, 8) bytes each. For a queue or stack (no key), a peek.
 * 0, -ENOENT, or -EINVAL when the type has no lookup. */
long ebpf_lto_map_lookup(const struct bpf_map *m, const void *key, void *value_out)
{
    const struct map_ops *ops = map_ops_of(m);
    if (!ops)
        return -EINVAL;
    if (ops->sys_lookup)
        return ops->sys_lookup(m, key, value_out);
    int is_hash = m->type == BPF_MAP_TYPE_HASH || m->type == BPF_MAP_TYPE_PERCPU_HASH ||
                  m->type == BPF_MAP_TYPE_LRU_HASH || m->type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
    if (map_is_percpu(m)) {
        if (!ops->lookup_percpu)
            return -EINVAL;
        uint64_t stride = map_value_stride(m);
        uint32_t n = map_ncopies(m);
        for (uint32_t cpu = 0; cpu < n; cpu++) {
            const void *v =
                is_hash ? map_htab_lookup_sys(m, key, cpu) : ops->lookup_percpu(m, key, cpu);
            if (!v)
                return -ENOENT;
            __builtin_memcpy((char *)value_out + cpu * stride, v, stride);
        }
        return 0;
    }
    if (is_hash) {
        const void *v = map_htab_lookup_sys(m, key, 0);
        if (!v)
            return -ENOENT;
        __builtin_memcpy(value_out, v, m->value_size);
        return 0;
    }
    if (ops->lookup) {
        const void *v = ops->lookup(m, key);
        if (!v)
            return -ENOENT;
        __builtin_memcpy(value_out, v, m->value_size);
        return 0;
    }
    if (ops->peek)
        return ops->peek(m, value_out);
    return -EINVAL;
}

/* Sets the value of `key`, as BPF_MAP_UPDATE_ELEM: a per-cpu map takes all
 * ncpus copies (round_up(value_size, 8) bytes each). For a queue or stack
 * (no key), a push. */
long ebpf_lto_map_update(const struct bpf_map *m, const void *key, const void *value,
                         uint64_t flags)
{
    const struct map_ops *ops = map_ops_of(m);
    if (!ops)
        return -EINVAL;
    if (ops->update) {
        if (!map_update_flags_ok(flags))
            return -EINVAL;
        return ops->update(m, key, value, map_is_percpu(m) ? flags | MAP_F_ALLCPUS : flags);
    }
    if (ops->push)
        return ops->push(m, value, flags);
    return -EINVAL;
}

long ebpf_lto_map_delete(const struct bpf_map *m, const void *key)
{
    const struct map_ops *ops = map_ops_of(m);
    if (!ops || !ops->delete)
        return -EINVAL;
    return ops->delete(m, key);
}

/* The key after `key` (NULL or a missing key: the first key); -ENOENT after
 * the last. */
long ebpf_lto_map_get_next_key(const struct bpf_map *m, const void *key, void *next_out)
{
    const struct map_ops *ops = map_ops_of(m);
    if (!ops || !ops->get_next_key)
        return -EINVAL;
    return ops->get_next_key(m, key, next_out);
}

/* Frees storage the runtime allocated (not a host's) and resets the map to
 * empty. Only when no thread uses the map. */
void ebpf_lto_map_release(const struct bpf_map *m)
{
    struct bpf_map_state *st = (struct bpf_map_state *)m->state;
    void *p = __atomic_exchange_n(&st->storage, (void *)0, __ATOMIC_ACQ_REL);
    uint64_t size = __atomic_exchange_n(&st->storage_bytes, (uint64_t)0, __ATOMIC_ACQ_REL);
    if (p && size)
        munmap(p, size);
}
