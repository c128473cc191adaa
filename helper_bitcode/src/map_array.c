/* BPF_MAP_TYPE_ARRAY and BPF_MAP_TYPE_PERCPU_ARRAY (docs/maps.md).
 *
 * Storage: max_entries elements of stride = round_up(value_size, 8) bytes
 * (the kernel's elem_size), zeroed; a per-cpu element holds ncpus copies
 * back to back, so element i's copy for cpu c is at (i * ncpus + c) * stride.
 * The key is a u32 index. Every element always exists: lookup beyond
 * max_entries is NULL, update beyond it -E2BIG, BPF_NOEXIST -EEXIST, delete
 * -EINVAL. Values are plain 8-byte aligned memory, so programs may update
 * them with atomic instructions.
 */
#include "maps.h"

static uint64_t array_storage_size(const struct bpf_map *m)
{
    return (uint64_t)m->max_entries * map_ncopies(m) * map_value_stride(m);
}

/* Element `index`'s first copy; the caller checked index < max_entries. */
static inline char *array_elem(const struct bpf_map *m, char *base, uint32_t index)
{
    return base + (uint64_t)index * map_ncopies(m) * map_value_stride(m);
}

/* Inlined into programs: after folding the descriptor this is
 * `index < max ? base + index * stride : NULL`. Always inlined: LLVM's
 * inliner, seeing the generic body, left it out of line in programs with
 * several lookups. */
__attribute__((always_inline)) static inline void *array_lookup(const struct bpf_map *m,
                                                                const void *key)
{
    uint32_t index = *(const uint32_t *)key;
    if (index >= m->max_entries)
        return 0;
    char *base = (char *)map_storage(m);
    if (__builtin_expect(base == 0, 0))
        return 0;
    return array_elem(m, base, index) + map_this_cpu(m) * map_value_stride(m);
}

__attribute__((always_inline)) static inline void *array_lookup_percpu(const struct bpf_map *m,
                                                                       const void *key,
                                                                       uint32_t cpu)
{
    uint32_t index = *(const uint32_t *)key;
    if (index >= m->max_entries || cpu >= map_ncopies(m))
        return 0;
    char *base = (char *)map_storage(m);
    if (__builtin_expect(base == 0, 0))
        return 0;
    return array_elem(m, base, index) + cpu * map_value_stride(m);
}

static long array_update(const struct bpf_map *m, const void *key, const void *value,
                         uint64_t flags)
{
    uint32_t index = *(const uint32_t *)key;
    uint64_t mode = flags & ~(MAP_F_ALLCPUS | BPF_F_LOCK);
    if (mode > BPF_EXIST)
        return -EINVAL;
    if (index >= m->max_entries)
        return -E2BIG;
    if (mode == BPF_NOEXIST)
        return -EEXIST; /* every element exists */
    char *base = (char *)map_storage(m);
    if (base == 0)
        return -ENOMEM;
    char *elem = array_elem(m, base, index);
    uint64_t stride = map_value_stride(m);
    if (flags & MAP_F_ALLCPUS) {
        /* all copies, as the syscall: stride bytes each */
        __builtin_memcpy(elem, value, map_ncopies(m) * stride);
    } else {
        __builtin_memcpy(elem + map_this_cpu(m) * stride, value, m->value_size);
    }
    return 0;
}

static long array_delete(const struct bpf_map *m, const void *key)
{
    (void)m, (void)key;
    return -EINVAL;
}

/* callback(map, &index, value, ctx, env) for each index in order; a per-cpu
 * map passes the current cpu's copy. Returns the elements visited. */
static long array_for_each(const struct bpf_map *m, void *callback, void *ctx, uint64_t env)
{
    char *base = (char *)map_storage(m);
    if (base == 0)
        return 0;
    map_foreach_cb cb = (map_foreach_cb)callback;
    uint64_t copy = map_this_cpu(m) * map_value_stride(m);
    long visited = 0;
    for (uint32_t i = 0; i < m->max_entries; i++) {
        uint32_t key = i; /* the callback may write through its key pointer */
        visited++;
        if (cb((uint64_t)(uintptr_t)m, (uint64_t)(uintptr_t)&key,
               (uint64_t)(uintptr_t)(array_elem(m, base, i) + copy), (uint64_t)(uintptr_t)ctx, env))
            break;
    }
    return visited;
}

const struct map_ops array_ops = {
    .storage_size = array_storage_size,
    .lookup = array_lookup,
    .update = array_update,
    .delete = array_delete,
    .get_next_key = index_get_next_key,
    .lookup_percpu = 0,
    .for_each = array_for_each,
};

const struct map_ops percpu_array_ops = {
    .storage_size = array_storage_size,
    .lookup = array_lookup,
    .update = array_update,
    .delete = array_delete,
    .get_next_key = index_get_next_key,
    .lookup_percpu = array_lookup_percpu,
    .for_each = array_for_each,
};
