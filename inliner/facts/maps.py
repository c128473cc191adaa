"""Maps: the kernel's map types and the descriptor the link step emits per map. Defined once.

Every map of an object becomes, in the linked code, a constant descriptor
`struct bpf_map` (its geometry, known at link time, so that code inlined from
the map runtime folds it) pointing at a zeroed, mutable `struct
bpf_map_state` of STATE_SIZE bytes that the map runtime (helper_bitcode/src/
maps*.c) owns. The C declarations are generated from this module
(`python -m inliner.facts.cabi`), so both sides agree by construction.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

# enum bpf_map_type (include/uapi/linux/bpf.h), the types the runtime implements.
MAP_TYPES: dict[int, str] = {
    1: "hash", 2: "array", 3: "prog_array", 4: "perf_event_array", 5: "percpu_hash",
    6: "percpu_array", 9: "lru_hash", 10: "lru_percpu_hash", 11: "lpm_trie",
    12: "array_of_maps", 13: "hash_of_maps", 14: "devmap", 16: "cpumap", 17: "xskmap",
    22: "queue", 23: "stack", 25: "devmap_hash", 27: "ringbuf",
}
MAP_TYPE_IDS: dict[str, int] = {name: tid for tid, name in MAP_TYPES.items()}
# Types with one copy of each value per cpu.
PER_CPU_TYPES = frozenset(MAP_TYPE_IDS[n] for n in ("percpu_hash", "percpu_array",
                                                    "lru_percpu_hash"))

# The maps bpf_redirect_map() redirects through (docs/helpers.md): a device's
# ifindex, a cpu, an AF_XDP socket by key.
REDIRECT_TYPES = frozenset(MAP_TYPE_IDS[n] for n in ("devmap", "devmap_hash", "cpumap", "xskmap"))

# Map update flags (BPF_ANY, BPF_NOEXIST, BPF_EXIST) and map_flags bits used.
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2

# map_flags bits (include/uapi/linux/bpf.h) that only a kernel acts on: memory,
# NUMA, syscall access, mmap; the map runtime keeps map_flags whole (it reads
# BPF_F_INNER_MAP) and the load names these as ignored.
KERNEL_ONLY_MAP_FLAGS: dict[int, str] = {
    1 << 0: "BPF_F_NO_PREALLOC", 1 << 1: "BPF_F_NO_COMMON_LRU", 1 << 2: "BPF_F_NUMA_NODE",
    1 << 3: "BPF_F_RDONLY", 1 << 4: "BPF_F_WRONLY", 1 << 5: "BPF_F_STACK_BUILD_ID",
    1 << 6: "BPF_F_ZERO_SEED", 1 << 7: "BPF_F_RDONLY_PROG", 1 << 8: "BPF_F_WRONLY_PROG",
    1 << 9: "BPF_F_CLONE", 1 << 10: "BPF_F_MMAPABLE", 1 << 11: "BPF_F_PRESERVE_ELEMS",
}


def kernel_only_flags(map_flags: int) -> str:
    """The kernel-only bits of `map_flags` by name, joined by '|'; '' for none."""
    return "|".join(name for bit, name in KERNEL_ONLY_MAP_FLAGS.items() if map_flags & bit)


# struct bpf_map: the descriptor. (C type, field name); pointers are 64-bit.
DESCRIPTOR_FIELDS: tuple[tuple[str, str], ...] = (
    ("uint32_t", "type"),
    ("uint32_t", "key_size"),
    ("uint32_t", "value_size"),
    ("uint32_t", "max_entries"),
    ("uint32_t", "map_flags"),
    ("uint32_t", "ncpus"),        # copies of each value in a per-cpu map
    ("uint32_t", "index"),        # position in the object's map table
    ("uint32_t", "inner_index"),  # map-in-map: the inner map's template, or NO_INNER
    ("void *", "state"),          # struct bpf_map_state *: the runtime's mutable part
    ("const char *", "name"),
)
NO_INNER = 0xFFFFFFFF
STATE_SIZE = 128  # bytes of struct bpf_map_state; the runtime asserts its struct fits


@dataclass(frozen=True)
class MapDef:
    """A map's geometry, from the legacy `maps` section or from BTF `.maps`."""
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int = 0
    inner: str | None = None  # map-in-map: the name of the inner map's template

    @property
    def per_cpu(self) -> bool:
        return self.type in PER_CPU_TYPES

    def descriptor(self, ncpus: int, index: int, inner_index: int) -> dict[str, int]:
        """The integer fields of its `struct bpf_map`, by DESCRIPTOR_FIELDS' names."""
        return {"type": self.type, "key_size": self.key_size, "value_size": self.value_size,
                "max_entries": self.max_entries, "map_flags": self.map_flags,
                "ncpus": ncpus if self.per_cpu else 1, "index": index,
                "inner_index": inner_index}


def default_ncpus() -> int:
    """Copies per value for per-cpu maps: the host's processor count."""
    return os.cpu_count() or 1


def type_name(map_type: int) -> str:
    return MAP_TYPES.get(map_type, f"type {map_type}")
