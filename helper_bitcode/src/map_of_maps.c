/* BPF_MAP_TYPE_ARRAY_OF_MAPS and BPF_MAP_TYPE_HASH_OF_MAPS (docs/maps.md).
 *
 * Values are maps of the same object. The host stores one by its index in
 * the object's map table (a u32 value, where the kernel takes a map fd); a
 * program's lookup returns the inner map's descriptor (`const struct bpf_map
 * *`, as the kernel returns the inner map), which it passes to map helpers,
 * or NULL. The link step emits the table, `ebpf_lto_maps[]`, that turns an
 * index back into a descriptor; storage keeps indexes only, so it stays
 * position independent.
 *
 * update checks the inner map as the kernel does: it must exist (else
 * -EBADF), must not itself hold maps, and must match the outer map's inner
 * template (the descriptor's inner_index) in type, key and value size and
 * map_flags, and for an array type also in max_entries unless the template
 * has BPF_F_INNER_MAP (else -EINVAL).
 *
 * array_of_maps: key u32 index < max_entries; storage max_entries u32 slots
 * holding index + 1 (0 = empty); update flags must be BPF_ANY (the kernel's
 * fd arrays), delete of an empty slot -ENOENT.
 * hash_of_maps: a hash map (hash_ops, map_hash.c) whose 4-byte values are
 * inner map indexes; keys and flags as for a hash (BPF_F_LOCK -EINVAL).
 *
 * Host API: ebpf_lto_map_of_maps_get(m, key) gives the stored index (what the
 * kernel's syscall lookup returns as the inner map's id), 0xffffffff if none.
 */
#include "maps.h"

uint32_t ebpf_lto_map_of_maps_get(const struct bpf_map *m, const void *key);

#define BPF_F_INNER_MAP (1u << 12)

/* Emitted by the link step; weak so that the runtime links without them. */
extern const struct bpf_map *const ebpf_lto_maps[] __attribute__((weak));
extern const uint32_t ebpf_lto_maps_count __attribute__((weak));

static inline uint32_t mom_table_size(void)
{
    return (&ebpf_lto_maps_count && ebpf_lto_maps) ? ebpf_lto_maps_count : 0;
}

static inline const struct bpf_map *mom_map(uint32_t index)
{
    return index < mom_table_size() ? ebpf_lto_maps[index] : 0;
}

static inline int mom_is_map_in_map(uint32_t type)
{
    return type == BPF_MAP_TYPE_ARRAY_OF_MAPS || type == BPF_MAP_TYPE_HASH_OF_MAPS;
}

/* 0 if map `index` may be stored in m, else the kernel's error. */
static long mom_check_inner(const struct bpf_map *m, uint32_t index)
{
    const struct bpf_map *inner = mom_map(index);
    if (!inner)
        return -EBADF;
    if (mom_is_map_in_map(inner->type))
        return -EINVAL;
    if (m->inner_index == BPF_MAP_NO_INNER)
        return 0;
    const struct bpf_map *t = mom_map(m->inner_index);
    if (!t)
        return 0;
    if (t->type != inner->type || t->key_size != inner->key_size ||
        t->value_size != inner->value_size || t->map_flags != inner->map_flags)
        return -EINVAL;
    int is_array = t->type == BPF_MAP_TYPE_ARRAY || t->type == BPF_MAP_TYPE_PERCPU_ARRAY;
    if (is_array && !(t->map_flags & BPF_F_INNER_MAP) && t->max_entries != inner->max_entries)
        return -EINVAL;
    return 0;
}

/* -- array_of_maps ------------------------------------------------------------ */

static inline int aom_geometry_ok(const struct bpf_map *m)
{
    return m->key_size == 4 && m->value_size == 4 && m->max_entries != 0;
}

static uint64_t aom_storage_size(const struct bpf_map *m)
{
    return aom_geometry_ok(m) ? 4 * (uint64_t)m->max_entries : 0;
}

/* The stored index + 1 of slot `key`, 0 when empty or out of range. */
static inline uint32_t aom_slot(const struct bpf_map *m, const void *key)
{
    uint32_t index = *(const uint32_t *)key;
    if (!aom_geometry_ok(m) || index >= m->max_entries)
        return 0;
    uint32_t *slots = (uint32_t *)map_storage(m);
    return slots ? __atomic_load_n(&slots[index], __ATOMIC_ACQUIRE) : 0;
}

static void *aom_lookup(const struct bpf_map *m, const void *key)
{
    uint32_t v = aom_slot(m, key);
    return v ? (void *)mom_map(v - 1) : 0;
}

static long aom_update(const struct bpf_map *m, const void *key, const void *value,
                       uint64_t flags)
{
    if (!aom_geometry_ok(m) || flags != BPF_ANY)
        return -EINVAL;
    uint32_t index = *(const uint32_t *)key, inner = *(const uint32_t *)value;
    if (index >= m->max_entries)
        return -E2BIG;
    long err = mom_check_inner(m, inner);
    return err ? err : ref_slot_store(m, index, inner);
}

static long aom_delete(const struct bpf_map *m, const void *key)
{
    if (!aom_geometry_ok(m))
        return -EINVAL;
    return ref_slot_delete(m, key);
}

static long mom_sys_lookup(const struct bpf_map *m, const void *key, void *value_out)
{
    return ref_sys_lookup(ebpf_lto_map_of_maps_get(m, key), value_out);
}

const struct map_ops array_of_maps_ops = {
    .storage_size = aom_storage_size,
    .lookup = aom_lookup,
    .update = aom_update,
    .delete = aom_delete,
    .get_next_key = index_get_next_key,
    .sys_lookup = mom_sys_lookup,
};

/* -- hash_of_maps ------------------------------------------------------------- */

static uint64_t hom_storage_size(const struct bpf_map *m)
{
    return m->value_size == 4 ? hash_ops.storage_size(m) : 0;
}

static void *hom_lookup(const struct bpf_map *m, const void *key)
{
    if (m->value_size != 4)
        return 0;
    const uint32_t *v = (const uint32_t *)hash_ops.lookup(m, key);
    return v ? (void *)mom_map(__atomic_load_n(v, __ATOMIC_RELAXED)) : 0;
}

static long hom_update(const struct bpf_map *m, const void *key, const void *value,
                       uint64_t flags)
{
    /* BPF_F_LOCK too is -EINVAL: the values hold no spin lock. */
    if (m->value_size != 4 || flags > BPF_EXIST)
        return -EINVAL;
    long err = mom_check_inner(m, *(const uint32_t *)value);
    if (err)
        return err;
    return hash_ops.update(m, key, value, flags);
}

static long hom_delete(const struct bpf_map *m, const void *key)
{
    return m->value_size == 4 ? hash_ops.delete(m, key) : -EINVAL;
}

static long hom_get_next_key(const struct bpf_map *m, const void *key, void *next)
{
    return m->value_size == 4 ? hash_ops.get_next_key(m, key, next) : -EINVAL;
}

const struct map_ops hash_of_maps_ops = {
    .storage_size = hom_storage_size,
    .lookup = hom_lookup,
    .update = hom_update,
    .delete = hom_delete,
    .get_next_key = hom_get_next_key,
    .sys_lookup = mom_sys_lookup,
};

/* -- host API ------------------------------------------------------------------- */

/* The map-table index stored under `key`, 0xffffffff when none (or m is not
 * a map of maps). */
uint32_t ebpf_lto_map_of_maps_get(const struct bpf_map *m, const void *key)
{
    if (m->type == BPF_MAP_TYPE_ARRAY_OF_MAPS) {
        uint32_t v = aom_slot(m, key);
        return v ? v - 1 : REF_NONE;
    }
    if (m->type == BPF_MAP_TYPE_HASH_OF_MAPS && m->value_size == 4) {
        const uint32_t *v = (const uint32_t *)hash_ops.lookup(m, key);
        return v ? __atomic_load_n(v, __ATOMIC_RELAXED) : REF_NONE;
    }
    return REF_NONE;
}
