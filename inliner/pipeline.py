"""The link pipeline, stage by stage: load, lift, link helpers, optimize and emit, run.

Each function takes and returns plain values so that a stage can be used
alone; the command line and the conformance plugin go through `link` and
`run` like every user.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import llvmlite.binding as llvm

from . import codegen, inputs, lift as lifter
from .codegen import memfuncs
from .collector import cycles_uncollected
from .lift import DEFAULT_MAX_STEPS
from .elf.model import EbpfObject
from .errors import EbpfLtoError
from .facts import abi, contexts, maps
from .facts.helpers import CONTEXT_HELPERS, MAP_HELPERS, REDIRECT_HELPERS, helper_name
from .link import helpers, link as linker, plan
from .link.helpers import HelperSet
from .pgo import profile
from .run.runner import LoadedObjects

# Stage timings and the plan's summary at INFO: what `ebpf-lto link -v` shows.
log = logging.getLogger("inliner")


@dataclass(frozen=True)
class LinkOptions:
    opt_level: int = 2
    arch: str = "x86_64"
    cpu: str = "generic"
    program: str | None = None   # None: every program; the first is bpf_main
    helpers: str | None = "default"  # helper set spec; None or "none": every helper external
    ncpus: int = field(default_factory=maps.default_ncpus)  # per-cpu map copies
    maps_extern: bool = False    # map state left to the host (docs/maps.md)
    inline: str = "auto"         # auto | all | none (none: helpers stay external calls)
    inline_threshold: int = plan.DEFAULT_THRESHOLD
    no_inline: tuple[str, ...] = ()
    force_inline: tuple[str, ...] = ()
    instrument: bool = False     # count blocks and branches for a profile (docs/pgo.md)
    profile: str | None = None   # an LLVM instrumentation profile to optimize with
    abi: str = "ebpf-lto"        # ebpf-lto: the object owns its maps; bpftime: the runtime does
    map_fds: Mapping[str, int] = field(default_factory=dict, hash=False)  # bpftime: name -> fd
    map_handle: str | None = None  # bpftime: "fd" (None), "shifted" or "by-fd" (abi.MAP_HANDLES)
    checks: bool = True          # run-time memory checks and the step budget (docs/safety.md)
    max_steps: int = DEFAULT_MAX_STEPS  # back edges and calls one run may take

    def __post_init__(self):
        if self.abi not in abi.ABIS:
            raise EbpfLtoError(f"unknown ABI {self.abi!r} (known: {', '.join(abi.ABIS)})")
        if self.abi != "bpftime" and self.map_fds:
            raise EbpfLtoError("--map-fd gives maps to bpftime's runtime: it needs --abi bpftime")
        if self.abi == "bpftime" and self.maps_extern:
            raise EbpfLtoError("--maps extern does not go with --abi bpftime, whose runtime "
                               "owns the maps")
        if self.map_handle is not None and self.map_handle not in abi.MAP_HANDLES:
            raise EbpfLtoError(f"unknown map handle {self.map_handle!r} "
                               f"(known: {', '.join(abi.MAP_HANDLES)})")
        if self.abi != "bpftime" and self.map_handle is not None:
            raise EbpfLtoError("--map-handle says how bpftime's runtime names its maps: "
                               "it needs --abi bpftime")
        for name, fd in self.map_fds.items():
            if not 0 <= fd < 2**31:
                raise EbpfLtoError(f"--map-fd {name}={fd}: a file descriptor is 0 to {2**31 - 1}")

    def plan_options(self, counts: dict | None = None,
                     removed: frozenset[int] = frozenset()) -> plan.PlanOptions:
        """`removed`: the helpers helper_set() kept out, which the runtime gives."""
        runtime = MAP_HELPERS | REDIRECT_HELPERS if self.abi == "bpftime" else frozenset()
        host = removed - runtime if self.abi == "bpftime" else frozenset()
        return plan.PlanOptions(self.inline, self.inline_threshold, frozenset(self.no_inline),
                                frozenset(self.force_inline), counts, runtime, host)


@dataclass
class Linked:
    """A lifted and compiled program set, with what it still needs from outside."""
    module: llvm.ModuleRef
    helper_set: HelperSet | None
    external_helpers: list[int] = field(default_factory=list)
    entries: list[str] = field(default_factory=list)  # exported symbols: entries and tables
    decisions: list[plan.Decision] = field(default_factory=list)
    graph: object = None          # the plan's networkx call graph
    linked_in: bool = False       # the helper sets' code is in the module
    stale: list[str] = field(default_factory=list)  # functions the profile no longer fits
    skipped_targets: list[str] = field(default_factory=list)  # tail-call targets left out
    checks: list = field(default_factory=list)  # lift.Check: how each access is kept safe
    largest: int = 0              # eBPF instructions of the largest lifted function


@contextmanager
def stage(name: str):
    """Log how long the block took, as `name: N ms`."""
    start = time.perf_counter()
    yield
    log.info("%s: %.0f ms", name, (time.perf_counter() - start) * 1000)


def _check_names(options: LinkOptions, functions: Iterable[str] = ()) -> None:
    functions = tuple(functions)
    plan.check_names("--no-inline", options.no_inline, functions)
    plan.check_names("--force-inline", options.force_inline, functions)


def helper_set(options: LinkOptions) -> HelperSet | None:
    """The helpers to link in; with --abi bpftime, never the map helpers, the map
    runtime or the redirect helpers (the runtime forwards the packet), nor helpers
    that need the C library, which bpftime's loader does not give."""
    if not options.helpers:
        return None
    hset = helpers.resolve(options.helpers, options.arch)
    if options.abi != "bpftime":
        return hset
    return hset.without(MAP_HELPERS | REDIRECT_HELPERS | hset.needing_host(abi.bpftime_can_call))


def lift(obj: EbpfObject, options: LinkOptions, hset: HelperSet | None = None) -> lifter.Lifted:
    _check_names(options, (f.name for f in obj.functions.values()))
    chosen = obj.program(options.program)  # refuses a refused program, or none left
    progs = [chosen] if options.program else obj.programs
    lift_options = hset.lift_options() if hset else lifter.LiftOptions()
    counts = profile.load(options.profile) if options.profile else None
    lift_options = dataclasses.replace(lift_options, ncpus=options.ncpus,
                                       maps_extern=options.maps_extern,
                                       instrument=options.instrument, profile=counts,
                                       abi=options.abi, map_fds=options.map_fds,
                                       map_handle=options.map_handle or abi.MAP_HANDLES[0],
                                       checks=options.checks, max_steps=options.max_steps)
    return lifter.lift(obj, progs, lift_options)


def compile_module(lifted: lifter.Lifted | bytes, obj_path: str, options: LinkOptions,
                   hset: HelperSet | None, has_maps: bool = True) -> Linked:
    """Plan the call sites, verify the IR, link the helpers in, optimize for the target.

    `lifted` may also be LLVM IR (text or bitcode bytes) from another lifter
    that follows the same `_bpf_helper_ext_NNNN` convention (llvmbpf's, say);
    it is linked without a plan, LLVM's inliner deciding alone.
    """
    target = codegen.make_target(options.arch, options.cpu)
    tm = codegen.target_machine(target, options.opt_level)
    decisions, graph = [], None
    if isinstance(lifted, lifter.Lifted):
        counts = lifted.counts if options.profile else None
        with stage("plan"):
            removed = hset.removed if hset else frozenset()
            decisions, graph = plan.plan(lifted.sites, hset, options.plan_options(counts, removed),
                                         lifted.sizes)
            plan.apply(decisions)
        actions = [d.action for d in decisions]
        log.info("plan: %d call sites: %d inline, %d outline, %d external", len(actions),
                 actions.count("inline"), actions.count("outline"), actions.count("external"))
        with stage("verify"):
            mod = codegen.parse_ir(str(lifted.module), obj_path)
    else:
        with stage("parse"):
            mod = _parse_foreign(lifted, obj_path)
    entries = [sym.name for sym in (*mod.functions, *mod.global_variables)
               if not sym.is_declaration and sym.linkage == llvm.Linkage.external]
    if options.opt_level >= 1:
        with stage("prelink"):
            codegen.prelink(mod, tm)
    if not isinstance(lifted, lifter.Lifted):  # IR ebpf-lto emitted keeps its map table
        has_maps = abi.MAP_TABLE in entries
        hset = ir_helper_set(hset, options, set(entries), obj_path)
    linked_in = hset is not None and options.inline != "none"
    if linked_in:
        with stage(f"link helpers ({options.helpers})"):
            linker.link_helpers(mod, hset, tm)
            if has_maps:  # the map runtime's host API, for hosts to reach the maps
                entries += [name for name in hset.host_api if name not in entries]
            linker.internalize(mod, set(entries), tm)
            # the records a host reads and writes (redirect, random state) that the helpers use
            entries += linker.export_used(mod, hset.host_data)
    called = sorted(hid for fn in mod.functions if fn.is_declaration
                    and (hid := abi.helper_id(fn.name)) is not None)
    with stage(f"optimize -O{options.opt_level} for {options.arch} ({options.cpu})"):
        mod = codegen.optimize(mod, tm, options.opt_level)
    if options.abi == "bpftime":  # its loader resolves no C library
        memfuncs.provide(mod, tm)
    ours = isinstance(lifted, lifter.Lifted)
    return Linked(mod, hset, called, entries, decisions, graph, linked_in,
                  lifted.stale if ours else [], lifted.skipped_targets if ours else [],
                  lifted.checks if ours else [], max(lifted.sizes.values(), default=0)
                  if ours else 0)


def ir_helper_set(hset: HelperSet | None, options: LinkOptions, exported: set[str],
                  name: str) -> HelperSet | None:
    """The helpers that may be linked into LLVM IR which exports `exported`.

    Only IR that exports ebpf-lto's map table (its own, read back) passes map
    descriptors to its map helpers; any other IR names a map by its lifter's
    handle (llvmbpf's: the fd, or `__lddw_helper_map_by_fd`'s answer), which
    the map runtime would take for a descriptor's address: undefined
    behaviour, on which LLVM deletes real work. So its map helpers stay
    external calls, served by that lifter's runtime. Likewise the helpers
    that take the context, unless the IR is ebpf-lto's (its program table):
    another lifter's code reads its own context layout (llvmbpf's, the
    kernel's struct xdp_md), not the one ebpf-lto's helpers expect. A
    helper file the user names is linked as given: its convention is theirs.
    """
    own_maps, own_context = abi.MAP_TABLE in exported, abi.PROG_NAMES in exported
    if own_maps and options.abi == "bpftime":
        raise EbpfLtoError("this IR holds ebpf-lto's own maps (it exports "
                           f"{abi.MAP_TABLE}); --abi bpftime needs the maps bpftime's runtime "
                           "holds: link the eBPF object", file=name)
    if own_maps:
        return hset
    forced = plan.helper_ids(options.force_inline) & MAP_HELPERS
    if forced:
        hid = min(forced)
        raise EbpfLtoError(f"--force-inline {helper_name(hid)}: this IR's map handles are not "
                           f"ebpf-lto's map descriptors (it exports no {abi.MAP_TABLE}), so "
                           "its map helpers stay external calls", file=name)
    if hset is None:
        return None
    keep_out = MAP_HELPERS | (frozenset() if own_context else CONTEXT_HELPERS)
    return hset.without(keep_out - hset.from_files())


def _parse_foreign(data: bytes, name: str) -> llvm.ModuleRef:
    if inputs.classify(data[:inputs.HEAD_BYTES]) == inputs.BITCODE:
        return codegen.parse_bitcode(data, name)
    try:
        return codegen.parse_ir(data.decode(), name)
    except UnicodeDecodeError as err:
        raise EbpfLtoError(f"LLVM IR that is not UTF-8 text (byte {err.start})",
                           file=name) from None


def _emit(linked: Linked, options: LinkOptions, emit: str) -> bytes:
    tm = codegen.target_machine(codegen.make_target(options.arch, options.cpu), options.opt_level)
    with stage(f"emit {emit}"):
        return codegen.emit(linked.module, tm, emit,
                            schedule=linked.largest <= codegen.SCHEDULE_LIMIT)


def link_ir(data: bytes, name: str, options: LinkOptions,
            emit: str = "obj") -> tuple[bytes, Linked]:
    """The link stage for LLVM IR or bitcode: another lifter's, or ebpf-lto's own output."""
    if options.map_fds:
        raise EbpfLtoError("--map-fd names maps of an eBPF object; LLVM IR input has its maps "
                           "resolved already", file=name)
    _check_names(options)
    hset = helper_set(options)
    linked = compile_module(data, name, options, hset)
    return _emit(linked, options, emit), linked


def link(obj: EbpfObject, options: LinkOptions, emit: str = "obj") -> tuple[bytes, Linked]:
    hset = helper_set(options)
    # One pause from the lift through optimization (collector.py): no walk between.
    with cycles_uncollected():
        with stage("lift"):
            lifted = lift(obj, options, hset)
        linked = compile_module(lifted, obj.path, options, hset, bool(obj.maps))
    return _emit(linked, options, emit), linked


@lru_cache(maxsize=16)
def helper_object(hset: HelperSet, target: codegen.Target, opt_level: int) -> bytes:
    """The helper set compiled on its own: what an out-of-line helper call reaches."""
    mods = hset.modules()
    main = mods[0]
    for other in mods[1:]:
        main.link_in(other)
    tm = codegen.target_machine(target, opt_level)
    main = codegen.optimize(main, tm, opt_level)
    return codegen.emit(main, tm, "obj")


def images(obj: EbpfObject, options: LinkOptions) -> tuple[list[bytes], list[str], Linked]:
    """The native objects that run the program: its own, then, when its helpers
    stay out of line, the helper set's; and the symbols a host reaches."""
    if options.abi == "bpftime":
        raise EbpfLtoError("an --abi bpftime object runs in bpftime's runtime, which owns its "
                           "maps; ebpf-lto runs the ebpf-lto ABI")
    image, linked = link(obj, options)
    objects, exports = native_images(image, linked, options, obj.path)
    return objects, exports, linked


def native_images(image: bytes, linked: Linked, options: LinkOptions,
                  path: str | None = None) -> tuple[list[bytes], list[str]]:
    """A linked image and the helper set's own object when its helpers stay
    out of line; and the symbols a host reaches."""
    hset = linked.helper_set
    missing = [h for h in linked.external_helpers if hset is None or h not in hset.ids]
    if missing:
        names = ", ".join(f"{h} ({helper_name(h)})" for h in missing)
        raise EbpfLtoError(f"program calls helpers no helper set provides: {names}", file=path)
    objects, exports = [image], list(linked.entries)
    if hset is not None and not linked.linked_in and (linked.external_helpers or hset.host_api):
        target = codegen.make_target(options.arch, options.cpu)
        objects.append(helper_object(hset, target, options.opt_level))
        exports += hset.host_api + hset.host_data
    return objects, exports


def load(obj: EbpfObject, options: LinkOptions) -> tuple[LoadedObjects, Linked]:
    """Link for the host and load the result into this process with its helpers."""
    if options.arch != codegen.host_arch():
        raise EbpfLtoError(f"cannot run code for {options.arch} on a {codegen.host_arch()} host")
    objects, exports, linked = images(obj, options)
    return LoadedObjects(objects, exports), linked


def run(obj: EbpfObject, memory: bytes | bytearray | None, options: LinkOptions,
        entry: str = abi.ENTRY_SYMBOL, seed: int | None = None) -> tuple[int, bytearray]:
    """Run one program over `memory` (r1, r2); returns r0 and the memory after.
    `seed` keys bpf_get_prandom_u32 (facts/abi.py)."""
    loaded, _ = load(obj, options)
    if seed is not None:
        loaded.seed(seed)
    buf = bytearray(memory or b"")
    return loaded.call(entry, buf if memory else None), buf


class PacketResult(tuple):
    """(r0, packet after) of one packet's run, and the redirect target it left
    (`redirect`: a facts.abi.Redirect, or None)."""

    def __new__(cls, r0: int, packet: bytes, redirect: abi.Redirect | None = None):
        result = super().__new__(cls, (r0, packet))
        result.redirect = redirect
        return result

    @property
    def r0(self) -> int:
        return self[0]

    @property
    def packet(self) -> bytes:
        return self[1]


def run_packets(obj: EbpfObject, packets, options: LinkOptions,
                loaded: LoadedObjects | None = None, seed: int | None = None):
    """Run one program over each packet in turn; yields a PacketResult each.

    `seed` keys bpf_get_prandom_u32 once, before the first packet."""
    if loaded is None:
        loaded, _ = load(obj, options)
    if seed is not None:
        loaded.seed(seed)
    layout = contexts.for_program_type(obj.program(options.program).prog_type)
    for packet in packets:
        r0, after = loaded.call_packet(abi.ENTRY_SYMBOL, layout, packet)
        yield PacketResult(r0, after, loaded.redirect())
