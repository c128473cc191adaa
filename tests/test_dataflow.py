"""The lifter's data-flow facts (inliner/lift/dataflow.py, values.py) are sound.

The emitter trusts them (a block the facts call unreachable gets no context
rewriting, a FRAME value becomes a GEP into the frame), so every fact must
hold of every run:
- each range operation contains every concrete result of its operands'
  concrete values (hypothesis over small sets of values, ops from RFC 9669);
- on random programs (test_differential's generator), before every
  instruction the reference interpreter executes, each register the facts
  call written was written, each SCALAR range contains the register's value,
  each FRAME value is exactly r10 plus its offset, and no instruction runs
  in a block the facts call unreachable.
"""
from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings, strategies as st

from inliner import codegen, pipeline
from inliner.elf import loader
from inliner.facts import isa
from inliner.lift import analyze, dataflow, values as v
from inliner.lift.values import Kind, Range
from inliner.tools import interp
from inliner.tools.asm import assemble_bytes
from test_differential import programs

M64 = (1 << 64) - 1
EDGE = (0, 1, 2, 3, 7, 8, 31, 32, 63, 64, 255, 256, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
        1 << 32, (1 << 63) - 1, 1 << 63, M64 - 1, M64)
values = st.one_of(st.sampled_from(EDGE), st.integers(0, M64))
value_sets = st.lists(values, min_size=1, max_size=4)


def _range(vals: list[int]) -> Range:
    r = Range.const(vals[0])
    for x in vals[1:]:
        r = r.hull(Range.const(x))
    return r


def _contains(r: Range, x: int) -> bool:
    s = x - (1 << 64) if x >> 63 else x
    return r.umin <= x <= r.umax and r.smin <= s <= r.smax


BINARY = {
    "add": (v.add, lambda a, b: (a + b) & M64),
    "sub": (v.sub, lambda a, b: (a - b) & M64),
    "mul": (v.mul, lambda a, b: (a * b) & M64),
    "and": (v.and_, lambda a, b: a & b),
    "or": (v.or_, lambda a, b: a | b),
    "udiv": (v.udiv, lambda a, b: a // b if b else 0),   # RFC 9669: x / 0 = 0
    "umod": (v.umod, lambda a, b: a % b if b else a),    # and x % 0 = x
}


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(BINARY)), value_sets, value_sets)
def test_binary_range_operations_contain_every_result(name, xs, ys):
    op, concrete = BINARY[name]
    r = op(_range(xs), _range(ys))
    for a in xs:
        for b in ys:
            assert _contains(r, concrete(a, b)), (name, a, b, r)


@settings(max_examples=300, deadline=None)
@given(value_sets, st.integers(0, 63))
def test_shift_ranges_contain_every_result(xs, k):
    r = _range(xs)
    for x in xs:
        s = x - (1 << 64) if x >> 63 else x
        assert _contains(v.lsh(r, k), (x << k) & M64)
        assert _contains(v.rsh(r, k), x >> k)
        assert _contains(v.arsh(r, k), (s >> k) & M64)


@settings(max_examples=300, deadline=None)
@given(value_sets, st.sampled_from((8, 16, 32)))
def test_truncation_and_sign_extension(xs, bits):
    r = _range(xs)
    for x in xs:
        low = x & ((1 << bits) - 1)
        assert _contains(v.truncate(r, bits), low)
        signed = low - (1 << bits) if low >> (bits - 1) else low
        assert _contains(v.sign_extend(r, bits), signed & M64)


@settings(max_examples=300, deadline=None)
@given(value_sets, value_sets)
def test_hull_and_meet(xs, ys):
    a, b = _range(xs), _range(ys)
    for x in xs + ys:
        assert _contains(a.hull(b), x)
    both = set(xs) & set(ys)
    m = a.meet(b)
    for x in both:
        assert m is not None and _contains(m, x)


@settings(max_examples=300, deadline=None)
@given(value_sets, st.sampled_from(sorted(isa.COND_JMP_OPS.values())), values,
       st.booleans())
def test_refined_edges_hold_every_value_that_takes_them(xs, name, k, wide):
    """A compare with a constant: each value reaches the edge it takes, narrowed to it."""
    op = next(code for code, n in isa.COND_JMP_OPS.items() if n == name)
    bits = 64 if wide else 32
    if not wide:
        xs = [x & 0xFFFF_FFFF for x in xs]
    k_imm = k & 0xFFFF_FFFF
    k_imm = k_imm - (1 << 32) if k_imm >> 31 else k_imm
    insn = isa.Insn((isa.JMP if wide else isa.JMP32) | op, 1, 0, 0, k_imm)
    regs = (v.UNKNOWN, v.scalar(_range(xs))) + (v.UNKNOWN,) * 9
    state = dataflow.State(regs, M64 & 0x7FF, ())
    cmp = (k_imm & M64) if wide else (k_imm & 0xFFFF_FFFF)
    for x in xs:
        taken = _jumps(name, x, cmp, bits)
        edge = dataflow.refine(state, insn, taken)
        assert edge is not None, (x, name, cmp, taken)
        assert _contains(edge.regs[1].range, x)


def _jumps(name: str, a: int, b: int, bits: int) -> bool:
    """RFC 9669's conditional jumps on `bits`-bit operands."""
    def s(x):
        return x - (1 << bits) if x >> (bits - 1) else x
    return {"jeq": a == b, "jne": a != b, "jgt": a > b, "jge": a >= b, "jlt": a < b,
            "jle": a <= b, "jset": bool(a & b), "jsgt": s(a) > s(b), "jsge": s(a) >= s(b),
            "jslt": s(a) < s(b), "jsle": s(a) <= s(b)}[name]


def _check_run(text: str, mem: bytes) -> int:
    """Run the program in the interpreter, checking the facts before every instruction."""
    code = assemble_bytes(text)
    obj = loader.from_raw(code)
    facts = analyze(obj)
    by_slot = {}
    for key, f in facts.items():
        for idx, state in f.before.items():
            by_slot[idx] = state
    checked = 0

    def trace(section, pc, regs, written):
        nonlocal checked
        state = by_slot[pc]
        assert state is not dataflow.DEAD, f"slot {pc} runs, but the facts call it dead"
        for r in range(11):
            if not state.written >> r & 1:
                continue
            assert written >> r & 1, f"slot {pc}: r{r} called written, is not"
            fact, value = state.regs[r], regs[r]
            if fact.kind is Kind.SCALAR:
                assert _contains(fact.range, value), f"slot {pc}: r{r} = {value:#x} not in {fact.range}"
            elif fact.kind is Kind.FRAME:
                assert value == (regs[10] + fact.off) & M64, f"slot {pc}: r{r} is not r10{fact.off:+d}"
        checked += 1

    interp.run(isa.decode(code), bytearray(mem), interp.CONFORMANCE_HELPERS,
               max_steps=200_000, trace=trace)
    return checked


def test_facts_hold_on_a_loop_with_a_bounded_counter():
    text = """
        mov %r0, 0
        mov %r6, 10
        and %r6, 7
        add %r0, %r6
        sub %r6, 1
        jne %r6, 0, -3
        mov %r7, %r10
        add %r7, -8
        stxdw [%r7], %r0
        ldxdw %r0, [%r10-8]
        exit
    """
    assert _check_run(text, bytes(8)) > 10


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs())
def test_facts_hold_on_random_programs(program):
    text, mem = program
    _check_run(text, mem)


REGISTER_SLOT = re.compile(r"r\d(\.(lo|hi|whi|tag))?$")


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs(), st.booleans())
def test_lifted_registers_are_ssa_values(program, checks):
    """The emitter hands LLVM r0-r9, and a checked build's regions of them, as SSA
    values (lift/registers.py): no alloca holds one, and LLVM's verifier takes
    the phis (an incoming value per predecessor, each use dominated by its value)."""
    text, _ = program
    obj = loader.from_raw(assemble_bytes(text))
    options = pipeline.LinkOptions(checks=checks)
    lifted = pipeline.lift(obj, options, pipeline.helper_set(options))
    mod = codegen.parse_ir(str(lifted.module))   # verifies
    slots = [ins.name for fn in mod.functions for block in fn.blocks
             for ins in block.instructions
             if ins.opcode == "alloca" and REGISTER_SLOT.match(ins.name)]
    assert slots == []
