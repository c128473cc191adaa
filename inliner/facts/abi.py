"""The native object's interface, as docs/abi.md describes it: its symbol names. Defined once.

The lifter emits these names, the helper library defines some of them, and
hosts (runner, hostmaps, profile, emulate, bench) look them up.
"""
from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from .helpers import KERNEL_HELPERS as HELPER_NAMES
from .maps import MAP_TYPES, MapDef

ENTRY_SYMBOL = "bpf_main"            # the first program's entry, `uint64_t (void *, uint64_t)`
ABIS = ("ebpf-lto", "bpftime")       # who owns the maps: the object, or bpftime's runtime

HELPER_SYMBOL = re.compile(r"^_bpf_helper_ext_(\d{4})$")
HOST_API_PREFIX = "ebpf_lto_"        # the helper library's functions for hosts, and the tables

# bpftime's one lddw helper an object may call: the address of a map's first value,
# from the map's handle. llvmbpf's loader defines no other (docs/abi.md).
MAP_VAL = "__lddw_helper_map_val"
# What a map's handle is, the number `lddw` of a map gives the code and map helpers take
# (bpftime's map_ptr_by_fd): "fd", the fd itself, in the bpftime whose loader is
# llvmbpf 658ba89 (../shared/peers/ORIGIN.md); "shifted", fd << 32 | 0xffffffff, in
# bpftime before it stopped shifting (bpftime PR #344); BY_FD, what MAP_BY_FD answers
# at run time, which the host that links the object defines (`bpftime-aot build`'s
# contract, docs/abi.md). The first is the default.
BY_FD = "by-fd"
MAP_HANDLES = ("fd", "shifted", BY_FD)
MAP_BY_FD = "__lddw_helper_map_by_fd"
# The C library functions an --abi bpftime object defines itself (codegen/memfuncs.py):
# the code generator calls them, and bpftime's loader resolves no C library.
MEMFUNCS = ("memcpy", "memmove", "memset")
# bpftime gives a map the lowest free fd of the loading process: 0-2 are stdio.
FIRST_MAP_FD = 3

# Tables the object exports (docs/abi.md), and the map runtime's prog_array lookup.
MAP_TABLE, MAP_COUNT = "ebpf_lto_maps", "ebpf_lto_maps_count"
PROG_NAMES, PROG_COUNT = "ebpf_lto_program_names", "ebpf_lto_programs_count"
COUNTERS, PROFILE_TABLE, PROFILE_COUNT = ("ebpf_lto_counters", "ebpf_lto_profile",
                                          "ebpf_lto_profile_count")
PROG_ARRAY_GET = "ebpf_lto_prog_array_get"   # prog_array slot -> program number
# Prefixes of the symbols ebpf-lto itself exports or calls: a program named so
# would clash with a table, a helper or the map runtime.
RESERVED_PREFIXES = ("ebpf_lto_", "_bpf_helper_ext_", "__lddw_helper_")


def helper_symbol(helper_id: int) -> str:
    """The AOT contract's name for helper `helper_id`."""
    return f"_bpf_helper_ext_{helper_id:04d}"


def bpftime_can_call(name: str) -> bool:
    """Whether code in an --abi bpftime object may call function `name`: what
    llvmbpf's load_aot_object defines, an LLVM intrinsic, or a MEMFUNCS one."""
    return HELPER_SYMBOL.match(name) is not None or name == MAP_VAL \
        or name.startswith("llvm.") or name in MEMFUNCS


def map_handle(fd: int, convention: str) -> int:
    """The handle bpftime's runtime gives the map with this fd."""
    return fd if convention == "fd" else fd << 32 | 0xFFFFFFFF


def default_map_fds(maps: Mapping[str, MapDef]) -> dict[str, int]:
    """Each map's fd when libbpf loads the object under bpftime's syscall server.

    libbpf creates the maps in the object's order (ebpf-lto's loader keeps it:
    `.maps` by offset), and bpftime gives each the lowest free fd, from 3 in a
    loader that holds nothing else open. An outer map-in-map's inner map is
    created just before it and closed just after, so its fd goes to the next
    map. The object's data sections become maps after these; ebpf-lto keeps
    them in the object, so they need no fd. A loader that holds other files
    open shifts the numbers: then `--map-fd` gives them.
    """
    used, fds = set(range(FIRST_MAP_FD)), {}
    templates = {m.inner for m in maps.values() if m.inner}

    def lowest_free() -> int:
        fd = min(set(range(len(used) + 1)) - used)
        used.add(fd)
        return fd

    for m in maps.values():
        if m.name in templates:
            continue
        inner = lowest_free() if m.inner else None
        fds[m.name] = lowest_free()
        used.discard(inner)
    return fds


def helper_id(symbol: str) -> int | None:
    """The id in a `_bpf_helper_ext_NNNN` symbol, or None for any other name."""
    m = HELPER_SYMBOL.match(symbol)
    return int(m.group(1)) if m else None


# The fault record a checked object exports (docs/safety.md): written when a
# run-time check stops the program, and read (and cleared) by the host.
FAULT = "ebpf_lto_fault"
FAULT_FIELDS = ("code", "insn", "addr", "size", "region", "region_lo", "region_hi", "function")


class Fault(enum.IntEnum):
    """Why a checked program stopped (the record's `code`)."""
    NONE = 0
    LOAD = 1       # a load outside every region its pointer may touch
    STORE = 2      # a store or atomic outside them, or into read-only memory
    STEPS = 3      # the budget of back edges and calls ran out (--max-steps)

    @property
    def what(self) -> str:
        return {Fault.LOAD: "out-of-bounds load", Fault.STORE: "out-of-bounds store",
                Fault.STEPS: "step budget exhausted"}.get(self, "no fault")


class Region(enum.IntEnum):
    """What the memory a faulting access was checked against is (the record's `region`)."""
    NONE = 0        # the pointer has no memory of the program's
    MEMORY = 1      # the input memory of a program without a context (r1, r2)
    PACKET = 2      # [data, data_end) of the packet
    MAP_VALUE = 3   # a value a map lookup returned
    DATA = 4        # a global data section of the object
    HELPER = 5      # memory a helper returned (a ringbuf record)
    CALLBACK = 6    # what a helper hands a callback (a map's key or value)
    FRAME = 7       # the stack frame of a function

    @property
    def what(self) -> str:
        return self.name.lower().replace("_", " ")


# The redirect record (docs/abi.md): the helper library's bpf_redirect,
# bpf_redirect_map and bpf_redirect_peer write the target there, as the
# kernel's helpers write the per-cpu bpf_redirect_info that the driver reads
# after an XDP_REDIRECT or TC_ACT_REDIRECT. The host writes `xdp` and clears
# `helper` before each run, and reads the record after it. (C type, name).
REDIRECT = "ebpf_lto_redirect"
REDIRECT_FIELDS: tuple[tuple[str, str], ...] = (
    ("uint32_t", "xdp"),        # in: 1 when the program is XDP (bpf_xdp_redirect's semantics)
    ("uint32_t", "helper"),     # out: the helper that set the target (23, 51, 155), 0 for none
    ("uint32_t", "map_type"),   # BPF_MAP_TYPE_* of redirect_map's map, 0 otherwise
    ("uint32_t", "map_index"),  # the map's index in ebpf_lto_maps, NO_MAP otherwise
    ("uint32_t", "key"),        # redirect_map's key
    ("uint32_t", "target"),     # the ifindex, the cpu, or the AF_XDP socket's value
    ("uint64_t", "flags"),      # BPF_F_INGRESS, BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS
)
NO_MAP = 0xFFFFFFFF
BPF_F_INGRESS, BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS = 1 << 0, 1 << 3, 1 << 4


class Redirect(NamedTuple):
    """The target a run left in the redirect record (its fields after `xdp`)."""
    helper: int
    map_type: int
    map_index: int
    key: int
    target: int
    flags: int

    def as_json(self, map_names: Sequence[str]) -> dict:
        """For `run --json`: names for the helper and the map, numbers for the rest."""
        mapped = self.helper == 51
        return {"helper": HELPER_NAMES.get(self.helper, str(self.helper)),
                "map": (map_names[self.map_index] if self.map_index < len(map_names) else None)
                if mapped else None,
                "map_type": MAP_TYPES.get(self.map_type) if mapped else None,
                "key": self.key if mapped else None, "target": self.target,
                "flags": self.flags, "text": self.describe(map_names)}

    def describe(self, map_names: Sequence[str]) -> str:
        """`devmap tx_port[0] = ifindex 3`, `ifindex 3 (ingress)`, ..."""
        if self.helper != 51:
            peer = "peer of " if self.helper == 155 else ""
            ingress = " (ingress)" if self.flags & BPF_F_INGRESS else ""
            return f"{peer}ifindex {self.target}{ingress}"
        name = map_names[self.map_index] if self.map_index < len(map_names) else "?"
        kind = MAP_TYPES.get(self.map_type, f"map type {self.map_type}")
        if self.flags & BPF_F_BROADCAST:
            excluding = ", excluding the ingress device" if self.flags & BPF_F_EXCLUDE_INGRESS \
                else ""
            return f"{kind} {name}: broadcast{excluding}"
        what = {"cpumap": "cpu", "xskmap": "socket"}.get(kind, "ifindex")
        return f"{kind} {name}[{self.key}] = {what} {self.target}"


# bpf_get_prandom_u32's generator (docs/helpers.md), defined here once for the
# helper library (abi.h) and the reference interpreter: draw n (counted from 0)
# is the high half of splitmix64's finalizer of key + n * GAMMA. The state is
# the exported `struct ebpf_lto_prandom {uint64_t key, counter;}`; key 0 means
# unseeded (the helper then keys it from the clocks and the pid on first use);
# a host seeds it with prandom_key(seed) and counter 0 (`run --seed N`).
PRANDOM = "ebpf_lto_prandom"
PRANDOM_GAMMA = 0x9E3779B97F4A7C15
PRANDOM_MIX = (30, 0xBF58476D1CE4E5B9, 27, 0x94D049BB133111EB, 31)
M64 = (1 << 64) - 1


def prandom_mix(z: int) -> int:
    """splitmix64's finalizer (PRANDOM_MIX's shifts and multipliers)."""
    s1, m1, s2, m2, s3 = PRANDOM_MIX
    z = ((z ^ (z >> s1)) * m1) & M64
    z = ((z ^ (z >> s2)) * m2) & M64
    return z ^ (z >> s3)


def prandom_key(seed: int) -> int:
    """The generator's key for `--seed seed`: never 0, which means unseeded."""
    return prandom_mix(seed & M64) | 1


# A fixed clock for repeatable runs (docs/helpers.md): the exported
# `struct ebpf_lto_clock {uint64_t ns;}`. 0, the default, means the host's
# clocks; a host that writes ns makes every clock helper read ns as its
# clock's time (jiffies64 derived from it), so runs that read the time repeat.
CLOCK = "ebpf_lto_clock"


# bpf_get_hash_recalc's SipHash-2-4 key (docs/helpers.md). The kernel keys its
# flow hash with a random number drawn once per boot, so no program can rely
# on a value; a fixed key makes the hash of a flow the same in every run and
# on every host. This is the SipHash paper's test key, bytes 00..0f.
FLOW_HASH_KEY = (0x0706050403020100, 0x0F0E0D0C0B0A0908)


def prandom_u32(key: int, n: int) -> int:
    """Draw n of the generator keyed `key`."""
    return prandom_mix((key + n * PRANDOM_GAMMA) & M64) >> 32
