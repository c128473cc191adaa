"""The module lifter: which functions to lift, their analysis in call order, then emission.

It gathers the programs and every function they reach, refuses what the
kernel refuses of the call graph (recursion, frames nested too deep),
builds each function's CFG (cfg.py) and runs the data flow over them all,
argument values flowing from call sites to callees (dataflow.py), then has
each function emitted (emit.py) and adds the entries and tables (tables.py).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from llvmlite import ir

from ..elf.model import EbpfObject, FuncKey, Program
from ..errors import EbpfLtoError
from ..facts import abi, contexts, isa
from ..facts.helpers import TAIL_CALL
from ..facts.abi import Region
from . import cfg as cfgs, counts as profile_counts, dataflow, guard, tables, validity, values
from .cfg import Cfg
from .dataflow import Facts
from .emit import I1, I8P, I32, I64, FunctionEmitter
from .entries import entry_checks, trampoline
from .guard import HIDDEN_SHADOWS, fault_record_type
from .model import Check, LiftOptions, Lifted, Site
from .values import UNKNOWN, Kind, Value

PTR = ir.PointerType()


@dataclass
class Func:
    """A function being lifted: where it is, what it calls, how it is called."""
    key: FuncKey
    name: str
    end: int
    may_stop: bool = False   # can end the whole program (returns {i64, i1})
    has_tcc: bool = False    # takes the tail-call depth as a sixth argument
    checked: bool = False    # takes its arguments' regions, the budget and the context (guard.py)
    entered_only: bool = False  # no function calls it: only programs enter it (shadows.py)
    # A raw program's function whose C entry makes its entry checks before calling it
    # (entries.entry_checks): (writes, first insn, lo, hi) of its argument's bytes.
    entry_checked: bool = False
    entry_checks: list[tuple[bool, int, int, int]] = field(default_factory=list)
    checks_inside: bool = False   # its code checks more, or calls (emit.py)
    trampoline: ir.Function | None = None  # a checked callback's C entry (entries.trampoline)
    ir_func: ir.Function | None = None
    callees: set[FuncKey] = field(default_factory=set)
    cfg: Cfg | None = None


class ModuleLifter:
    def __init__(self, obj: EbpfObject, options: LiftOptions, name: str):
        self.obj = obj
        self.options = options
        self.module = ir.Module(name=name)
        self.funcs: dict[FuncKey, Func] = {}
        self.helpers: dict[int, ir.Function] = {}
        self.data: dict[str, ir.GlobalVariable] = {}
        self.maps: dict[str, ir.GlobalVariable] = {}
        self.map_fds: dict[str, int] = {}            # --abi bpftime: each map's fd
        self.sites: list[Site] = []
        self._site_at: dict[tuple[str, int], Site] = {}   # (function, insn) -> its site
        self._data_regions: list[tuple] | None = None
        self._names: dict[FuncKey, ir.Constant] = {}     # function_name's
        self.counts: dict[tuple[str, int], int] = {}
        self.stale: list[str] = []
        self.skipped_targets: list[str] = []
        self.checks: list[Check] = []
        self.tail_calls = False
        self.counters: ir.GlobalVariable | None = None
        # Functions whose address the code loads or the data holds: callbacks and tables.
        self.address_taken = {r.function for r in (*obj.refs.values(), *obj.data_refs.values())
                              if r.kind == "func"}

    def error(self, reason: str, key: FuncKey | None = None, insn: int | None = None):
        return EbpfLtoError(reason, file=self.obj.path,
                            section=key.section if key else None, insn=insn)

    def prepare(self, programs: list[Program]) -> list[Program]:
        """Gather, check and build the CFGs of every function the programs reach;
        the programs to emit entries for (tail-call targets added)."""
        self._collect([p.entry for p in programs] + sorted(
            {r.function for r in self.obj.data_refs.values() if r.kind == "func"},
            key=lambda k: (k.section, k.start)))
        for prog in programs:
            self._check_packet_loads(prog)
        entries = list(programs)
        if self.tail_calls:
            # Any program of the object may be the target of a tail call; one that
            # cannot be compiled is left out, and a tail call to it fails as to an
            # empty slot.
            for prog in self.obj.programs:
                if prog not in programs and self._collect_target(prog):
                    entries.append(prog)
        for func in self.funcs.values():
            if func.cfg is None:
                self._prepare(func)
        self._check_calls([p.entry for p in entries])
        self._mark_stopping()
        return entries

    def run(self, programs: list[Program]) -> Lifted:
        entries = self.prepare(programs)
        names: set[str] = set()
        for func in self.funcs.values():
            # Callbacks are called from C with five arguments, so they count from 0.
            func.has_tcc = self.tail_calls and func.key not in self.address_taken
            # Checked functions may fault; a callback is entered from C through a
            # trampoline with the C signature.
            func.checked = self.options.checks
            func.may_stop = func.may_stop or func.checked
            ret = ir.LiteralStructType([I64, I1]) if func.may_stop else I64
            hidden = [I64] * HIDDEN_SHADOWS + [I64.as_pointer(), I64] if func.checked else []
            fnty = ir.FunctionType(ret, [I64] * (6 if func.has_tcc else 5) + hidden)
            func.ir_func = ir.Function(self.module, fnty, tables.unique(f"bpf.{func.name}", names))
            func.ir_func.linkage = "internal"
            if func.checked:
                # Nothing the program can reach points at the budget: LICM may keep
                # it in a register through loops that store to memory.
                func.ir_func.args[-2].add_attribute("noalias")
        called = self.address_taken.union(*(f.callees for f in self.funcs.values()))
        raw = {p.entry for p in programs if contexts.for_program_type(p.prog_type) is None}
        for func in self.funcs.values():
            func.entered_only = func.key not in called
            # Only its C entry calls it: no callback, and no tail call, which would
            # enter it with no regions and make its assumed entry check false.
            func.entry_checked = func.checked and func.entered_only and not func.has_tcc \
                and func.key in raw
            if func.checked and func.key in self.address_taken:
                func.trampoline = trampoline(self, func, tables.unique(
                    f"bpf.{func.name}.cb", self.module.globals))
        if self.options.bpftime:
            self.map_fds = self._bpftime_map_fds()
        else:
            try:
                self.maps = tables.map_descriptors(self.module, self.obj.maps,
                                                   self.options.ncpus, self.options.maps_extern)
            except EbpfLtoError as err:
                raise err.located(file=self.obj.path)
        facts = self.analyze(entries)
        bases = self._instrument() if self.options.instrument else {}
        for func in self.funcs.values():
            FunctionEmitter(self, func, facts[func.key], self._profile(func),
                            bases.get(func.key)).emit()
        for i, prog in enumerate(programs):
            named = self._entry(prog.name, prog)
            if i == 0 and prog.name != abi.ENTRY_SYMBOL:
                self._alias(abi.ENTRY_SYMBOL, named)
        if not self.options.bpftime:  # bpftime's prog_array values are its program fds
            tables.program_table(self.module, [p.name for p in self.obj.programs])
        sizes = {f.ir_func.name: f.end - f.key.start for f in self.funcs.values()}
        return Lifted(self.module, self.sites, sizes, self.counts, self.stale,
                      self.skipped_targets, self.checks)

    # -- the functions to lift ---------------------------------------------

    def _collect(self, entries: list[FuncKey]) -> None:
        todo = deque(entries)
        while todo:
            key = todo.popleft()
            if key in self.funcs:
                continue
            fdef = self.obj.functions.get(key)
            if fdef is None:
                raise self.error(f"no function starts at instruction {key.start}", key)
            func = Func(key, fdef.name, fdef.end)
            slots = self.obj.code[key.section]
            for idx in range(key.start, min(fdef.end, len(slots))):
                ref = self.obj.refs.get((key.section, idx))
                if ref is not None and ref.function is not None:
                    func.callees.add(ref.function)
                    todo.append(ref.function)
                kind = isa.call_kind(slots[idx])
                if kind is isa.CallKind.REGISTER or \
                        (slots[idx] is not None and isa.is_packet_load(slots[idx])):
                    func.may_stop = True
                elif kind is isa.CallKind.HELPER:
                    if slots[idx].imm == TAIL_CALL and not self.options.bpftime:
                        self.tail_calls = func.may_stop = True
                    elif slots[idx].imm in self.options.unwind_helpers:
                        func.may_stop = True
            self.funcs[key] = func

    def _prepare(self, func: Func) -> None:
        """Every slot a valid instruction (reachable or not, as the kernel checks), and the CFG."""
        slots = self.obj.code[func.key.section]
        try:
            for idx in range(func.key.start, min(func.end, len(slots))):
                reason = slots[idx] is not None and validity.check(slots[idx])
                if reason:
                    raise EbpfLtoError(reason, insn=idx)
            func.cfg = cfgs.build(slots, func.key.start, func.end)
        except EbpfLtoError as err:
            raise err.located(file=self.obj.path, section=func.key.section)

    def _collect_target(self, prog: Program) -> bool:
        before = set(self.funcs)
        try:
            self._collect([prog.entry])
            for key in [key for key in self.funcs if key not in before]:
                self._prepare(self.funcs[key])
            self._check_packet_loads(prog)
        except EbpfLtoError as err:
            for key in [key for key in self.funcs if key not in before]:
                del self.funcs[key]
            self.skipped_targets.append(f"{prog.name}: {err.reason}")
            return False
        return True

    def _check_packet_loads(self, prog: Program) -> None:
        """ld_abs/ld_ind read the packet of an __sk_buff (legacy.py): in a program
        with another context they are refused up front, as the kernel refuses them
        (may_access_skb), so that such a tail-call target is only left out."""
        if contexts.for_program_type(prog.prog_type) is contexts.SKB:
            return
        seen, todo = set(), [prog.entry]
        while todo:
            key = todo.pop()
            if key in seen or key not in self.funcs:
                continue
            seen.add(key)
            func = self.funcs[key]
            slots = self.obj.code[key.section]
            for idx in range(key.start, min(func.end, len(slots))):
                if slots[idx] is not None and isa.is_packet_load(slots[idx]):
                    raise self.error(f"legacy packet load (ld_abs/ld_ind) in a program of "
                                     f"type {prog.prog_type}: it reads an __sk_buff's packet "
                                     "(socket filter and tc programs: --type socket or tc "
                                     "says it is one)", key, idx)
            todo.extend(func.callees)

    def _local_calls(self, func: Func) -> dict[int, FuncKey]:
        """Each bpf-to-bpf call of the function: slot -> callee."""
        slots = self.obj.code[func.key.section]
        return {idx: ref.function for idx in func.cfg
                if isa.call_kind(slots[idx]) is isa.CallKind.LOCAL
                and (ref := self.obj.refs[(func.key.section, idx)]).kind == "call"}

    def _check_calls(self, entries: list[FuncKey]) -> None:
        """Refuse bpf-to-bpf recursion and chains deeper than the kernel's frames.

        Native code would recurse until the host stack overflows; the kernel
        refuses both, so the lifter does too, at the offending call.
        """
        calls = {key: sorted(self._local_calls(func).items()) for key, func in self.funcs.items()}
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

    def _mark_stopping(self) -> None:
        """A function that calls one that may stop the program may stop it too."""
        changed = True
        while changed:
            changed = False
            for func in self.funcs.values():
                if not func.may_stop and any(self.funcs[c].may_stop for c in func.callees):
                    func.may_stop = changed = True

    # -- analysis --------------------------------------------------------------

    def analyze(self, programs: list[Program]) -> dict[FuncKey, Facts]:
        """Data flow over every function, argument values flowing from call sites to callees.

        A program's entry gets the context in r1 when its type has a context
        layout (else a pointer root); a function whose address is taken (a
        callback) gets nothing known, since its callers are not known.
        """
        unknown = (UNKNOWN,) * 5
        args: dict[FuncKey, tuple[Value, ...] | None] = {key: None for key in self.funcs}
        for ref in self.obj.refs.values():
            if ref.function in self.address_taken and ref.function in args:
                args[ref.function] = unknown
        for prog in programs:
            layout = contexts.for_program_type(prog.prog_type)
            r1 = Value(Kind.CTX, layout=layout) if layout else values.arg(1)
            new = (r1,) + unknown[1:]
            old = args[prog.entry]
            args[prog.entry] = new if old is None else dataflow.join_args(old, new)
        facts: dict[FuncKey, Facts] = {}
        work = deque(key for key, a in args.items() if a is not None)
        while work:
            key = work.popleft()
            facts[key] = self._analyze_one(self.funcs[key], args[key])
            for callee, site_args in facts[key].calls.items():
                old = args[callee]
                new = site_args if old is None else dataflow.join_args(old, site_args)
                if new != old:
                    args[callee] = new
                    work.append(callee)
        for key, func in self.funcs.items():
            if args[key] is None:  # reached by no analysed path: analyse as it is
                facts[key] = self._analyze_one(func, unknown)
        return facts

    def _analyze_one(self, func: Func, args: tuple[Value, ...]) -> Facts:
        section = func.key.section
        slots = self.obj.code[section]
        # What each relocated lddw loads: a map, or the address of data or code;
        # the C library function a call names (dataflow.Libc).
        loaded = {idx: Value(Kind.MAP, map=ref.target) if ref.kind == "map" else
                  dataflow.Libc(ref.target) if ref.kind == "libc" else UNKNOWN
                  for idx in func.cfg if (ref := self.obj.refs.get((section, idx))) is not None}
        result = dataflow.analyze(func.cfg, slots, args, loaded, self._local_calls(func))
        try:
            dataflow.check_reads(func.cfg, slots, result)
        except EbpfLtoError as err:
            raise err.located(file=self.obj.path, section=section)
        return result

    # -- profiles and counters -------------------------------------------------

    def _instrument(self) -> dict[FuncKey, int]:
        """The counter tables; each function's first counter."""
        first, rows, bases = 0, [], {}
        for func in self.funcs.values():
            n = profile_counts.ncounters(func.cfg)
            bases[func.key] = first
            rows.append((func.name, profile_counts.cfg_hash(func.cfg), n, first))
            first += n
        self.counters = tables.counter_tables(self.module, rows)
        return bases

    def _profile(self, func: Func) -> profile_counts.Counts | None:
        """This function's counts from the profile, if it has them and they still fit."""
        record = (self.options.profile or {}).get(func.name)
        if record is None:
            return None
        counts = profile_counts.match(func.cfg, record)
        if counts is None:
            self.stale.append(func.name)
            return None
        slots = self.obj.code[func.key.section]
        for idx in func.cfg:
            if isa.call_kind(slots[idx]) is not None:
                self.counts[(func.name, idx)] = counts.at(func.cfg, idx)
        func.ir_func.set_metadata("prof", self.module.add_metadata(
            [ir.MetaDataString(self.module, "function_entry_count"),
             ir.Constant(I64, counts.blocks[func.cfg.start])]))
        return counts

    # -- what emitters ask for -----------------------------------------------

    def add_check(self, func: Func, idx: int, what: str, proven: bool, how: str) -> None:
        self.checks.append(Check(func.name, idx, what, proven, how))

    def add_site(self, func: Func, idx: int, callee: str, helper_id: int | None, in_loop: bool,
                 call: ir.CallInstr | None, lowered: str = "") -> None:
        # A call emitted twice (a loop's copy) is one site with two calls.
        site = self._site_at.get((func.name, idx))
        if site is not None:
            if call is not None:
                site.copies.append(call)
            return
        site = self._site_at[(func.name, idx)] = Site(func.name, idx, callee, helper_id,
                                                      in_loop, call, lowered)
        self.sites.append(site)

    def helper(self, helper_id: int) -> ir.Function:
        fn = self.helpers.get(helper_id)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(I64, [I64] * 5),
                             abi.helper_symbol(helper_id))
            if helper_id in self.options.read_only:
                fn.attributes.add("readonly")
                fn.attributes.add("nounwind")
            self.helpers[helper_id] = fn
        return fn

    def map_val(self) -> ir.Function:
        """bpftime's `uint64_t __lddw_helper_map_val(uint64_t handle)`."""
        return self._lddw_helper(abi.MAP_VAL, I64)

    def _lddw_helper(self, name: str, arg: ir.Type) -> ir.Function:
        """One of bpftime's lddw helpers, `uint64_t NAME(arg)`.

        Declared readnone: for one run of the program the answer depends on
        the argument alone, so LLVM may share one call among many uses.
        """
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(I64, [arg]), name)
            fn.attributes.add("readnone")
            fn.attributes.add("nounwind")
        return fn

    def map_handle(self, name: str, builder: ir.IRBuilder) -> ir.Value:
        """What `lddw` of map `name` gives under --abi bpftime: the runtime's handle,
        baked in, or, by bpftime-aot build's contract (--map-handle by-fd), what
        the host's `uint64_t __lddw_helper_map_by_fd(uint32_t fd)` answers."""
        fd = self.map_fds[name]
        if self.options.map_handle == abi.BY_FD:
            return builder.call(self._lddw_helper(abi.MAP_BY_FD, I32), [ir.Constant(I32, fd)])
        return ir.Constant(I64, abi.map_handle(fd, self.options.map_handle))

    def fault_record(self) -> ir.GlobalVariable:
        """The exported fault record (facts/abi.py FAULT), zeroed."""
        gv = self.module.globals.get(abi.FAULT)
        if gv is None:
            ty = fault_record_type()
            gv = ir.GlobalVariable(self.module, ty, abi.FAULT)
            gv.initializer = ir.Constant(ty, None)
            gv.align = 8
        return gv

    def data_regions(self) -> list[tuple]:
        """Each global data section of the object as a region (guard.py); made once,
        read at every access check."""
        if self._data_regions is None:
            self._data_regions = []
            for name, sec in self.obj.data.items():
                base = self._data_global(name).bitcast(I8P)
                lo = base.ptrtoint(I64)
                hi = base.gep([ir.Constant(I64, len(sec.data))]).ptrtoint(I64)
                self._data_regions.append((lo, hi, hi if sec.writable else lo,
                                           guard.tag(Region.DATA)))
        return self._data_regions

    def function_name(self, func: Func) -> ir.Constant:
        """The function's name as a C string, for fault records."""
        if func.key not in self._names:
            self._names[func.key] = tables.cstring(self.module, f"bpf.fn.{func.name}", func.name)
        return self._names[func.key]

    def prog_array_get(self) -> ir.Function:
        fn = self.module.globals.get(abi.PROG_ARRAY_GET)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(I32, [I8P, I32]), abi.PROG_ARRAY_GET)
        return fn

    def address_of(self, ref) -> ir.Constant:
        """What a relocation names, as a constant pointer."""
        if ref.kind == "data":
            return self._data_global(ref.target).bitcast(I8P).gep([ir.Constant(I64, ref.offset)])
        if ref.kind == "map":
            if self.options.bpftime:
                raise self.error(f"initialized data holds the address of map {ref.target!r}, "
                                 "which with --abi bpftime exists only at run time")
            return self.maps[ref.target].bitcast(I8P)
        return self.function_address(ref.function)

    def function_address(self, key: FuncKey) -> ir.Constant:
        """A function's address as the program sees it: a checked callback's is its
        trampoline's, which C calls with five arguments (entries.py)."""
        func = self.funcs[key]
        return (func.trampoline or func.ir_func).bitcast(I8P)

    def _data_global(self, name: str) -> ir.GlobalVariable:
        gv = self.data.get(name)
        if gv is not None:
            return gv
        sec = self.obj.data[name]
        pointers = sorted((off, ref) for (section, off), ref in self.obj.data_refs.items()
                          if section == name)
        chunks, pos = [], 0
        for off, _ in pointers:
            chunks += [ir.ArrayType(ir.IntType(8), off - pos), I64]
            pos = off + 8
        chunks.append(ir.ArrayType(ir.IntType(8), len(sec.data) - pos))
        ty = ir.LiteralStructType(chunks, packed=True)
        gv = ir.GlobalVariable(self.module, ty,
                               tables.unique("bpf.data" + name, self.module.globals))
        gv.global_constant = not sec.writable
        gv.linkage = "internal"
        gv.align = 16
        # Registered before its initializer: data may point at itself or in a cycle.
        self.data[name] = gv
        values, pos = [], 0
        for off, ref in pointers:
            values += [ir.Constant(chunks[len(values)], bytearray(sec.data[pos:off])),
                       self.address_of(ref).ptrtoint(I64)]
            pos = off + 8
        values.append(ir.Constant(chunks[-1], bytearray(sec.data[pos:])))
        gv.initializer = ir.Constant(ty, values)
        return gv

    def _bpftime_map_fds(self) -> dict[str, int]:
        """With the bpftime ABI each map is known by the fd the runtime gave it:
        --map-fd's, else the one raw bytecode names it by, else the one bpftime's
        loader gives it (facts/abi.py)."""
        fds = self.options.map_fds
        unknown = sorted(set(fds) - set(self.obj.maps))
        if unknown:
            known = ", ".join(self.obj.maps) or "none"
            raise self.error(f"--map-fd names {unknown[0]!r}, which is not a map of the object "
                             f"(maps: {known})")
        given = dict(self.obj.map_fds) or abi.default_map_fds(self.obj.maps)
        given.update(fds)
        by_fd: dict[int, str] = {}
        for name, fd in given.items():
            if fd in by_fd:
                raise self.error(f"maps {by_fd[fd]!r} and {name!r} both have fd {fd}: give "
                                 f"each its own with --map-fd NAME=FD")
            by_fd[fd] = name
        return given

    def _alias(self, symbol: str, entry: ir.Function) -> None:
        """bpf_main as a call of the first program's entry: the program's function
        keeps one caller, so LLVM inlines it there and sees the memory it is given
        (llvmlite's IR builder has no aliases)."""
        fn = ir.Function(self.module, ir.FunctionType(I64, [PTR, I64]), symbol)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        b.ret(b.call(entry, fn.args, tail="tail"))

    def _entry(self, symbol: str, prog: Program) -> ir.Function:
        if symbol.startswith(abi.RESERVED_PREFIXES):
            raise self.error(f"program name {symbol!r} is reserved: names starting with "
                             f"{', '.join(abi.RESERVED_PREFIXES)} are ebpf-lto's own symbols")
        if symbol in self.module.globals:
            raise self.error(f"program name {symbol!r} is used twice")
        fn = ir.Function(self.module, ir.FunctionType(I64, [PTR, I64]), symbol)
        ctx, ctx_len = fn.args
        ctx.name, ctx_len.name = "ctx", "ctx_len"
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        target = self.funcs[prog.entry]
        zero = ir.Constant(I64, 0)
        r1 = b.ptrtoint(ctx, I64)
        args = [r1, ctx_len, zero, zero, zero] + [zero] * target.has_tcc
        if target.checked:
            if target.entry_checked:   # it keeps its own budget (guard.Guard)
                budget = ir.Constant(I64.as_pointer(), None)
            else:
                budget = b.alloca(I64, name="budget")
                b.store(ir.Constant(I64, self.options.max_steps), budget)
            # r1 of a program without a context layout is memory of r2 bytes.
            raw = contexts.for_program_type(prog.prog_type) is None
            end = b.add(r1, ctx_len)
            first = [r1, end, end, guard.tag(Region.MEMORY)] if raw else [zero] * 4
            args += first + [zero] * (HIDDEN_SHADOWS - len(first)) + [budget, r1]
        if target.entry_checks:
            entry_checks(self, b, target, r1, end)
            if not target.checks_inside:
                # Code that checks nothing more and calls nothing stays apart from
                # these checks: inlined, the pointer the fault record names keeps a
                # register of its own beside the code's, and the allocator serves the
                # code worse (straight/1000). Code that does is inlined, where the
                # checks here tell LLVM (and spliced helpers) how big the input is.
                target.ir_func.attributes.add("noinline")
        result = b.call(target.ir_func, args)
        b.ret(b.extract_value(result, 0) if target.may_stop else result)
        return fn
