"""Stage 2, lift: eBPF functions to LLVM IR with eBPF's exact semantics.

Each eBPF function becomes one LLVM function `i64 (i64 x5)` with its own
512-byte frame; registers are allocas so that mem2reg/SROA promote them,
and stack accesses at a provably constant offset from r10 are GEPs into the
frame so that SROA can promote stack slots too. Every operation whose C
counterpart is undefined (division by zero, INT_MIN / -1, wide shifts) is
lifted with the result eBPF defines, so the IR has no undefined behaviour.

Entry points take `(ptr ctx, i64 ctx_len)` as bpftime's AOT contract says
(docs/abi.md). A helper is a call to `_bpf_helper_ext_NNNN`. Maps are
constant descriptors of the object's own (the ebpf-lto ABI) or, with the
bpftime ABI, the runtime's, named by file descriptor.
"""
from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import networkx as nx
from llvmlite import ir

from . import contexts, isa, maps, switches, verifier
from .errors import EbpfLtoError
from .helper_table import HELPER_IDS
from .loader import EbpfObject, FuncKey, MapDef, Program

I1, I8, I16, I32, I64 = (ir.IntType(n) for n in (1, 8, 16, 32, 64))
PTR = ir.PointerType()
I8P = I8.as_pointer()
FRAME = ir.ArrayType(I8, isa.STACK_SIZE)
SIZE_TYPES = {1: I8, 2: I16, 4: I32, 8: I64}
ENTRY_SYMBOL = "bpf_main"
ABIS = ("ebpf-lto", "bpftime")  # who owns the maps (docs/abi.md)
# bpftime's lddw helpers: a map's handle from its fd, and a map's value storage from the handle.
MAP_BY_FD, MAP_VAL = "__lddw_helper_map_by_fd", "__lddw_helper_map_val"
MAP_LOOKUP = HELPER_IDS["map_lookup_elem"]
MAP_TABLE, MAP_COUNT = "ebpf_lto_maps", "ebpf_lto_maps_count"
PROG_NAMES, PROG_COUNT = "ebpf_lto_program_names", "ebpf_lto_programs_count"
COUNTERS, PROFILE_TABLE, PROFILE_COUNT = ("ebpf_lto_counters", "ebpf_lto_profile",
                                          "ebpf_lto_profile_count")
PROG_ARRAY_GET = "ebpf_lto_prog_array_get"  # the map runtime: prog_array slot -> program number
# Prefixes of the symbols ebpf-lto itself exports or calls (docs/abi.md): a
# program named so would clash with a table, a helper or the map runtime.
RESERVED_PREFIXES = ("ebpf_lto_", "_bpf_helper_ext_", "__lddw_helper_")
TAIL_CALL = 12
MAX_TAIL_CALL_CNT = 33
ENOENT = 2
STOPPED_R0 = 0xFFFFFFFFFFFFFFFF  # r0 when a callx names nothing callable
IF_CONVERT_LIMIT = 20  # instructions in an arm of a branch the profile leaves unweighted


def helper_symbol(helper_id: int) -> str:
    """The AOT contract's name for helper `helper_id` (docs/abi.md)."""
    return f"_bpf_helper_ext_{helper_id:04d}"


@dataclass(frozen=True)
class LiftOptions:
    """What the lifter needs to know of the helper set in use.

    unwind_helpers: ids after which r0 == 0 ends the whole program
    (uBPF's unwind extension, used by the conformance suite).
    callx_helpers: helper ids a `callx` may name at run time.
    abi: "ebpf-lto" (maps are the object's) or "bpftime" (maps are the
    runtime's, each named by its fd in map_fds).
    """
    unwind_helpers: frozenset[int] = frozenset()
    callx_helpers: tuple[int, ...] = ()
    ncpus: int = 1                # copies of each value in per-cpu maps
    maps_extern: bool = False     # map state is an undefined symbol the host defines
    instrument: bool = False      # count block executions and taken branches (docs/abi.md)
    profile: Mapping | None = field(default=None, compare=False)  # name -> (hash, counters)
    abi: str = "ebpf-lto"
    map_fds: Mapping[str, int] = field(default_factory=dict, compare=False)  # map name -> fd

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


@dataclass
class Lifted:
    module: ir.Module
    sites: list[Site]
    sizes: dict[str, int]  # eBPF instructions of each lifted function, by LLVM name
    counts: dict[tuple[str, int], int] = field(default_factory=dict)  # profile: site -> calls
    stale: list[str] = field(default_factory=list)  # functions whose profile hash differs
    skipped_targets: list[str] = field(default_factory=list)  # tail-call targets left out


@dataclass
class _Func:
    key: FuncKey
    name: str
    end: int
    may_stop: bool = False
    has_tcc: bool = False  # takes the tail-call depth as a sixth argument
    ir_func: ir.Function | None = None
    callees: set[FuncKey] = field(default_factory=set)


def lift(obj: EbpfObject, programs: list[Program] | None = None,
         options: LiftOptions = LiftOptions(), module_name: str = "") -> Lifted:
    """Lift the given programs (default: all) and everything they call."""
    programs = list(obj.programs if programs is None else programs)
    if not programs:
        raise EbpfLtoError("object holds no program", file=obj.path)
    return _ModuleLifter(obj, options, module_name or obj.path).run(programs)


class _ModuleLifter:
    def __init__(self, obj: EbpfObject, options: LiftOptions, name: str):
        self.obj = obj
        self.options = options
        self.module = ir.Module(name=name)
        self.funcs: dict[FuncKey, _Func] = {}
        self.helpers: dict[int, ir.Function] = {}
        self.globals: dict[str, ir.GlobalVariable] = {}
        self.sites: list[Site] = []
        self.counts: dict[tuple[str, int], int] = {}
        self.stale: list[str] = []

    def run(self, programs: list[Program]) -> ir.Module:
        self.tail_calls = False
        self.skipped_targets: list[str] = []
        # Functions whose address the code loads or the data holds: callbacks and tables.
        self.address_taken = {r.function for r in (*self.obj.refs.values(),
                                                   *self.obj.data_refs.values())
                              if r.kind == "func"}
        self._collect([p.entry for p in programs] + sorted(
            {r.function for r in self.obj.data_refs.values() if r.kind == "func"},
            key=lambda k: (k.section, k.start)))
        entries = list(programs)
        if self.tail_calls:
            # Any program of the object may be the target of a tail call; one that
            # cannot be compiled is left out, and a tail call to it fails as to an
            # empty slot.
            for prog in self.obj.programs:
                if prog not in programs and self._collect_target(prog):
                    entries.append(prog)
        self._check_calls([p.entry for p in entries])
        self._mark_stopping()
        taken = self.address_taken
        names = set()
        for func in self.funcs.values():
            # Callbacks are called from C with five arguments, so they count from 0.
            func.has_tcc = self.tail_calls and func.key not in taken
            ret = ir.LiteralStructType([I64, I1]) if func.may_stop else I64
            fnty = ir.FunctionType(ret, [I64] * (6 if func.has_tcc else 5))
            name = _unique(f"bpf.{func.name}", names)
            func.ir_func = ir.Function(self.module, fnty, name)
            func.ir_func.linkage = "internal"
        if self.options.bpftime:
            self._check_map_fds()
        else:
            self._maps()
        lifters = {key: _FunctionLifter(self, func) for key, func in self.funcs.items()}
        for fl in lifters.values():
            fl.check()
        self._analyze(lifters, entries)
        if self.options.instrument:
            self._counters(list(lifters.values()))
        for fl in lifters.values():
            fl.apply_profile()
            fl.emit()
        for i, prog in enumerate(programs):
            self._entry(prog.name, prog)
            if i == 0 and prog.name != ENTRY_SYMBOL:
                self._entry(ENTRY_SYMBOL, prog)
        if not self.options.bpftime:  # bpftime's prog_array values are its program fds
            self._program_table()
        sizes = {f.ir_func.name: f.end - f.key.start for f in self.funcs.values()}
        return Lifted(self.module, self.sites, sizes, self.counts, self.stale,
                      self.skipped_targets)

    def _counters(self, lifters: list) -> None:
        """The counter array and the table that says whose counters are where (docs/abi.md)."""
        first = 0
        rows = []
        for fl in lifters:
            fl.counter_base = first
            rows.append((fl.func.name, fl.cfg_hash(), fl.ncounters(), first))
            first += fl.ncounters()
        ty = ir.ArrayType(I64, first)
        self.counters = ir.GlobalVariable(self.module, ty, COUNTERS)
        self.counters.initializer = ir.Constant(ty, None)
        self.counters.align = 64
        row_ty = ir.LiteralStructType([I8P, I64, I32, I32])
        table_ty = ir.ArrayType(row_ty, len(rows))
        table = ir.GlobalVariable(self.module, table_ty, PROFILE_TABLE)
        table.initializer = ir.Constant(table_ty, [
            ir.Constant(row_ty, [_cstring(self.module, f"bpf.prof.{name}", name),
                                 ir.Constant(I64, h), ir.Constant(I32, n), ir.Constant(I32, at)])
            for name, h, n, at in rows])
        table.global_constant = True
        count = ir.GlobalVariable(self.module, I32, PROFILE_COUNT)
        count.initializer = ir.Constant(I32, len(rows))
        count.global_constant = True

    def _program_table(self) -> None:
        """Program numbers, as prog_array values name them: the object's program order."""
        names = [_cstring(self.module, f"bpf.prog.{p.name}.name", p.name) for p in self.obj.programs]
        ty = ir.ArrayType(I8P, len(names))
        table = ir.GlobalVariable(self.module, ty, PROG_NAMES)
        table.initializer = ir.Constant(ty, names)
        table.global_constant = True
        count = ir.GlobalVariable(self.module, I32, PROG_COUNT)
        count.initializer = ir.Constant(I32, len(names))
        count.global_constant = True

    def error(self, reason: str, key: FuncKey | None = None, insn: int | None = None):
        return EbpfLtoError(reason, file=self.obj.path,
                            section=key.section if key else None, insn=insn)

    def _collect(self, entries: list[FuncKey]) -> None:
        todo = deque(entries)
        while todo:
            key = todo.popleft()
            if key in self.funcs:
                continue
            fdef = self.obj.functions.get(key)
            if fdef is None:
                raise self.error(f"no function starts at instruction {key.start}", key)
            func = _Func(key, fdef.name, fdef.end)
            slots = self.obj.code[key.section]
            for idx in range(key.start, fdef.end):
                ref = self.obj.refs.get((key.section, idx))
                if ref is not None and ref.function is not None:
                    func.callees.add(ref.function)
                    todo.append(ref.function)
                insn = slots[idx]
                if insn is not None and insn.opcode == isa.CALLX:
                    func.may_stop = True
                elif (insn is not None and insn.opcode == isa.JMP | isa.CALL
                      and insn.src == isa.CALL_HELPER):
                    if insn.imm == TAIL_CALL and not self.options.bpftime:
                        self.tail_calls = func.may_stop = True
                    elif insn.imm in self.options.unwind_helpers:
                        func.may_stop = True
            self.funcs[key] = func

    def _collect_target(self, prog: Program) -> bool:
        before = set(self.funcs)
        try:
            self._collect([prog.entry])
            added = [key for key in self.funcs if key not in before]
            for key in added:
                _FunctionLifter(self, self.funcs[key]).check()
        except EbpfLtoError as err:
            for key in [key for key in self.funcs if key not in before]:
                del self.funcs[key]
            self.skipped_targets.append(f"{prog.name}: {err.reason}")
            return False
        return True

    def _check_calls(self, entries: list[FuncKey]) -> None:
        """Refuse bpf-to-bpf recursion and chains deeper than the kernel's frames.

        Native code would recurse until the host stack overflows; the kernel
        refuses both, so the lifter does too, at the offending call.
        """
        calls: dict[FuncKey, list[tuple[int, FuncKey]]] = {}
        for key in self.funcs:
            slots = self.obj.code[key.section]
            calls[key] = [(idx, self.obj.refs[(key.section, idx)].function)
                          for idx in range(key.start, self.funcs[key].end)
                          if slots[idx] is not None and slots[idx].opcode == isa.JMP | isa.CALL
                          and slots[idx].src == isa.CALL_LOCAL]
        depth: dict[FuncKey, int] = {}  # frames of the deepest chain from a function down

        def visit(key: FuncKey, path: list[FuncKey]) -> int:
            if key in depth:
                return depth[key]
            deepest = 1
            for idx, callee in calls[key]:
                chain = path + [key]
                if callee in chain:
                    cycle = " -> ".join(self.funcs[k].name
                                        for k in chain[chain.index(callee):] + [callee])
                    raise self.error(f"bpf-to-bpf recursion ({cycle}); the kernel refuses it",
                                     key, idx)
                below = visit(callee, path + [key])
                if below + 1 > isa.MAX_CALL_DEPTH:
                    raise self.error(f"bpf-to-bpf calls nest {below + 1} frames deep here; "
                                     f"the kernel allows {isa.MAX_CALL_DEPTH}", key, idx)
                deepest = max(deepest, below + 1)
            depth[key] = deepest
            return deepest

        for entry in entries:
            visit(entry, [])

    def _analyze(self, lifters: dict, programs: list[Program]) -> None:
        """Data flow over every function, argument tags flowing from call sites to callees.

        A program's entry gets the context tag in r1 when its type has a
        context layout; a function whose address is taken (a callback) gets
        no tags, since its callers are not known.
        """
        unknown = (None,) * 5
        args: dict[FuncKey, tuple | None] = {key: None for key in lifters}
        for ref in self.obj.refs.values():
            if ref.function in self.address_taken and ref.function in args:
                args[ref.function] = unknown
        for prog in programs:
            layout = contexts.for_program_type(prog.prog_type)
            tags = (("ctx", 0, layout) if layout else ("base", 1),) + (None,) * 4
            args[prog.entry] = _meet_args(args[prog.entry], tags)
        work = deque(key for key, tags in args.items() if tags is not None)
        while work:
            key = work.popleft()
            for callee, tags in lifters[key].analyze(args[key]).items():
                new = _meet_args(args[callee], tags)
                if new != args[callee]:
                    args[callee] = new
                    work.append(callee)
        for key, fl in lifters.items():
            if args[key] is None:  # reached by no analysed path: analyse as it is
                fl.analyze(unknown)

    def _mark_stopping(self) -> None:
        """A function that calls one that may stop the program may stop it too."""
        changed = True
        while changed:
            changed = False
            for func in self.funcs.values():
                if not func.may_stop and any(self.funcs[c].may_stop for c in func.callees):
                    func.may_stop = changed = True

    def _entry(self, symbol: str, prog: Program) -> None:
        if symbol.startswith(RESERVED_PREFIXES):
            raise self.error(f"program name {symbol!r} is reserved: names starting with "
                             f"{', '.join(RESERVED_PREFIXES)} are ebpf-lto's own symbols")
        if symbol in self.module.globals:
            raise self.error(f"program name {symbol!r} is used twice")
        fn = ir.Function(self.module, ir.FunctionType(I64, [PTR, I64]), symbol)
        ctx, ctx_len = fn.args
        ctx.name, ctx_len.name = "ctx", "ctx_len"
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        target = self.funcs[prog.entry]
        zero = ir.Constant(I64, 0)
        args = [b.ptrtoint(ctx, I64), ctx_len, zero, zero, zero] + [zero] * target.has_tcc
        result = b.call(target.ir_func, args)
        b.ret(b.extract_value(result, 0) if target.may_stop else result)

    def prog_array_get(self) -> ir.Function:
        fn = self.module.globals.get(PROG_ARRAY_GET)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(I32, [I8P, I32]), PROG_ARRAY_GET)
        return fn

    def helper(self, helper_id: int) -> ir.Function:
        fn = self.helpers.get(helper_id)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(I64, [I64] * 5), helper_symbol(helper_id))
            self.helpers[helper_id] = fn
        return fn

    def lddw_helper(self, name: str, arg: ir.IntType) -> ir.Function:
        """One of bpftime's lddw helpers, `uint64_t name(arg)`.

        Declared readnone: for one run of the program the answer depends on
        the argument alone, so LLVM may share one call among many uses.
        """
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(I64, [arg]), name)
            fn.attributes.add("readnone")
            fn.attributes.add("nounwind")
        return fn

    def data_global(self, name: str) -> ir.GlobalVariable:
        gv = self.globals.get(name)
        if gv is not None:
            return gv
        sec = self.obj.data[name]
        pointers = sorted((off, ref) for (section, off), ref in self.obj.data_refs.items()
                          if section == name)
        chunks, pos = [], 0
        for off, _ in pointers:
            chunks += [ir.ArrayType(I8, off - pos), I64]
            pos = off + 8
        chunks.append(ir.ArrayType(I8, len(sec.data) - pos))
        ty = ir.LiteralStructType(chunks, packed=True)
        gv = ir.GlobalVariable(self.module, ty, _unique("bpf.data" + name, self.module.globals))
        gv.global_constant = not sec.writable
        gv.linkage = "internal"
        gv.align = 16
        # Registered before its initializer: data may point at itself or in a cycle.
        self.globals[name] = gv
        values, pos = [], 0
        for off, ref in pointers:
            values += [ir.Constant(chunks[len(values)], bytearray(sec.data[pos:off])),
                       self._address_of(ref).ptrtoint(I64)]
            pos = off + 8
        values.append(ir.Constant(chunks[-1], bytearray(sec.data[pos:])))
        gv.initializer = ir.Constant(ty, values)
        return gv

    def _address_of(self, ref) -> ir.Constant:
        """What a relocation names, as a constant pointer."""
        if ref.kind == "data":
            return self.data_global(ref.target).bitcast(I8P).gep([ir.Constant(I64, ref.offset)])
        if ref.kind == "map":
            if self.options.bpftime:
                raise self.error(f"initialized data holds the address of map {ref.target!r}, "
                                 "which with --abi bpftime exists only at run time")
            return self.map_global(ref.target).bitcast(I8P)
        return self.funcs[ref.function].ir_func.bitcast(I8P)

    def map_global(self, name: str) -> ir.GlobalVariable:
        return self.globals["map:" + name]

    def _maps(self) -> None:
        """Every map's constant descriptor and mutable state, and the exported map table.

        The descriptor is `struct bpf_map` (inliner/maps.py): geometry as
        constants, so code inlined from the map runtime folds it.
        """
        opts = self.options
        fields = [ty for ty, _ in maps.DESCRIPTOR_FIELDS]
        desc_ty = ir.LiteralStructType([I8P if ty.endswith("*") else I32 for ty in fields])
        state_ty = ir.ArrayType(I8, maps.STATE_SIZE)
        descriptors = []
        for index, m in enumerate(self.obj.maps.values()):
            if opts.maps_extern:
                symbol = "ebpf_lto_state_" + re.sub(r"\W", "_", m.name)
                if symbol in self.module.globals:   # names differing only in non-word bytes
                    raise self.error(f"with --maps extern, map {m.name!r} and another map "
                                     f"both need the symbol {symbol}")
                state = ir.GlobalVariable(self.module, state_ty, symbol)
            else:
                state = ir.GlobalVariable(self.module, state_ty,
                                          _unique(f"bpf.map.{m.name}.state", self.module.globals))
                state.initializer = ir.Constant(state_ty, None)
                state.linkage = "internal"
            state.align = 64
            label = _cstring(self.module, f"bpf.map.{m.name}.name", m.name)
            inner = self._inner_index(m)
            ncpus = opts.ncpus if maps.MAP_TYPES.get(m.type, "").startswith(
                ("percpu", "lru_percpu")) else 1
            values = [m.type, m.key_size, m.value_size, m.max_entries, m.map_flags, ncpus,
                      index, inner]
            desc = ir.GlobalVariable(self.module, desc_ty,
                                     _unique(f"bpf.map.{m.name}", self.module.globals))
            desc.initializer = ir.Constant(desc_ty, [ir.Constant(I32, v) for v in values]
                                           + [state.bitcast(I8P), label])
            desc.global_constant = True
            desc.linkage = "internal"
            desc.align = 8
            self.globals["map:" + m.name] = desc
            descriptors.append(desc.bitcast(I8P))
        table_ty = ir.ArrayType(I8P, len(descriptors))
        table = ir.GlobalVariable(self.module, table_ty, MAP_TABLE)
        table.initializer = ir.Constant(table_ty, descriptors)
        table.global_constant = True
        count = ir.GlobalVariable(self.module, I32, MAP_COUNT)
        count.initializer = ir.Constant(I32, len(descriptors))
        count.global_constant = True

    def _check_map_fds(self) -> None:
        """With the bpftime ABI every map the lifted code loads needs the fd the runtime gave it."""
        fds = self.options.map_fds
        unknown = sorted(set(fds) - set(self.obj.maps))
        if unknown:
            known = ", ".join(self.obj.maps) or "none"
            raise self.error(f"--map-fd names {unknown[0]!r}, which is not a map of the object "
                             f"(maps: {known})")
        used = {ref.target for key, func in self.funcs.items() for idx in range(key.start, func.end)
                if (ref := self.obj.refs.get((key.section, idx))) is not None and ref.kind == "map"}
        for name in self.obj.maps:
            if name in used and name not in fds:
                raise self.error(f"map {name!r} has no fd: --abi bpftime needs "
                                 f"--map-fd {name}=FD")

    def _inner_index(self, m) -> int:
        if m.inner is None:
            return maps.NO_INNER
        return list(self.obj.maps).index(m.inner)


def _cstring(module: ir.Module, name: str, text: str) -> ir.Constant:
    data = bytearray(text.encode() + b"\0")
    ty = ir.ArrayType(I8, len(data))
    gv = ir.GlobalVariable(module, ty, _unique(name, module.globals))
    gv.initializer = ir.Constant(ty, data)
    gv.global_constant = True
    gv.linkage = "internal"
    return gv.bitcast(I8P)


def _unique(name: str, taken) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}.{n}"
    if isinstance(taken, set):
        taken.add(candidate)
    return candidate


# The abstract state at a point of a function, as a tuple:
#   [0..10] each register's pointer tag: None, ("fp", off) for r10 + off,
#           ("ctx", off, layout) for the context pointer + off, or
#           ("map", off, name) for what an lddw of map `name` loaded + off, or
#           ("base", root) for a pointer that integer arithmetic derived from a
#           root: argument register `root` (1-5), known to hold a pointer, or
#           "pkt", a packet pointer loaded from the context;
#   [MASK]  bit r set when register r is written on every path to here;
#   [SPILLS] frozenset of (r10 offset, tag) for 8-byte stack slots holding a tag.
MASK, SPILLS = 11, 12
ARGS_WRITTEN = 0b10000111110  # r1-r5 (arguments) and r10


def _join(a: tuple, b: tuple) -> tuple:
    """Where paths meet: tags that agree, registers written on both, spills on both."""
    return (tuple(x if x == y else None for x, y in zip(a[:11], b[:11]))
            + (a[MASK] & b[MASK], a[SPILLS] & b[SPILLS]))


def _meet_args(old: tuple | None, new: tuple) -> tuple:
    """A function's argument tags: those every call site agrees on."""
    if old is None:
        return new
    return tuple(x if x == y else None for x, y in zip(old, new))


def _moved(tag: tuple | None, delta: int) -> tuple | None:
    if tag is None or tag[0] == "base":
        return tag
    return (tag[0], tag[1] + delta) + tag[2:]


class _FunctionLifter:
    """Lifts one eBPF function; `_insn` is the one switch over opcode classes."""

    def __init__(self, ml: _ModuleLifter, func: _Func):
        self.ml = ml
        self.func = func
        self.key = func.key
        self.section = func.key.section
        self.slots = ml.obj.code[self.section]
        self.fn = func.ir_func

    def error(self, idx: int, reason: str) -> EbpfLtoError:
        return self.ml.error(reason, self.key, idx)

    # -- control flow -----------------------------------------------------

    def _successors(self, idx: int, insn: isa.Insn) -> list[int]:
        """Slot indices control may go to after `insn`; validates targets."""
        nxt = idx + (2 if insn.is_wide else 1)
        c = insn.cls
        if c in (isa.JMP, isa.JMP32):
            op = isa.op(insn.opcode)
            if op == isa.EXIT and c == isa.JMP:
                return []
            if op == isa.CALL and c == isa.JMP:
                return [self._fallthrough(idx, nxt)]
            if op == isa.JA:
                offset = insn.imm if c == isa.JMP32 else insn.off
                return [self._target(idx, idx + 1 + offset)]
            if op in isa.COND_JMP_OPS:
                return [self._target(idx, idx + 1 + insn.off), self._fallthrough(idx, nxt)]
        return [self._fallthrough(idx, nxt)]

    def _target(self, idx: int, target: int) -> int:
        if not self.key.start <= target < self.func.end:
            raise self.error(idx, f"jump to instruction {target}, outside the function")
        if self.slots[target] is None:
            raise self.error(idx, f"jump into the middle of lddw at {target - 1}")
        return target

    def _fallthrough(self, idx: int, nxt: int) -> int:
        if nxt >= self.func.end:
            raise self.error(idx, "control falls off the end of the function")
        return nxt

    def _blocks(self) -> tuple[list[int], dict[int, list[int]]]:
        """Reachable basic-block leaders in order, and each leader's successors."""
        succs_of: dict[int, list[int]] = {}
        leaders = {self.key.start}
        seen = set()
        todo = [self.key.start]
        while todo:
            idx = todo.pop()
            if idx in seen:
                continue
            seen.add(idx)
            insn = self.slots[idx]
            if insn is None:
                raise self.error(idx, "second slot of lddw reached as an instruction")
            succ = self._successors(idx, insn)
            succs_of[idx] = succ
            ends_block = insn.cls in (isa.JMP, isa.JMP32) and isa.op(insn.opcode) != isa.CALL
            if ends_block:
                leaders.update(succ)
            todo.extend(succ)
        ordered = sorted(leaders)
        blocks = {}
        for leader in ordered:
            idx, out = leader, []
            while True:
                out = succs_of[idx]
                insn = self.slots[idx]
                if insn.cls in (isa.JMP, isa.JMP32) and isa.op(insn.opcode) != isa.CALL:
                    break
                nxt = out[0]
                if nxt in leaders:
                    break
                idx = nxt
            blocks[leader] = out
        return ordered, blocks

    def analyze(self, arg_tags: tuple) -> dict[FuncKey, tuple]:
        """Forward data flow to a fixpoint from the given argument tags.

        Records the state at each block leader, and returns, per callee, the
        argument tags its call sites here agree on.
        """
        self.order, self.succs = self._blocks()
        self.leaders = set(self.order)
        fp = ("fp", 0)
        entry = (None,) + tuple(arg_tags) + (None,) * 4 + (fp, ARGS_WRITTEN, frozenset())
        state_in: dict[int, tuple] = {self.key.start: entry}
        calls: dict[FuncKey, tuple] = {}
        work = deque([self.key.start])
        while work:
            leader = work.popleft()
            state = list(state_in[leader])
            for idx in self._block_insns(leader):
                insn = self.slots[idx]
                if insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_LOCAL:
                    callee = self.ml.obj.refs[(self.section, idx)].function
                    # r10- and root-relative tags name this function's frame and
                    # roots; in the callee such an argument is a pointer root of its own.
                    args = tuple(("base", r) if t is not None and t[0] in ("fp", "base") else t
                                 for r, t in enumerate(state[1:6], 1))
                    calls[callee] = _meet_args(calls.get(callee), args)
                self._track(idx, insn, state)
            out = tuple(state)
            for s in self.succs[leader]:
                old = state_in.get(s)
                new = out if old is None else _join(old, out)
                if new != old:
                    state_in[s] = new
                    work.append(s)
        self.state_in = state_in
        return calls

    def _check_reads(self, idx: int, insn: isa.Insn, state: list) -> None:
        for r in isa.regs_read(insn):
            if not state[MASK] >> r & 1:
                raise self.error(idx, f"reads r{r}, which is not written on every path to here")

    def _block_insns(self, leader: int):
        idx = leader
        while True:
            yield idx
            insn = self.slots[idx]
            if insn.cls in (isa.JMP, isa.JMP32) and isa.op(insn.opcode) != isa.CALL:
                return
            nxt = idx + (2 if insn.is_wide else 1)
            if nxt in self.leaders or nxt >= self.func.end:
                return
            idx = nxt

    def _track(self, idx: int, insn: isa.Insn, state: list) -> None:
        """The transfer function of `analyze` (state layout above `_join`)."""
        c, op = insn.cls, isa.op(insn.opcode)
        tag = None
        if insn.is_wide:
            ref = self.ml.obj.refs.get((self.section, idx))
            if ref is not None and ref.kind == "map":
                tag = ("map", 0, ref.target)
        elif c == isa.ALU64 and op == isa.MOV and insn.opcode & isa.X and insn.off == 0:
            tag = state[insn.src]
        elif c == isa.ALU64 and op in (isa.ADD, isa.SUB) and not insn.opcode & isa.X:
            tag = _moved(state[insn.dst], insn.imm if op == isa.ADD else -insn.imm)
        elif c == isa.ALU64 and op in (isa.ADD, isa.SUB) and insn.opcode & isa.X:
            # pointer + scalar and pointer - scalar stay in the pointer's object;
            # scalar + pointer is not followed, so a root is always a pointer.
            dst, src = state[insn.dst], state[insn.src]
            if dst is not None and dst[0] == "base" and src is None:
                tag = dst
        elif c == isa.LDX and insn.opcode == isa.LDX | isa.MEM | isa.DW:
            base = state[insn.src]
            if base is not None and base[0] == "fp":
                tag = dict(state[SPILLS]).get(base[1] + insn.off)
        elif c == isa.LDX:
            base = state[insn.src]
            if base is not None and base[0] == "ctx":
                field = base[2].field_at(base[1] + insn.off, isa.SIZE_BYTES[isa.size(insn.opcode)])
                if field is not None and field.kind != contexts.SCALAR:
                    tag = ("base", "pkt")
        elif c in (isa.ST, isa.STX):
            base = state[insn.dst]
            if base is not None and base[0] == "fp":
                lo = base[1] + insn.off
                hi = lo + isa.SIZE_BYTES[isa.size(insn.opcode)]
                spills = {s for s in state[SPILLS] if s[0] + 8 <= lo or s[0] >= hi}
                value = state[insn.src]
                if insn.opcode == isa.STX | isa.MEM | isa.DW and value is not None:
                    spills.add((lo, value))
                state[SPILLS] = frozenset(spills)
        if c == isa.JMP and op == isa.CALL:
            for r in range(6):
                state[r] = None
            state[MASK] &= ~0b111110
        for r in isa.regs_written(insn):
            state[r] = tag
            state[MASK] |= 1 << r

    # -- emission ---------------------------------------------------------

    def check(self) -> None:
        """Every slot of the function, reachable or not, is a valid instruction."""
        for idx in range(self.key.start, self.func.end):
            insn = self.slots[idx]
            reason = insn is not None and verifier.check(insn)
            if reason:
                raise self.error(idx, reason)

    def branches(self) -> list[int]:
        """The conditional jumps, in instruction order: each has a taken-edge counter."""
        out = []
        for leader in self.order:
            for idx in self._block_insns(leader):
                insn = self.slots[idx]
                if insn.cls in (isa.JMP, isa.JMP32) and isa.op(insn.opcode) in isa.COND_JMP_OPS:
                    out.append(idx)
        return out

    def ncounters(self) -> int:
        return len(self.order) + len(self.branches())

    def cfg_hash(self) -> int:
        """A checksum of the control-flow graph the counters describe (blocks and edges)."""
        start = self.key.start
        shape = [(leader - start, tuple(s - start for s in self.succs[leader]))
                 for leader in self.order]
        shape.append(tuple(i - start for i in self.branches()))
        digest = int.from_bytes(hashlib.md5(repr(shape).encode()).digest()[:8], "little")
        return digest & 0x0FFF_FFFF_FFFF_FFFF  # LLVM reserves bits 60-63 (context-sensitive)

    def apply_profile(self) -> None:
        """Read this function's counts from the profile, if it has them and they still fit."""
        self.block_counts = self.taken_counts = None
        record = (self.ml.options.profile or {}).get(self.func.name)
        if record is None:
            return
        hash_, counters = record
        if hash_ != self.cfg_hash() or len(counters) != self.ncounters():
            self.ml.stale.append(self.func.name)
            return
        n = len(self.order)
        self.block_counts = dict(zip(self.order, counters[:n]))
        self.taken_counts = dict(zip(self.branches(), counters[n:]))
        for idx in range(self.key.start, self.func.end):
            leader = None
            insn = self.slots[idx]
            if insn is not None and insn.opcode == isa.JMP | isa.CALL:
                leader = max((l for l in self.order if l <= idx), default=None)
            if leader is not None:
                self.ml.counts[(self.func.name, idx)] = self.block_counts[leader]
        self.fn.set_metadata("prof", self.ml.module.add_metadata(
            [ir.MetaDataString(self.ml.module, "function_entry_count"),
             ir.Constant(I64, self.block_counts[self.key.start])]))

    def _count(self, index: int) -> None:
        """counters[base + index] += 1 (plain, not atomic: a profile tolerates races)."""
        b = self.b
        slot = b.gep(self.ml.counters, [I32(0), I32(self.counter_base + index)])
        b.store(b.add(b.load(slot), ir.Constant(I64, 1)), slot)

    def emit(self) -> None:
        order = self.order
        graph = nx.DiGraph((a, b) for a, succ in self.succs.items() for b in succ)
        graph.add_nodes_from(order)
        self.loop_blocks = {n for comp in nx.strongly_connected_components(graph)
                            for n in comp if len(comp) > 1 or graph.has_edge(n, n)}
        self.block_of = {idx: leader for leader in order for idx in self._block_insns(leader)}
        entry = self.fn.append_basic_block("entry")
        self.blocks = {leader: self.fn.append_basic_block(f"L{leader}") for leader in order}
        b = self.b = ir.IRBuilder(entry)
        self.frame = b.alloca(FRAME, name="frame")
        self.frame.align = 16
        self.regs = [b.alloca(I64, name=f"r{r}") for r in range(10)]
        for r in range(10):
            value = self.fn.args[r - 1] if 1 <= r <= 5 else ir.Constant(I64, 0)
            b.store(value, self.regs[r])
        self.fp = b.ptrtoint(b.gep(self.frame, [I32(0), I32(isa.STACK_SIZE)]), I64, name="fp")
        # Pointer roots: an access through a register derived from one is
        # emitted as root + (address - root), which LLVM folds to root + offset,
        # so it can see that a loop walks consecutive memory and vectorize it.
        self.arg_roots = {r: b.inttoptr(self.fn.args[r - 1], I8P, name=f"root{r}")
                          for r in range(1, 6)}
        self.pkt_root = b.alloca(I8P, name="pkt")
        b.branch(self.blocks[self.key.start])
        instrument = self.ml.options.instrument
        # Instrumented code keeps the trees: their branches are what the counters count.
        self.switches = {} if instrument else switches.find(self.slots, order, self.succs,
                                                            self._block_insns)
        self.branch_index = {idx: n for n, idx in enumerate(self.branches())}
        self.narrow_words: set[int] = set()  # frame words a narrow store writes (_store)
        for n, leader in enumerate(order):
            b.position_at_end(self.blocks[leader])
            if instrument:
                self._count(n)
            state = list(self.state_in[leader])
            for idx in self._block_insns(leader):
                insn = self.slots[idx]
                self._check_reads(idx, insn, state)
                self.state = state
                self._insn(idx, insn)
                self._track(idx, insn, state)
            if not b.block.is_terminated:
                last = idx
                nxt = last + (2 if self.slots[last].is_wide else 1)
                b.branch(self.blocks[self._fallthrough(last, nxt)])
        # The words narrow stores read-modify-write start at zero, so that their
        # loads never read memory nothing wrote. SROA folds the zeros into
        # promoted slots, and DSE drops them where a full store follows.
        b.position_before(entry.terminator)
        for pos in sorted(self.narrow_words):
            b.store(ir.Constant(I64, 0), self._frame_word(pos), align=8)

    def rd(self, r: int) -> ir.Value:
        if r == 10:
            return self.fp
        return self.b.load(self.regs[r])

    def wr(self, idx: int, r: int, value: ir.Value) -> None:
        if r == 10:
            raise self.error(idx, "write to r10, the read-only frame pointer")
        if r > 10:
            raise self.error(idx, f"register r{r} does not exist")
        self.b.store(value, self.regs[r])

    def _insn(self, idx: int, insn: isa.Insn) -> None:
        c = insn.cls
        if c in (isa.ALU, isa.ALU64):
            self._alu(idx, insn)
        elif c in (isa.JMP, isa.JMP32):
            self._jmp(idx, insn)
        elif c == isa.LDX:
            self._ldx(idx, insn)
        elif c in (isa.ST, isa.STX):
            self._store(idx, insn)
        elif insn.is_wide:
            self._ld_imm64(idx, insn)
        else:
            raise self.error(idx, f"unsupported instruction (opcode {insn.opcode:#04x}); legacy "
                                  "packet loads (ld_abs/ld_ind) need a kernel socket buffer")

    # ALU / ALU64

    def _alu(self, idx: int, insn: isa.Insn) -> None:
        b = self.b
        wide = insn.cls == isa.ALU64
        ty = I64 if wide else I32
        bits = 64 if wide else 32
        op = isa.op(insn.opcode)
        if op == isa.END:
            self._end(idx, insn)
            return
        dst = self.rd(insn.dst)
        a = dst if wide else b.trunc(dst, I32)
        if insn.opcode & isa.X:
            src = self.rd(insn.src)
            v = src if wide else b.trunc(src, I32)
        else:
            v = ir.Constant(ty, insn.imm & ((1 << bits) - 1))
        signed = insn.off == 1
        if op == isa.ADD:
            r = b.add(a, v)
        elif op == isa.SUB:
            r = b.sub(a, v)
        elif op == isa.MUL:
            r = b.mul(a, v)
        elif op in (isa.DIV, isa.MOD):
            r = self._divmod(a, v, ty, bits, op == isa.DIV, signed)
        elif op == isa.OR:
            r = b.or_(a, v)
        elif op == isa.AND:
            r = b.and_(a, v)
        elif op == isa.XOR:
            r = b.xor(a, v)
        elif op in (isa.LSH, isa.RSH, isa.ARSH):
            count = b.and_(v, ir.Constant(ty, bits - 1))
            r = {isa.LSH: b.shl, isa.RSH: b.lshr, isa.ARSH: b.ashr}[op](a, count)
        elif op == isa.NEG:
            r = b.neg(a)
        elif op == isa.MOV:
            if insn.off and insn.opcode & isa.X:
                from_ty = {8: I8, 16: I16, 32: I32}.get(insn.off)
                if from_ty is None or (not wide and insn.off == 32):
                    raise self.error(idx, f"movsx with offset {insn.off}")
                r = b.sext(b.trunc(src, from_ty), ty)
            elif insn.opcode & isa.X:
                r = v
            else:
                # mov64 sign-extends its immediate; mov32 zero-extends.
                r = ir.Constant(ty, insn.imm & ((1 << bits) - 1)) if not wide \
                    else ir.Constant(I64, insn.imm & 0xFFFFFFFFFFFFFFFF)
        else:
            raise self.error(idx, f"unknown ALU operation (opcode {insn.opcode:#04x})")
        self.wr(idx, insn.dst, r if wide else b.zext(r, I64))

    def _divmod(self, a, v, ty, bits, is_div, signed):
        """eBPF division: x / 0 = 0, x % 0 = x, INT_MIN / -1 = INT_MIN, INT_MIN % -1 = 0."""
        b = self.b
        zero, one = ir.Constant(ty, 0), ir.Constant(ty, 1)
        is_zero = b.icmp_unsigned("==", v, zero)
        bad = is_zero
        if signed:
            int_min = ir.Constant(ty, 1 << (bits - 1))
            overflow = b.and_(b.icmp_unsigned("==", a, int_min),
                              b.icmp_signed("==", v, ir.Constant(ty, -1)))
            # With divisor 1, INT_MIN / 1 and INT_MIN % 1 give the results eBPF defines.
            bad = b.or_(is_zero, overflow)
        safe = b.select(bad, one, v)
        if is_div:
            q = b.sdiv(a, safe) if signed else b.udiv(a, safe)
            return b.select(is_zero, zero, q)
        rem = b.srem(a, safe) if signed else b.urem(a, safe)
        return b.select(is_zero, a, rem)

    def _end(self, idx: int, insn: isa.Insn) -> None:
        b = self.b
        width = insn.imm
        if width not in (16, 32, 64):
            raise self.error(idx, f"byte swap of width {width}")
        ty = SIZE_TYPES[width // 8]
        v = self.rd(insn.dst)
        narrow = v if width == 64 else b.trunc(v, ty)
        # eBPF is little-endian: to-le only truncates; to-be and bswap swap.
        swap = insn.cls == isa.ALU64 or insn.opcode & isa.X == isa.TO_BE
        if swap and width > 8:
            bswap = self.ml.module.declare_intrinsic("llvm.bswap", [ty])
            narrow = b.call(bswap, [narrow])
        self.wr(idx, insn.dst, narrow if width == 64 else b.zext(narrow, I64))

    # jumps, calls, exit

    def _jmp(self, idx: int, insn: isa.Insn) -> None:
        b = self.b
        op = isa.op(insn.opcode)
        wide = insn.cls == isa.JMP
        if op == isa.EXIT and wide:
            self._ret(self.rd(0), stopped=False)
            return
        if op == isa.CALL and wide:
            self._call(idx, insn)
            return
        if op == isa.JA:
            b.branch(self.blocks[self._successors(idx, insn)[0]])
            return
        if op not in isa.COND_JMP_OPS:
            raise self.error(idx, f"unknown jump operation (opcode {insn.opcode:#04x})")
        ty = I64 if wide else I32
        a = self.rd(insn.dst)
        if insn.opcode & isa.X:
            v = self.rd(insn.src)
        else:
            v = ir.Constant(I64, insn.imm & 0xFFFFFFFFFFFFFFFF)  # sign-extended
        if not wide:
            a, v = b.trunc(a, I32), b.trunc(v, I32)
        if idx in self.switches:
            self._switch(self.switches[idx], a)
            return
        if op == isa.JSET:
            cond = b.icmp_unsigned("!=", b.and_(a, v), ir.Constant(ty, 0))
        else:
            name = isa.COND_JMP_OPS[op]
            pred = {"jeq": "==", "jne": "!=", "jgt": ">", "jge": ">=", "jlt": "<", "jle": "<=",
                    "jsgt": ">", "jsge": ">=", "jslt": "<", "jsle": "<="}[name]
            cond = (b.icmp_signed if name.startswith("js") else b.icmp_unsigned)(pred, a, v)
        taken, fall = self._successors(idx, insn)
        target = self.blocks[taken]
        if self.ml.options.instrument:
            target = self.fn.append_basic_block(f"L{idx}.taken")
        br = b.cbranch(cond, target, self.blocks[fall])
        if self.ml.options.instrument:
            b.position_at_end(target)
            self._count(len(self.order) + self.branch_index[idx])
            b.branch(self.blocks[taken])
        if self.taken_counts is not None and not self._if_convertible(taken, fall):
            hits = self.taken_counts[idx]
            total = self.block_counts[self.block_of[idx]]
            # LLVM's branch weights are 32-bit; scale large counts down together.
            scale = max(1, max(hits, total) >> 31)
            br.set_metadata("prof", self.ml.module.add_metadata(
                [ir.MetaDataString(self.ml.module, "branch_weights"),
                 ir.Constant(I32, hits // scale), ir.Constant(I32, max(total - hits, 0) // scale)]))

    def _switch(self, sw: switches.Switch, value: ir.Value) -> None:
        """A compare tree as one switch (switches.py); with a profile, each case is weighed
        by the count of the tree edge its value took, shared among that edge's values."""
        ty = value.type
        inst = self.b.switch(value, self.blocks[sw.default])
        for case, leaf, _ in sw.cases:
            inst.add_case(ir.Constant(ty, case), self.blocks[leaf])
        if self.taken_counts is None:
            return

        def count(e: switches.Edge) -> int:
            hits = self.taken_counts[e.jump]
            return hits if e.taken else max(self.block_counts[self.block_of[e.jump]] - hits, 0)
        weights = [sum(count(e) for e in sw.edges if e.leaf == sw.default)]
        weights += [count(sw.edges[n]) // sw.edges[n].values for _, _, n in sw.cases]
        scale = max(1, max(weights) >> 31)  # LLVM's branch weights are 32-bit
        inst.set_metadata("prof", self.ml.module.add_metadata(
            [ir.MetaDataString(self.ml.module, "branch_weights"),
             *(ir.Constant(I32, w // scale) for w in weights)]))

    def _if_convertible(self, taken: int, fall: int) -> bool:
        """A branch around a few instructions that rejoin: a select in the source.

        eBPF has no select, so the compiler for eBPF made each one a branch.
        Weighted, LLVM would keep it a branch (a predictable one); unweighted,
        SimplifyCFG turns it back into a select, as clang does before it reads
        a profile of its own.
        """
        succs = self.succs
        if succs.get(taken) == [fall]:
            return self._cheap_arm(taken)
        if succs.get(fall) == [taken]:
            return self._cheap_arm(fall)
        return (len(succs.get(taken, ())) == 1 and succs.get(taken) == succs.get(fall)
                and self._cheap_arm(taken) and self._cheap_arm(fall))

    def _cheap_arm(self, leader: int) -> bool:
        """A block of at most IF_CONVERT_LIMIT ALU instructions and stack accesses."""
        body = [self.slots[i] for i in self._block_insns(leader)]
        body = [i for i in body if not (i.cls in (isa.JMP, isa.JMP32) and isa.op(i.opcode) == isa.JA)]

        def cheap(i: isa.Insn) -> bool:
            if i.cls in (isa.ALU, isa.ALU64):
                return True
            if i.cls in (isa.ST, isa.STX):
                return i.dst == 10 and isa.mode(i.opcode) == isa.MEM
            return i.cls == isa.LDX and i.src == 10
        return len(body) <= IF_CONVERT_LIMIT and all(cheap(i) for i in body)

    def _ret(self, r0: ir.Value, stopped: bool) -> None:
        if self.func.may_stop:
            ty = self.fn.function_type.return_type
            agg = self.b.insert_value(ir.Constant(ty, ir.Undefined), r0, 0)
            self.b.ret(self.b.insert_value(agg, ir.Constant(I1, int(stopped)), 1))
        else:
            self.b.ret(r0)

    def _stop_if(self, cond: ir.Value, r0: ir.Value) -> None:
        """End the whole program with r0 when cond holds."""
        stop = self.fn.append_basic_block("stop")
        cont = self.fn.append_basic_block("cont")
        self.b.cbranch(cond, stop, cont)
        self.b.position_at_end(stop)
        self._ret(r0, stopped=True)
        self.b.position_at_end(cont)

    def _args(self) -> list[ir.Value]:
        """r1-r5 for a call; a pointer argument keeps its root, so that once the
        callee is inlined LLVM still knows which object it points into."""
        out = []
        for r in range(1, 6):
            tag, value = self.state[r], self.rd(r)
            if tag is not None and tag[0] == "fp" and 0 <= isa.STACK_SIZE + tag[1] <= isa.STACK_SIZE:
                ptr = self.b.gep(self.frame, [I32(0), I32(isa.STACK_SIZE + tag[1])])
                value = self.b.ptrtoint(ptr, I64)
            elif tag is not None and tag[0] == "base":
                value = self.b.ptrtoint(self._rebased(tag, value), I64)
            out.append(value)
        return out

    def _rebased(self, tag: tuple, addr: ir.Value) -> ir.Value:
        """addr as a pointer derived from its root: root + (addr - root)."""
        if tag[1] == "pkt":
            root = self.b.load(self.pkt_root)
            root_addr = self.b.ptrtoint(root, I64)
        else:
            root, root_addr = self.arg_roots[tag[1]], self.fn.args[tag[1] - 1]
        return self.b.gep(root, [self.b.sub(addr, root_addr)])

    def _call(self, idx: int, insn: isa.Insn) -> None:
        b = self.b
        if insn.opcode == isa.CALLX:
            self._callx(idx, insn)
            return
        if insn.src == isa.CALL_LOCAL:
            ref = self.ml.obj.refs.get((self.section, idx))
            if ref is None or ref.function is None:
                raise self.error(idx, "local call without a resolved target")
            self._site(idx, self._call_local(self.ml.funcs[ref.function]), None)
        elif insn.src == isa.CALL_HELPER and insn.imm == TAIL_CALL and not self.ml.options.bpftime:
            self._tail_call(idx)
        elif (insn.src == isa.CALL_HELPER and insn.imm == MAP_LOOKUP
              and (array := self._runtime_array(1)) is not None):
            self._array_lookup(idx, array)
        elif insn.src == isa.CALL_HELPER:
            r0 = b.call(self.ml.helper(insn.imm), self._args())
            self._site(idx, r0, insn.imm)
            self.wr(idx, 0, r0)
            if insn.imm in self.ml.options.unwind_helpers:
                self._stop_if(b.icmp_unsigned("==", r0, ir.Constant(I64, 0)), r0)
        elif insn.src == isa.CALL_KFUNC:
            raise self.error(idx, f"call to kernel function (kfunc) with BTF id {insn.imm}, "
                                  "which needs a kernel")
        else:
            raise self.error(idx, f"call with unknown source {insn.src}")

    def _tcc(self) -> ir.Value:
        return self.fn.args[5] if self.func.has_tcc else ir.Constant(I64, 0)

    def _call_local(self, callee: _Func, args: list[ir.Value] | None = None) -> ir.CallInstr:
        b = self.b
        args = self._args() if args is None else args
        result = call = b.call(callee.ir_func, args + [self._tcc()] * callee.has_tcc)
        if callee.may_stop:
            r0 = b.extract_value(result, 0)
            self.b.store(r0, self.regs[0])
            self._stop_if(b.extract_value(result, 1), r0)
        else:
            self.b.store(result, self.regs[0])
        return call

    def _site(self, idx: int, call: ir.CallInstr, helper_id: int | None) -> None:
        in_loop = self.block_of[idx] in self.loop_blocks
        self.ml.sites.append(Site(self.func.name, idx, call.callee.name, helper_id, in_loop, call))

    def _runtime_array(self, r: int) -> MapDef | None:
        """The bpftime runtime's ARRAY map that register r holds, if the data flow knows one."""
        tag = self.state[r]
        if not self.ml.options.bpftime or tag is None or tag[:2] != ("map", 0):
            return None
        m = self.ml.obj.maps[tag[2]]
        # The kernel refuses arrays with other keys; PERCPU_ARRAY has one copy per cpu.
        return m if m.type == maps.MAP_TYPE_IDS["array"] and m.key_size == 4 else None

    def _array_lookup(self, idx: int, m: MapDef) -> None:
        """bpf_map_lookup_elem(array, &key) without a call, as bpftime stores arrays.

        The runtime's array keeps its max_entries values value_size apart from
        the address `__lddw_helper_map_val(handle)` gives (its first value),
        so the lookup is arithmetic on the object's geometry, which the
        optimizer folds into the code around it. A base of 0 (the runtime
        knows no such map) gives NULL, as the runtime's own lookup would.
        """
        b = self.b
        ptr, align = self._address(idx, 2, 0, 4)
        key = b.zext(b.load(ptr, typ=I32, align=align), I64)
        base = b.call(self.ml.lddw_helper(MAP_VAL, I64), [self.rd(1)])
        value = b.add(base, b.mul(key, ir.Constant(I64, m.value_size)))
        found = b.and_(b.icmp_unsigned("<", key, ir.Constant(I64, m.max_entries)),
                       b.icmp_unsigned("!=", base, ir.Constant(I64, 0)))
        self.wr(idx, 0, b.select(found, value, ir.Constant(I64, 0)))
        self.ml.sites.append(Site(
            self.func.name, idx, helper_symbol(MAP_LOOKUP), MAP_LOOKUP,
            self.block_of[idx] in self.loop_blocks, None,
            f"ARRAY {m.name}: __lddw_helper_map_val + key * {m.value_size} (--abi bpftime)"))

    def _tail_call(self, idx: int) -> None:
        """bpf_tail_call(ctx, prog_array, index): run that program in place of this one.

        On success the target's r0 ends this program (through the stop path);
        otherwise r0 = -ENOENT and this program goes on, as in the kernel.
        The depth is counted so that a chain stops after MAX_TAIL_CALL_CNT.
        """
        b = self.b
        ml = self.ml
        tcc = self._tcc()
        fail = self.fn.append_basic_block(f"tail{idx}.fail")
        lookup = self.fn.append_basic_block(f"tail{idx}.lookup")
        b.cbranch(b.icmp_unsigned("<", tcc, ir.Constant(I64, MAX_TAIL_CALL_CNT)), lookup, fail)
        b.position_at_end(lookup)
        number = b.call(ml.prog_array_get(), [b.inttoptr(self.rd(2), I8P), b.trunc(self.rd(3), I32)])
        ctx = self.rd(1)
        switch = b.switch(number, fail)
        zero = ir.Constant(I64, 0)
        for n, prog in enumerate(ml.obj.programs):
            target = ml.funcs.get(prog.entry)
            if target is None:
                continue
            blk = self.fn.append_basic_block(f"tail{idx}.p{n}")
            switch.add_case(ir.Constant(I32, n), blk)
            b.position_at_end(blk)
            args = [ctx, zero, zero, zero, zero]
            if target.has_tcc:
                args.append(b.add(tcc, ir.Constant(I64, 1)))
            result = b.call(target.ir_func, args)
            self._ret(b.extract_value(result, 0) if target.may_stop else result, stopped=True)
        b.position_at_end(fail)
        self.wr(idx, 0, ir.Constant(I64, -ENOENT & 0xFFFFFFFFFFFFFFFF))

    def _callx(self, idx: int, insn: isa.Insn) -> None:
        """Call through a register: a helper id of the set, or a function address."""
        b = self.b
        target = self.rd(isa.callx_register(insn))
        done = self.fn.append_basic_block(f"callx{idx}.done")
        fail = self.fn.append_basic_block(f"callx{idx}.none")
        switch = b.switch(target, fail)
        for hid in self.ml.options.callx_helpers:
            blk = self.fn.append_basic_block(f"callx{idx}.h{hid}")
            switch.add_case(ir.Constant(I64, hid), blk)
            b.position_at_end(blk)
            r0 = b.call(self.ml.helper(hid), self._args())
            self.wr(idx, 0, r0)
            if hid in self.ml.options.unwind_helpers:
                self._stop_if(b.icmp_unsigned("==", r0, ir.Constant(I64, 0)), r0)
            b.branch(done)
        b.position_at_end(fail)
        # Functions whose address the program takes are the other legal targets.
        for key in sorted(self.ml.funcs, key=lambda k: (k.section, k.start)):
            if key not in self.ml.address_taken:
                continue
            callee = self.ml.funcs[key]
            hit = self.fn.append_basic_block(f"callx{idx}.f{key.start}")
            miss = self.fn.append_basic_block(f"callx{idx}.n{key.start}")
            addr = b.ptrtoint(callee.ir_func, I64)
            b.cbranch(b.icmp_unsigned("==", target, addr), hit, miss)
            b.position_at_end(hit)
            self._call_local(callee)
            b.branch(done)
            b.position_at_end(miss)
        self._ret(ir.Constant(I64, STOPPED_R0), stopped=True)
        b.position_at_end(done)

    # memory

    def _address(self, idx: int, base: int, off: int, size: int,
                 store: bool = False) -> tuple[ir.Value, int]:
        """Pointer and alignment for an access of `size` bytes at base+off.

        The pointer is typed to the access width because llvmlite's builder
        checks load/store types against it; LLVM itself sees an opaque ptr.
        """
        ptr_ty = SIZE_TYPES[size].as_pointer()
        tag = self.state[base]
        if tag is not None and tag[0] == "fp":
            pos = isa.STACK_SIZE + tag[1] + off
            if pos < 0 or pos + size > isa.STACK_SIZE:
                raise self.error(idx, f"stack access at r10{tag[1] + off:+d} of {size} bytes is "
                                      f"outside the {isa.STACK_SIZE}-byte frame")
            align = min(16, pos & -pos) if pos else 16
            ptr = self.b.bitcast(self.b.gep(self.frame, [I32(0), I32(pos)]), ptr_ty)
            return ptr, min(align, size)
        if tag is not None and tag[0] == "ctx":
            field = self._ctx_field(idx, tag, off, size, store)
            user = field.user_off + (tag[1] + off - field.kernel_off)
            return self.b.inttoptr(self._ctx_base(base, tag, user), ptr_ty), 1
        addr = self.rd(base)
        if off:
            addr = self.b.add(addr, ir.Constant(I64, off & 0xFFFFFFFFFFFFFFFF))
        if tag is not None and tag[0] == "base":
            return self.b.bitcast(self._rebased(tag, addr), ptr_ty), 1
        return self.b.inttoptr(addr, ptr_ty), 1

    def _ctx_field(self, idx: int, tag: tuple, off: int, size: int, store: bool):
        layout = tag[2]
        kernel_off = tag[1] + off
        field = layout.field_at(kernel_off, size)
        if field is None:
            raise self.error(idx, f"context access at offset {kernel_off} of {size} bytes is not a "
                                  f"field of struct {layout.name} that userspace provides")
        if store and not field.writable:
            raise self.error(idx, f"write to {layout.name}.{field.name}, which is read-only")
        return field

    def _ctx_base(self, base: int, tag: tuple, user_off: int) -> ir.Value:
        """The address of userspace context offset `user_off`, from a register at ctx + tag[1]."""
        return self.b.add(self.rd(base), ir.Constant(I64, (user_off - tag[1]) & 0xFFFFFFFFFFFFFFFF))

    def _ldx(self, idx: int, insn: isa.Insn) -> None:
        b = self.b
        mode = isa.mode(insn.opcode)
        if mode not in (isa.MEM, isa.MEMSX):
            raise self.error(idx, f"unknown load mode (opcode {insn.opcode:#04x})")
        nbytes = isa.SIZE_BYTES[isa.size(insn.opcode)]
        if mode == isa.MEMSX and nbytes == 8:
            raise self.error(idx, "sign-extending load of 8 bytes")
        tag = self.state[insn.src]
        if tag is not None and tag[0] == "ctx":
            field = self._ctx_field(idx, tag, insn.off, nbytes, store=False)
            if field.kind != contexts.SCALAR:
                # The kernel's verifier turns this 32-bit load into a pointer load.
                ptr = b.inttoptr(self._ctx_base(insn.src, tag, field.user_off), I64.as_pointer())
                value = b.load(ptr, typ=I64, align=1)
                if field.kind == contexts.META_POINTER:
                    data_ptr = b.inttoptr(self._ctx_base(insn.src, tag, contexts.XDP_DATA),
                                          I64.as_pointer())
                    meta_len = b.load(ptr, typ=I32, align=1)
                    value = b.sub(b.load(data_ptr, typ=I64, align=1), b.zext(meta_len, I64))
                b.store(b.inttoptr(value, I8P), self.pkt_root)
                self.wr(idx, insn.dst, value)
                return
        ptr, align = self._address(idx, insn.src, insn.off, nbytes)
        v = b.load(ptr, typ=SIZE_TYPES[nbytes], align=align)
        if nbytes < 8:
            v = b.sext(v, I64) if mode == isa.MEMSX else b.zext(v, I64)
        self.wr(idx, insn.dst, v)

    def _store(self, idx: int, insn: isa.Insn) -> None:
        b = self.b
        mode = isa.mode(insn.opcode)
        nbytes = isa.SIZE_BYTES[isa.size(insn.opcode)]
        ty = SIZE_TYPES[nbytes]
        if mode == isa.ATOMIC and insn.cls == isa.STX:
            self._atomic(idx, insn, nbytes)
            return
        if mode != isa.MEM:
            raise self.error(idx, f"unknown store mode (opcode {insn.opcode:#04x})")
        ptr, align = self._address(idx, insn.dst, insn.off, nbytes, store=True)
        if insn.cls == isa.ST:
            value = ir.Constant(ty, insn.imm & ((1 << (8 * nbytes)) - 1))
        else:
            value = self.rd(insn.src)
            if nbytes < 8:
                value = b.trunc(value, ty)
        word = self._stack_word(insn.dst, insn.off, nbytes)
        if word is None:
            b.store(value, ptr, align=align)
            return
        # A narrow stack store becomes a read-modify-write of its aligned
        # 8-byte word (`ptr` above only checked the bounds), so that every
        # store to the word is full width: GVN then forwards a key built field
        # by field into the word loads a spliced hash or compare makes, and
        # the CPU does not stall a wide load over several narrow stores. The
        # stack is private, so the extra load and store are not observable.
        pos, shift = word
        wptr = self._frame_word(pos)
        self.narrow_words.add(pos)
        mask = ((1 << (8 * nbytes)) - 1) << shift
        kept = b.and_(b.load(wptr, typ=I64, align=8), ir.Constant(I64, ~mask & 0xFFFFFFFFFFFFFFFF))
        new = b.shl(b.zext(value, I64), ir.Constant(I64, shift)) if shift else b.zext(value, I64)
        b.store(b.or_(kept, new), wptr, align=8)

    def _stack_word(self, base: int, off: int, nbytes: int) -> tuple[int, int] | None:
        """The frame position of the aligned 8-byte word holding a narrower
        stack access, and the access's bit offset in it; None unless the access
        is narrower than 8 bytes, at a constant r10 offset and inside one word."""
        tag = self.state[base]
        if nbytes == 8 or tag is None or tag[0] != "fp":
            return None
        pos = isa.STACK_SIZE + tag[1] + off
        if (pos & 7) + nbytes > 8:
            return None
        return pos & ~7, 8 * (pos & 7)

    def _frame_word(self, pos: int) -> ir.Value:
        return self.b.bitcast(self.b.gep(self.frame, [I32(0), I32(pos)]), I64.as_pointer())

    def _atomic(self, idx: int, insn: isa.Insn, nbytes: int) -> None:
        b = self.b
        if nbytes not in (4, 8):
            raise self.error(idx, f"atomic operation on {nbytes} bytes")
        ty = SIZE_TYPES[nbytes]
        tag = self.state[insn.dst]
        if tag is not None and tag[0] == "ctx":
            raise self.error(idx, "atomic operation on the context")
        ptr, _ = self._address(idx, insn.dst, insn.off, nbytes)
        src = self.rd(insn.src)
        val = src if nbytes == 8 else b.trunc(src, ty)
        widen = (lambda x: x) if nbytes == 8 else (lambda x: b.zext(x, I64))
        if insn.imm == isa.CMPXCHG:
            expected = self.rd(0)
            expected = expected if nbytes == 8 else b.trunc(expected, ty)
            pair = b.cmpxchg(ptr, expected, val, "seq_cst", "seq_cst")
            self.wr(idx, 0, widen(b.extract_value(pair, 0)))
            return
        if insn.imm == isa.XCHG:
            self.wr(idx, insn.src, widen(b.atomic_rmw("xchg", ptr, val, "seq_cst")))
            return
        name = isa.ATOMIC_OPS.get(insn.imm & ~isa.FETCH)
        if name is None or insn.imm & ~(0xF0 | isa.FETCH):
            raise self.error(idx, f"unknown atomic operation {insn.imm:#x}")
        old = b.atomic_rmw(name, ptr, val, "seq_cst")
        if insn.imm & isa.FETCH:
            self.wr(idx, insn.src, widen(old))

    def _ld_imm64(self, idx: int, insn: isa.Insn) -> None:
        b = self.b
        ref = self.ml.obj.refs.get((self.section, idx))
        if ref is None:
            if insn.src != 0:
                raise self.error(idx, f"lddw with source {insn.src} (a map or function reference) "
                                      "has no relocation")
            self.wr(idx, insn.dst, ir.Constant(I64, insn.imm64))
            return
        if ref.kind not in ("data", "map", "func"):
            raise self.error(idx, f"lddw with a {ref.kind} relocation")
        if ref.kind == "map" and self.ml.options.bpftime:
            fd = ir.Constant(I32, self.ml.options.map_fds[ref.target])
            self.wr(idx, insn.dst, b.call(self.ml.lddw_helper(MAP_BY_FD, I32), [fd]))
            return
        value = self.ml._address_of(ref).ptrtoint(I64)
        self.wr(idx, insn.dst, value)
