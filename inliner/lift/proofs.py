"""What a checked build needs to check, decided from the facts alone (docs/safety.md).

The analysis half of the run-time safety, kept apart from its emission
(guard.py) as the facts are kept apart from the emitter: which loops the
facts prove end, which pointers a bounded loop walks and how far, which
loops to emit twice, which accesses share one check. Plain functions over
a function's CFG, its facts and its instructions.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from collections.abc import Collection, Mapping, Sequence

from ..facts import isa
from ..facts.helpers import LIBC_FUNCTIONS, TAIL_CALL, ArgKind
from .cfg import Cfg
from .dataflow import Facts, Libc, run_block
from .values import M64, S64_MAX, S64_MIN, Kind, Range, Value

PACKET_ROOT = 0   # the root of accesses through PACKET pointers (ARG roots are 1-5)

Extents = dict[tuple[int, bool], tuple[int, int]]   # (root, writes) -> offsets [lo, hi)


@dataclass(frozen=True)
class Version:
    """A loop emitted twice: an unchecked copy entered when the regions hold `extents`."""
    body: frozenset[int]       # its blocks
    covered: dict              # access insn, or (call insn, register) -> root: unchecked in the copy
    extents: Extents
    tail: frozenset[int] = frozenset()  # blocks after it the copy goes on into (loop_tail)

    @cached_property
    def blocks(self) -> frozenset[int]:
        """The blocks the copy has: the loop's and its tail's (asked at every branch)."""
        return self.body | self.tail


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


def may_end_run(facts: Facts, slots: Sequence, idx: int, unwind: Collection[int]) -> bool:
    """An instruction after which the function may not go on: a tail call, callx, a
    helper that unwinds, a bpf-to-bpf call (its callee may), a legacy packet load.
    A call of the C library goes on (or faults, as an access may)."""
    insn = slots[idx]
    if is_call(insn):   # asked of every instruction: `loaded` looked up only where it matters
        return not isinstance(facts.loaded.get(idx), Libc) and (
            isa.call_kind(insn) is not isa.CallKind.HELPER or insn.imm == TAIL_CALL
            or insn.imm in unwind)
    return isa.is_packet_load(insn) and not isinstance(facts.loaded.get(idx), Libc)


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
                # It could wrap round unsigned: a counter clang starts below zero
                # (i = -2; i += 2) may still stay clear of the signed wrap.
                lo, hi = at.range.smin, at.range.smax
                if (step > 0 and hi + step > S64_MAX) or (step < 0 and lo + step < S64_MIN):
                    continue
            times = (hi - lo) // abs(step) + 1
            if times <= cap:
                out[h] = (times, f"at most {times} times (r{r} in [{lo}, {hi}] by {step:+d})")
                break
        if h not in out and (times := walked_bound(cfg, facts, slots, h)) is not None \
                and times <= cap:
            out[h] = (times, f"at most {times} times (its body run every way the facts "
                             "allow from the state it is entered with)")
    return out


WALK_BLOCKS = 10_000   # blocks run per loop, at most, to prove it ends by walking it (~0.3 s)


class _GiveUp(Exception):
    pass


def _compare(insn: isa.Insn) -> tuple | None:
    """A conditional jump as (its opcode, the registers it reads, its immediate)."""
    if insn.cls not in (isa.JMP, isa.JMP32) or isa.op(insn.opcode) not in isa.COND_JMP_OPS:
        return None
    return (insn.opcode, insn.dst, insn.src if insn.opcode & isa.X else insn.dst, insn.imm)


def walked_bound(cfg: Cfg, facts: Facts, slots: Sequence, h: int) -> int | None:
    """How often the loop of h runs at most, found as the kernel's verifier finds
    it: by running its body from the state it is entered with, every way the facts
    allow and joining nothing. The states it comes back to its head with form a
    graph; if that graph has no cycle, its longest path bounds the times round
    (a binary search: each (lo, hi) comes once). None if it has a cycle, an inner
    loop, or takes more than WALK_BLOCKS blocks to find out."""
    entering = facts.entering.get(h)
    body = cfg.loop_body(h)
    if entering is None or any(d != h and d in body for d in cfg.natural_loops):
        return None
    left = [WALK_BLOCKS]

    def rounds(state) -> list:
        """The states one time round the loop comes back to its head with. A compare
        made again on registers not written since goes the way it went (clang
        repeats one where both arms join), which the ranges alone cannot see."""
        back, todo = [], [(h, state, ())]
        while todo:
            leader, st, known = todo.pop()
            left[0] -= 1
            if left[0] < 0:
                raise _GiveUp
            insns = cfg.insns(leader)
            changed = {r for i in insns for r in isa.regs_written(slots[i])}
            if any(is_call(slots[i]) for i in insns):
                changed |= set(range(6))
            known = tuple((k, t) for k, t in known if not changed & set(k[1:3]))
            key = _compare(slots[insns[-1]])
            went = dict(known).get(key)
            succs = cfg.succs[leader]
            two = key is not None and len(succs) == 2 and succs[0] != succs[1]
            for succ, out in run_block(cfg, slots, leader, st, facts.loaded):
                taken = succ == succs[0] if two else None
                if went is not None and taken is not None and taken != went:
                    continue
                if succ == h:
                    back.append(out)
                elif succ in body:
                    todo.append((succ, out, known + (((key, taken),) if two else ())))
        return list(dict.fromkeys(back))

    longest: dict = {}   # state -> the most times round from it
    try:
        path = {entering}
        stack = [[entering, rounds(entering), 0, 0]]   # state, next states, next, longest
        while stack:
            frame = stack[-1]
            if frame[2] < len(frame[1]):
                nxt = frame[1][frame[2]]
                frame[2] += 1
                if nxt in path:
                    return None   # it may come back to a state it was in: no end proven
                if nxt in longest:
                    frame[3] = max(frame[3], longest[nxt] + 1)
                else:
                    path.add(nxt)
                    stack.append([nxt, rounds(nxt), 0, 0])
            else:
                stack.pop()
                path.discard(frame[0])
                longest[frame[0]] = frame[3]
                if stack:
                    stack[-1][3] = max(stack[-1][3], frame[3] + 1)
    except _GiveUp:
        return None
    return longest[entering] + 1


@dataclass(frozen=True)
class Walk:
    """A pointer a bounded loop moves by `step` once each time round, at `add`."""
    start: Value               # as the loop is entered
    step: int
    times: int                 # the most times the header runs
    add: tuple[int, int]       # (block, insn) of the add


def moving_pointers(cfg: Cfg, facts: Facts, slots: Sequence, h: int, times: int
                    ) -> dict[int, Walk]:
    """In a loop that runs at most `times` times: the pointers it moves by a constant
    once each time round (as clang walks an array)."""
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
        leader, insn = found
        idx = next(i for i in cfg.insns(leader) if slots[i] is insn)
        out[r] = Walk(start, insn.imm, times, (leader, idx))
    return out


def walked(cfg: Cfg, h: int, walk: Walk, leader: int, idx: int) -> Value | None:
    """The offsets of a walked pointer at insn idx (in block leader) of the loop of h,
    over all its runs: from where it enters to where the bound lets it go. The
    header sees it moved 0 .. times-1 steps; an insn after the add one more."""
    at, add = walk.add
    if (leader == at and add < idx) or (leader != at and cfg.dominates(at, leader)):
        moves = (1, walk.times)
    elif not _reaches(cfg, h, at, leader):
        moves = (0, walk.times - 1)
    else:
        moves = (0, walk.times)
    reach = (walk.step * moves[0], walk.step * moves[1])
    lo = walk.start.offsets.umin + min(reach)
    hi = walk.start.offsets.umax + max(reach)
    return walk.start._replace(range=Range.unsigned(lo, hi)) if lo >= 0 else None


def _reaches(cfg: Cfg, h: int, a: int, b: int) -> bool:
    """Block b follows block a within one time round the loop of h (not through h)."""
    body = cfg.loop_body(h)
    seen, todo = set(), [s for s in cfg.succs[a] if s != h and s in body]
    while todo:
        n = todo.pop()
        if n == b:
            return True
        if n not in seen:
            seen.add(n)
            todo.extend(s for s in cfg.succs[n] if s != h and s in body)
    return False


def versions(cfg: Cfg, facts: Facts, slots: Sequence, unwind: Collection[int],
             bounded: dict[int, tuple[int, str]], helper_args: Mapping[int, tuple]
             ) -> dict[int, Version]:
    """The loops to emit twice: a copy without the checks of the accesses (and
    helpers' memory arguments) at bounded offsets from pointer arguments and the
    packet, entered when their regions hold every offset the facts allow, and the
    checked loop otherwise, so that LLVM vectorizes and unrolls the copy as it
    does an unchecked build. Outermost first; not loops with calls that may end
    the run. helper_args: the helpers' pointer arguments (LiftOptions.helper_args).
    And a function with no loop whose helpers are handed memory at bounded offsets
    from its pointer arguments (`whole_function`), under its entry's leader."""
    out, taken = {}, set()
    for h in sorted(cfg.natural_loops, key=lambda h: -len(cfg.loop_body(h))):
        body = cfg.loop_body(h)
        leader_of = {idx: leader for leader in body for idx in cfg.insns(leader)}
        insns = sorted(leader_of)
        if body & taken or any(may_end_run(facts, slots, i, unwind) for i in insns):
            continue
        moving = moving_pointers(cfg, facts, slots, h, bounded[h][0]) if h in bounded else {}

        def span(idx: int, base: int, lo: int, hi: int) -> tuple[int, int, int] | None:
            """(root, lo, hi) of bytes [lo, hi) past register base at insn idx."""
            fact = facts[idx].regs[base]
            walk = moving.get(base)
            if fact.offsets is None and walk is not None and \
                    (fact.kind, fact.root) == (walk.start.kind, walk.start.root):
                fact = walked(cfg, h, walk, leader_of[idx], idx) or fact
            return _span(fact, lo, hi, (Kind.ARG, Kind.PACKET))

        found = _covering(facts, slots, insns, helper_args, span)
        if found is not None:
            out[h] = Version(body, *found, loop_tail(cfg, body))
            taken |= body
    whole = whole_function(cfg, facts, slots, unwind, helper_args)
    if whole is not None:
        out[cfg.start] = whole
    return out


WHOLE_INSNS = 1000   # instructions of a function without loops that may be emitted twice


def whole_function(cfg: Cfg, facts: Facts, slots: Sequence, unwind: Collection[int],
                   helper_args: Mapping[int, tuple]) -> Version | None:
    """A function without loops emitted twice, as a loop is: its helpers' memory
    arguments at constant offsets from its pointer arguments are checked before
    each call, and a failed check gives the helper's -EFAULT and goes on, so it
    cannot join the entry's check (which stops the program). The copy without
    them is entered when the arguments' regions hold them all (csum_hdrs: sixteen
    csum_diff calls over sixteen headers)."""
    insns = [idx for leader in cfg.order for idx in cfg.insns(leader)]
    if cfg.loop_blocks or len(insns) > WHOLE_INSNS \
            or any(may_end_run(facts, slots, i, unwind) for i in insns):
        return None
    found = _covering(facts, slots, insns, helper_args,
                      lambda idx, base, lo, hi: _span(facts[idx].regs[base], lo, hi, (Kind.ARG,)))
    if found is None or not any(isinstance(key, tuple) for key in found[0]):
        return None
    return Version(frozenset(cfg.order), *found)


def _span(fact: Value, lo: int, hi: int, kinds: tuple) -> tuple[int, int, int] | None:
    """(root, lo, hi): bytes [lo, hi) past a pointer of one of `kinds`, from its root."""
    offsets = fact.offsets
    if fact.kind not in kinds or offsets is None or offsets.umin + lo < 0:
        return None
    root = fact.root if fact.kind is Kind.ARG else PACKET_ROOT
    return root, offsets.umin + lo, offsets.umax + hi


def _covering(facts: Facts, slots: Sequence, insns, helper_args: Mapping[int, tuple], span
              ) -> tuple[dict, Extents] | None:
    """The accesses and helper arguments among `insns` that `span` bounds, and the
    extents of their roots; None if there are none."""
    extents: dict[tuple[int, bool], list[int]] = {}
    covered: dict = {}
    for idx in insns:
        for key, base, lo, hi, write in _touches(facts, slots, idx, helper_args):
            found = span(idx, base, lo, hi)
            if found is None:
                continue
            root, lo, hi = found
            have = extents.setdefault((root, write), [lo, hi])
            have[0], have[1] = min(have[0], lo), max(have[1], hi)
            covered[key] = root
    if not covered:
        return None
    return covered, {k: (v[0], v[1]) for k, v in extents.items()}


TAIL_INSNS = 64   # instructions after a loop its copy may take with it


def loop_tail(cfg: Cfg, body: frozenset[int]) -> frozenset[int]:
    """The blocks on no cycle that the loop's exits lead to, up to TAIL_INSNS
    instructions: its copy continues into copies of them rather than joining the
    checked loop's exit. Joined there, each value live out of both loops (a
    parser's counters) is one value to the register allocator, which then gives
    the copy the checked loop's spills (tlv_parse: 21% slower than unchecked)."""
    tail: set[int] = set()
    size, todo = 0, sorted({s for b in body for s in cfg.succs[b]} - body)
    while todo:
        leader = todo.pop(0)
        if leader in tail or leader in body or leader in cfg.loop_blocks:
            continue
        size += len(cfg.insns(leader))
        if size > TAIL_INSNS:
            break
        tail.add(leader)
        todo.extend(cfg.succs[leader])
    return frozenset(tail)


def _touches(facts: Facts, slots: Sequence, idx: int, helper_args: Mapping[int, tuple]):
    """The memory insn idx touches, as (key, base register, lo, hi, writes): bytes
    [lo, hi) past the base. The key is idx for a load, store or atomic, (idx,
    register) for a helper's memory argument of a size the facts bound."""
    access = memory_access(slots[idx])
    if access is not None:
        base, off, size, write = access
        yield idx, base, off, off + size, write
    elif is_call(slots[idx]):
        called = facts.loaded.get(idx)
        specs = LIBC_FUNCTIONS[called.name] if isinstance(called, Libc) else \
            helper_args.get(slots[idx].imm, ()) \
            if isa.call_kind(slots[idx]) is isa.CallKind.HELPER else ()
        for spec in specs:
            size = facts[idx].regs[spec.size]
            if spec.kind is ArgKind.MEM and size.kind is Kind.SCALAR \
                    and size.range.umax <= MAX_SPAN:
                yield (idx, spec.reg), spec.reg, 0, size.range.umax, spec.write


MAX_SPAN = 1 << 32   # a helper's size past which no region could hold it anyway


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
    if any(may_end_run(facts, slots, idx, unwind) for idx in cfg):
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
        if may_end_run(facts, slots, idx, unwind):
            close()
    close()
    return merged, covered
