"""Forward data flow over one function: what each register holds before each instruction.

The analysis the kernel's verifier does in `do_check`, kept apart from the
emitter as the kernel keeps its verifier apart from its JIT: it runs over
the CFG to a fixpoint and leaves, for every reachable instruction, a
`State` (each register's `Value`, which registers are written on every path,
which 8-byte stack slots hold a tracked value), the way `insn_aux_data`
leaves facts per instruction. The emitter only reads them.

Where paths meet, values join (values.Value.join); at a block entered
again and again (a loop head) ranges widen, so the fixpoint is reached in a
few rounds. A conditional jump against a constant narrows the compared
register's range on each edge; an edge no value can take is not followed.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import NamedTuple

from ..facts import contexts, isa
from ..facts.helpers import HELPER_ARGS, MAP_LOOKUP, MAP_LOOKUP_PERCPU, ArgKind
from ..errors import EbpfLtoError
from . import values as v
from .cfg import Cfg
from .switches import complement, taken_values
from .values import FRAME_POINTER, UNKNOWN, Kind, Range, Value

MAP_LOOKUPS = (MAP_LOOKUP, MAP_LOOKUP_PERCPU)
ARGS_WRITTEN = 0b10000111110   # r1-r5 (the arguments) and r10 on entry
CALL_CLOBBERED = 0b111110      # r1-r5: unreadable after a call or ld_abs/ld_ind
WIDEN_AFTER = 3                # visits of a block before its ranges widen


class Libc(NamedTuple):
    """In analyze's `loaded`: the call there is of this C library function
    (facts.helpers.LIBC_FUNCTIONS), not of a helper."""
    name: str


class State(NamedTuple):
    """The facts before one instruction."""
    regs: tuple[Value, ...]              # r0..r10
    written: int                         # bit r: r is written on every path to here
    spills: tuple[tuple[int, Value], ...]  # (r10 offset, value) of 8-byte frame slots, sorted
    # Bytes from the packet's data known to be before data_end, as the kernel's
    # packet pointer `range`: from compares of a packet pointer with data_end.
    packet: int = 0
    # The same past a packet pointer a variable moved (`data + ihl * 4`): (id, bytes
    # from where the add at insn `id` left it), as the kernel's range per pointer id.
    rooms: tuple[tuple[int, int], ...] = ()

    def room(self, pid: int | None) -> int:
        return dict(self.rooms).get(pid, 0) if pid is not None else 0

    def spilled(self, off: int) -> Value:
        for at, value in self.spills:
            if at == off:
                return value
        return UNKNOWN

    def join(self, other: State, widen: Sequence[int] | None = None) -> State:
        """Where paths meet: values joined (widened at loop heads, to the thresholds
        given), registers written on both, slots tracked on both."""
        regs = tuple(_join(a, b, widen) for a, b in zip(self.regs, other.regs))
        theirs = dict(other.spills)
        spills = tuple((off, j) for off, a in self.spills if off in theirs
                       and (j := _join(a, theirs[off], widen)) != UNKNOWN)
        theirs = dict(other.rooms)
        rooms = tuple((pid, min(n, theirs[pid])) for pid, n in self.rooms if pid in theirs)
        return State(regs, self.written & other.written, spills, min(self.packet, other.packet),
                     rooms)


def _join(a: Value, b: Value, widen: Sequence[int] | None) -> Value:
    j = a.join(b)
    if widen is not None and j.kind is Kind.SCALAR and a.kind is Kind.SCALAR:
        return v.scalar(a.range.widen(j.range, widen))
    if widen is not None and j.kind is a.kind and j.kind in (Kind.ARG, Kind.PACKET,
                                                              Kind.MAP_VALUE):
        return j._replace(range=a.range.widen(j.range, widen))
    return j


def _forget_offsets(value: Value) -> Value:
    """A packet pointer after a call that may move the packet: its offsets unknown, and a
    data_end read before it no longer the packet's end (clear_all_pkt_pointers)."""
    if value.kind is Kind.PACKET:
        return value._replace(range=v.FULL, id=None, off=0)
    return UNKNOWN if value.kind is Kind.PACKET_END else value


def thresholds(cfg: Cfg, slots) -> tuple[int, ...]:
    """The constants the function's jumps compare with and its moves load, unsigned
    and signed: where a widened bound stops first (the kernel learns a loop's bound
    from its compares; a bound that starts in a register, as a binary search's
    `hi = N`, is a moved constant)."""
    out = set()
    for idx in cfg:
        insn = slots[idx]
        compare = insn.cls in (isa.JMP, isa.JMP32) and isa.op(insn.opcode) in isa.COND_JMP_OPS
        move = insn.cls in (isa.ALU, isa.ALU64) and isa.op(insn.opcode) == isa.MOV
        if (compare or move) and not insn.opcode & isa.X:
            k = insn.imm & (v.M64 if insn.cls in (isa.JMP, isa.ALU64) else v.M32)
            # K - 1 too: a loop that runs while i != K (or i < K) stays below it.
            for t in (k - 1, k, k + 1):
                if 0 <= t <= v.M64:
                    out.update((t, v.to_signed(t)))
    return tuple(sorted(out))


def entry_state(args: Sequence[Value]) -> State:
    return State((UNKNOWN, *args, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, FRAME_POINTER),
                 ARGS_WRITTEN, ())




class _Step:
    """The transfer function: one instruction's effect on a mutable copy of a State."""

    def __init__(self, state: State):
        self.regs = list(state.regs)
        self.written = state.written
        self.spills = dict(state.spills)
        self.frozen_spills = state.spills  # what `spills` holds, sorted, until a store changes it
        self.packet = state.packet
        self.rooms = state.rooms

    def freeze(self) -> State:
        if self.frozen_spills is None:
            self.frozen_spills = tuple(sorted(self.spills.items()))
        return State(tuple(self.regs), self.written, self.frozen_spills, self.packet, self.rooms)

    def run(self, insn: isa.Insn, loaded: Value | Libc | None, idx: int) -> None:
        c, op = insn.cls, isa.op(insn.opcode)
        result = UNKNOWN
        if insn.is_wide:
            result = (loaded if loaded is not None
                      else v.const(insn.imm64) if insn.src == 0 else UNKNOWN)
        elif c in (isa.ALU, isa.ALU64):
            result = self._alu(insn, c == isa.ALU64, op, idx)
        elif c == isa.LDX:
            result = self._load(insn, idx)
        elif c in (isa.ST, isa.STX):
            self._store(insn)
        elif isa.is_packet_load(insn):
            result = v.scalar(v.unsigned_bits(8 * isa.SIZE_BYTES[isa.size(insn.opcode)]))
            for r in range(1, 6):
                self.regs[r] = UNKNOWN
            self.written &= ~CALL_CLOBBERED
        if c == isa.JMP and op == isa.CALL:
            m = self.regs[1]
            if isinstance(loaded, Libc):
                result = self._libc(loaded.name)
            else:
                self._callee_writes(insn)
                if insn.imm in MAP_LOOKUPS and isa.call_kind(insn) is isa.CallKind.HELPER:
                    # A value of the map, or NULL: of some map even where the facts
                    # lost which (one chosen on each path), and never a pointer into
                    # the frame, so stores through it forget no frame slot.
                    result = v.map_value(m.map if m.kind is Kind.MAP and m.off == 0 else None)
            for r in range(6):
                self.regs[r] = UNKNOWN
            self.written &= ~CALL_CLOBBERED
            # A helper may move or shrink the packet (xdp_adjust_head): what is known
            # of packet pointers' offsets goes, as the kernel's clear_all_pkt_pointers.
            # (The C library's memory functions leave the packet where it is.)
            if not isinstance(loaded, Libc):
                self.packet, self.rooms = 0, ()
                self.regs = [_forget_offsets(r) for r in self.regs]
                if any(value.kind in (Kind.PACKET, Kind.PACKET_END)
                       for value in self.spills.values()):
                    self.spills = {off: kept for off, value in self.spills.items()
                                   if (kept := _forget_offsets(value)) != UNKNOWN}
                    self.frozen_spills = None
        for r in isa.regs_written(insn):
            self.regs[r] = result
            self.written |= 1 << r

    def _libc(self, name: str) -> Value:
        """A call of the C library (lift/libcalls.py): memcmp returns an int, sign-extended;
        memset, memcpy and memmove write [r1, r1 + r3) and return r1. The frame slots
        they may write are no longer known: those in reach of a frame pointer's size, or
        all when r1 is a pointer the facts lost (a SCALAR may be one into the frame)."""
        dst = self.regs[1]
        if name == "memcmp":
            return v.scalar(v.Range.signed(-(1 << 31), (1 << 31) - 1))
        self._forget_slots(dst, self.regs[3])
        return dst

    def _callee_writes(self, insn: isa.Insn) -> None:
        """The frame slots a call may write are no longer known, as the kernel's
        verifier marks a stack buffer a helper fills: a helper's written memory
        arguments (facts.helpers.HELPER_ARGS); for a bpf-to-bpf call, every slot
        when an argument may point into this frame."""
        if isa.call_kind(insn) is isa.CallKind.HELPER:
            for spec in HELPER_ARGS.get(insn.imm, ()):
                if spec.write:
                    size = self.regs[spec.size] if spec.kind is ArgKind.MEM else UNKNOWN
                    self._forget_slots(self.regs[spec.reg], size)
        elif any(_may_be_frame(self.regs[r]) for r in range(1, 6)):
            self._forget_slots(UNKNOWN, UNKNOWN)

    def _forget_slots(self, dst: Value, size: Value) -> None:
        """Forget the slots [dst, dst + size) may overlap: those in reach of a frame
        pointer's size, or all when dst is a pointer the facts lost."""
        if not self.spills or not _may_be_frame(dst):
            return
        end = dst.off + size.range.umax if dst.kind is Kind.FRAME \
            and size.kind is Kind.SCALAR and size.range.umax <= isa.STACK_SIZE else 0
        lo = dst.off if dst.kind is Kind.FRAME else -isa.STACK_SIZE - 8
        kept = {off: value for off, value in self.spills.items()
                if not (off < end and lo < off + 8)}
        if len(kept) != len(self.spills):
            self.spills, self.frozen_spills = kept, None

    def _alu(self, insn: isa.Insn, wide: bool, op: int, idx: int) -> Value:
        dst = self.regs[insn.dst]
        x = insn.opcode & isa.X
        if op == isa.END:
            if dst.kind is not Kind.SCALAR:
                return UNKNOWN
            if not wide and not x:  # to-le: only truncates
                return v.scalar(v.truncate(dst.range, insn.imm) if insn.imm < 64 else dst.range)
            return v.scalar(v.unsigned_bits(insn.imm) if insn.imm < 64 else v.FULL)
        if op == isa.MOV:
            if not x:
                return v.const(insn.imm if wide else insn.imm & v.M32)
            src = self.regs[insn.src]
            if insn.off:  # movsx
                r = v.sign_extend(src.range, insn.off) if src.kind is Kind.SCALAR else v.FULL
                return v.scalar(r if wide else v.truncate(r, 32))
            if wide:
                return src
            return v.scalar(v.truncate(src.range, 32) if src.kind is Kind.SCALAR else v.U32)
        src = self.regs[insn.src] if x else v.const(insn.imm if wide else insn.imm & v.M32)
        if wide and op in (isa.ADD, isa.SUB):
            if not x:
                return dst.moved(insn.imm if op == isa.ADD else -insn.imm)
            # pointer + scalar and pointer - scalar stay in the pointer's object (a
            # map value's too, as the verifier's var_off: a field picked by a
            # variable offset); scalar + pointer is not followed, so a root is
            # always a pointer.
            if dst.kind in (Kind.ARG, Kind.PACKET, Kind.MAP_VALUE) and src.kind is Kind.SCALAR:
                moved = dst.offset_by(src.range if op == isa.ADD else v.neg(src.range))
                if moved.kind is Kind.PACKET and src.range.value is None:
                    # A fresh id, as the kernel gives a packet pointer a variable moved.
                    # No value before this add has it: every path here joins one that
                    # has not run it yet, and joins keep only the ids both sides hold.
                    return moved._replace(id=idx, off=0)
                return moved
        if dst.kind is not Kind.SCALAR or src.kind is not Kind.SCALAR:
            return v.scalar(v.U32) if not wide else UNKNOWN
        return v.scalar(_arith(op, insn, dst.range, src.range, wide))

    def _load(self, insn: isa.Insn, idx: int) -> Value:
        base = self.regs[insn.src]
        nbytes = isa.SIZE_BYTES[isa.size(insn.opcode)]
        if base.kind is Kind.FRAME and nbytes == 8:
            return self._fill(base.off + insn.off, idx)
        if base.kind is Kind.CTX:
            field = base.layout.field_at(base.off + insn.off, nbytes)
            if field is not None and field.kind != contexts.SCALAR:
                return {"data": v.PACKET_START, "data_end": v.PACKET_END}.get(
                    field.name, Value(Kind.PACKET))
        if nbytes == 8:
            return UNKNOWN
        if isa.mode(insn.opcode) == isa.MEMSX:
            return v.scalar(v.Range.signed(-(1 << (8 * nbytes - 1)), (1 << (8 * nbytes - 1)) - 1))
        return v.scalar(v.unsigned_bits(8 * nbytes))

    def _fill(self, off: int, idx: int) -> Value:
        """A number reloaded from a frame slot is the slot's: the two get id `idx`,
        so a compare that narrows the register narrows the slot (clang for eBPF
        keeps a loop's counter in a slot, compares a reload and stores the next)."""
        value = self.spills.get(off)
        if value is None or value.kind is not Kind.SCALAR:
            return UNKNOWN if value is None else value
        # The last run of this fill (a loop's earlier iteration) made another value.
        if any(r.id == idx for r in self.regs):
            self.regs = [r._replace(id=None) if r.id == idx else r for r in self.regs]
        if any(s.id == idx for s in self.spills.values()):
            self.spills = {at: s._replace(id=None) if s.id == idx else s
                           for at, s in self.spills.items()}
        self.spills[off] = value = value._replace(id=idx)
        self.frozen_spills = None
        return value

    def _store(self, insn: isa.Insn) -> None:
        base = self.regs[insn.dst]
        if base.kind is not Kind.FRAME:
            # A pointer the facts lost may still be one into this frame (r10 plus
            # a variable): what it writes there is no longer known.
            self._forget_slots(base, UNKNOWN)
            return
        lo = base.off + insn.off
        hi = lo + isa.SIZE_BYTES[isa.size(insn.opcode)]
        for off in [off for off in self.spills if off < hi and lo < off + 8]:
            del self.spills[off]
            self.frozen_spills = None
        if insn.opcode == isa.STX | isa.MEM | isa.DW:
            value = self.regs[insn.src]
        elif insn.opcode == isa.ST | isa.MEM | isa.DW:
            value = v.const(insn.imm)
        else:
            return
        if value != UNKNOWN:
            self.spills[lo] = value
            self.frozen_spills = None


def _may_be_frame(value: Value) -> bool:
    """Whether a register may point into the current frame: a frame pointer, or a
    64-bit number the facts cannot tell from one (r10 plus a variable)."""
    return value.kind is Kind.FRAME or (value.kind is Kind.SCALAR and value.range.umax >> 32 != 0)


def _arith(op: int, insn: isa.Insn, a: Range, b: Range, wide: bool) -> Range:
    """The range of a scalar ALU result (32-bit operations on the low halves)."""
    bits = 64 if wide else 32
    if not wide:
        a, b = v.truncate(a, 32), v.truncate(b, 32)
    k = b.value
    if op == isa.ADD:
        r = v.add(a, b)
    elif op == isa.SUB:
        r = v.sub(a, b)
    elif op == isa.MUL:
        r = v.mul(a, b)
    elif op in (isa.DIV, isa.MOD) and insn.off == 0:
        r = v.udiv(a, b) if op == isa.DIV else v.umod(a, b)
    elif op == isa.AND:
        r = v.and_(a, b)
    elif op == isa.OR:
        r = v.or_(a, b)
    elif op in (isa.LSH, isa.RSH) and k is not None:
        r = (v.lsh if op == isa.LSH else v.rsh)(a, k & (bits - 1))
    elif op == isa.ARSH and k is not None and wide:
        r = v.arsh(a, k & 63)
    else:
        r = v.FULL
    return r if wide else v.truncate(r, 32)


def refine(state: State, insn: isa.Insn, taken: bool) -> State | None:
    """The state on one edge of a conditional jump; None if no value takes that edge.

    Only a compare of a scalar with a constant narrows, and a 32-bit compare
    only a register whose value fits in 32 bits (then both compares agree).
    """
    reg = state.regs[insn.dst]
    if reg.kind is Kind.MAP_VALUE and reg.null and not insn.opcode & isa.X and insn.imm == 0 \
            and insn.cls == isa.JMP and isa.op(insn.opcode) in (isa.JEQ, isa.JNE):
        # The lookup's NULL test: a value on one edge, the number 0 on the other.
        found = taken == (isa.op(insn.opcode) == isa.JNE)
        regs = list(state.regs)
        regs[insn.dst] = reg._replace(null=False) if found else v.const(0)
        return state._replace(regs=tuple(regs))
    if insn.opcode & isa.X and insn.cls == isa.JMP:
        p, packet = _packet_room(isa.op(insn.opcode), reg, state.regs[insn.src], taken)
        if packet > state.packet:
            state = state._replace(packet=packet)
        # data + var + off <= data_end: off bytes past data + var are there.
        if p is not None and p.id is not None and p.off > state.room(p.id):
            rooms = dict(state.rooms)
            rooms[p.id] = min(p.off, MAX_PACKET)
            state = state._replace(rooms=tuple(sorted(rooms.items())))
    if reg.kind is not Kind.SCALAR:
        return state
    if insn.opcode & isa.X:
        k = state.regs[insn.src].range.value if state.regs[insn.src].kind is Kind.SCALAR else None
    else:
        k = insn.imm
    wide = insn.cls == isa.JMP
    bits = 64 if wide else 32
    if k is None or (not wide and not reg.range.fits(32)):
        return state
    yes = taken_values(isa.op(insn.opcode), k, bits)
    if yes is None:
        return state
    spans = yes if taken else complement(yes, (1 << bits) - 1)
    parts = [p for lo, hi in spans if (p := reg.range.meet(Range.unsigned(lo, hi))) is not None]
    if not parts:
        return None
    r = parts[0]
    for p in parts[1:]:
        r = r.hull(p)
    narrowed = v.scalar(r)
    if reg.id is None or narrowed == UNKNOWN:
        regs = list(state.regs)
        regs[insn.dst] = narrowed
        return state._replace(regs=tuple(regs))
    # Every register and slot the compared one equals (same id) is narrowed with it.
    narrowed = narrowed._replace(id=reg.id)
    regs = tuple(narrowed if x.id == reg.id else x for x in state.regs)
    spills = tuple((off, narrowed if x.id == reg.id else x) for off, x in state.spills)
    return state._replace(regs=regs, spills=spills)


# Compares of a packet pointer p with data_end, by the edge where p <= data_end
# holds: jgt/jge p, end fall through, jlt/jle p, end and jgt/jge end, p are taken,
# jlt/jle end, p fall through. (Where p < data_end holds, p <= data_end does too.)
_P_LE_END = {isa.JGT: False, isa.JGE: False, isa.JLT: True, isa.JLE: True}
_END_GE_P = {isa.JGT: True, isa.JGE: True, isa.JLT: False, isa.JLE: False}


def _packet_room(op: int, a: Value, b: Value, taken: bool) -> tuple[Value | None, int]:
    """The packet pointer a compare proves below data_end on one edge, and the bytes of
    packet that proves (check_packet_range)."""
    if a.kind is Kind.PACKET and b.kind is Kind.PACKET_END and op in _P_LE_END:
        p, edge = a, _P_LE_END[op]
    elif a.kind is Kind.PACKET_END and b.kind is Kind.PACKET and op in _END_GE_P:
        p, edge = b, _END_GE_P[op]
    else:
        return None, 0
    # data + off <= data_end for the pointer's least offset: off bytes are there.
    offsets = p.offsets
    if edge != taken or offsets is None or offsets.smin < 0:
        return None, 0
    return p, min(offsets.umin, MAX_PACKET)


MAX_PACKET = 0xFFFF   # no offset past the largest packet proves anything


@dataclass(frozen=True)
class Facts:
    """The analysis of one function: the state before each reachable instruction,
    and for each bpf-to-bpf callee the arguments its call sites here agree on."""
    before: dict[int, State]
    calls: dict[object, tuple[Value, ...]]
    # Each loop head's state as the loop is entered (joined over the edges from
    # outside it), before the widening its back edges bring.
    entering: dict[int, State] = field(default_factory=dict)
    # slot -> what a relocated lddw there loads, or the Libc a call there names
    # (analyze's `loaded`), for run_block.
    loaded: Mapping[int, Value | Libc] = field(default_factory=dict)

    def __getitem__(self, idx: int) -> State:
        return self.before[idx]


# For the instructions of a block no analysed path reaches: nothing is known,
# and nothing is refused (the kernel's verifier skips dead code too).
DEAD = State((UNKNOWN,) * 10 + (FRAME_POINTER,), (1 << isa.NUM_REGS) - 1, ())


def analyze(cfg: Cfg, slots: Sequence, args: Sequence[Value],
            loaded: Mapping[int, Value | Libc], callee_at: Mapping[int, object]) -> Facts:
    """The fixpoint from the given argument values, then the facts per instruction.

    loaded: slot -> what a relocated lddw there loads (a map; the address of data
    or code, which is no number known here), or the Libc a call there names;
    callee_at: slot -> the callee's key for each bpf-to-bpf call.
    """
    state_in = {cfg.start: entry_state(args)}
    heads = {head for _, head in cfg.back_edges}
    bounds = thresholds(cfg, slots)
    visits: dict[int, int] = {}
    # A block runs again whenever its entry state changes, so the states its
    # last run recorded are those of the fixpoint.
    before: dict[int, State] = {}
    work, queued = [cfg.start], {cfg.start}
    while work:
        leader = heappop(work)
        queued.discard(leader)
        for succ, out in _block(cfg, slots, leader, state_in[leader], loaded, before):
            old = state_in.get(succ)
            if old is None:
                new = out
            else:
                visits[succ] = visits.get(succ, 0) + 1
                widen = succ in heads and visits[succ] > WIDEN_AFTER
                new = old.join(out, widen=bounds if widen else None)
            if new != old:
                state_in[succ] = new
                if succ not in queued:
                    queued.add(succ)
                    heappush(work, succ)
    for leader in cfg.order:
        if leader not in state_in:
            for idx in cfg.blocks[leader]:
                before[idx] = DEAD
    calls: dict[object, tuple[Value, ...]] = {}
    live = {idx for leader in state_in for idx in cfg.blocks[leader]}
    for idx, callee in callee_at.items():
        if idx in live:
            site = call_args(before[idx])
            calls[callee] = site if callee not in calls else join_args(calls[callee], site)
    entering: dict[int, State] = {}
    # Only the blocks that enter a loop run again (a block's run is most of the cost).
    for leader in state_in:
        if not any(succ in heads and (leader, succ) not in cfg.back_edges
                   for succ in cfg.succs[leader]):
            continue
        for succ, out in _block(cfg, slots, leader, state_in[leader], loaded, None):
            if succ in heads and (leader, succ) not in cfg.back_edges:
                entering[succ] = out if succ not in entering else entering[succ].join(out)
    return Facts(before, calls, entering, loaded)


def run_block(cfg: Cfg, slots, leader: int, state: State, loaded) -> list[tuple[int, State]]:
    """Run one block from `state`, without joining anything: (successor, state on
    that edge) for each edge some value takes."""
    return list(_block(cfg, slots, leader, state, loaded, None))


def _block(cfg: Cfg, slots, leader: int, state: State, loaded, record: dict | None):
    """Run one block from `state`; yields (successor, state on that edge)."""
    step = _Step(state)
    for idx in cfg.blocks[leader]:
        if record is not None:
            record[idx] = step.freeze()
        step.run(slots[idx], loaded.get(idx), idx)
    out = step.freeze()
    succs = cfg.succs[leader]
    last = slots[cfg.blocks[leader][-1]]
    if len(succs) == 2 and succs[0] != succs[1]:
        for succ, taken in zip(succs, (True, False)):
            edge = refine(out, last, taken)
            if edge is not None:
                yield succ, edge
        return
    for succ in dict.fromkeys(succs):
        yield succ, out


def call_args(state: State) -> tuple[Value, ...]:
    """r1-r5 as a callee sees them: a pointer into this frame or derived from a root
    of this function is a pointer root of the callee's own."""
    return tuple(v.arg(r) if a.kind in (Kind.FRAME, Kind.ARG, Kind.PACKET)
                 else a for r, a in enumerate(state.regs[1:6], 1))


def join_args(a: Sequence[Value], b: Sequence[Value]) -> tuple[Value, ...]:
    """A function's arguments: what all its callers agree on."""
    return tuple(x.join(y) for x, y in zip(a, b))


def check_reads(cfg: Cfg, slots, facts: Facts) -> None:
    """Refuse reading a register that is not written on every path to the read."""
    for idx in cfg:
        written = facts[idx].written
        for r in isa.regs_read(slots[idx]):
            if not written >> r & 1:
                raise EbpfLtoError(f"reads r{r}, which is not written on every path to here",
                                   insn=idx)
