"""Compare trees recovered as switches (inliner/switches.py).

The expectation is RFC 9669's meaning of each compare, evaluated in Python
or by the reference interpreter: a recovered switch must send every value
where the tree of jumps sends it.
"""
from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inliner import lift, pipeline
from inliner.elf import loader
from inliner.facts import abi, isa
from inliner.lift import switches
from inliner.tools import interp
from inliner.tools.asm import assemble

OPS = ("jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle")
EXAMPLES = int(os.environ.get("EBPF_LTO_FUZZ_EXAMPLES", "150")) // 3


def rfc9669_jumps(name: str, value: int, imm: int, bits: int) -> bool:
    """The compare as RFC 9669 states it, on `bits`-wide operands."""
    m = (1 << bits) - 1
    a, b = value & m, imm & m
    sa = a - (1 << bits) if a >> (bits - 1) else a
    sb = b - (1 << bits) if b >> (bits - 1) else b
    return {"jeq": a == b, "jne": a != b, "jgt": a > b, "jge": a >= b, "jlt": a < b,
            "jle": a <= b, "jsgt": sa > sb, "jsge": sa >= sb, "jslt": sa < sb,
            "jsle": sa <= sb}[name]


@pytest.mark.parametrize("name", OPS)
def test_taken_values_are_the_values_that_jump(name):
    op = next(op for op, n in isa.COND_JMP_OPS.items() if n == name)
    for imm in (0, 1, 5, 127, 128, 200, 255, -1, -128, -3):
        spans = switches.taken_values(op, imm, 8)
        listed = {v for lo, hi in spans for v in range(lo, hi + 1)}
        assert listed == {v for v in range(256) if rfc9669_jumps(name, v, imm, 8)}, imm


# clang's lowering of `switch (op & 15)` in benchmarks/switch.c, shortened to 7 cases;
# 15, the largest value `& 15` leaves, has a case of its own.
DISPATCH = """
    ldxdw %r2, [%r1+0]
    mov32 %r6, %r2
    and32 %r6, 0xf
    jsgt32 %r6, 3, high
    jsgt32 %r6, 1, two_three
    jeq32 %r6, 0, case0
    mov %r0, 101
    exit
two_three:
    jeq32 %r6, 2, case2
    mov %r0, 103
    exit
high:
    jeq32 %r6, 15, case15
    jeq32 %r6, 4, case4
    jeq32 %r6, 5, case5
    mov %r0, 999
    exit
case0:
    mov %r0, 100
    exit
case2:
    mov %r0, 102
    exit
case4:
    mov %r0, 104
    exit
case5:
    mov %r0, 105
    exit
case15:
    mov %r0, 115
    exit
"""


def raw(text: str) -> bytes:
    return b"".join(i.encode() for i in assemble(text) if i is not None)


def lifted_ir(code: bytes) -> str:
    return str(lift.lift(loader.from_raw(code)).module)


def test_a_lowered_switch_dispatches_every_value_as_the_tree_does():
    code = raw(DISPATCH)
    ir = lifted_ir(code)
    assert ir.count("switch i32") == 1
    loaded, _ = pipeline.load(loader.from_raw(code), pipeline.LinkOptions(opt_level=2))
    expected = {0: 100, 1: 101, 2: 102, 3: 103, 4: 104, 5: 105, 15: 115}
    for value in list(range(40)) + [2**32 - 1, 2**32 + 2, 2**63 + 4, 2**64 - 11]:
        r0 = loaded.call(abi.ENTRY_SYMBOL, bytearray(struct.pack("<Q", value)))
        assert r0 == expected.get(value & 15, 999), value


def test_instrumented_code_keeps_the_tree_its_counters_count():
    assert "switch" not in str(lift.lift(loader.from_raw(raw(DISPATCH)),
                                         options=lift.LiftOptions(instrument=True)).module)


BOUNDS = ("", "and %r2, 15", "and32 %r2, 0xff", "rsh %r2, 60", "ldxb %r2, [%r1+0]",
          "mov32 %r2, %r2", "and %r2, -1")
VALUES = (0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 100, 255, 256, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
          2**32 + 5, 2**63, 2**64 - 1, 2**64 - 5)


@st.composite
def trees(draw):
    """A random compare tree on r2 below a random bound, leaves with distinct r0."""
    lines = ["ldxdw %r2, [%r1+0]", draw(st.sampled_from(BOUNDS))]
    wide = draw(st.booleans())
    labels = iter(range(10_000))

    def leaf():
        if draw(st.integers(0, 4)) == 0:
            lines.append("ja shared")  # one leaf reached along several edges
        else:
            lines.extend([f"mov %r0, {next(labels)}", "exit"])

    def node(depth: int):
        w = wide if draw(st.integers(0, 9)) else not wide
        name = draw(st.sampled_from(OPS))
        imm = draw(st.one_of(st.integers(-3, 20), st.sampled_from((255, 2**31 - 1, -2**31))))
        target = f"t{next(labels)}"
        lines.append(f"{name}{'' if w else '32'} %r2, {imm}, {target}")
        for child in ("fall", "taken"):
            if child == "taken":
                lines.append(f"{target}:")
            if depth < 4 and draw(st.integers(0, 2)):
                node(depth + 1)
            else:
                leaf()
    node(0)
    lines.extend(["shared:", "mov %r0, 7777", "exit"])
    return "\n".join(line for line in lines if line)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(trees())
def test_random_trees_dispatch_as_the_interpreter_does(text):
    code = raw(text)
    loaded, _ = pipeline.load(loader.from_raw(code), pipeline.LinkOptions(opt_level=2))
    for value in VALUES:
        mem = struct.pack("<Q", value)
        expected = interp.run(isa.decode(code), bytearray(mem), interp.CONFORMANCE_HELPERS)
        assert loaded.call(abi.ENTRY_SYMBOL, bytearray(mem)) == expected, \
            f"value {value:#x}\n{text}"
