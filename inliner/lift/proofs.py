"""What a checked build needs to check, decided from the facts alone (docs/safety.md).

The analysis half of the run-time safety, kept apart from its emission
(guard.py) as the facts are kept apart from the emitter: which loops the
facts prove end, which pointers a bounded loop walks and how far, which
loops to emit twice, which accesses share one check. Plain functions over
a function's CFG, its facts and its instructions.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Collection, Sequence

from ..facts import isa
from ..facts.helpers import TAIL_CALL
from .cfg import Cfg
from .dataflow import Facts
from .values import M64, Kind, Range, Value

PACKET_ROOT = 0   # the root of accesses through PACKET pointers (ARG roots are 1-5)

Extents = dict[tuple[int, bool], tuple[int, int]]   # (root, writes) -> offsets [lo, hi)


@dataclass(frozen=True)
class Version:
    """A loop emitted twice: an unchecked copy entered when the regions hold `extents`."""
    body: frozenset[int]       # its blocks
    covered: dict[int, int]    # access insn -> root, unchecked in the copy
    extents: Extents


def memory_access(insn: isa.Insn) -> tuple[int, int, int, bool] | None:
    """(base register, offset, size, writes) of a load, store or atomic."""
    size = isa.SIZE_BYTES[isa.size(insn.opcode)]
    if insn.cls == isa.LDX and isa.mode(insn.opcode) in (isa.MEM, isa.MEMSX):
        return insn.src, insn.off, size, False
    if insn.cls in (isa.ST, isa.STX) and isa.mode(insn.opcode) in (isa.MEM, isa.ATOMIC):
        return insn.dst, insn.off, size, True
    return None


def is_call(insn: isa.Insn) -> bool:
    return insn.cls == isa.JMP and isa.op(insn.opcode) == isa.CALL


def may_end_run(insn: isa.Insn, unwind: Collection[int]) -> bool:
    """A call after which the function may not go on: a tail call, callx, a helper
    that unwinds, a bpf-to-bpf call (its callee may)."""
    return is_call(insn) and (isa.call_kind(insn) is not isa.CallKind.HELPER
                              or insn.imm == TAIL_CALL or insn.imm in unwind)


def _single_add(cfg: Cfg, slots: Sequence, r: int, h: int, body: frozenset[int],
                ops: tuple[int, ...]) -> tuple[int, isa.Insn] | None:
    """The one instruction of the loop that writes r, if it is one of `ops` with an
    immediate and runs on every way round (its block dominates the back edges)."""
    writes = [(leader, idx) for leader in body for idx in cfg.insns(leader)
              if r in isa.regs_written(slots[idx])]
    if len(writes) != 1:
        return None
    leader, idx = writes[0]
    insn = slots[idx]
    latches = [s for s, d in cfg.back_edges if d == h]
    if insn.opcode not in ops or insn.imm == 0 or \
            not all(cfg.dominates(leader, s) for s in latches):
        return None
    return leader, insn


def bounded_loops(cfg: Cfg, facts: Facts, slots: Sequence, cap: int
                  ) -> dict[int, tuple[int, str]]:
    """Natural loops the facts prove run at most `cap` times, by header: (times, why).

    A register the loop changes only by one `add` of a constant, on every way
    round, whose value at the header the facts bound: each time round moves it
    a step, so the loop runs at most (range / step) + 1 times. (The kernel's
    verifier proves such loops by walking them.)"""
    out = {}
    adds = (isa.ALU64 | isa.ADD | isa.K, isa.ALU64 | isa.SUB | isa.K)
    for h in cfg.natural_loops:
        body = cfg.loop_body(h)
        calls = any(is_call(slots[i]) for leader in body for i in cfg.insns(leader))
        for r in range(6, 10) if calls else range(10):   # a call clobbers r0-r5
            found = _single_add(cfg, slots, r, h, body, adds)
            at = facts[h].regs[r]
            if found is None or at.kind is not Kind.SCALAR:
                continue
            insn = found[1]
            step = insn.imm if isa.op(insn.opcode) == isa.ADD else -insn.imm
            lo, hi = at.range.umin, at.range.umax
            if (step > 0 and hi + step > M64) or (step < 0 and lo + step < 0):
                continue   # it could wrap round
            times = (hi - lo) // abs(step) + 1
            if times <= cap:
                out[h] = (times, f"at most {times} times (r{r} in [{lo}, {hi}] by {step:+d})")
                break
    return out


def moving_pointers(cfg: Cfg, facts: Facts, slots: Sequence, h: int, times: int
                    ) -> dict[int, Value]:
    """In a loop that runs at most `times` times: the pointers it moves by a constant
    once each time round (as clang walks an array), with their offsets over all
    its runs, from where they enter to where the bound lets them go."""
    entering = facts.entering.get(h)
    body = cfg.loop_body(h)
    if entering is None or any(d not in cfg.natural_loops
                               for s, d in cfg.back_edges if s in body):
        return {}   # a cycle inside with more than one entry
    inner = [cfg.loop_body(d) for d in cfg.natural_loops if d != h and d in body]
    calls = any(is_call(slots[i]) for leader in body for i in cfg.insns(leader))
    out = {}
    for r in range(6, 10) if calls else range(10):
        start = entering.regs[r]
        if start.kind not in (Kind.ARG, Kind.PACKET) or start.offsets is None:
            continue
        found = _single_add(cfg, slots, r, h, body, (isa.ALU64 | isa.ADD | isa.K,))
        if found is None or any(found[0] in i for i in inner):
            continue   # not once each time round
        reach = found[1].imm * times
        lo = start.offsets.umin + min(0, reach)
        hi = start.offsets.umax + max(0, reach)
        if lo >= 0:
            out[r] = start._replace(range=Range.unsigned(lo, hi))
    return out


def versions(cfg: Cfg, facts: Facts, slots: Sequence, unwind: Collection[int],
             bounded: dict[int, tuple[int, str]]) -> dict[int, Version]:
    """The loops to emit twice: a copy without the checks of the accesses at
    bounded offsets from pointer arguments and the packet, entered when their
    regions hold every offset the facts allow, and the checked loop otherwise,
    so that LLVM vectorizes and unrolls the copy as it does an unchecked build.
    Outermost first; not loops with calls that may end the run."""
    out, taken = {}, set()
    for h in sorted(cfg.natural_loops, key=lambda h: -len(cfg.loop_body(h))):
        body = cfg.loop_body(h)
        insns = [idx for leader in sorted(body) for idx in cfg.insns(leader)]
        if body & taken or any(may_end_run(slots[i], unwind) for i in insns):
            continue
        moving = moving_pointers(cfg, facts, slots, h, bounded[h][0]) if h in bounded else {}
        extents: dict[tuple[int, bool], list[int]] = {}
        covered = {}
        for idx in insns:
            access = memory_access(slots[idx])
            if access is None:
                continue
            base, off, size, write = access
            fact = facts[idx].regs[base]
            if fact.offsets is None and base in moving and \
                    (fact.kind, fact.root) == (moving[base].kind, moving[base].root):
                fact = moving[base]
            offsets = fact.offsets
            if fact.kind not in (Kind.ARG, Kind.PACKET) or offsets is None \
                    or offsets.umin + off < 0:
                continue
            lo, hi = offsets.umin + off, offsets.umax + off + size
            root = fact.root if fact.kind is Kind.ARG else PACKET_ROOT
            have = extents.setdefault((root, write), [lo, hi])
            have[0], have[1] = min(have[0], lo), max(have[1], hi)
            covered[idx] = root
        if covered:
            out[h] = Version(body, covered, {k: (v[0], v[1]) for k, v in extents.items()})
            taken |= body
    return out


def _constant_access(facts: Facts, slots: Sequence, idx: int):
    """(root, lo, size, writes) of an access at a constant offset from a pointer argument."""
    access = memory_access(slots[idx])
    if access is None:
        return None
    base, off, size, write = access
    fact = facts[idx].regs[base]
    offsets = fact.offsets
    if fact.kind is not Kind.ARG or offsets is None or offsets.value is None \
            or offsets.value + off < 0:
        return None
    return fact.root, offsets.value + off, size, write


def _group(groups: dict, key, idx: int, lo: int, hi: int) -> int:
    """Add [lo, hi) to the group of key (made with idx first); its first insn."""
    group = groups.setdefault(key, [idx, lo, hi])
    group[1], group[2] = min(group[1], lo), max(group[2], hi)
    return group[0]


def entry_groups(cfg: Cfg, facts: Facts, slots: Sequence, unwind: Collection[int]
                 ) -> tuple[dict, dict[int, int]]:
    """The accesses at constant offsets from a pointer argument in the blocks every
    returning run of the function passes (cfg.always), to check once at its entry:
    ({(root, writes): [first insn, lo, hi]}, {access: root}). None for a function
    with a call that may end the run otherwise than by returning."""
    if any(may_end_run(slots[idx], unwind) for idx in cfg):
        return {}, {}
    groups, covered = {}, {}
    for leader in cfg.always:
        for idx in cfg.insns(leader):
            if (access := _constant_access(facts, slots, idx)) is not None:
                root, lo, size, write = access
                _group(groups, (root, write), idx, lo, lo + size)
                covered[idx] = root
    return (groups, covered) if len(covered) > 1 else ({}, {})


def block_groups(facts: Facts, slots: Sequence, insns: Sequence[int], unwind: Collection[int],
                 skip: Collection[int]) -> tuple[dict[int, tuple[int, int, int]], dict[int, int]]:
    """A block's accesses at constant offsets from one pointer argument, checked
    once at the first for their whole extent: ({leader: (root, lo, hi)}, {access:
    leader}). The block runs them all unless a call ends the run first (which ends
    the groups), so a fault comes no later than its access, only earlier."""
    merged, covered, groups = {}, {}, {}

    def close():
        for (root, _), (leader, lo, hi) in groups.items():
            merged[leader] = (root, lo, hi)
        groups.clear()
    for idx in insns:
        if idx not in skip and (access := _constant_access(facts, slots, idx)) is not None:
            root, lo, size, write = access
            leader = _group(groups, (root, write), idx, lo, lo + size)
            if leader != idx:
                covered[idx] = leader
        if may_end_run(slots[idx], unwind):
            close()
    close()
    return merged, covered
