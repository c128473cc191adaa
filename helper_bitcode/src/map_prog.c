/* BPF_MAP_TYPE_PROG_ARRAY (docs/maps.md): the slots bpf_tail_call() jumps
 * through.
 *
 * Key: a u32 index; value: a u32 program number (the program's index in the
 * object's program table, ebpf_lto_program_names[]), where the kernel takes
 * a program fd. The host sets slots with update (flags must be BPF_ANY, as
 * the kernel's fd arrays; index >= max_entries -E2BIG; a number that is not
 * a program -EBADF) and clears them with delete (-ENOENT if already empty).
 * Programs cannot look a slot up (the kernel's verifier refuses it): lookup
 * gives NULL. The tail-call lowering asks ebpf_lto_prog_array_get().
 *
 * Storage: max_entries u32 slots holding number + 1, 0 = empty (so zeroed
 * storage is an empty array); read and written atomically.
 */
#include "maps.h"

/* Emitted by the link step; weak so that the runtime links without it. */
extern const uint32_t ebpf_lto_programs_count __attribute__((weak));

static inline int prog_geometry_ok(const struct bpf_map *m)
{
    return m->type == BPF_MAP_TYPE_PROG_ARRAY && m->key_size == 4 && m->value_size == 4 &&
           m->max_entries != 0;
}

static uint64_t prog_storage_size(const struct bpf_map *m)
{
    return prog_geometry_ok(m) ? 4 * (uint64_t)m->max_entries : 0;
}

/* Program number in slot `index`, or 0xffffffff when the slot is empty, out
 * of range, or the map is not a prog array. */
uint32_t ebpf_lto_prog_array_get(const struct bpf_map *m, uint32_t index)
{
    if (!prog_geometry_ok(m) || index >= m->max_entries)
        return REF_NONE;
    uint32_t *slots = (uint32_t *)map_storage(m);
    if (!slots)
        return REF_NONE;
    uint32_t v = __atomic_load_n(&slots[index], __ATOMIC_ACQUIRE);
    return v ? v - 1 : REF_NONE;
}

static void *prog_lookup(const struct bpf_map *m, const void *key)
{
    (void)m, (void)key;
    return 0;
}

static long prog_update(const struct bpf_map *m, const void *key, const void *value,
                        uint64_t flags)
{
    if (!prog_geometry_ok(m) || flags != BPF_ANY)
        return -EINVAL;
    uint32_t index = *(const uint32_t *)key, number = *(const uint32_t *)value;
    if (index >= m->max_entries)
        return -E2BIG;
    if (number == REF_NONE || (&ebpf_lto_programs_count && number >= ebpf_lto_programs_count))
        return -EBADF;
    return ref_slot_store(m, index, number);
}

static long prog_delete(const struct bpf_map *m, const void *key)
{
    if (!prog_geometry_ok(m))
        return -EINVAL;
    return ref_slot_delete(m, key);
}

static long prog_sys_lookup(const struct bpf_map *m, const void *key, void *value_out)
{
    return ref_sys_lookup(ebpf_lto_prog_array_get(m, *(const uint32_t *)key), value_out);
}

const struct map_ops prog_array_ops = {
    .storage_size = prog_storage_size,
    .lookup = prog_lookup,
    .update = prog_update,
    .delete = prog_delete,
    .get_next_key = index_get_next_key,
    .sys_lookup = prog_sys_lookup,
};
