"""Run-time checks of a checked build (docs/safety.md): regions, access checks, the budget.

Every register carries, beside its value, the region of memory that value
may touch: [lo, hi) for loads and [lo, whi) for stores (whi = lo where the
region is read-only). The regions are shadows the emitter keeps beside the
registers, SSA values as theirs are (registers.py), which LLVM folds or
deletes wherever no check reads them. They are born where the program
gets a pointer to memory it owns (r10: its frame; r1 of a raw program: the
input; a packet pointer read from the context: [data, data_end); lddw of
global data: the section; a map lookup: the value), move with moves, spills
to the frame and bpf-to-bpf calls, and survive arithmetic: a region is only
ever one the program owns, so any value may keep one, and every access that
the data-flow facts do not prove in bounds is checked against its base
register's region. A region never outlives its memory: a frame's region
stays in its function (a call returns no region in r0), packet and map
memory live as long as the run.

What the facts prove needs no check (`proven`); what proofs.py decides from
the facts says which accesses share one check (at the function's entry, or
per block) and which loops are emitted twice, with an unchecked copy entered
when one check finds every offset in bounds, and which loops need no count.

A failed check, and a budget of back edges and calls run out, stop the
program: the function writes the fault record (facts/abi.py FAULT) and
returns through the stop path every checked function has, so the entry
returns 0 and the host reads why.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from llvmlite import ir

from ..facts import abi, isa, maps
from ..facts.abi import Fault, Region
from ..facts.helpers import MAP_LOOKUP, MAP_LOOKUP_PERCPU, RINGBUF_RESERVE, ArgKind, HelperArg
from . import proofs, shadows
from .proofs import PACKET_ROOT, Version
from .values import Kind, Value

if TYPE_CHECKING:
    from .emit import FunctionEmitter

I1, I32, I64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)
I64P = I64.as_pointer()
I8P = ir.IntType(8).as_pointer()
ZERO = ir.Constant(I64, 0)
# A region is (lo, hi, whi, tag): loads in [lo, hi), stores in [lo, whi), and
# for a frame the address of the regions of its 8-byte slots, for other memory
# what it is (a Region below FRAME, which fault records report).
PARTS = ("lo", "hi", "whi", "tag")
NONE = (ZERO,) * len(PARTS)       # no region: every access through it fails
# The registers' regions and the packet's are SSA values the emitter keeps as
# it keeps r0-r9 (registers.py), by these names.
SHADOWS = tuple(tuple(f"r{r}.{part}" for part in PARTS) for r in range(10))
PACKET = tuple(f"packet.{part}" for part in PARTS)
SLOTS = isa.STACK_SIZE // 8       # 8-byte frame slots whose spills keep their regions
HIDDEN_SHADOWS = 5 * len(PARTS)   # the regions of r1-r5, passed to a checked callee
EFAULT = 14
# A check's failing side, and a loop's checked copy, run only for a program about to
# fault: weighed as llvm.expect weighs, so that block placement and register
# allocation serve the path that passes (tlv_parse's counters stay in registers).
LIKELY = [2000, 1]


# What a checked caller hands the helpers that call back (bpf_loop,
# for_each_map_elem) in their r5, and they hand the callback as its r5: the
# callback's kind, the run's budget and context, the region of the context
# argument, and where the callback says that it stopped the program.
ENV = ir.LiteralStructType([I64, I64P, I64, *[I64] * len(PARTS), I64])
ENV_KIND, ENV_BUDGET, ENV_CTX, ENV_REGION = 0, 1, 2, 3
ENV_STOPPED = ENV_REGION + len(PARTS)
CALLBACK_LOOP, CALLBACK_FOR_EACH = 1, 2
# Which helper calls back how: bpf_loop calls cb(i, ctx); for_each_map_elem
# calls cb(map, key, value, ctx).
CALLBACK_HELPERS = {181: CALLBACK_LOOP, 164: CALLBACK_FOR_EACH}


def refuse_always_outside(em: FunctionEmitter, idx: int, what: str, fact: Value, off: int,
                          size: int) -> None:
    """Refuse an access the facts prove always out of bounds, checked build or not: the
    verifier's "invalid access to map value", before the program runs."""
    offsets = fact.offsets
    if fact.kind is Kind.MAP_VALUE and not fact.null and fact.map is not None \
            and offsets is not None:
        value_size = em.ml.obj.maps[fact.map].value_size
        if offsets.umin + off >= value_size or offsets.umax + off + size <= 0:
            raise em.error(idx, f"{what} of {size} bytes at offset {offsets.umin + off} of a "
                                f"{value_size}-byte value of map {fact.map}: always outside it")





def fault_record_type() -> ir.LiteralStructType:
    """struct ebpf_lto_fault: six u64 fields, then the faulting function's name."""
    return ir.LiteralStructType([I64] * (len(abi.FAULT_FIELDS) - 1) + [ir.IntType(8).as_pointer()])


def holds(b: ir.IRBuilder, region: tuple, addr: ir.Value, size: ir.Value,
          write: bool) -> ir.Value:
    """Whether [addr, addr + size) lies in the region, for a write or a read."""
    lo, hi, whi, _ = region
    room = b.sub(whi if write else hi, lo)
    fits = b.icmp_unsigned("<=", size, room)
    return b.and_(fits, b.icmp_unsigned("<=", b.sub(addr, lo), b.sub(room, size)))


def branch_weights(module: ir.Module, weights: list[int]) -> ir.Value:
    """!prof metadata for a branch's successors, as llvm.expect makes."""
    scale = max(1, max(weights) >> 31)  # LLVM's branch weights are 32-bit
    return module.add_metadata([ir.MetaDataString(module, "branch_weights"),
                                *(ir.Constant(I32, w // scale) for w in weights)])


def write_fault(b: ir.IRBuilder, record: ir.Value, fields) -> None:
    """Store the fault record's fields (facts/abi.py FAULT_FIELDS), in order."""
    for n, v in enumerate(fields):
        b.store(v, b.gep(record, [I32(0), I32(n)]))


def tag(what: Region) -> ir.Constant:
    return ir.Constant(I64, int(what))


def is_frame(b: ir.IRBuilder, part: ir.Value) -> ir.Value:
    """Whether a region's last part is a frame's slots address rather than a tag."""
    return b.icmp_unsigned(">=", part, tag(Region.FRAME))


def span(b: ir.IRBuilder, lo: ir.Value, size: ir.Value, what: Region,
         writable: bool = True) -> tuple:
    """The region [lo, lo + size) of memory that holds no frame's slots."""
    hi = b.add(lo, size)
    return (lo, hi, hi if writable else lo, tag(what))


class Guard:
    """The checks of one function: its registers' regions, its fault exit, its budget."""

    def __init__(self, em: FunctionEmitter, hidden: list | None, name: ir.Constant):
        self.em = em
        self.name = name
        b = em.b
        self.slots = b.alloca(ir.ArrayType(I64, len(PARTS) * SLOTS), name="frame.regions")
        b.store(ir.Constant(self.slots.type.pointee, None), self.slots)
        lo = b.ptrtoint(b.gep(em.frame, [I32(0), I32(0)]), I64, name="frame.lo")
        self.frame_region = (lo, em.fp, em.fp, b.ptrtoint(self.slots, I64))
        # Where a dynamic 8-byte access outside any frame reads or writes its
        # slot's region: nothing, into a scratch place.
        self.scratch = b.alloca(ir.ArrayType(I64, len(PARTS)), name="region.scratch")
        self.last_access: tuple | None = None
        if hidden is None:  # a callback, called from C: nothing known of its arguments
            args = [NONE] * 5
            self.ctx = ZERO
        else:
            incoming, self.budget, self.ctx = hidden[:HIDDEN_SHADOWS], hidden[-2], hidden[-1]
            n = len(PARTS)
            args = [tuple(incoming[n * i:n * i + n]) for i in range(5)]
        if hidden is None or em.func.entry_checked:
            # Its caller is C, which holds no budget (a function that may not be
            # inlined keeps its budget in a register only if the budget is its own).
            self.budget = b.alloca(I64, name="budget")
            b.store(ir.Constant(I64, em.ml.options.max_steps), self.budget)
        # Where registers and slots hold no region (shadows.py): a callback's
        # arguments bring none, nor r2-r5 of a function only programs enter.
        em.regs.declare(key for keys in (*SHADOWS, PACKET) for key in keys)
        self.frame_free = hidden is None or em.func.entered_only
        first = 0b1111111111 if hidden is None else \
            0b1111111101 if em.func.entered_only else 0b1111000001
        self.bare = shadows.analyze(em.cfg, em.slots, em.facts, first, self.frame_free)
        for r in range(10):
            self.set(r, args[r - 1] if 1 <= r <= 5 else NONE)
        # The regions of the pointer arguments: every ARG pointer of root r has r's.
        self.roots = dict(enumerate(args, 1))
        # The packet's region as the last read of its data gave it (a PACKET
        # pointer's offsets count from there).
        self.merged: dict[int, tuple[int, int, int]] = {}   # leader insn -> (root, lo, hi)
        self.covered: dict[int, int] = {}                   # insn -> its group's leader
        self.entries: dict[int, ir.Block] = {}              # loop header -> its dispatch
        self.given: set[int] = set()
        self.fault_block = None
        self.edges: dict[tuple[int, int, str], ir.Block] = {}
        # The iterations of each natural loop (by header) since it was entered:
        # charged to the budget when it is entered again and at returns, and
        # on their own never more than the whole budget.
        self.cap = em.ml.options.max_steps
        self.bounded = proofs.bounded_loops(em.cfg, em.facts, em.slots, self.cap)
        self.loops = {h: b.alloca(I64, name=f"loop{h}.n") for h in em.cfg.natural_loops
                      if h not in self.bounded}
        for n in self.loops.values():
            b.store(ZERO, n)
        self.entry_spans: dict[tuple[int, bool], tuple[int, int]] = {}
        self.entry_covered = self._check_at_entry()

    # -- regions ---------------------------------------------------------------

    def _now(self) -> shadows.Bare | None:
        """What holds no region before the instruction being emitted."""
        return self.bare.get(getattr(self.em, "idx", None))

    def _bare(self, r: int) -> bool:
        now = self._now()
        return now is not None and now.regs >> r & 1 and r not in self.given

    def region(self, r: int) -> tuple:
        if r == 10:
            return self.frame_region
        if self._bare(r):
            return NONE
        read = self.em.regs.read
        return tuple(read(key) for key in SHADOWS[r])

    def set(self, r: int, region: tuple) -> None:
        if region is NONE and self._bare(r):
            return   # it holds none already
        write = self.em.regs.write
        for key, v in zip(SHADOWS[r], region):
            write(key, v)

    def give(self, r: int, region: tuple) -> None:
        """The region register r gets from the instruction being emitted (`after`
        leaves it be)."""
        self.set(r, region)
        self.given.add(r)

    def span(self, lo: ir.Value, size: ir.Value, what: Region, writable: bool = True) -> tuple:
        return span(self.em.b, lo, size, what, writable)

    def found(self, ptr: ir.Value, size: ir.Value, what: Region) -> tuple:
        """[ptr, ptr + size), or no region when ptr is NULL (a lookup found nothing)."""
        b = self.em.b
        hit = b.icmp_unsigned("!=", ptr, ZERO)
        return tuple(b.select(hit, v, ZERO) for v in self.span(ptr, size, what))

    def _slot(self, base: int, off: int) -> int | None:
        """The region slot of an 8-byte frame access at a constant aligned offset."""
        return shadows.frame_slot(self.em.reg(base), off)

    def _never_frame(self, base: int) -> bool:
        """Whether register base's region is never a frame's: its 8-byte accesses
        touch no slot's region."""
        return shadows.never_frame(self.em.reg(base), self.frame_free)

    def _slot_ptrs(self, slot: int) -> list:
        b, n = self.em.b, len(PARTS)
        return [b.gep(self.slots, [I32(0), I32(n * slot + k)]) for k in range(n)]

    def _dynamic_slot(self) -> tuple[list, ir.Value, ir.Value]:
        """For the 8-byte access just checked: pointers to the regions of the slot it
        touches (the scratch place unless its memory is a frame and it is aligned),
        its base's slots address, and whether it is a frame slot."""
        b = self.em.b
        region, addr = self.last_access
        lo, slots = region[0], region[3]
        off = b.sub(addr, lo)
        aligned = b.icmp_unsigned("==", b.and_(off, ir.Constant(I64, 7)), ZERO)
        use = b.and_(aligned, is_frame(b, slots))
        at = b.add(slots, b.mul(b.lshr(off, ir.Constant(I64, 3)),
                                ir.Constant(I64, 8 * len(PARTS))))
        # A pointer select, not an integer one: where `use` folds to false the
        # scratch place stays a plain alloca that LLVM deletes, rather than
        # escaped memory every other access may alias.
        scratch = b.gep(self.scratch, [I32(0), I32(0)])
        base = b.select(use, b.inttoptr(at, I64P), scratch)
        return [b.gep(base, [I32(k)]) for k in range(len(PARTS))], slots, use

    def after(self, insn: isa.Insn) -> None:
        """Each register the instruction wrote gets its region (module docstring)."""
        c, op = insn.cls, isa.op(insn.opcode)
        b = self.em.b
        wide = isa.size(insn.opcode) == isa.DW
        if c in (isa.ST, isa.STX) and wide:
            stored = self.region(insn.src) if c == isa.STX and isa.mode(insn.opcode) == isa.MEM \
                else NONE
            slot = self._slot(insn.dst, insn.off)
            now = self._now()
            if slot is not None:
                bare = stored is NONE and now is not None and now.slots >> slot & 1
                ptrs = [] if bare else self._slot_ptrs(slot)
            elif self.last_access is not None and not self._never_frame(insn.dst):
                # Into another frame only pointers into that frame keep their region:
                # one into this function's frame must not outlive it there.
                ptrs, slots, _ = self._dynamic_slot()
                keep = b.or_(b.not_(is_frame(b, stored[3])),
                             b.icmp_unsigned("==", stored[3], slots))
                stored = tuple(b.select(keep, v, ZERO) for v in stored)
            else:
                ptrs = []
            for p, v in zip(ptrs, stored):
                b.store(v, p)
        for r in isa.regs_written(insn):
            if r in self.given:
                continue
            if c in (isa.ALU, isa.ALU64) and op == isa.MOV:
                region = self.region(insn.src) if insn.opcode & isa.X and not insn.off else NONE
            elif c == isa.ALU64 and op == isa.ADD and insn.opcode & isa.X \
                    and not self.em.reg(insn.dst).is_pointer and self.em.reg(insn.src).is_pointer:
                region = self.region(insn.src)  # scalar + pointer: the pointer's region
            elif c in (isa.ALU, isa.ALU64):
                continue  # arithmetic keeps the region: still only memory the program owns
            elif c == isa.LDX and wide and (slot := self._slot(insn.src, insn.off)) is not None:
                now = self._now()
                region = NONE if now is not None and now.slots >> slot & 1 else \
                    tuple(b.load(p) for p in self._slot_ptrs(slot))
            elif c == isa.LDX and wide and self.last_access is not None \
                    and not self._never_frame(insn.src):
                # Only a frame slot holds a region: what other memory holds is a number.
                ptrs, _, use = self._dynamic_slot()
                region = tuple(b.select(use, b.load(p), ZERO) for p in ptrs)
            else:
                region = NONE
            self.set(r, region)
        if c == isa.JMP and op == isa.CALL:
            for r in range(1, 6):
                self.set(r, NONE)
        self.given.clear()
        self.last_access = None

    # -- checks ------------------------------------------------------------------

    def _check_at_entry(self) -> dict[int, int]:
        """Check at the function's entry, once per pointer argument, the accesses at
        constant offsets from it that every returning run makes (proofs.entry_groups).
        Returns access -> root."""
        em, b = self.em, self.em.b
        groups, covered = proofs.entry_groups(em.cfg, em.facts, em.slots,
                                              em.ml.options.unwind_helpers)
        for (root, write), (first, lo, hi) in sorted(groups.items()):
            self.entry_spans[root, write] = (lo, hi)
            start = b.add(em.fn.args[root - 1], ir.Constant(I64, lo))
            region = self.roots[root]
            ok = holds(b, region, start, ir.Constant(I64, hi - lo), write)
            if root == 1 and em.func.entry_checked:
                # The C entry checks before the call (entries.py); here it is known.
                em.func.entry_checks.append((write, first, lo, hi))
                b.call(em.ml.module.declare_intrinsic("llvm.assume"), [ok])
            else:
                self.stop_unless(ok, Fault.STORE if write else Fault.LOAD, first, start,
                                 hi - lo, region)
        return covered

    def checks_more(self) -> bool:
        """Whether the code reads its arguments' regions past the entry's check: checks
        of its own, or calls, which are handed regions."""
        em = self.em
        return self.fault_block is not None or any(
            isa.call_kind(em.slots[idx]) is not None for idx in em.cfg)

    def plan_block(self, insns) -> None:
        """The block's merged checks (proofs.block_groups)."""
        em = self.em
        self.merged, self.covered = proofs.block_groups(
            em.facts, em.slots, insns, em.ml.options.unwind_helpers, self.entry_covered)

    def versions(self) -> dict[int, Version]:
        """The loops to emit twice (proofs.versions)."""
        em = self.em
        found = proofs.versions(em.cfg, em.facts, em.slots, em.ml.options.unwind_helpers,
                                self.bounded, em.ml.options.helper_args)
        for h, version in found.items():
            spans = ", ".join(
                f"{'the packet' if root == PACKET_ROOT else f'argument r{root}'} bytes "
                f"{lo}..{hi}{' (written)' if write else ''}"
                for (root, write), (lo, hi) in sorted(version.extents.items()))
            em.ml.add_check(em.func, h, "copy", False, f"{self.copy_of(h)} is emitted twice: "
                            f"a copy without {len(version.covered)} of its checks runs when "
                            f"the regions hold {spans}")
        return found

    def copy_of(self, header: int) -> str:
        """What a version copies, for explain: a loop, or the function (whole_function)."""
        return f"loop L{header}" if header in self.em.cfg.natural_loops else "the function"

    def dispatch(self, header: int) -> ir.Block:
        """Where a loop emitted twice is entered: its copy when the regions hold all its
        accesses at bounded offsets, else the checked loop."""
        block = self.entries.get(header)
        if block is None:
            em, b = self.em, self.em.b
            here = b.block
            block = self.entries[header] = em.fn.append_basic_block(f"L{header}.enter")
            em.regs.unseal((block,))   # each way into the loop from outside comes here
            b.position_at_end(block)
            em.weigh(b.cbranch(self.fits(em.versions[header]), em.fast_blocks[header][header],
                               em.blocks[header]), LIKELY)
            b.position_at_end(here)
        return block

    def fits(self, version: Version) -> ir.Value:
        """Whether the arguments' regions hold every offset the loop's facts allow."""
        b = self.em.b
        ok = ir.Constant(I1, 1)
        for (root, write), (lo, hi) in sorted(version.extents.items()):
            region = self.root_region(root)
            base = region[0] if root == PACKET_ROOT else self.em.fn.args[root - 1]
            start = b.add(base, ir.Constant(I64, lo))
            ok = b.and_(ok, holds(b, region, start, ir.Constant(I64, hi - lo), write))
        return ok

    def root_region(self, root: int) -> tuple:
        """The region of pointer argument `root`, or of the packet (PACKET_ROOT)."""
        if root == PACKET_ROOT:
            return tuple(self.em.regs.read(key) for key in PACKET)
        return self.roots[root]

    def packet_read(self, r: int, value: ir.Value, end: ir.Value, data: bool) -> None:
        """Register r read a packet pointer from the context (data or data_meta): its
        region is from there to data_end as read now. PACKET offsets count from data."""
        region = (value, end, end, tag(Region.PACKET))
        self.give(r, region)
        if data:
            for key, v in zip(PACKET, region):
                self.em.regs.write(key, v)

    def data_read(self, r: int, base: ir.Value, section) -> None:
        """Register r got the address of a data section: the whole section, writable
        only if the object's section is."""
        self.give(r, self.span(base, ir.Constant(I64, len(section.data)), Region.DATA,
                               section.writable))

    def access_merged(self, idx: int, addr: ir.Value, write: bool) -> bool:
        """The check of the group idx leads or belongs to (plan_block); False when idx
        is in no group."""
        leader = self.covered.get(idx, idx)
        if leader not in self.merged:
            return False
        root, lo, hi = self.merged[leader]
        region = self.roots[root]
        if leader == idx:
            start = self.em.b.add(self.em.fn.args[root - 1], ir.Constant(I64, lo))
            self.access(idx, None, start, hi - lo, write, region)
        self.last_access = (region, addr)
        return True

    def inside(self, base: int, addr: ir.Value, size: ir.Value, write: bool) -> ir.Value:
        """addr..addr+size lies in register base's region (for writing, its writable part)."""
        return holds(self.em.b, self.region(base), addr, size, write)

    def access(self, idx: int, base: int | None, addr: ir.Value, size: int, write: bool,
               region: tuple | None = None) -> None:
        """Stop the program unless the access lies in its base register's region (or
        the one given), or, failing that, in a global data section of the object (a
        pointer the program read from its data, say)."""
        em, b = self.em, self.em.b
        n = ir.Constant(I64, size)
        region = self.region(base) if region is None else region
        self.last_access = (region, addr)
        ok = holds(b, region, addr, n, write)
        sections = em.ml.data_regions()
        if sections:
            cont = em.fn.append_basic_block(f"L{idx}.in")
            other = em.fn.append_basic_block(f"L{idx}.data")
            em.weigh(b.cbranch(ok, cont, other), LIKELY)
            b.position_at_end(other)
            ok = ir.Constant(I1, 0)
            for section in sections:
                ok = b.or_(ok, holds(b, section, addr, n, write))
            self.stop_unless(ok, Fault.STORE if write else Fault.LOAD, idx, addr, size, region)
            b.branch(cont)
            b.position_at_end(cont)
            return
        self.stop_unless(ok, Fault.STORE if write else Fault.LOAD, idx, addr, size, region)

    def stop_unless(self, ok: ir.Value, code: Fault, idx: int, addr: ir.Value,
                    size: int | ir.Value, region: tuple = NONE) -> None:
        em, b = self.em, self.em.b
        fault = self._fault_block()
        lo, hi, whi, part = region
        what = b.select(is_frame(b, part), tag(Region.FRAME), part)
        # The record says how big the region is for the access that failed.
        end = whi if code is Fault.STORE else hi
        cont = em.fn.append_basic_block(f"L{idx}.ok")
        here = b.block
        for phi, v in zip(self.phis, (ir.Constant(I64, int(code)), ir.Constant(I64, idx), addr,
                                      ir.Constant(I64, size) if isinstance(size, int) else size,
                                      what, lo, end)):
            phi.add_incoming(v, here)
        em.weigh(em.check_branch(ok, cont, fault), LIKELY)

    def _fault_block(self) -> ir.Block:
        """The one exit of the function's failed checks: the record written, the program stopped."""
        if self.fault_block is None:
            em = self.em
            here = em.b.block
            self.fault_block = em.fn.append_basic_block("fault")
            em.b.position_at_end(self.fault_block)
            self.phis = [em.b.phi(I64, name=f"fault.{f}") for f in abi.FAULT_FIELDS[:-1]]
            write_fault(em.b, em.ml.fault_record(), self.phis + [self.name])
            # A callback, called from C, cannot stop the program: it returns 1,
            # which ends a bpf_loop or for_each_map_elem walk.
            em.stop(ir.Constant(I64, 0 if em.func.may_stop else 1))
            em.b.position_at_end(here)
        return self.fault_block

    def charge(self, idx: int) -> None:
        """One step of the budget (a back edge or a call); stop when it runs out."""
        b = self.em.b
        left = b.sub(b.load(self.budget), ir.Constant(I64, 1))
        b.store(left, self.budget)
        self.stop_unless(b.icmp_signed(">=", left, ZERO), Fault.STEPS, idx, ZERO, 0)

    def charge_loops(self, idx: int) -> None:
        """At a return: the iterations of the function's loops since they were
        last entered go to the budget."""
        if not self.loops:
            return
        b = self.em.b
        total = ZERO
        for n in self.loops.values():
            total = b.add(total, b.load(n))
        left = b.sub(b.load(self.budget), total)
        b.store(left, self.budget)
        self.stop_unless(b.icmp_signed(">=", left, ZERO), Fault.STEPS, idx, ZERO, 0)

    def target(self, src: int, dst: int, block: ir.Block) -> ir.Block:
        """Where a branch from block `src` to block `dst` goes: through a step of
        the loop's count when it closes a loop, through the budget's charge of
        the loop's last run when it enters one."""
        back = (src, dst) in self.em.cfg.back_edges
        if back and dst in self.bounded:
            if self.em.copy is None:
                self.em.ml.add_check(self.em.func, self.em.cfg.insns(src)[-1], "loop", True,
                                     f"runs {self.bounded[dst][1]}")
            return block
        if not back and dst not in self.loops:
            return block
        edge = self.edges.get((src, dst, block.name))
        if edge is None:
            em, b = self.em, self.em.b
            here = b.block
            edge = self.edges[(src, dst, block.name)] = em.fn.append_basic_block(
                f"L{src}.{'back' if back else 'enter'}{dst}")
            b.position_at_end(edge)
            last = em.cfg.insns(src)[-1]
            if back and em.copy is None:
                em.ml.add_check(em.func, last, "loop", False, "iterations counted against "
                                "--max-steps" if dst in self.loops else "each time round "
                                "charged to the step budget (more than one entry)")
            if back and dst in self.loops:
                # A count of its own, against a constant: where LLVM knows the
                # loop's trip count (SCEV), it knows the check never fails and
                # drops it, and the loop vectorizes or becomes an idiom as before.
                n = b.add(b.load(self.loops[dst]), ir.Constant(I64, 1))
                b.store(n, self.loops[dst])
                self.stop_unless(b.icmp_unsigned("<=", n, ir.Constant(I64, self.cap)),
                                 Fault.STEPS, last, ZERO, 0)
            elif back:  # a cycle with more than one entry: each time round is a step
                self.charge(last)
            else:
                n = b.load(self.loops[dst])
                left = b.sub(b.load(self.budget), n)
                b.store(left, self.budget)
                b.store(ZERO, self.loops[dst])
                self.stop_unless(b.icmp_signed(">=", left, ZERO), Fault.STEPS, last, ZERO, 0)
            b.branch(block)
            b.position_at_end(here)
        return edge

    # -- proofs --------------------------------------------------------------------

    def proven_span(self, fact: Value, size: int, write: bool) -> bool:
        """Whether the facts prove [fact, fact + size) is memory of the program's; of an
        argument's memory, bytes the entry's check made sure of (the memory's size is
        the run's: no helper changes it)."""
        if fact.kind is Kind.FRAME:
            pos = isa.STACK_SIZE + fact.off
            return 0 <= pos and pos + size <= isa.STACK_SIZE
        offsets = fact.offsets
        if fact.kind is Kind.ARG and offsets is not None:
            kinds = (True,) if write else (True, False)   # a read: either check will do
            spans = [self.entry_spans[fact.root, w] for w in kinds
                     if (fact.root, w) in self.entry_spans]
            return any(lo <= offsets.umin and offsets.umax + size <= hi for lo, hi in spans)
        return self.proven(fact, 0, size)

    def proven(self, fact: Value, off: int, size: int) -> bool:
        """Whether the facts prove an access of `size` bytes at fact + off in bounds:
        packet bytes a compare with data_end proved, a map value after its NULL test,
        as the kernel's verifier does."""
        offsets = fact.offsets
        if offsets is None or offsets.umin + off < 0:
            return False
        if fact.kind is Kind.PACKET:
            return offsets.umax + off + size <= self.em.state.packet \
                or self.past_add(fact, off, size)
        if fact.kind is Kind.MAP_VALUE and not fact.null and fact.map is not None:
            return offsets.umax + off + size <= self.em.ml.obj.maps[fact.map].value_size
        return False

    def past_add(self, fact: Value, off: int, size: int) -> bool:
        """Whether a compare with data_end proved the bytes past a packet pointer a
        variable moved (dataflow.State.rooms), the pointer not below data."""
        start = fact.off + off
        return fact.id is not None and fact.offsets.smin >= fact.off and start >= 0 \
            and start + size <= self.em.state.room(fact.id)

    def check_access(self, idx: int, what: str, base: int, off: int, size: int,
                     addr: ir.Value) -> None:
        """An access through a pointer that is neither the frame nor the context: proven,
        unchecked in a loop's copy, checked with its block's group, or checked alone."""
        em, fact, store = self.em, self.em.reg(base), what != "load"
        copy = em.copy[0] if em.copy is not None else None
        if self.proven(fact, off, size):
            span = f"bytes {fact.offsets.umin + off}..{fact.offsets.umax + off + size}"
            em.record(idx, what, True, f"bytes {fact.off + off}..{fact.off + off + size} past "
                      f"the packet pointer insn {fact.id} moved, compared with data_end"
                      if self.past_add(fact, off, size) else
                      f"packet {span} of {em.state.packet} compared with "
                      "data_end" if fact.kind is Kind.PACKET else
                      f"{fact.map} value {span} after the NULL test")
        elif copy is not None and idx in copy.covered:
            # The loop's copy runs only where all these accesses are in bounds.
            self.last_access = (self.root_region(copy.covered[idx]), addr)
        elif idx in self.entry_covered:
            self.last_access = (self.root_region(self.entry_covered[idx]), addr)
            em.record(idx, what, False, "at the function's entry, with the accesses at "
                      "constant offsets from the same argument that every run makes")
        elif self.access_merged(idx, addr, store):
            leader = self.covered.get(idx, idx)
            em.record(idx, what, False, f"against argument r{fact.root}'s region, with the "
                      f"block's other accesses at constant offsets from it (insn {leader})"
                      if leader == idx else f"by the check at insn {leader}")
        else:
            self.access(idx, base, addr, size, store)
            loop = next((h for h, v in em.versions.items() if idx in v.covered), None)
            em.record(idx, what, False, f"against the region of r{base} ({fact.kind.value} "
                      "pointer)" + ("" if loop is None else f"; not at all in the copy of "
                      f"{self.copy_of(loop)} that runs when one check before it finds the region "
                      "holds every offset the facts allow"))

    # -- maps ----------------------------------------------------------------------

    def map_check(self, r: int) -> ir.Value | None:
        """Whether register r holds a map of the object (None: the facts know it does, or
        bpftime's runtime, whose handles these are, checks them)."""
        em = self.em
        fact = em.reg(r)
        if (fact.kind is Kind.MAP and fact.off == 0) or em.ml.options.bpftime:
            return None
        value, b = em.rd(r), em.b
        ok = ir.Constant(I1, 0)
        for desc in em.ml.maps.values():
            ok = b.or_(ok, b.icmp_unsigned("==", value, desc.bitcast(I8P).ptrtoint(I64)))
        return ok

    def map_size(self, r: int, field: str) -> ir.Value | None:
        """The key or value size of the map in register r: from the object when the facts
        know the map, else from its descriptor (None: unknown, under --abi bpftime)."""
        em = self.em
        fact = em.reg(r)
        if fact.kind is Kind.MAP and fact.off == 0:
            return ir.Constant(I64, getattr(em.ml.obj.maps[fact.map], field))
        if em.ml.options.bpftime or not em.ml.maps:
            return None
        b = em.b
        # Read through a map of the object whatever r holds: r is checked apart.
        fallback = next(iter(em.ml.maps.values())).bitcast(I8P).ptrtoint(I64)
        desc = b.select(self.map_check(r), em.rd(r), fallback)
        index = [name for _, name in maps.DESCRIPTOR_FIELDS].index(field)
        ptr = b.inttoptr(b.add(desc, ir.Constant(I64, 4 * index)), I32.as_pointer())
        return b.zext(b.load(ptr, align=4), I64)

    # -- calls -------------------------------------------------------------------

    def env(self, hid: int) -> ir.Value:
        """The environment for a helper that calls back (ENV): this run's budget and
        context, the region of the callback's context argument (r3 of the call)."""
        em, b = self.em, self.em.b
        here = b.block
        b.position_at_start(em.fn.entry_basic_block)
        env = b.alloca(ENV, name="callback.env")
        b.position_at_end(here)
        values = [ir.Constant(I64, CALLBACK_HELPERS[hid]), self.budget, self.ctx,
                  *self.region(3), ZERO]
        for n, v in enumerate(values):
            b.store(v, b.gep(env, [I32(0), I32(n)]))
        return env

    def hidden(self) -> list[ir.Value]:
        """What a checked callee gets beside r1-r5: their regions, the budget, the context."""
        regions = [v for r in range(1, 6) for v in self.region(r)]
        return regions + [self.budget, self.ctx]

    def _arg_checks(self, idx: int, specs: tuple[HelperArg, ...]):
        """(spec, whether the argument is what the callee takes) for each argument
        neither the facts prove nor the loop's copy being emitted covers."""
        copy = self.em.copy
        for spec in specs:
            if copy is not None and (idx, spec.reg) in copy[0].covered:
                continue   # the loop's copy runs only where the memory is in bounds
            cond = self._helper_arg(spec)
            if cond is not None:
                yield spec, cond

    def libc_args(self, idx: int, name: str, specs: tuple[HelperArg, ...]) -> None:
        """Stop the program unless each memory argument of the C library function lies
        in its register's region: the call is the program's own load or store, so a
        bad one faults as such an access does (a helper would answer -EFAULT)."""
        em, checked = self.em, False
        for spec, cond in self._arg_checks(idx, specs):
            checked = True
            self.stop_unless(cond, Fault.STORE if spec.write else Fault.LOAD, idx,
                             em.rd(spec.reg), em.rd(spec.size), self.region(spec.reg))
        em.record(idx, "helper", not checked, f"{name}'s pointer arguments proven" if not checked
                  else f"{name}'s pointer arguments against the caller's regions: a fault if "
                  "outside")

    def helper_args(self, idx: int, specs: tuple[HelperArg, ...]) -> ir.Value | None:
        """Whether the helper's pointer arguments are what it takes (None: nothing to check)."""
        b = self.em.b
        ok = None
        for _, cond in self._arg_checks(idx, specs):
            ok = cond if ok is None else b.and_(ok, cond)
        if specs:
            loop = next((h for h, v in self.em.versions.items()
                         if any((idx, spec.reg) in v.covered for spec in specs)), None)
            self.em.record(idx, "helper", ok is None, "pointer arguments proven" if ok is None
                           else "pointer arguments against the caller's regions: -EFAULT "
                           "if outside" + ("" if loop is None else
                                           f"; not at all in the copy of {self.copy_of(loop)}"))
        return ok

    def call_args(self, args: list, hid: int, specs: tuple[HelperArg, ...]) -> ir.Value | None:
        """The helper call's arguments as a checked build passes them (UNSAFE ones
        outside the regions as NULL; r5 the environment of a helper that calls back,
        which it returns)."""
        self.unsafe_args(args, specs)
        if hid not in CALLBACK_HELPERS:
            return None
        env = self.env(hid)
        args[4] = self.em.b.ptrtoint(env, I64)  # r5, which these helpers do not take
        return env

    def helper_result(self, hid: int, r0: ir.Value) -> None:
        """r0's region after a helper call: a map value or ringbuf record it returned."""
        if hid in (MAP_LOOKUP, MAP_LOOKUP_PERCPU):
            size = self.map_size(1, "value_size")
            self.give(0, NONE if size is None else self.found(r0, size, Region.MAP_VALUE))
        elif hid == RINGBUF_RESERVE:
            self.give(0, self.found(r0, self.em.rd(2), Region.HELPER))
        else:   # a number, on the path that called as on the one that did not (-EFAULT)
            self.give(0, NONE)

    def unsafe_args(self, args: list, specs: tuple[HelperArg, ...]) -> None:
        """Each UNSAFE argument outside the program's regions becomes NULL (ArgKind.UNSAFE)."""
        b = self.em.b
        for spec in specs:
            if spec.kind is ArgKind.UNSAFE:
                size = self.em.rd(spec.size)
                ok = self.inside(spec.reg, self.em.rd(spec.reg), size, False)
                args[spec.reg - 1] = b.select(ok, args[spec.reg - 1], ZERO)

    def _helper_arg(self, spec: HelperArg) -> ir.Value | None:
        em, b = self.em, self.em.b
        fact = em.reg(spec.reg)
        if spec.kind is ArgKind.UNSAFE:
            return None
        if spec.kind is ArgKind.CTX:
            if fact.kind is Kind.CTX and fact.off == 0:
                return None
            return b.icmp_unsigned("==", em.rd(spec.reg), self.ctx)
        if spec.kind is ArgKind.MAP:
            return self.map_check(spec.reg)
        if spec.kind is ArgKind.MEM:
            known = em.reg(spec.size)
            if known.kind is Kind.SCALAR and (known.range.umax == 0
                                              or self.proven_span(fact, known.range.umax,
                                                                  spec.write)):
                return None
            size = em.rd(spec.size)
            empty = b.icmp_unsigned("==", size, ZERO)
            return b.or_(empty, self.inside(spec.reg, em.rd(spec.reg), size, spec.write))
        field = "key_size" if spec.kind is ArgKind.KEY else "value_size"
        m = em.reg(1)
        if m.kind is Kind.MAP and m.off == 0 and \
                self.proven_span(fact, getattr(em.ml.obj.maps[m.map], field), spec.write):
            return None
        size = self.map_size(1, field)
        if size is None:
            return None
        return self.inside(spec.reg, em.rd(spec.reg), size, spec.write)
