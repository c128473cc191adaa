"""Emission: one eBPF function to LLVM IR, reading the data-flow facts.

`FunctionEmitter.insn` is the one switch over instruction classes, as the
kernel's x86 JIT has one: every instruction is lifted in one place. It
decides nothing about values itself; what a register points into comes from
the facts (dataflow.py) before each instruction.

Each eBPF function is an LLVM function `i64 (i64 x5)` with its own 512-byte
frame; registers are SSA values (registers.py), and accesses at a constant
offset from r10 are GEPs into the frame so that SROA promotes stack slots. Every operation whose C counterpart is undefined (division by
zero, INT_MIN / -1, wide shifts) gets the result eBPF defines, so the IR
has no undefined behaviour.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from llvmlite import ir

from ..facts import abi, contexts, isa, maps
from ..facts.helpers import MAP_LOOKUP, TAIL_CALL
from ..errors import EbpfLtoError
from . import legacy, libcalls, switches
from .cfg import select_shaped as cfg_select_shaped
from .registers import Registers
from .counts import Counts
from .dataflow import Facts
from .guard import (EFAULT, ENV_STOPPED, HIDDEN_SHADOWS, LIKELY, NONE, Guard, branch_weights,
                    refuse_always_outside)
from .values import Kind, Value

if TYPE_CHECKING:
    from .module import Func, ModuleLifter

I1, I8, I16, I32, I64 = (ir.IntType(n) for n in (1, 8, 16, 32, 64))
I64P = I64.as_pointer()
I8P = I8.as_pointer()
PTR = ir.PointerType()   # opaque: what an access through it reads is the access's type
FRAME = ir.ArrayType(I8, isa.STACK_SIZE)
SIZE_TYPES = {1: I8, 2: I16, 4: I32, 8: I64}
M64 = 0xFFFFFFFFFFFFFFFF
MAX_TAIL_CALL_CNT = 33
ENOENT = 2
STOPPED_R0 = M64  # r0 when a callx names nothing callable
PREDICATES = {"jeq": "==", "jne": "!=", "jgt": ">", "jge": ">=", "jlt": "<", "jle": "<=",
              "jsgt": ">", "jsge": ">=", "jslt": "<", "jsle": "<="}


class FunctionEmitter:
    """Emits one function's body into its `ir.Function`."""

    def __init__(self, ml: ModuleLifter, func: Func, facts: Facts, counts: Counts | None,
                 counter_base: int | None):
        self.ml = ml
        self.func = func
        self.cfg = func.cfg
        self.facts = facts
        self.counts = counts                  # this function's profile, if it fits
        self.counter_base = counter_base      # its first counter, when instrumented
        self.section = func.key.section
        self.slots = ml.obj.code[self.section]
        self.fn = func.ir_func

    def error(self, idx: int, reason: str) -> EbpfLtoError:
        return self.ml.error(reason, self.func.key, idx)

    def emit(self) -> None:
        cfg = self.cfg
        entry = self.fn.append_basic_block("entry")
        self.blocks = {leader: self.fn.append_basic_block(f"L{leader}") for leader in cfg.order}
        # r1-r5 are the arguments; r0 and r6-r9 start at 0.
        self.regs = Registers(entry, {r: self.fn.args[r - 1] for r in range(1, 6)})
        b = self.b = self.regs.b
        self.frame = b.alloca(FRAME, name="frame")
        self.frame.align = 16
        self.frame_ptrs = {}   # _frame_ptr
        self.fp = b.ptrtoint(b.gep(self.frame, [I32(0), I32(isa.STACK_SIZE)]), I64, name="fp")
        # Pointer roots: an access through a register derived from one is
        # emitted as root + (address - root), which LLVM folds to root + offset,
        # so it can see that a loop walks consecutive memory and vectorize it.
        self.arg_roots = {r: b.inttoptr(self.fn.args[r - 1], PTR, name=f"root{r}")
                          for r in range(1, 6)}
        self.pkt_root = b.alloca(PTR, name="pkt")
        self.guard = None
        if self.func.checked or self.ml.options.checks:
            hidden = list(self.fn.args[-(HIDDEN_SHADOWS + 2):]) if self.func.checked else None
            self.guard = Guard(self, hidden, self.ml.function_name(self.func))
            if self.func.key in self.ml.address_taken:
                # A callback's call is a step: bpf_loop and for_each_map_elem call it
                # again and again. Other calls need none: without recursion, a
                # call ends if its loops do.
                self.guard.charge(cfg.start)
        # Loops emitted twice (guard.py Guard.versions): their copies' blocks, and
        # while one's copy is emitted, (its version, its blocks).
        instrument = self.counter_base is not None
        self.versions = self.guard.versions() if self.guard and not instrument else {}
        self.fast_blocks = {h: {leader: self.fn.append_basic_block(f"L{leader}.fast")
                                for leader in cfg.order if leader in version.blocks}
                            for h, version in self.versions.items()}
        self.copy = None
        self._unseal()
        b.branch(self.guard.dispatch(cfg.start) if cfg.start in self.versions else self.blocks[cfg.start])
        # Instrumented code keeps the trees: their branches are what the counters count.
        self.switches = {} if instrument else switches.find(self.slots, cfg.order, cfg.succs,
                                                            cfg.insns)
        self.branch_index = {idx: n for n, idx in enumerate(cfg.branches)}
        self.narrow_words: set[int] = set()  # frame words a narrow store writes (store)
        for n, leader in enumerate(cfg.order):
            b.position_at_end(self.blocks[leader])
            if instrument:
                self._count(n)
            self._block(leader)
        for h, version in self.versions.items():
            self.copy = (version, self.fast_blocks[h])
            for leader in cfg.order:
                if leader in version.blocks:
                    b.position_at_end(self.copy[1][leader])
                    self._block(leader)
            self.copy = None
        self.regs.finish(self.fn)
        # The words narrow stores read-modify-write start at zero, so that their
        # loads never read memory nothing wrote. SROA folds the zeros into
        # promoted slots, and DSE drops them where a full store follows.
        b.position_before(entry.terminator)
        for pos in sorted(self.narrow_words):
            b.store(ir.Constant(I64, 0), self._frame_word(pos), align=8)
        self.func.checks_inside = bool(self.func.entry_checks) and self.guard.checks_more()

    def _block(self, leader: int) -> None:
        b, guard = self.b, self.guard
        if guard is not None:
            guard.plan_block(self.cfg.insns(leader))
        for idx in self.cfg.insns(leader):
            self.idx, self.state = idx, self.facts[idx]
            insn = self.slots[idx]
            self.insn(idx, insn)
            if guard is not None and not b.block.is_terminated:
                guard.after(insn)
        if not b.block.is_terminated:
            b.branch(self._to(leader, self.cfg.succs[leader][0]))

    def _unseal(self) -> None:
        """The blocks that may get a predecessor after a read in them (registers.py):
        those a later block jumps back to, those a loop's copy leaves to (the copies
        come last), and the copies themselves."""
        cfg = self.cfg
        left = {dst for version in self.versions.values() for src in version.blocks
                for dst in cfg.succs[src] if dst not in version.blocks}
        self.regs.unseal(self.blocks[leader] for leader in cfg.order
                         if leader in left or any(p >= leader for p in cfg.preds[leader]))
        for copies in self.fast_blocks.values():
            self.regs.unseal(copies.values())

    def _to(self, src: int, dst: int) -> ir.Block:
        """The block a branch from block src to block dst jumps to: in a loop's copy,
        the copy's; into a loop emitted twice, the choice of copy (guard.py: budget,
        versions)."""
        if self.copy is not None and dst in self.copy[0].blocks:
            block = self.copy[1][dst]
        elif dst in self.versions and src not in self.versions[dst].body:
            block = self.guard.dispatch(dst)
        else:
            block = self.blocks[dst]
        return block if self.guard is None else self.guard.target(src, dst, block)

    def _count(self, index: int) -> None:
        """counters[base + index] += 1 (plain, not atomic: a profile tolerates races)."""
        b = self.b
        slot = b.gep(self.ml.counters, [I32(0), I32(self.counter_base + index)])
        b.store(b.add(b.load(slot), ir.Constant(I64, 1)), slot)

    def reg(self, r: int) -> Value:
        """What the facts say register r holds before the current instruction."""
        return self.state.regs[r]

    def rd(self, r: int) -> ir.Value:
        return self.fp if r == 10 else self.regs.read(r)

    def wr(self, idx: int | None, r: int, value: ir.Value) -> None:
        if r == 10:
            raise self.error(idx, "write to r10, the read-only frame pointer")
        self.regs.write(r, value)

    def check_branch(self, ok: ir.Value, cont: ir.Block, stop: ir.Block) -> ir.Instruction:
        """Branch to `cont` if ok, else to `stop`, whose path reads no register and ends
        the program; emission goes on in `cont`, the block's register values with it."""
        br = self.regs.branch_on(ok, cont, stop)
        self.regs.carry_to(cont)
        return br

    def insn(self, idx: int, insn: isa.Insn) -> None:
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
        elif isa.is_packet_load(insn):
            legacy.packet_load(self, idx, insn)
        else:
            raise self.error(idx, f"unsupported instruction (opcode {insn.opcode:#04x})")

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
        if op == isa.MOV and not insn.opcode & isa.X:
            # mov64 sign-extends its immediate; mov32 zero-extends.
            self.wr(idx, insn.dst, ir.Constant(I64, insn.imm & (M64 if wide else 0xFFFFFFFF)))
            return
        dst = None if op == isa.MOV else self.rd(insn.dst)   # a move does not read it
        a = dst if wide or dst is None else b.trunc(dst, I32)
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
            count = b.and_(v, ir.Constant(ty, bits - 1)) if insn.opcode & isa.X \
                else ir.Constant(ty, insn.imm & (bits - 1))
            r = {isa.LSH: b.shl, isa.RSH: b.lshr, isa.ARSH: b.ashr}[op](a, count)
        elif op == isa.NEG:
            r = b.neg(a)
        elif op == isa.MOV:
            if insn.off and insn.opcode & isa.X:
                from_ty = {8: I8, 16: I16, 32: I32}.get(insn.off)
                if from_ty is None or (not wide and insn.off == 32):
                    raise self.error(idx, f"movsx with offset {insn.off}")
                r = b.sext(b.trunc(src, from_ty), ty)
            else:
                r = v
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
            if self.guard is not None:
                self.guard.charge_loops(idx)
            self._ret(self.rd(0), stopped=False)
            return
        if op == isa.CALL and wide:
            self._call(idx, insn)
            return
        leader = self.cfg.block_of[idx]
        succs = self.cfg.succs[leader]
        if op == isa.JA:
            b.branch(self._to(leader, succs[0]))
            return
        if op not in isa.COND_JMP_OPS:
            raise self.error(idx, f"unknown jump operation (opcode {insn.opcode:#04x})")
        ty = I64 if wide else I32
        a = self.rd(insn.dst)
        if insn.opcode & isa.X:
            v = self.rd(insn.src)
        else:
            v = ir.Constant(I64, insn.imm & M64)  # sign-extended
        if not wide:
            a, v = b.trunc(a, I32), b.trunc(v, I32)
        if idx in self.switches:
            self._switch(leader, self.switches[idx], a)
            return
        if op == isa.JSET:
            cond = b.icmp_unsigned("!=", b.and_(a, v), ir.Constant(ty, 0))
        else:
            name = isa.COND_JMP_OPS[op]
            cond = (b.icmp_signed if name.startswith("js") else b.icmp_unsigned)(
                PREDICATES[name], a, v)
        taken, fall = succs
        instrument = self.counter_base is not None
        target = (self.fn.append_basic_block(f"L{idx}.taken") if instrument
                  else self._to(leader, taken))
        br = b.cbranch(cond, target, self._to(leader, fall))
        if instrument:
            b.position_at_end(target)
            self._count(len(self.cfg.order) + self.branch_index[idx])
            b.branch(self._to(leader, taken))
        if self.counts is not None and not cfg_select_shaped(self.cfg, self.slots, taken, fall):
            hits = self.counts.taken[idx]
            total = self.counts.blocks[self.cfg.block_of[idx]]
            self.weigh(br, [hits, max(total - hits, 0)])

    def weigh(self, inst, weights: list[int]) -> None:
        inst.set_metadata("prof", branch_weights(self.ml.module, weights))

    def _switch(self, leader: int, sw: switches.Switch, value: ir.Value) -> None:
        """A compare tree as one switch (switches.py); with a profile, each case is weighed
        by the count of the tree edge its value took, shared among that edge's values."""
        ty = value.type
        # The tree's edges into a leaf come from its inner nodes too: any of them
        # that closes a loop makes the switch's edge to that leaf close it.
        src = {e.leaf: self.cfg.block_of[e.jump] for e in sw.edges
               if (self.cfg.block_of[e.jump], e.leaf) in self.cfg.back_edges}
        default = self._to(src.get(sw.default, leader), sw.default)
        inst = self.regs.switch(value, default, [
            (ir.Constant(ty, case), self._to(src.get(leaf, leader), leaf))
            for case, leaf, _ in sw.cases])
        if self.counts is None:
            return

        def count(e: switches.Edge) -> int:
            hits = self.counts.taken[e.jump]
            return hits if e.taken else max(
                self.counts.blocks[self.cfg.block_of[e.jump]] - hits, 0)
        weights = [sum(count(e) for e in sw.edges if e.leaf == sw.default)]
        weights += [count(sw.edges[n]) // sw.edges[n].values for _, _, n in sw.cases]
        self.weigh(inst, weights)

    def stop(self, r0: ir.Value) -> None:
        """End the whole program with r0 (checked functions and unwinds)."""
        self._ret(r0, stopped=True)

    def _ret(self, r0: ir.Value, stopped: bool) -> None:
        if self.func.may_stop:
            ty = self.fn.function_type.return_type
            agg = self.b.insert_value(ir.Constant(ty, ir.Undefined), r0, 0)
            self.b.ret(self.b.insert_value(agg, ir.Constant(I1, int(stopped)), 1))
        else:
            self.b.ret(r0)

    def stop_if(self, cond: ir.Value, r0: ir.Value) -> None:
        """End the whole program with r0 when cond holds."""
        stop = self.fn.append_basic_block("stop")
        cont = self.fn.append_basic_block("cont")
        here = self.b.block
        self.regs.branch_on(cond, stop, cont)
        self.b.position_at_end(stop)
        self._ret(r0, stopped=True)
        self.b.position_at_end(here)
        self.regs.carry_to(cont)

    def call_args(self) -> list[ir.Value]:
        """r1-r5 for a call; a pointer argument keeps its root, so that once the
        callee is inlined LLVM still knows which object it points into."""
        out = []
        for r in range(1, 6):
            fact, value = self.reg(r), self.rd(r)
            if fact.kind is Kind.FRAME and 0 <= isa.STACK_SIZE + fact.off <= isa.STACK_SIZE:
                ptr = self.b.gep(self.frame, [I32(0), I32(isa.STACK_SIZE + fact.off)])
                value = self.b.ptrtoint(ptr, I64)
            elif fact.kind in (Kind.ARG, Kind.PACKET):
                value = self.b.ptrtoint(self._rebased(fact, value), I64)
            out.append(value)
        return out

    def _rebased(self, fact: Value, addr: ir.Value | None, off: int = 0) -> ir.Value:
        """addr as a pointer derived from its root: root + (addr - root); an argument
        pointer at an offset the facts know, root + that offset + off (addr unused)."""
        if fact.kind is Kind.PACKET:
            root = self.b.load(self.pkt_root, typ=PTR)
            root_addr = self.b.ptrtoint(root, I64)
        else:
            root, root_addr = self.arg_roots[fact.root], self.fn.args[fact.root - 1]
            if (known := fact.range.value) is not None:
                return self.b.gep(root, [ir.Constant(I64, (known + off) & M64)], source_etype=I8)
        return self.b.gep(root, [self.b.sub(addr, root_addr)], source_etype=I8)

    def _call(self, idx: int, insn: isa.Insn) -> None:
        kind, ref = isa.call_kind(insn), self.ml.obj.refs.get((self.section, idx))
        if insn.opcode == isa.CALLX:
            self._callx(idx, insn)
        elif ref is not None and ref.kind == "libc":
            libcalls.lower(self, idx, ref.target)
        elif kind is isa.CallKind.LOCAL:
            if ref is None or ref.function is None:
                raise self.error(idx, "local call without a resolved target")
            self._site(idx, self._call_local(self.ml.funcs[ref.function]), None)
        elif kind is isa.CallKind.HELPER and insn.imm == TAIL_CALL and not self.ml.options.bpftime:
            self._tail_call(idx)
        elif (kind is isa.CallKind.HELPER and insn.imm == MAP_LOOKUP
              and (array := self._runtime_array(1)) is not None):
            self._array_lookup(idx, array)
        elif kind is isa.CallKind.HELPER:
            self._helper_call(idx, insn.imm)
        elif kind is isa.CallKind.KFUNC:
            raise self.error(idx, f"call to kernel function (kfunc) with BTF id {insn.imm}, "
                                  "which needs a kernel")
        else:
            raise self.error(idx, f"call with unknown source {insn.src}")

    def _helper_call(self, idx: int, hid: int, site: bool = True) -> None:
        """A helper call; in a checked build its pointer arguments are checked first (a bad
        one gets -EFAULT instead of the call), and its result's region is known."""
        b, guard = self.b, self.guard
        specs = self.ml.options.helper_args.get(hid, ())
        ok = guard.helper_args(idx, specs) if guard else None
        if ok is not None:
            call, bad, done = (self.fn.append_basic_block(f"L{idx}.{n}")
                               for n in ("call", "bad", "called"))
            self.weigh(b.cbranch(ok, call, bad), LIKELY)
            b.position_at_end(bad)
            self.wr(idx, 0, ir.Constant(I64, -EFAULT & M64))
            guard.give(0, NONE)
            b.branch(done)
            b.position_at_end(call)
        args, env = self.call_args(), None
        if guard is not None:
            env = guard.call_args(args, hid, specs)
        r0 = b.call(self.ml.helper(hid), args)
        if env is not None:  # a callback that stopped the program stops it here too
            stopped = b.load(b.gep(env, [I32(0), I32(ENV_STOPPED)]))
            self.stop_if(b.icmp_unsigned("!=", stopped, ir.Constant(I64, 0)), ir.Constant(I64, 0))
        if site:
            self._site(idx, r0, hid)
        self.wr(idx, 0, r0)
        if guard is not None:
            guard.helper_result(hid, r0)
        if ok is not None:
            b.branch(done)
            b.position_at_end(done)
            r0 = self.rd(0)
        if hid in self.ml.options.unwind_helpers:
            self.stop_if(b.icmp_unsigned("==", r0, ir.Constant(I64, 0)), r0)

    def _tcc(self) -> ir.Value:
        return self.fn.args[5] if self.func.has_tcc else ir.Constant(I64, 0)

    def _call_local(self, callee: Func) -> ir.CallInstr:
        b = self.b
        args = self.call_args() + [self._tcc()] * callee.has_tcc
        if callee.checked:
            args += self.guard.hidden()
        result = call = b.call(callee.ir_func, args)
        if callee.may_stop:
            r0 = b.extract_value(result, 0)
            self.wr(None, 0, r0)
            self.stop_if(b.extract_value(result, 1), r0)
        else:
            self.wr(None, 0, result)
        return call

    def _in_loop(self, idx: int) -> bool:
        return self.cfg.block_of[idx] in self.cfg.loop_blocks

    def _site(self, idx: int, call: ir.CallInstr, helper_id: int | None) -> None:
        self.ml.add_site(self.func, idx, call.callee.name, helper_id, self._in_loop(idx), call)

    def _runtime_array(self, r: int):
        """bpftime's ARRAY map that register r holds, if the facts know one (by-fd: no map_val)."""
        fact, opts = self.reg(r), self.ml.options
        if not opts.bpftime or opts.map_handle == abi.BY_FD or fact.kind is not Kind.MAP \
                or fact.off:
            return None
        m = self.ml.obj.maps[fact.map]
        # The kernel refuses arrays with other keys; PERCPU_ARRAY has one copy per cpu.
        return m if m.type == maps.MAP_TYPE_IDS["array"] and m.key_size == 4 else None

    def _array_lookup(self, idx: int, m) -> None:
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
        base = b.call(self.ml.map_val(), [self.rd(1)])
        value = b.add(base, b.mul(key, ir.Constant(I64, m.value_size)))
        found = b.and_(b.icmp_unsigned("<", key, ir.Constant(I64, m.max_entries)),
                       b.icmp_unsigned("!=", base, ir.Constant(I64, 0)))
        self.wr(idx, 0, b.select(found, value, ir.Constant(I64, 0)))
        if self.guard is not None:
            self.guard.helper_result(MAP_LOOKUP, self.rd(0))
        self.ml.add_site(self.func, idx, abi.helper_symbol(MAP_LOOKUP),
                         MAP_LOOKUP, self._in_loop(idx), None,
                         f"ARRAY {m.name}: __lddw_helper_map_val + key * {m.value_size} "
                         "(--abi bpftime)")

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
        go = b.icmp_unsigned("<", tcc, ir.Constant(I64, MAX_TAIL_CALL_CNT))
        if self.guard is not None and (valid := self.guard.map_check(2)) is not None:
            go = b.and_(go, valid)  # the map runtime reads the prog_array r2 names
        b.cbranch(go, lookup, fail)
        b.position_at_end(lookup)
        number = b.call(ml.prog_array_get(), [b.inttoptr(self.rd(2), I8P), b.trunc(self.rd(3), I32)])
        # A checked build hands the target the context itself, whatever r1 holds.
        ctx = self.rd(1) if self.guard is None else self.guard.ctx
        zero = ir.Constant(I64, 0)
        targets = [(n, ml.funcs[prog.entry], self.fn.append_basic_block(f"tail{idx}.p{n}"))
                   for n, prog in enumerate(ml.obj.programs) if prog.entry in ml.funcs]
        self.regs.switch(number, fail, [(ir.Constant(I32, n), blk) for n, _, blk in targets])
        for n, target, blk in targets:
            b.position_at_end(blk)
            args = [ctx, zero, zero, zero, zero]
            if target.has_tcc:
                args.append(b.add(tcc, ir.Constant(I64, 1)))
            if target.checked:
                args += [zero] * HIDDEN_SHADOWS + [self.guard.budget, ctx]
            result = b.call(target.ir_func, args)
            self._ret(b.extract_value(result, 0) if target.may_stop else result, stopped=True)
        b.position_at_end(fail)
        self.wr(idx, 0, ir.Constant(I64, -ENOENT & M64))

    def _callx(self, idx: int, insn: isa.Insn) -> None:
        """Call through a register: a helper id of the set, or a function address."""
        b = self.b
        target = self.rd(isa.callx_register(insn))
        done = self.fn.append_basic_block(f"callx{idx}.done")
        fail = self.fn.append_basic_block(f"callx{idx}.none")
        helpers = [(hid, self.fn.append_basic_block(f"callx{idx}.h{hid}"))
                   for hid in self.ml.options.callx_helpers]
        self.regs.switch(target, fail, [(ir.Constant(I64, hid), blk) for hid, blk in helpers])
        for hid, blk in helpers:
            b.position_at_end(blk)
            self._helper_call(idx, hid, site=False)
            b.branch(done)
        b.position_at_end(fail)
        # Functions whose address the program takes are the other legal targets.
        for key in sorted(self.ml.funcs, key=lambda k: (k.section, k.start)):
            if key not in self.ml.address_taken:
                continue
            callee = self.ml.funcs[key]
            hit = self.fn.append_basic_block(f"callx{idx}.f{key.start}")
            miss = self.fn.append_basic_block(f"callx{idx}.n{key.start}")
            addr = self.ml.function_address(key).ptrtoint(I64)
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
        """Pointer and alignment for an access of `size` bytes at base+off."""
        fact = self.reg(base)
        what = ("atomic" if self.slots[idx].cls == isa.STX and isa.mode(self.slots[idx].opcode)
                == isa.ATOMIC else "store" if store else "load")
        if fact.kind is Kind.FRAME:
            pos = isa.STACK_SIZE + fact.off + off
            if pos < 0 or pos + size > isa.STACK_SIZE:
                raise self.error(idx, f"stack access at r10{fact.off + off:+d} of {size} bytes is "
                                      f"outside the {isa.STACK_SIZE}-byte frame")
            self.record(idx, what, True, f"frame slot r10{fact.off + off:+d}")
            align = min(16, pos & -pos) if pos else 16
            return self._frame_ptr(pos, size), min(align, size)
        if fact.kind is Kind.CTX:
            field = self._ctx_field(idx, fact, off, size, store)
            self.record(idx, what, True, f"context field {fact.layout.name}.{field.name}")
            user = field.user_off + (fact.off + off - field.kernel_off)
            return self.b.inttoptr(self._ctx_base(base, fact, user), PTR), 1
        if fact.kind is Kind.SCALAR and (value := fact.range.value) is not None:
            # As the verifier refuses any access through a number: no memory of
            # the program's is at an address known before it runs.
            what = "store" if store else "load"
            raise self.error(idx, f"{what} of {size} byte{'s' * (size > 1)} at the constant address "
                                  f"{(value + off) & M64:#x}: the program owns no memory there")
        refuse_always_outside(self, idx, what, fact, off, size)
        if self.guard is None and fact.kind is Kind.ARG and fact.range.value is not None:
            return self._rebased(fact, None, off), 1
        addr = self.rd(base)
        if off:
            addr = self.b.add(addr, ir.Constant(I64, off & M64))
        if self.guard is not None:
            self.guard.check_access(idx, what, base, off, size, addr)
        if fact.kind in (Kind.ARG, Kind.PACKET):
            return self._rebased(fact, addr, off), 1
        return self.b.inttoptr(addr, PTR), 1

    def record(self, idx: int, what: str, proven: bool, how: str) -> None:
        """How the access, helper call or loop at idx is kept safe (lift.Check)."""
        if self.guard is not None and self.copy is None:
            self.ml.add_check(self.func, idx, what, proven, how)

    def _ctx_field(self, idx: int, fact: Value, off: int, size: int, store: bool):
        layout = fact.layout
        kernel_off = fact.off + off
        field = layout.field_at(kernel_off, size)
        if field is None:
            raise self.error(idx, f"context access at offset {kernel_off} of {size} bytes is not a "
                                  f"field of struct {layout.name} that userspace provides")
        if store and not field.writable:
            raise self.error(idx, f"write to {layout.name}.{field.name}, which is read-only")
        return field

    def _ctx_base(self, base: int, fact: Value, user_off: int) -> ir.Value:
        """The address of userspace context offset `user_off`, from a register at ctx + off."""
        return self.b.add(self.rd(base), ir.Constant(I64, (user_off - fact.off) & M64))

    def _ldx(self, idx: int, insn: isa.Insn) -> None:
        b = self.b
        mode = isa.mode(insn.opcode)
        if mode not in (isa.MEM, isa.MEMSX):
            raise self.error(idx, f"unknown load mode (opcode {insn.opcode:#04x})")
        nbytes = isa.SIZE_BYTES[isa.size(insn.opcode)]
        if mode == isa.MEMSX and nbytes == 8:
            raise self.error(idx, "sign-extending load of 8 bytes")
        fact = self.reg(insn.src)
        if fact.kind is Kind.CTX:
            field = self._ctx_field(idx, fact, insn.off, nbytes, store=False)
            if field.kind != contexts.SCALAR:
                # The kernel's verifier turns this 32-bit load into a pointer load.
                ptr = b.inttoptr(self._ctx_base(insn.src, fact, field.user_off), I64.as_pointer())
                value = b.load(ptr, typ=I64, align=1)
                if field.kind == contexts.META_POINTER:
                    data_ptr = b.inttoptr(self._ctx_base(insn.src, fact, fact.layout.data),
                                          I64.as_pointer())
                    meta_len = b.load(ptr, typ=I32, align=1)
                    value = b.sub(b.load(data_ptr, typ=I64, align=1), b.zext(meta_len, I64))
                if self.guard is not None and field.name in ("data", "data_meta"):
                    end = b.inttoptr(self._ctx_base(insn.src, fact, fact.layout.data_end), I64P)
                    self.guard.packet_read(insn.dst, value, b.load(end, typ=I64, align=1),
                                           field.name == "data")
                b.store(b.inttoptr(value, PTR), self.pkt_root)
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
        kept = b.and_(b.load(wptr, typ=I64, align=8), ir.Constant(I64, ~mask & M64))
        new = b.shl(b.zext(value, I64), ir.Constant(I64, shift)) if shift else b.zext(value, I64)
        b.store(b.or_(kept, new), wptr, align=8)

    def _stack_word(self, base: int, off: int, nbytes: int) -> tuple[int, int] | None:
        """The frame position of the aligned 8-byte word holding a narrower
        stack access, and the access's bit offset in it; None unless the access
        is narrower than 8 bytes, at a constant r10 offset and inside one word."""
        fact = self.reg(base)
        if nbytes == 8 or fact.kind is not Kind.FRAME:
            return None
        pos = isa.STACK_SIZE + fact.off + off
        if (pos & 7) + nbytes > 8:
            return None
        return pos & ~7, 8 * (pos & 7)

    def _frame_word(self, pos: int) -> ir.Value:
        return self._frame_ptr(pos, 8)

    def _frame_ptr(self, pos: int, size: int) -> ir.Value:
        """Frame byte `pos` as a pointer for `size`-byte accesses, made once, in the entry
        block (where it dominates every access): two instructions fewer an access."""
        ptr = self.frame_ptrs.get((pos, size))
        if ptr is None:
            with self.b.goto_entry_block():
                ptr = self.frame_ptrs[(pos, size)] = self.b.bitcast(
                    self.b.gep(self.frame, [I32(0), I32(pos)]), SIZE_TYPES[size].as_pointer())
        return ptr

    def _atomic(self, idx: int, insn: isa.Insn, nbytes: int) -> None:
        b = self.b
        if nbytes not in (4, 8):
            raise self.error(idx, f"atomic operation on {nbytes} bytes")
        ty = SIZE_TYPES[nbytes]
        if self.reg(insn.dst).kind is Kind.CTX:
            raise self.error(idx, "atomic operation on the context")
        ptr, _ = self._address(idx, insn.dst, insn.off, nbytes, store=True)
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
        ref = self.ml.obj.refs.get((self.section, idx))
        if ref is None:
            if insn.src != 0:
                raise self.error(idx, f"lddw with source {insn.src} (a map or function reference) "
                                      "has no relocation")
            self.wr(idx, insn.dst, ir.Constant(I64, insn.imm64))
            return
        if ref.kind not in ("data", "map", "func"):
            raise self.error(idx, f"lddw with a {ref.kind} relocation")
        if ref.kind == "map" and self.ml.options.bpftime:  # the handle, as bpftime bakes it
            self.wr(idx, insn.dst, self.ml.map_handle(ref.target, self.b))
            return
        self.wr(idx, insn.dst, self.ml.address_of(ref).ptrtoint(I64))
        if self.guard is not None and ref.kind == "data":  # the whole section
            base = self.ml.address_of(dataclasses.replace(ref, offset=0)).ptrtoint(I64)
            self.guard.data_read(insn.dst, base, self.ml.obj.data[ref.target])
