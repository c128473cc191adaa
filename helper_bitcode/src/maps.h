/* The map runtime: shared declarations (docs/maps.md).
 *
 * Every map is a CONSTANT `struct bpf_map` descriptor (abi.h, emitted by the
 * link step) whose `state` points at a zeroed, mutable area of
 * BPF_MAP_STATE_SIZE bytes: `struct bpf_map_state` below. The map's memory
 * ("storage") is allocated lazily on first use by map_storage(), or provided
 * zeroed by the host (shared memory) before the first use; its size is
 * ops->storage_size(m) (host API: ebpf_lto_map_storage_size()).
 *
 * Rules for every map type:
 *  - storage is position independent: anything stored in it refers to other
 *    parts of it by offset or index, never by absolute pointer, so that a
 *    host may map it at different addresses in different processes;
 *  - all-zero storage is a valid, empty map (no initialisation pass);
 *  - everything mutable lives in storage (preferably) or in the state; the
 *    state is per process when the host shares storage, so shared data
 *    (locks, counters, heads) belongs in storage;
 *  - storage is at least 8-byte aligned (the runtime's own is page aligned).
 */
#ifndef EBPF_LTO_MAPS_H
#define EBPF_LTO_MAPS_H

#include "abi.h"
#include "host.h"

/* The mutable per-map area `desc->state` points at. */
struct bpf_map_state {
    void *storage;             /* the map's memory; NULL until first use */
    uint64_t storage_bytes;    /* bytes the runtime mmap()ed, 0 if host-provided */
    uint64_t aux[14];          /* free for a map type's per-process use (zeroed) */
};
_Static_assert(sizeof(struct bpf_map_state) <= BPF_MAP_STATE_SIZE, "bpf_map_state too big");

/* Per-type operations. A NULL entry means "not supported for this type": the
 * helper returns -EINVAL (lookup: NULL). */
struct map_ops {
    uint64_t (*storage_size)(const struct bpf_map *m);
    void *(*lookup)(const struct bpf_map *m, const void *key);             /* value ptr or NULL */
    long (*update)(const struct bpf_map *m, const void *key, const void *value, uint64_t flags);
    long (*delete)(const struct bpf_map *m, const void *key);
    long (*get_next_key)(const struct bpf_map *m, const void *key, void *next);
    long (*push)(const struct bpf_map *m, const void *value, uint64_t flags);  /* queue/stack */
    long (*pop)(const struct bpf_map *m, void *value);
    long (*peek)(const struct bpf_map *m, void *value);
    void *(*lookup_percpu)(const struct bpf_map *m, const void *key, uint32_t cpu);
    long (*for_each)(const struct bpf_map *m, void *callback, void *ctx, uint64_t env);
    /* The syscall's lookup where it is not a copy of the value: maps of
     * programs and of maps give the referenced object's id (its index). */
    long (*sys_lookup)(const struct bpf_map *m, const void *key, void *value_out);
};

/* Array and hash families: map_array.c, map_hash.c (the LRU hashes use the hash ops). */
extern const struct map_ops array_ops, percpu_array_ops, hash_ops, percpu_hash_ops;
/* The other types, each in its own file. maps.c gives each an empty WEAK
 * definition, which a file's strong definition replaces at link time, so
 * that the runtime links without them. They are not weak here: a definition
 * including this header must stay strong (a weak constant's initializer
 * cannot be folded into inlined code). */
extern const struct map_ops queue_ops, stack_ops, ringbuf_ops, perf_event_array_ops,
    lpm_trie_ops, prog_array_ops, array_of_maps_ops, hash_of_maps_ops, devmap_ops, cpumap_ops,
    xskmap_ops, devmap_hash_ops;

/* A devmap value to store (struct bpf_devmap_val {u32 ifindex; int prog_fd},
 * or the ifindex alone): ifindex 0 is no device, -EINVAL; a program (fd > 0)
 * -EOPNOTSUPP, since devmap programs are not run here (redirect.c, map_hash.c). */
static inline long devmap_value_check(const struct bpf_map *m, const void *value)
{
    if (*(const uint32_t *)value == 0)
        return -EINVAL;
    return m->value_size == 8 && ((const int32_t *)value)[1] > 0 ? -EOPNOTSUPP : 0;
}

/* The hash family's lookup for the host API: cpu's copy (0 for a map that is
 * not per-cpu), without marking an LRU element used (map_hash.c). */
void *map_htab_lookup_sys(const struct bpf_map *m, const void *key, uint32_t cpu);

/* The map's storage: allocated (zeroed) on first use, or the host's; NULL
 * only if allocation failed. */
void *map_storage(const struct bpf_map *m);

/* Arrays of references (prog_array, array_of_maps, maps.c): max_entries u32
 * slots, each the referenced program's or map's index + 1, 0 when empty. */
#define REF_NONE 0xffffffffu
long ref_slot_store(const struct bpf_map *m, uint32_t index, uint32_t ref);
long ref_slot_delete(const struct bpf_map *m, const void *key);
/* The syscall's lookup of a reference: its index, as the kernel gives the id. */
long ref_sys_lookup(uint32_t ref, void *value_out);
/* An array's key order: NULL or an index past the end -> 0; the last -> -ENOENT. */
long index_get_next_key(const struct bpf_map *m, const void *key, void *next);

/* update() flag, runtime-internal (never accepted from a program): for a
 * per-cpu map, `value` holds all ncpus copies, each map_value_stride() bytes
 * (the syscall layout); without it a per-cpu update writes this cpu's copy. */
#define MAP_F_ALLCPUS (1ull << 32)
#define BPF_F_LOCK 4

/* Callback of for_each_map_elem: a lifted eBPF function. Returns 0 to
 * continue, 1 to stop. `env` is the helper's r5, a checked caller's
 * environment (docs/safety.md), which the callback gets as its r5. */
typedef uint64_t (*map_foreach_cb)(uint64_t map, uint64_t key, uint64_t value, uint64_t ctx,
                                   uint64_t env);

#define MAP_ROUND8(n) (((uint64_t)(n) + 7) & ~(uint64_t)7)

/* Bytes between consecutive values (and between per-cpu copies): value_size
 * rounded up to 8, as the kernel does. */
static inline uint64_t map_value_stride(const struct bpf_map *m)
{
    return MAP_ROUND8(m->value_size);
}

static inline int map_is_percpu(const struct bpf_map *m)
{
    return m->type == BPF_MAP_TYPE_PERCPU_HASH || m->type == BPF_MAP_TYPE_PERCPU_ARRAY ||
           m->type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

/* Copies of each value: ncpus for a per-cpu map (at least 1), else 1. */
static inline uint32_t map_ncopies(const struct bpf_map *m)
{
    return map_is_percpu(m) && m->ncpus > 1 ? m->ncpus : 1;
}

/* The current cpu's copy of a per-cpu value: sched_getcpu() % ncpus, 0 when
 * sched_getcpu() fails. */
static inline uint32_t map_this_cpu(const struct bpf_map *m)
{
    uint32_t n = map_ncopies(m);
    if (n == 1)
        return 0;
    int cpu = sched_getcpu();
    return cpu < 0 ? 0 : (uint32_t)cpu % n;
}

/* A spinlock: one 32-bit word in storage, 0 = free. */
static inline void map_cpu_relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __builtin_arm_yield();
#endif
}

/* Spins, and yields the cpu after a while: unlike the kernel, a userspace
 * lock holder can be preempted, and its waiters should let it run. */
static inline void map_lock(uint32_t *lock)
{
    for (;;) {
        uint32_t expected = 0;
        if (__atomic_compare_exchange_n(lock, &expected, 1, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return;
        for (unsigned spins = 0; __atomic_load_n(lock, __ATOMIC_RELAXED); spins++) {
            if (spins < 64)
                map_cpu_relax();
            else
                sched_yield();
        }
    }
}

static inline void map_unlock(uint32_t *lock)
{
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
}

/* Checks the flags of update(): BPF_ANY, BPF_NOEXIST or BPF_EXIST, optionally
 * with BPF_F_LOCK (accepted and ignored: no value carries a spin lock here). */
static inline int map_update_flags_ok(uint64_t flags)
{
    return (flags & ~(uint64_t)BPF_F_LOCK) <= BPF_EXIST;
}

#endif
