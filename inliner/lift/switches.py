"""Part of stage 2, lift: switches recovered from the compare trees eBPF lowered them to.

eBPF has no indirect jump, so clang for eBPF lowers a C `switch` to a tree of
conditional jumps on one register (`if w6 s> 7 goto ...; if w6 s> 3 goto ...`).
LLVM turns chains of equality tests back into a switch, but not trees of
range tests, so without help the native code keeps the tree where clang for
the host would use a jump table or a lookup table. This module finds such a
tree and says which leaf each value reaches; the lifter emits one LLVM
`switch`, and LLVM's own switch lowering decides how to dispatch.

A tree is a block ending in a conditional jump that compares a register with
an immediate, whose successors are either leaves or nodes: blocks that hold
nothing but such a jump on the same register and width, reached from one
place only. Every value of the register then reaches exactly one leaf, a set
of intervals; the leaf with the most values becomes the default, the others
cases (at most MAX_CASES values). What the register was just computed from
(`& mask`, a narrow load, a right shift) bounds it, so that values that
cannot occur do not count.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..facts import isa

MIN_COMPARES = 3   # fewer compares: LLVM does as well with the branches
MAX_CASES = 256    # values listed as cases, over all non-default leaves

Intervals = list[tuple[int, int]]  # sorted, disjoint, inclusive, unsigned


@dataclass(frozen=True)
class Edge:
    jump: int       # slot of the conditional jump
    taken: bool     # its taken edge (else its fall-through)
    leaf: int       # leader of the block the edge leads to
    values: int     # how many possible values take it


@dataclass(frozen=True)
class Switch:
    reg: int
    wide: bool                         # a 64-bit compare (else the low 32 bits)
    cases: tuple[tuple[int, int, int], ...]  # (value, leaf leader, index of its edge)
    default: int                       # leaf leader for every other value
    edges: tuple[Edge, ...]            # the tree's edges into leaves, for branch weights


def _intersect(a: Intervals, b: Intervals) -> Intervals:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def complement(a: Intervals, top: int) -> Intervals:
    """The values in [0, top] outside the intervals."""
    out, start = [], 0
    for lo, hi in a:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= top:
        out.append((start, top))
    return out


def _size(a: Intervals) -> int:
    return sum(hi - lo + 1 for lo, hi in a)


def _signed(lo: int, hi: int, bits: int) -> Intervals:
    """The signed interval [lo, hi] as unsigned intervals."""
    if lo > hi:
        return []
    m = 1 << bits
    if lo >= 0 or hi < 0:
        return [(lo % m, hi % m)]
    return [(0, hi), (lo % m, m - 1)]


def taken_values(op: int, imm: int, bits: int) -> Intervals | None:
    """The values of the register for which a compare with `imm` jumps; None for jset."""
    top = (1 << bits) - 1
    c = imm & top
    s = c - (1 << bits) if c >> (bits - 1) else c
    smin, smax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    name = isa.COND_JMP_OPS.get(op)
    table = {
        "jeq": [(c, c)], "jne": complement([(c, c)], top),
        "jgt": [(c + 1, top)] if c < top else [], "jge": [(c, top)],
        "jlt": [(0, c - 1)] if c > 0 else [], "jle": [(0, c)],
        "jsgt": _signed(s + 1, smax, bits), "jsge": _signed(s, smax, bits),
        "jslt": _signed(smin, s - 1, bits), "jsle": _signed(smin, s, bits),
    }
    return sorted(table[name]) if name in table else None


def _compare(insn: isa.Insn | None) -> tuple[int, bool] | None:
    """(register, wide) if `insn` is a conditional jump comparing a register with an immediate."""
    if insn is None or insn.cls not in (isa.JMP, isa.JMP32) or insn.opcode & isa.X:
        return None
    op = isa.op(insn.opcode)
    if op not in isa.COND_JMP_OPS or op == isa.JSET:
        return None
    return insn.dst, insn.cls == isa.JMP


def _bound(insns: list[isa.Insn], reg: int, bits: int) -> Intervals:
    """What the last write to `reg` in the block says of its value."""
    top = (1 << bits) - 1
    for insn in reversed(insns):
        if reg not in isa.regs_written(insn):
            continue
        c, op = insn.cls, isa.op(insn.opcode)
        limit = top
        if c in (isa.ALU, isa.ALU64) and op == isa.AND and not insn.opcode & isa.X:
            mask = insn.imm & (0xFFFFFFFF if c == isa.ALU else 0xFFFFFFFFFFFFFFFF)
            limit = min(top, mask) if mask <= top else top
        elif c in (isa.ALU, isa.ALU64) and op == isa.RSH and not insn.opcode & isa.X:
            width = 32 if c == isa.ALU else 64
            shift = insn.imm & (width - 1)
            limit = min(top, (1 << (width - shift)) - 1)
        elif c == isa.LDX and isa.mode(insn.opcode) == isa.MEM and isa.size(insn.opcode) != isa.DW:
            limit = min(top, (1 << (8 * isa.SIZE_BYTES[isa.size(insn.opcode)])) - 1)
        elif c == isa.ALU:
            limit = min(top, 0xFFFFFFFF)
        return [(0, limit)]
    return [(0, top)]


def find(slots, order: Iterable[int], succs: dict[int, list[int]],
         block_insns: Callable[[int], Iterable[int]]) -> dict[int, Switch]:
    """The compare trees of one function's CFG, by the slot of each root's jump."""
    order = list(order)
    preds: dict[int, int] = {}
    for leader in order:
        for s in set(succs[leader]):
            preds[s] = preds.get(s, 0) + 1
    body = {leader: list(block_insns(leader)) for leader in order}

    def node(leader: int, key: tuple[int, bool]) -> bool:
        """A block that is only a compare of the same register, entered from one place."""
        idx = body[leader]
        return (len(idx) == 1 and _compare(slots[idx[0]]) == key and preds.get(leader) == 1
                and len(set(succs[leader])) == 2)

    inner = set()
    for leader in order:
        key = _compare(slots[body[leader][-1]])
        if key is not None and len(set(succs[leader])) == 2:
            inner.update(s for s in succs[leader] if node(s, key))
    found = {}
    for leader in order:
        jump = body[leader][-1]
        key = _compare(slots[jump])
        if key is None or leader in inner or len(set(succs[leader])) != 2:
            continue
        reg, wide = key
        bits = 64 if wide else 32
        insns = [slots[i] for i in body[leader][:-1]]
        switch = _tree(slots, body, succs, node, leader, key,
                       _bound(insns, reg, bits), bits)
        if switch is not None:
            found[jump] = switch
    return found


def _tree(slots, body, succs, node, root: int, key, domain: Intervals,
          bits: int) -> Switch | None:
    top = (1 << bits) - 1
    leaves: dict[int, Intervals] = {}
    edges: list[tuple[Edge, Intervals]] = []
    compares = 0
    todo = [(root, domain)]
    while todo:
        leader, values = todo.pop()
        jump = body[leader][-1]
        insn = slots[jump]
        compares += 1
        yes = taken_values(isa.op(insn.opcode), insn.imm, bits)
        taken, fall = succs[leader]
        for target, part, is_taken in ((taken, _intersect(values, yes), True),
                                       (fall, _intersect(values, complement(yes, top)), False)):
            if not part:
                continue
            if target != root and node(target, key):
                todo.append((target, part))
            else:
                leaves[target] = sorted(leaves.get(target, []) + part)
                edges.append((Edge(jump, is_taken, target, _size(part)), part))
    if compares < MIN_COMPARES or len(leaves) < 3:
        return None
    default = max(leaves, key=lambda leaf: (_size(leaves[leaf]), -leaf))
    if sum(_size(v) for leaf, v in leaves.items() if leaf != default) > MAX_CASES:
        return None
    cases = sorted((value, edge.leaf, n) for n, (edge, spans) in enumerate(edges)
                   if edge.leaf != default for lo, hi in spans for value in range(lo, hi + 1))
    return Switch(key[0], key[1], tuple(cases), default, tuple(e for e, _ in edges))
