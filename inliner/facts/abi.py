"""The native object's interface, as docs/abi.md describes it: its symbol names. Defined once.

The lifter emits these names, the helper library defines some of them, and
hosts (runner, hostmaps, profile, emulate, bench) look them up.
"""
from __future__ import annotations

import enum
import re

ENTRY_SYMBOL = "bpf_main"            # the first program's entry, `uint64_t (void *, uint64_t)`
ABIS = ("ebpf-lto", "bpftime")       # who owns the maps: the object, or bpftime's runtime

HELPER_SYMBOL = re.compile(r"^_bpf_helper_ext_(\d{4})$")
HOST_API_PREFIX = "ebpf_lto_"        # the helper library's functions for hosts, and the tables

# bpftime's lddw helpers: a map's handle from its fd, and the address of its values.
MAP_BY_FD, MAP_VAL = "__lddw_helper_map_by_fd", "__lddw_helper_map_val"

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
