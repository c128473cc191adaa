"""The native object's interface, as docs/abi.md describes it: its symbol names. Defined once.

The lifter emits these names, the helper library defines some of them, and
hosts (runner, hostmaps, profile, emulate, bench) look them up.
"""
from __future__ import annotations

import enum
import re
from collections.abc import Mapping

from .maps import MapDef

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
