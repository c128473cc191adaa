"""Which registers and frame slots hold no region (guard.py) before each instruction.

A checked build keeps a region beside every register and every 8-byte frame
slot, but most registers hold numbers that no pointer ever reached: a loop
counter, a sum, a byte loaded from a packet. Where every path to an
instruction leaves a register (or slot) with no region, the guard neither
loads its shadow there nor stores "no region" into it again, so the IR
LLVM reads is about the size of an unchecked build's (a 100k-instruction
program's lifted IR: 2.4x the unchecked size before, as most instructions
moved a shadow nobody read).

A forward must-analysis over the CFG, as dataflow.py runs, with bit masks
for states: it follows exactly how `guard.Guard` moves regions (moves,
scalar + pointer, spills and reloads, calls), so that wherever it says "no
region", the shadow holds none; a check reading a shadow gets the same
region either way, so no check is dropped.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from ..facts import isa
from ..facts.helpers import HELPER_IDS, MAP_LOOKUP, MAP_LOOKUP_PERCPU, RINGBUF_RESERVE
from .cfg import Cfg
from .dataflow import Facts, Libc
from .values import Kind, Value

# Helper calls whose r0 gets a region (Guard.helper_result); every other
# helper's r0 is a number.
REGION_RESULTS = (MAP_LOOKUP, MAP_LOOKUP_PERCPU, RINGBUF_RESERVE)
# Helpers that call a function of the program, which may spill into our frame.
CALLING_BACK = frozenset((HELPER_IDS["loop"], HELPER_IDS["for_each_map_elem"]))
ALL_SLOTS = (1 << (isa.STACK_SIZE // 8)) - 1
ARGS = 0b111110


class Bare(NamedTuple):
    """Registers (bit r) and frame slots (bit n: r10 - 512 + 8n) with no region."""
    regs: int
    slots: int


def never_frame(fact: Value, frame_free_args: bool) -> bool:
    """Whether the region of a pointer with this fact is never a frame's (so an
    8-byte access through it reads or writes no slot's region): packet and map
    memory, and the arguments of a function no other function calls."""
    return fact.kind in (Kind.PACKET, Kind.MAP_VALUE) or (fact.kind is Kind.ARG
                                                          and frame_free_args)


def frame_slot(fact: Value, off: int) -> int | None:
    """The slot of an 8-byte frame access at a constant aligned offset (Guard._slot)."""
    if fact.kind is not Kind.FRAME:
        return None
    pos = isa.STACK_SIZE + fact.off + off
    if pos % 8 or not 0 <= pos < isa.STACK_SIZE:
        return None
    return pos // 8


def analyze(cfg: Cfg, slots: Sequence, facts: Facts, first_regs: int,
            frame_free_args: bool) -> dict[int, Bare]:
    """The registers and slots with no region before each instruction, from
    `first_regs` at the entry (every slot starts with none); `frame_free_args`:
    no argument's region is a frame's (never_frame)."""
    first = Bare(first_regs, ALL_SLOTS)
    state_in = {cfg.start: first}
    before: dict[int, Bare] = {}
    work = [cfg.start]
    while work:
        leader = work.pop()
        regs, bare_slots = state_in[leader]
        for idx in cfg.blocks[leader]:
            before[idx] = Bare(regs, bare_slots)
            regs, bare_slots = _step(slots[idx], idx, facts, regs, bare_slots, frame_free_args)
        for succ in cfg.succs[leader]:
            old = state_in.get(succ)
            new = Bare(regs, bare_slots) if old is None else Bare(old.regs & regs,
                                                                  old.slots & bare_slots)
            if new != old:
                state_in[succ] = new
                work.append(succ)
    return before


def _step(insn: isa.Insn, idx: int, facts: Facts, regs: int, bare_slots: int,
          frame_free_args: bool) -> tuple[int, int]:
    """One instruction's effect, as Guard.after and the emitter's `give`s have it."""
    c, op = insn.cls, isa.op(insn.opcode)
    wide = isa.size(insn.opcode) == isa.DW
    state = facts[idx].regs
    loaded: Mapping = facts.loaded
    if c in (isa.ST, isa.STX) and wide:
        stored = regs >> insn.src & 1 if c == isa.STX and isa.mode(insn.opcode) == isa.MEM \
            else 1
        slot = frame_slot(state[insn.dst], insn.off)
        if slot is not None:
            bare_slots = bare_slots | 1 << slot if stored else bare_slots & ~(1 << slot)
        elif not stored and not never_frame(state[insn.dst], frame_free_args):
            bare_slots = 0   # some frame's slot, perhaps one of ours, now has a region
    for r in isa.regs_written(insn):
        if c in (isa.ALU, isa.ALU64) and op == isa.MOV:
            bare = regs >> insn.src & 1 if insn.opcode & isa.X and not insn.off else 1
        elif c == isa.ALU64 and op == isa.ADD and insn.opcode & isa.X \
                and not state[insn.dst].is_pointer and state[insn.src].is_pointer:
            bare = regs >> insn.src & 1
        elif c in (isa.ALU, isa.ALU64):
            continue
        elif c == isa.LDX:
            base = state[insn.src]
            slot = frame_slot(base, insn.off) if wide else None
            if slot is not None:
                bare = bare_slots >> slot & 1
            else:   # a context read of a packet pointer gets the packet's region
                bare = base.kind is not Kind.CTX and (not wide or base.kind is Kind.FRAME
                                                      or never_frame(base, frame_free_args))
        elif insn.is_wide:   # lddw: only data's address has a region
            bare = idx not in loaded or getattr(loaded[idx], "kind", None) is Kind.MAP
        elif c == isa.JMP and op == isa.CALL:
            bare = _call_result_bare(insn, loaded.get(idx), regs)
        else:
            bare = 1
        regs = regs | 1 << r if bare else regs & ~(1 << r)
    if c == isa.JMP and op == isa.CALL:
        regs |= ARGS
        if not (isa.call_kind(insn) is isa.CallKind.HELPER and insn.opcode != isa.CALLX
                and insn.imm not in CALLING_BACK) and not isinstance(loaded.get(idx), Libc):
            bare_slots = 0   # a callee (or a callback) may write a region into our slots
    return regs, bare_slots


def _call_result_bare(insn: isa.Insn, loaded, regs: int) -> int:
    """Whether r0 has no region after a call."""
    if isinstance(loaded, Libc):   # memset, memcpy and memmove return r1, with its region
        return 1 if loaded.name == "memcmp" else regs >> 1 & 1
    if insn.opcode == isa.CALLX:
        return 0
    kind = isa.call_kind(insn)
    return 0 if kind is isa.CallKind.HELPER and insn.imm in REGION_RESULTS else 1
