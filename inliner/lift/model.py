"""What the lifter takes and gives: its options, the call sites it records, its result."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llvmlite import ir

from ..facts.helpers import READ_ONLY_HELPERS

# Back edges and calls one run may take: the kernel's verifier processes up to
# a million instructions of a program, and so many steps take well under a second.
DEFAULT_MAX_STEPS = 1_000_000


@dataclass(frozen=True)
class LiftOptions:
    """What the lifter needs to know of the helper set in use and of the build.

    unwind_helpers: ids after which r0 == 0 ends the whole program
    (uBPF's unwind extension, used by the conformance suite).
    callx_helpers: helper ids a `callx` may name at run time.
    abi: "ebpf-lto" (maps are the object's) or "bpftime" (maps are the
    runtime's, each named by its fd: map_fds, else libbpf's order).
    """
    unwind_helpers: frozenset[int] = frozenset()
    callx_helpers: tuple[int, ...] = ()
    ncpus: int = 1                # copies of each value in per-cpu maps
    maps_extern: bool = False     # map state is an undefined symbol the host defines
    instrument: bool = False      # count block executions and taken branches (docs/abi.md)
    profile: Mapping | None = field(default=None, compare=False)  # name -> (hash, counters)
    abi: str = "ebpf-lto"
    map_fds: Mapping[str, int] = field(default_factory=dict, compare=False)  # map name -> fd
    map_handle: str = "fd"        # bpftime: how a handle is made of an fd (facts/abi.py)
    checks: bool = True           # run-time memory checks and the step budget (docs/safety.md)
    max_steps: int = DEFAULT_MAX_STEPS  # back edges and calls a run may take
    # The pointer arguments of the helper set's helpers, checked before each call.
    helper_args: Mapping[int, tuple] = field(default_factory=dict, compare=False)
    # External helpers declared memory(read): those of READ_ONLY_HELPERS whose
    # definition, if the set gives one, is the Linux library's (not a user's file).
    read_only: frozenset[int] = READ_ONLY_HELPERS

    @property
    def bpftime(self) -> bool:
        return self.abi == "bpftime"


@dataclass(frozen=True)
class Site:
    """A call the plan decides on: to a helper, or to a bpf-to-bpf subprogram.

    A call the lifter lowered in place (`lowered` says how) is a site too,
    so that the plan reports it, but there is nothing left to decide.
    """
    function: str          # the eBPF function it is in
    insn: int              # its instruction index in the section
    callee: str            # the LLVM function called
    helper_id: int | None  # None for a subprogram
    in_loop: bool          # static frequency estimate: inside a loop of the CFG
    call: ir.CallInstr | None = field(compare=False, repr=False)  # None when lowered
    lowered: str = ""      # why the lifter expanded the call in place; then no call is left
    # The same call in a loop's unchecked copy (lift/guard.py versions): decided alike.
    copies: list = field(default_factory=list, compare=False, repr=False)


@dataclass(frozen=True)
class Check:
    """How one memory access, helper call or loop of a checked build is kept safe
    (`ebpf-lto explain --checks`)."""
    function: str   # the eBPF function it is in
    insn: int       # its instruction index in the section
    what: str       # load, store, atomic, helper, loop, copy (a loop emitted twice)
    proven: bool    # proven at link time (no code); else checked at run time
    how: str        # the proof, or what it is checked against


@dataclass
class Lifted:
    module: ir.Module
    sites: list[Site]
    sizes: dict[str, int]  # eBPF instructions of each lifted function, by LLVM name
    counts: dict[tuple[str, int], int] = field(default_factory=dict)  # profile: site -> calls
    stale: list[str] = field(default_factory=list)  # functions whose profile hash differs
    skipped_targets: list[str] = field(default_factory=list)  # tail-call targets left out
    checks: list[Check] = field(default_factory=list)  # a checked build's, per access
