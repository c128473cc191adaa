"""eBPF semantics through the whole pipeline, against answers worked out by hand from RFC 9669.

Each program is assembled, linked at -O0 and -O2 and run; the expected r0 is
the value the RFC defines, computed here independently of the lifter.
"""
import pytest
from hypothesis import given, settings, strategies as st

from inliner import pipeline
from inliner.tools import conformance
from inliner.errors import EbpfLtoError

LEVELS = (0, 2)
MASK64 = (1 << 64) - 1


def run(asm: str, mem: bytes | None = None, level: int = 2) -> int:
    code = conformance.program_bytes(conformance.parse_test("-- asm\n" + asm))
    options = pipeline.LinkOptions(opt_level=level, helpers="conformance")
    return conformance.run_program(code, mem, options)


CASES = [
    # division and modulo by zero: x / 0 = 0, x % 0 = x (RFC 9669 4.1)
    ("mov %r0, 7\nmov %r1, 0\ndiv %r0, %r1\nexit", 0),
    ("mov %r0, 7\nmov %r1, 0\nmod %r0, %r1\nexit", 7),
    ("lddw %r0, 0x1ffffffff\nmov %r1, 0\nmod32 %r0, %r1\nexit", 0xFFFFFFFF),
    ("lddw %r0, 0x8000000000000000\nmov %r1, -1\nsdiv %r0, %r1\nexit", 0x8000000000000000),
    ("lddw %r0, 0x8000000000000000\nmov %r1, -1\nsmod %r0, %r1\nexit", 0),
    ("mov %r0, -7\nmov %r1, 2\nsmod %r0, %r1\nexit", (-1) & 0xFFFFFFFFFFFFFFFF),
    ("mov %r0, -7\nsdiv %r0, 2\nexit", (-3) & 0xFFFFFFFFFFFFFFFF),
    ("mov32 %r0, -7\nsdiv32 %r0, 2\nexit", 0xFFFFFFFD),
    # shift counts are masked to the operand width
    ("mov %r0, 1\nmov %r1, 65\nlsh %r0, %r1\nexit", 2),
    ("mov %r0, 1\nmov %r1, 33\nlsh32 %r0, %r1\nexit", 2),
    ("mov %r0, -16\nmov %r1, 66\narsh %r0, %r1\nexit", (-4) & 0xFFFFFFFFFFFFFFFF),
    # 32-bit results are zero-extended, 64-bit immediates sign-extended
    ("mov %r0, -1\nadd32 %r0, 1\nexit", 0),
    ("mov %r0, -1\nexit", 0xFFFFFFFFFFFFFFFF),
    ("mov32 %r0, -1\nexit", 0xFFFFFFFF),
    ("lddw %r0, 0x123456789\nneg32 %r0\nexit", (-0x23456789) & 0xFFFFFFFF),
    # byte order: le truncates, be and bswap swap
    ("lddw %r0, 0x1122334455667788\nle16 %r0\nexit", 0x7788),
    ("lddw %r0, 0x1122334455667788\nbe32 %r0\nexit", 0x88776655),
    ("lddw %r0, 0x1122334455667788\nbswap64 %r0\nexit", 0x8877665544332211),
    # sign extension
    ("mov %r1, 0x80\nmovsx864 %r0, %r1\nexit", 0xFFFFFFFFFFFFFF80),
    ("mov %r1, 0x8000\nmovsx1632 %r0, %r1\nexit", 0xFFFF8000),
    ("stb [%r10-1], 0xfe\nldxsb %r0, [%r10-1]\nexit", 0xFFFFFFFFFFFFFFFE),
    # jumps: 32-bit compares look at the low half only, imm is sign-extended
    ("lddw %r1, 0x100000000\nmov %r0, 1\njeq32 %r1, 0, +1\nmov %r0, 2\nexit", 1),
    ("mov %r1, -1\nmov %r0, 1\njeq %r1, 0xffffffff, +1\nmov %r0, 2\nexit", 1),
    ("mov %r1, -1\nmov %r0, 1\njsgt %r1, 0, +1\nmov %r0, 2\nexit", 2),
    # atomics: fetch returns the old value; cmpxchg compares with r0
    ("stdw [%r10-8], 5\nmov %r1, 3\nlock fetch add [%r10-8], %r1\nldxdw %r0, [%r10-8]\n"
     "lsh %r0, 8\nor %r0, %r1\nexit", (8 << 8) | 5),
    ("stdw [%r10-8], 5\nmov %r0, 5\nmov %r1, 9\nlock cmpxchg [%r10-8], %r1\n"
     "ldxdw %r2, [%r10-8]\nlsh %r2, 8\nor %r0, %r2\nexit", (9 << 8) | 5),
    ("stw [%r10-4], 0x0f\nmov %r1, 0x3c\nlock fetch xor32 [%r10-4], %r1\nldxw %r0, [%r10-4]\n"
     "lsh %r0, 8\nor %r0, %r1\nexit", (0x33 << 8) | 0x0F),
    # the helper set: gather_bytes packs five bytes
    ("mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\ncall 0\nexit", 0x0102030405),
    ("mov %r1, 1000000\ncall 3\nexit", 1000),
]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("asm,expected", CASES, ids=[c[0].split("\n")[-2] for c in CASES])
def test_instruction_semantics(asm, expected, level):
    assert run(asm, level=level) == expected


@pytest.mark.parametrize("level", LEVELS)
def test_callee_frames_do_not_overlap(level):
    # The callee writes its whole frame; the caller's slot must survive.
    asm = """
stdw [%r10-8], 42
call local fill
ldxdw %r0, [%r10-8]
exit
fill:
mov %r1, %r10
add %r1, -512
loop:
stdw [%r1], -1
add %r1, 8
jne %r1, %r10, loop
mov %r0, 0
exit
"""
    assert run(asm, level=level) == 42


@pytest.mark.parametrize("level", LEVELS)
def test_callee_writes_the_callers_frame_through_a_pointer(level):
    # r2 points into the caller's frame; the callee spills it to its own frame,
    # reloads it and stores through it: the caller's slot must change.
    asm = """
stdw [%r10-136], -5
mov %r2, %r10
add %r2, -136
call local set
ldxsb %r0, [%r10-136]
exit
set:
stxdw [%r10-8], %r2
mov %r0, 7
ldxdw %r1, [%r10-8]
stxb [%r1], %r0
mov %r0, 0
exit
"""
    assert run(asm, level=level) == 7


@pytest.mark.parametrize("level", LEVELS)
def test_unwind_from_a_subprogram_ends_the_program(level):
    # uBPF's unwind helper (5) returning 0 ends the whole program with r0 = 0,
    # from any depth; returning non-zero continues.
    asm = """
mov %r1, 0
call local f
mov %r0, 77
exit
f:
call 5
mov %r0, 1
exit
"""
    assert run(asm, level=level) == 0
    assert run(asm.replace("mov %r1, 0", "mov %r1, 3"), level=level) == 77


@pytest.mark.parametrize("level", LEVELS)
def test_callx_to_a_helper_and_to_nothing(level):
    assert run("mov %r1, 5\nmov %r2, 0\ncall %r2\nexit", level=level) == 5 << 32
    # A value that names no helper and no function ends the program with all ones.
    assert run("mov %r1, 5\nmov %r2, 999\ncall %r2\nmov %r0, 1\nexit", level=level) \
        == 0xFFFFFFFFFFFFFFFF


def test_memory_is_passed_and_written():
    asm = "ldxw %r0, [%r1+4]\nstb [%r1], 0x7f\nexit"
    code = conformance.program_bytes(conformance.parse_test("-- asm\n" + asm))
    from inliner.elf import loader
    r0, after = pipeline.run(loader.from_raw(code), bytes(range(8)),
                             pipeline.LinkOptions(helpers="conformance"))
    assert r0 == 0x07060504
    assert after == bytes([0x7F, 1, 2, 3, 4, 5, 6, 7])


@pytest.mark.parametrize("asm,reason", [
    ("ja +5\nexit", "outside the function"),
    ("mov %r0, 1", "falls off the end"),
    ("mov %r10, 1\nexit", "r10"),
    ("add %r0, %r1\nexit", "reads r0"),
    ("call 1\nmov %r0, %r1\nexit", "reads r1"),
    ("ldxdw %r0, [%r10-520]\nexit", "outside the 512-byte frame"),
    ("stdw [%r10], 1\nmov %r0, 0\nexit", "outside the 512-byte frame"),
    ("ja +1\nlddw %r0, 5\nexit", "middle of lddw"),
    ("call local f\nexit\nf:\ncall local f\nexit", "recursion"),
    ("call local g\nexit\ng:\ncall local h\nexit\nh:\ncall local g\nexit", "recursion"),
    # nine frames: the kernel's verifier allows eight, the main program's included
    ("mov %r0, 0\ncall local f1\nexit\n" + "".join(
        f"f{i}:\ncall local f{i + 1}\nexit\n" for i in range(1, 8)) + "f8:\nmov %r0, 0\nexit",
     "nest 9 frames"),
    (".invalid 0x00000000000000f4\nexit", "opcode"),
])
def test_structural_refusals(asm, reason):
    with pytest.raises(EbpfLtoError) as err:
        run(asm)
    assert reason in str(err.value)
    assert err.value.insn is not None


# Narrow stack stores (the lifter turns each into a read-modify-write of its
# 8-byte word): random stores of every width, some taken only when an input
# bit is set, over a 32-byte region that starts fully written, against a
# byte array worked out here in little-endian order.
@settings(max_examples=40, deadline=None)
@given(init=st.lists(st.integers(0, MASK64), min_size=4, max_size=4),
       stores=st.lists(st.tuples(st.sampled_from((1, 2, 4, 8)), st.integers(0, 31),
                                 st.integers(0, MASK64), st.booleans(), st.integers(0, 7)),
                       min_size=1, max_size=10),
       flags=st.integers(0, 255))
def test_narrow_stack_stores_keep_the_rest_of_the_word(init, stores, flags):
    region = bytearray(b"".join(w.to_bytes(8, "little") for w in init))
    lines = ["ldxb %r6, [%r1]"]
    for i, w in enumerate(init):
        lines += [f"lddw %r2, {w:#x}", f"stxdw [%r10{i * 8 - 32:+d}], %r2"]
    suffix = {1: "b", 2: "h", 4: "w", 8: "dw"}
    for n, (size, pos, value, conditional, bit) in enumerate(stores):
        pos = min(pos, 32 - size)  # unaligned and word-crossing positions included
        value &= (1 << (8 * size)) - 1
        lines.append(f"lddw %r2, {value:#x}")
        if conditional:
            lines += ["mov %r3, %r6", f"and %r3, {1 << bit}", f"jeq %r3, 0, +1"]
        lines.append(f"stx{suffix[size]} [%r10{pos - 32:+d}], %r2")
        if not conditional or flags >> bit & 1:
            region[pos:pos + size] = value.to_bytes(size, "little")
    lines += ["ldxdw %r0, [%r10-32]"]
    for i, mul in ((1, 3), (2, 5), (3, 7)):
        lines += [f"ldxdw %r2, [%r10{i * 8 - 32:+d}]", f"mul %r2, {mul}", "xor %r0, %r2"]
    lines.append("exit")
    words = [int.from_bytes(region[i:i + 8], "little") for i in range(0, 32, 8)]
    expected = words[0] ^ (words[1] * 3 & MASK64) ^ (words[2] * 5 & MASK64) ^ (words[3] * 7 & MASK64)
    for level in LEVELS:
        assert run("\n".join(lines), bytes([flags]), level=level) == expected


@pytest.mark.parametrize("level", LEVELS)
def test_narrow_store_into_an_unwritten_word(level):
    # The stored bytes read back at whatever width they are read at.
    asm = ("sth [%r10-6], 0x1234\nstb [%r10-3], 0x56\nldxh %r0, [%r10-6]\nlsh %r0, 8\n"
           "ldxb %r1, [%r10-3]\nor %r0, %r1\nexit")
    assert run(asm, level=level) == 0x123456


@pytest.mark.parametrize("level", LEVELS)
def test_narrow_store_into_a_word_a_crossing_store_wrote_part_of(level):
    # stxw at r10-10 writes bytes -10..-7, two of them in the word [-8, 0) that
    # stb then rewrites; ldxh at -8 reads the stxw's upper half.
    asm = ("mov %r1, 0x44332211\nstxw [%r10-10], %r1\nstb [%r10-1], 0x77\n"
           "ldxh %r0, [%r10-8]\nldxb %r2, [%r10-1]\nlsh %r2, 16\nor %r0, %r2\nexit")
    assert run(asm, level=level) == 0x774433
