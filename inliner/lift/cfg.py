"""Control flow of one eBPF function: its blocks, their edges and loops, found once.

Built before any analysis, as the kernel's verifier checks the CFG
(`check_cfg`) before it looks at values: every jump lands on an instruction
of the function, never in the middle of an lddw, and control never falls
off the end. Only reachable instructions form blocks.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import networkx as nx

from ..facts import isa
from ..errors import EbpfLtoError


def _error(idx: int, reason: str) -> EbpfLtoError:
    return EbpfLtoError(reason, insn=idx)


def ends_block(insn: isa.Insn) -> bool:
    """A jump or exit (calls return to the next instruction)."""
    return insn.cls in (isa.JMP, isa.JMP32) and isa.op(insn.opcode) != isa.CALL


def is_branch(insn: isa.Insn) -> bool:
    """A conditional jump: two successors."""
    return insn.cls in (isa.JMP, isa.JMP32) and isa.op(insn.opcode) in isa.COND_JMP_OPS


@dataclass(frozen=True)
class Cfg:
    """The reachable blocks of the function [start, end) of a section's slots."""
    start: int
    end: int
    order: tuple[int, ...]                  # block leaders, in instruction order
    succs: dict[int, tuple[int, ...]]       # leader -> successor leaders (taken first)
    blocks: dict[int, tuple[int, ...]]      # leader -> its instructions' slot indices

    def insns(self, leader: int) -> tuple[int, ...]:
        return self.blocks[leader]

    def __iter__(self) -> Iterator[int]:
        """Every reachable instruction, block by block."""
        for leader in self.order:
            yield from self.blocks[leader]

    @cached_property
    def block_of(self) -> dict[int, int]:
        return {idx: leader for leader in self.order for idx in self.blocks[leader]}

    @cached_property
    def preds(self) -> dict[int, tuple[int, ...]]:
        out: dict[int, list[int]] = {leader: [] for leader in self.order}
        for leader in self.order:
            for s in self.succs[leader]:
                out[s].append(leader)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def loop_blocks(self) -> frozenset[int]:
        """Leaders of blocks on a cycle: a static hint that they run often."""
        graph = nx.DiGraph((a, b) for a, succ in self.succs.items() for b in succ)
        graph.add_nodes_from(self.order)
        return frozenset(n for comp in nx.strongly_connected_components(graph)
                         for n in comp if len(comp) > 1 or graph.has_edge(n, n))

    @cached_property
    def idom(self) -> dict[int, int]:
        """Each block's immediate dominator (the entry's is itself)."""
        graph = nx.DiGraph((a, b) for a, succ in self.succs.items() for b in succ)
        graph.add_nodes_from(self.order)
        return nx.immediate_dominators(graph, self.start)

    def dominates(self, a: int, b: int) -> bool:
        """Every path from the entry to block b passes block a."""
        idom = self.idom
        while b != a and idom.get(b, b) != b:
            b = idom[b]
        return b == a

    @cached_property
    def always(self) -> tuple[int, ...]:
        """The blocks every run of the function that returns passes: the entry's
        post-dominators, in order."""
        exit_ = -1
        graph = nx.DiGraph((b, a) for a, succ in self.succs.items() for b in succ)
        graph.add_edges_from((exit_, a) for a in self.order if not self.succs[a])
        if exit_ not in graph:
            return ()
        ipdom = nx.immediate_dominators(graph, exit_)
        out, b = [], self.start
        while b in ipdom and b != exit_:
            out.append(b)
            b = ipdom[b]
        return tuple(out)

    @cached_property
    def natural_loops(self) -> frozenset[int]:
        """Headers whose every back edge comes from a block they dominate: the
        loops entered only through their header (reducible)."""
        headers: dict[int, bool] = {}
        for src, dst in self.back_edges:
            headers[dst] = headers.get(dst, True) and self.dominates(dst, src)
        return frozenset(h for h, ok in headers.items() if ok)

    def loop_body(self, header: int) -> frozenset[int]:
        """The blocks of the natural loop of `header` (one of natural_loops)."""
        body, todo = {header}, [s for s, d in self.back_edges if d == header]
        while todo:
            n = todo.pop()
            if n not in body:
                body.add(n)
                todo.extend(self.preds[n])
        return frozenset(body)

    @cached_property
    def back_edges(self) -> frozenset[tuple[int, int]]:
        """Edges that close a cycle in a depth-first walk from the entry: where loops close."""
        out, state = set(), {}
        stack = [(self.start, iter(self.succs[self.start]))]
        state[self.start] = 1  # on the walk's path
        while stack:
            leader, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[leader] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                out.add((leader, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(self.succs[nxt])))
        return frozenset(out)

    @cached_property
    def branches(self) -> tuple[int, ...]:
        """The conditional jumps, in block order."""
        return tuple(self.blocks[leader][-1] for leader in self.order
                     if len(self.succs[leader]) == 2)


def successors(slots: Sequence, start: int, end: int, idx: int) -> list[int]:
    """Slot indices control may go to after the instruction at `idx`; checks each."""
    insn = slots[idx]
    nxt = idx + (2 if insn.is_wide else 1)
    c = insn.cls

    def target(to: int) -> int:
        if not start <= to < end:
            raise _error(idx, f"jump to instruction {to}, outside the function")
        if slots[to] is None:
            raise _error(idx, f"jump into the middle of lddw at {to - 1}")
        return to

    def fallthrough() -> int:
        if nxt >= end:
            raise _error(idx, "control falls off the end of the function")
        return nxt

    if c in (isa.JMP, isa.JMP32):
        op = isa.op(insn.opcode)
        if op == isa.EXIT and c == isa.JMP:
            return []
        if op == isa.CALL and c == isa.JMP:
            return [fallthrough()]
        if op == isa.JA:
            return [target(idx + 1 + (insn.imm if c == isa.JMP32 else insn.off))]
        if op in isa.COND_JMP_OPS:
            return [target(idx + 1 + insn.off), fallthrough()]
    return [fallthrough()]


def build(slots: Sequence, start: int, end: int) -> Cfg:
    """The CFG of the function whose slots are [start, end)."""
    if not 0 <= start < end <= len(slots):
        raise _error(start, f"function [{start}, {end}) lies outside its section's "
                            f"{len(slots)} instructions")
    succ_of: dict[int, list[int]] = {}
    leaders = {start}
    todo = [start]
    while todo:
        idx = todo.pop()
        if idx in succ_of:
            continue
        insn = slots[idx]
        if insn is None:
            raise _error(idx, "second slot of lddw reached as an instruction")
        succ = succ_of[idx] = successors(slots, start, end, idx)
        if ends_block(insn):
            leaders.update(succ)
        todo.extend(succ)
    order = tuple(sorted(leaders))
    succs, blocks = {}, {}
    for leader in order:
        idx, body = leader, [leader]
        while not ends_block(slots[idx]) and succ_of[idx][0] not in leaders:
            idx = succ_of[idx][0]
            body.append(idx)
        succs[leader] = tuple(succ_of[idx])
        blocks[leader] = tuple(body)
    return Cfg(start, end, order, succs, blocks)


IF_CONVERT_LIMIT = 20  # instructions in an arm of a branch the profile leaves unweighted


def select_shaped(cfg: Cfg, slots: Sequence, taken: int, fall: int) -> bool:
    """A branch around a few instructions that rejoin: a select in the source.

    eBPF has no select, so the compiler for eBPF made each one a branch.
    Weighted, LLVM would keep it a branch (a predictable one); unweighted,
    SimplifyCFG turns it back into a select, as clang does before it reads
    a profile of its own (lift/emit.py weighs the others).
    """
    succs = cfg.succs

    def cheap_arm(leader: int) -> bool:
        """A block of at most IF_CONVERT_LIMIT ALU instructions and stack accesses."""
        body = [slots[i] for i in cfg.insns(leader)]
        body = [i for i in body
                if not (i.cls in (isa.JMP, isa.JMP32) and isa.op(i.opcode) == isa.JA)]

        def cheap(i: isa.Insn) -> bool:
            if i.cls in (isa.ALU, isa.ALU64):
                return True
            if i.cls in (isa.ST, isa.STX):
                return i.dst == 10 and isa.mode(i.opcode) == isa.MEM
            return i.cls == isa.LDX and i.src == 10
        return len(body) <= IF_CONVERT_LIMIT and all(cheap(i) for i in body)
    if succs.get(taken) == (fall,):
        return cheap_arm(taken)
    if succs.get(fall) == (taken,):
        return cheap_arm(fall)
    return (len(succs.get(taken, ())) == 1 and succs.get(taken) == succs.get(fall)
            and cheap_arm(taken) and cheap_arm(fall))
