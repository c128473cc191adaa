"""Tests for inliner.asm: expectations come from RFC 9669 encodings worked out
by hand and from the bpf_conformance suite's own files, not from asm.py."""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from inliner.elf import loader
from inliner.facts import isa
from inliner.tools.asm import AsmError, assemble, assemble_bytes, disassemble, format_insn

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EBPF_LTO_SHARED") or ROOT.parent / "shared")
SUITE = SHARED / "bpf_conformance"

# Section headers of the suite's .data files. Any other `-- ` line stays in the
# section it appears in, so an unknown directive inside `-- asm` reaches the
# assembler (negative/invalid_unknown_directive.data relies on that).
SECTIONS = ("asm", "raw", "result", "mem", "error", "c", "no register offset")


def sections(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        header = line[3:].strip() if line.startswith("-- ") else None
        if header in SECTIONS:
            current = out.setdefault(header, [])
        elif current is not None:
            current.append(line)
    return out


def raw_bytes(lines: list[str]) -> bytes:
    """`-- raw` holds either 0x-prefixed 64-bit words or hex bytes."""
    tokens = " ".join(lines).split()
    if all(t.startswith("0x") for t in tokens):
        return b"".join(struct.pack("<Q", int(t, 16)) for t in tokens)
    return bytes(int(t, 16) for t in tokens)


def suite_files(folder: str, pattern: str = "*.data"):
    files = sorted((SUITE / folder).glob(pattern))
    return [pytest.param(f, id=f.name) for f in files] or [
        pytest.param(None, marks=pytest.mark.skip(reason=f"no suite at {SUITE}"))]


def b(text: str) -> bytes:
    return bytes.fromhex(text)


# Encodings worked out by hand from RFC 9669: opcode, dst | src << 4,
# little-endian 16-bit offset, little-endian 32-bit immediate.
RFC_CASES = [
    ("add32 %r1, 2", "04 01 0000 02000000"),
    ("add %r0, %r1", "0f 10 0000 00000000"),
    ("mov %r0, -1", "b7 00 0000 ffffffff"),
    ("mov32 %r0, 0xffffffff", "b4 00 0000 ffffffff"),
    ("mov32 %r0, -2147483648", "b4 00 0000 00000080"),
    ("neg %r2", "87 02 0000 00000000"),
    ("neg32 %r2", "84 02 0000 00000000"),
    ("sdiv %r0, %r1", "3f 10 0100 00000000"),
    ("smod32 %r0, 3", "94 00 0100 03000000"),
    ("arsh32 %r3, 4", "c4 03 0000 04000000"),
    ("movsx1664 %r0, %r1", "bf 10 1000 00000000"),
    ("movsx3264 %r0, %r9", "bf 90 2000 00000000"),
    ("movsx832 %r2, %r1", "bc 12 0800 00000000"),
    ("be16 %r0", "dc 00 0000 10000000"),
    ("le32 %r3", "d4 03 0000 20000000"),
    ("bswap64 %r0", "d7 00 0000 40000000"),
    ("swap16 %r0", "d7 00 0000 10000000"),
    ("ldxdw %r0, [%r1+2]", "79 10 0200 00000000"),
    ("ldxb %r0, [%r1]", "71 10 0000 00000000"),
    ("ldxh %r0, [%r1+0x2]", "69 10 0200 00000000"),
    ("ldxsh %r0, [%r10-2]", "89 a0 feff 00000000"),
    ("ldxsw %r0, [%r10-4]", "81 a0 fcff 00000000"),
    ("stb [%r1+2], 0x11", "72 01 0200 11000000"),
    ("stdw [%r10-8], 0xcd", "7a 0a f8ff cd000000"),
    ("stxw [%r10-4], %r1", "63 1a fcff 00000000"),
    ("stxdw [%r10-32768], %r1", "7b 1a 0080 00000000"),
    ("lock add [%r10-8], %r1", "db 1a f8ff 00000000"),
    ("lock fetch add [%r10-8], %r1", "db 1a f8ff 01000000"),
    ("lock and32 [%r10-4], %r1", "c3 1a fcff 50000000"),
    ("lock fetch xor32 [%r10-8], %r1", "c3 1a f8ff a1000000"),
    ("lock xchg [%r10-8], %r1", "db 1a f8ff e1000000"),
    ("lock cmpxchg32 [%r10-8], %r1", "c3 1a f8ff f1000000"),
    ("lddw %r0, 0x1122334455667788", "18 00 0000 88776655 00 00 0000 44332211"),
    ("lddw %r0, -1", "18 00 0000 ffffffff 00 00 0000 ffffffff"),
    ("lddw %r1, map_fd 3", "18 11 0000 03000000 00 00 0000 00000000"),
    ("lddw %r1, map_value 3, 16", "18 21 0000 03000000 00 00 0000 10000000"),
    ("ja +3", "05 00 0300 00000000"),
    ("ja -2", "05 00 feff 00000000"),
    ("ja32 +5", "06 00 0000 05000000"),
    ("jeq %r1, 0xb, +1", "15 01 0100 0b000000"),
    ("jsgt32 %r1, %r2, -1", "6e 21 ffff 00000000"),
    ("jset %r3, 0x80000000, +0", "45 03 0000 00000080"),
    ("call 5", "85 00 0000 05000000"),
    ("call %r2", "8d 02 0000 00000000"),
    ("call runtime 7", "85 20 0000 07000000"),
    ("exit", "95 00 0000 00000000"),
    ("ldabsw 12", "20 00 0000 0c000000"),
    ("ldindb %r1, 3", "50 10 0000 03000000"),
]


@pytest.mark.parametrize("text,expected", RFC_CASES, ids=[c[0] for c in RFC_CASES])
def test_rfc_encoding(text, expected):
    assert assemble_bytes(text) == b(expected)


@pytest.mark.parametrize("text,expected", [
    # lddw counts two slots: ja at 0, end at slot 3.
    ("ja end\nlddw %r0, 1\nend:\nexit", "05 00 0200 00000000"),
    ("top:\nmov %r0, 0\nja top", "b7 00 0000 00000000 05 00 feff 00000000"),
    # `exit` names the first exit instruction when no label is called so.
    ("jeq %r1, 0, exit\nmov %r0, 1\nexit\nexit", "15 01 0100 00000000"),
    ("jeq %r1, 0, exit\nexit\nexit:\nexit", "15 01 0100 00000000"),
    ("call local f\nexit\nf:\nexit", "85 10 0000 01000000"),
    ("ja32 back\nback:\nexit", "06 00 0000 00000000"),
    ("back:\nja32 back", "06 00 0000 ffffffff"),
    ("lddw %r2, func cb\nexit\ncb:\nexit", "18 42 0000 02000000 00 00 0000 00000000"),
    ("  # comment only\n\nmov %r0, 1 # trailing\n\texit\t", "b7 00 0000 01000000 95 00 0000 00000000"),
    ("mov %r10, 1", "b7 0a 0000 01000000"),   # r10 as destination is the verifier's call
    (".invalid 0x0000000100010007", "07 00 0100 01000000"),
])
def test_program_encoding(text, expected):
    assert assemble_bytes(text).startswith(b(expected))


def test_assemble_matches_decode():
    text = "lddw %r0, 0x8877665544332211\nbswap16 %r0\nja -3\nexit"
    slots = assemble(text)
    assert slots == isa.decode(assemble_bytes(text))
    assert slots[1] is None


@pytest.mark.parametrize("text,line,fragment", [
    ("mov %r0, 1\nor %r0, %r11", 2, "register"),
    ("mov %r0, r1", 1, "number"),
    ("lddw %r0", 1, "operand"),
    ("add %r0, 1, 2", 1, "operand"),
    ("neg %r0, 1", 1, "operand"),
    ("exit %r0", 1, "operand"),
    ("add %r0,", 1, "empty operand"),
    ("lock", 1, "lock"),
    ("lock or [%r10-8]", 1, "operand"),
    ("lock fetch xchg [%r10-8], %r1", 1, "unknown mnemonic"),
    ("lock add16 [%r10-8], %r1", 1, "unknown mnemonic"),
    ("ldxq %r0, [%r1]", 1, "unknown mnemonic"),
    ("ldxsdw %r0, [%r1]", 1, "unknown mnemonic"),
    ("movsx3232 %r0, %r1", 1, "unknown mnemonic"),
    ("movsx864 %r0, 5", 1, "register"),
    ("le8 %r0", 1, "unknown mnemonic"),
    (".data 1", 1, "unknown mnemonic"),
    ("-- Unknown directive", 1, "unknown mnemonic"),
    ("ldxb %r0, %r1", 1, "memory operand"),
    ("mov32 %r0, 2147483648", 1, "32 bits"),
    ("mov32 %r0, -2147483649", 1, "32 bits"),
    ("mov32 %r0, 0x100000000", 1, "32 bits"),
    ("mov32 %r0, -0x80000001", 1, "32 bits"),
    ("mov %r0, 1x", 1, "number"),
    ("lddw %r0, 0x10000000000000000", 1, "64 bits"),
    ("lddw %r0, 9223372036854775808", 1, "64 bits"),
    ("ldxb %r0, [%r1+0x10000]", 1, "16 bits"),
    ("ldxb %r0, [%r1+32768]", 1, "16 bits"),
    ("ldxb %r0, [%r1-32769]", 1, "16 bits"),
    ("ja +32768", 1, "16 bits"),
    ("ja 3", 1, "label"),
    ("exit\nja nowhere", 2, "unknown label"),
    ("jeq %r0, 0, exit", 1, "unknown label"),   # no exit instruction to name
    ("a:\nexit\na:\nexit", 3, "duplicate label"),
    ("lddw %r1, map_value 3", 1, "operands"),
    ("lddw %r1, map_fd 3, 4", 1, "operands"),
    ("lddw %r1, 1, 2", 1, "map_fd"),
    ("lddw %r1, nosuch 3", 1, "map_fd"),
    (".invalid 0x18", 1, "second slot"),
    (".invalid", 1, "word"),
])
def test_refused(text, line, fragment):
    with pytest.raises(AsmError) as info:
        assemble(text)
    assert info.value.line == line
    assert fragment in info.value.reason
    assert str(info.value).startswith(f"line {line}: ")
    assert isinstance(info.value, ValueError)


def test_label_beyond_jump_range():
    text = "ja far\n" + "mov %r0, 0\n" * 0x8000 + "far:\nexit"
    with pytest.raises(AsmError) as info:
        assemble(text)
    assert info.value.line == 1
    assert assemble("ja far\n" + "mov %r0, 0\n" * 0x7fff + "far:\nexit")[0].off == 0x7fff


@pytest.mark.parametrize("insn,text", [
    (isa.Insn(0x79, 0, 1, 2), "ldxdw %r0, [%r1+2]"),
    (isa.Insn(0x7b, 10, 1, -8), "stxdw [%r10-8], %r1"),
    (isa.Insn(0xb7, 0, 0, 0, -1), "mov %r0, -1"),
    (isa.Insn(0x57, 1, 0, 0, 0xffffff), "and %r1, 0xffffff"),
    (isa.Insn(0x54, 1, 0, 0, -256), "and32 %r1, -256"),
    (isa.Insn(0x15, 1, 0, 3, 11), "jeq %r1, 11, +3"),
    (isa.Insn(0x05, 0, 0, -1), "ja -1"),
    (isa.Insn(0x85, 0, 1, 0, 7), "call local +7"),
    (isa.Insn(0xdc, 2, 0, 0, 64), "be64 %r2"),
    (isa.Insn(0xd7, 2, 0, 0, 32), "bswap32 %r2"),
    (isa.Insn(0xc3, 10, 1, -4, 0x01), "lock fetch add32 [%r10-4], %r1"),
    (isa.Insn(0x18, 1, 0, 0, 0, 0), "lddw %r1, 0"),
    (isa.Insn(0x18, 1, 0, 0, 0x55667788, 0x11223344), "lddw %r1, 0x1122334455667788"),
    (isa.Insn(0x18, 1, 4, 0, 5), "lddw %r1, func +5"),
    (isa.Insn(0xff), ".invalid 0x00000000000000ff"),
    (isa.Insn(0x07, 0, 0, 1, 1), ".invalid 0x0000000100010007"),
    (isa.Insn(0x07, 11, 0, 0, 1), ".invalid 0x0000000100000b07"),        # r11
    (isa.Insn(0xdf, 0, 0, 0, 16), ".invalid 0x00000010000000df"),        # ALU64 END|TO_BE
    (isa.Insn(0x18, 1, 7, 0, 1), ".invalid 0x0000000100007118, 0x0000000000000000"),
])
def test_format(insn, text):
    assert format_insn(insn) == text


def test_disassemble_annotations_count_slots():
    slots = assemble("lddw %r1, 0\ncall 1\ncall local f\nexit\nf:\nexit")
    lines = disassemble(slots, {0: "map:counters", 3: "f"})
    assert lines == ["lddw %r1, 0 # map:counters", "call 1", "call local +1 # f", "exit", "exit"]
    # The same without the None placeholder slots.
    assert disassemble([s for s in slots if s is not None], {3: "f"})[2] == "call local +1 # f"
    assert assemble_bytes("\n".join(lines)) == isa.encode(slots)


# The bpf_conformance suite.

@pytest.mark.parametrize("path", suite_files("tests"))
def test_suite_program(path):
    sec = sections(path)
    text = "\n".join(sec["asm"])
    slots = assemble(text)
    code = isa.encode(slots)
    assert slots and isa.decode(code) == slots
    if "raw" in sec:
        assert code == raw_bytes(sec["raw"])
    # Every suite instruction is valid, so it disassembles to a mnemonic.
    lines = disassemble(slots)
    assert not [line for line in lines if line.startswith(".invalid")]
    assert assemble_bytes("\n".join(lines)) == code


def test_suite_has_raw_expectation():
    if not SUITE.is_dir():
        pytest.skip(f"no suite at {SUITE}")
    assert [p.name for p in sorted((SUITE / "tests").glob("*.data"))
            if "raw" in sections(p)] == ["lddw.data"]


# Asm negative files and the line the assembler must name.
NEGATIVE_ASM = {
    "invalid_imm32_dec_range.data": "mov32 %r0, 2147483648",
    "invalid_imm32_hex_range.data": "mov32 %r0, 0x100000000",
    "invalid_label.data": "ja NOT_A_LABEL",
    "invalid_lock.data": "lock or [%r10-8]",
    "invalid_lock2.data": "lock",
    "invalid_mnemonic.data": "ldxq %r0, %r1",
    "invalid_offset.data": "ldxb %r0, %r1",
    "invalid_offset_range.data": "ldxb %r0, [%r1+0x10000]",
    "invalid_operand_count.data": "lddw %r0",
    "invalid_register.data": "or %r0, %r50",
    "invalid_unknown_directive.data": "-- Unknown directive",
}
# Negative files whose program is well-formed assembly: the refusal (or the
# wrong result) belongs to the verifier or the runtime, not the assembler.
NEGATIVE_NOT_ASM = {"error.data", "incorrect_return_value_high_bits.data"}
NEGATIVE_EMPTY = {"empty.data", "empty_instructions.data"}


@pytest.mark.parametrize("path", suite_files("negative"))
def test_suite_negative(path):
    sec = sections(path)
    if path.name in NEGATIVE_EMPTY:
        assert "asm" not in sec and "raw" not in sec
    elif path.name in NEGATIVE_NOT_ASM:
        assert assemble("\n".join(sec["asm"]))
    elif path.name in NEGATIVE_ASM:
        with pytest.raises(AsmError) as info:
            assemble("\n".join(sec["asm"]))
        assert sec["asm"][info.value.line - 1] == NEGATIVE_ASM[path.name]
    else:
        # `unused-*`: raw words with a non-zero unused field; the structural
        # verifier refuses them, the disassembler has to keep them exact.
        assert path.name.startswith("unused-") and "raw" in sec and "asm" not in sec
        code = raw_bytes(sec["raw"])
        lines = disassemble(isa.decode(code))
        assert lines[0].startswith(".invalid ") and lines[1:] == ["exit"]
        assert assemble_bytes("\n".join(lines)) == code


# Round trip properties.

REG = st.integers(0, 10)
S16 = st.integers(-0x8000, 0x7fff)
S32 = st.integers(-0x80000000, 0x7fffffff)
SIZES = st.sampled_from([isa.B, isa.H, isa.W, isa.DW])


def _alu(cls, alu_op, src, dst, reg, off, imm):
    return isa.Insn(cls | alu_op | isa.X, dst, reg, off) if src else isa.Insn(cls | alu_op, dst, 0, off, imm)


_ALU_CLS = st.sampled_from([isa.ALU, isa.ALU64])
_PLAIN_ALU = [o for o in isa.ALU_OPS if o not in (isa.NEG, isa.END)]

VALID = st.one_of(
    st.builds(_alu, _ALU_CLS, st.sampled_from(_PLAIN_ALU), st.booleans(), REG, REG, st.just(0), S32),
    st.builds(_alu, _ALU_CLS, st.sampled_from([isa.DIV, isa.MOD]), st.booleans(), REG, REG,
              st.just(1), S32),
    st.builds(lambda w, d, s: isa.Insn(isa.ALU64 | isa.MOV | isa.X, d, s, w),
              st.sampled_from([8, 16, 32]), REG, REG),
    st.builds(lambda w, d, s: isa.Insn(isa.ALU | isa.MOV | isa.X, d, s, w),
              st.sampled_from([8, 16]), REG, REG),
    st.builds(lambda c, d: isa.Insn(c | isa.NEG, d), _ALU_CLS, REG),
    st.builds(lambda o, d, w: isa.Insn(o, d, imm=w),
              st.sampled_from([isa.ALU | isa.END | isa.TO_LE, isa.ALU | isa.END | isa.TO_BE,
                               isa.ALU64 | isa.END | isa.TO_LE]),
              REG, st.sampled_from([16, 32, 64])),
    st.builds(lambda m, sz, d, s, o: isa.Insn(isa.LDX | m | sz, d, s, o),
              st.just(isa.MEM), SIZES, REG, REG, S16),
    st.builds(lambda sz, d, s, o: isa.Insn(isa.LDX | isa.MEMSX | sz, d, s, o),
              st.sampled_from([isa.B, isa.H, isa.W]), REG, REG, S16),
    st.builds(lambda sz, d, o, i: isa.Insn(isa.ST | isa.MEM | sz, d, 0, o, i), SIZES, REG, S16, S32),
    st.builds(lambda sz, d, s, o: isa.Insn(isa.STX | isa.MEM | sz, d, s, o), SIZES, REG, REG, S16),
    st.builds(lambda sz, d, s, o, a: isa.Insn(isa.STX | isa.ATOMIC | sz, d, s, o, a),
              st.sampled_from([isa.W, isa.DW]), REG, REG, S16,
              st.sampled_from([0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1])),
    st.builds(lambda d, lo, hi: isa.Insn(isa.LD_IMM64, d, 0, 0, lo, hi), REG, S32, S32),
    st.builds(lambda d, s, lo: isa.Insn(isa.LD_IMM64, d, s, 0, lo), REG, st.sampled_from([1, 3, 4, 5]), S32),
    st.builds(lambda d, s, lo, hi: isa.Insn(isa.LD_IMM64, d, s, 0, lo, hi), REG, st.sampled_from([2, 6]),
              S32, S32),
    st.builds(lambda m, sz, s, i: isa.Insn(isa.LD | m | sz, 0, s if m == isa.IND else 0, 0, i),
              st.sampled_from([isa.ABS, isa.IND]), st.sampled_from([isa.B, isa.H, isa.W]), REG, S32),
    st.builds(lambda o: isa.Insn(isa.JMP | isa.JA, off=o), S16),
    st.builds(lambda i: isa.Insn(isa.JMP32 | isa.JA, imm=i), S32),
    st.builds(lambda c, o, src, d, s, off, i: (isa.Insn(c | o | isa.X, d, s, off) if src
                                               else isa.Insn(c | o, d, 0, off, i)),
              st.sampled_from([isa.JMP, isa.JMP32]), st.sampled_from(list(isa.COND_JMP_OPS)),
              st.booleans(), REG, REG, S16, S32),
    st.builds(lambda s, i: isa.Insn(isa.JMP | isa.CALL, 0, s, 0, i), st.sampled_from([0, 1, 2]), S32),
    st.builds(lambda d: isa.Insn(isa.JMP | isa.CALL | isa.X, d), REG),
    st.just(isa.Insn(isa.JMP | isa.EXIT)),
)


@given(VALID)
def test_valid_round_trip(insn):
    text = format_insn(insn)
    assert not text.startswith(".invalid")
    assert assemble_bytes(text) == insn.encode()


@given(st.binary(min_size=8, max_size=8), st.integers(-0x80000000, 0x7fffffff))
def test_any_word_round_trip(word, next_imm):
    if word[0] == isa.LD_IMM64:
        code = word + struct.pack("<4xi", next_imm)
    else:
        code = word
    slots = isa.decode(code)
    text = "\n".join(disassemble(slots))
    assert assemble_bytes(text) == code
    assert re.fullmatch(r"[^\n#]+", text)


# -- LLVM's syntax, against llvm-objdump's own output -------------------------------------

LLVM_OBJDUMP = shutil.which("llvm-objdump-19")
needs_objdump = pytest.mark.skipif(LLVM_OBJDUMP is None,
                                   reason="llvm-objdump-19 (Debian's llvm-19) is not installed")
COMMITTED = sorted([*ROOT.glob("tests/helpers_c/*.o"), *ROOT.glob("examples/*.o"),
                    *ROOT.glob("benchmarks/*.o")])
# Every form of the ISA: llvm-objdump -d (no --mcpu, cpu v1) decodes all of them but
# the 32-bit atomics of cpu v3, which it reads with alu32 only (--mcpu=v3); what
# LLVM has no form for (ldabsdw) it calls <unknown>.
EVERY_FORM = """
add %r1, %r2
add32 %r1, %r2
add %r1, -5
add32 %r1, 7
sub %r1, %r2
mul %r1, 3
div %r1, %r2
div32 %r1, 3
sdiv %r1, %r2
sdiv32 %r1, 3
mod %r1, 3
smod %r1, %r2
smod32 %r1, %r2
or %r1, %r2
and %r1, 0xff
lsh %r1, 3
rsh32 %r1, 3
arsh %r1, %r2
arsh32 %r1, 2
xor32 %r1, -1
mov %r1, %r2
mov32 %r1, %r2
mov %r1, -1
mov32 %r1, 0x7fffffff
neg %r1
neg32 %r1
movsx864 %r1, %r2
movsx1664 %r1, %r2
movsx3264 %r1, %r2
movsx832 %r1, %r2
movsx1632 %r1, %r2
le16 %r1
le32 %r1
le64 %r1
be16 %r1
be32 %r1
be64 %r1
bswap16 %r1
bswap32 %r1
bswap64 %r1
ldxb %r1, [%r2+4]
ldxh %r1, [%r2-4]
ldxw %r1, [%r2]
ldxdw %r1, [%r2+32767]
ldxsb %r1, [%r2+1]
ldxsh %r1, [%r2-32768]
ldxsw %r1, [%r2+4]
stb [%r1+2], 5
sth [%r1-2], -1
stw [%r1], 0x12345678
stdw [%r1+8], 7
stxb [%r1+2], %r3
stxh [%r1+2], %r3
stxw [%r1+2], %r3
stxdw [%r10-8], %r3
lock add [%r1+8], %r2
lock add32 [%r1+8], %r2
lock or [%r1], %r2
lock and32 [%r1], %r2
lock xor [%r1], %r2
lock fetch add [%r1+8], %r2
lock fetch add32 [%r1+8], %r2
lock fetch or [%r1], %r2
lock fetch and32 [%r1], %r2
lock fetch xor [%r1], %r2
lock xchg [%r1], %r2
lock xchg32 [%r1], %r2
lock cmpxchg [%r1], %r2
lock cmpxchg32 [%r1], %r2
lddw %r1, 0x1122334455667788
lddw %r1, -2
lddw %r1, map_fd 3
lddw %r1, map_value 3, 16
lddw %r1, func +1
ldabsb 12
ldabsh 12
ldabsw 12
ldabsdw 12
ldindb %r1, 4
ldindh %r1, 4
ldindw %r1, 4
ja +1
ja -1
ja +0
ja32 +2
jeq %r1, 5, +1
jeq %r1, %r2, +1
jgt %r1, 5, +1
jge %r1, 5, +1
jlt %r1, 5, +1
jle %r1, 5, +1
jset %r1, 5, +1
jne %r1, 5, +1
jsgt %r1, -5, +1
jsge %r1, 5, +1
jslt %r1, 5, +1
jsle %r1, %r2, -1
jeq32 %r1, 5, +1
jne32 %r1, %r2, +1
jsgt32 %r1, 0xffffffff, +1
call 1
call %r2
call local +1
call runtime 7
exit
"""


def _objdump(path: Path, *flags: str) -> dict[tuple[str, int], str]:
    """(section, slot) -> llvm-objdump's text, without its jump-target symbol
    (`<prog+0x10>`) and with the layout's tabs and runs of spaces made one space."""
    out = subprocess.run([LLVM_OBJDUMP, "-d", "--no-show-raw-insn", *flags, str(path)],
                         capture_output=True, text=True, check=True).stdout
    found, section = {}, None
    for line in out.splitlines():
        if m := re.fullmatch(r"Disassembly of section (.*):", line):
            section = m[1]
        elif m := re.fullmatch(r"\s+(\d+):\t(.*)", line):
            text = re.sub(r" <[\w.]+(\+0x[0-9a-f]+)?>$", "", m[2])
            found[(section, int(m[1]))] = " ".join(text.split())
    return found


def _is_atomic32(insn: isa.Insn) -> bool:
    return insn.opcode == isa.STX | isa.ATOMIC | isa.W


def _check_llvm_syntax(path: Path) -> int:
    expected, alu32 = _objdump(path), _objdump(path, "--mcpu=v3")
    obj = loader.load(str(path))
    ours = {(section, idx): format_insn(insn, syntax="llvm")
            for section, slots in obj.code.items()
            for idx, insn in enumerate(slots) if insn is not None}
    assert set(ours) == set(expected), path.name
    for key, text in ours.items():
        insn = obj.code[key[0]][key[1]]
        want = alu32[key] if _is_atomic32(insn) else expected[key]
        assert text == want, (path.name, key, format_insn(insn))
    return len(ours)


@needs_objdump
@pytest.mark.parametrize("path", COMMITTED, ids=[f"{p.parent.name}/{p.name}" for p in COMMITTED])
def test_llvm_syntax_is_llvm_objdumps_on_the_committed_objects(path):
    assert _check_llvm_syntax(path) > 0


@needs_objdump
def test_llvm_syntax_is_llvm_objdumps_for_every_form(tmp_path):
    from inliner.tools.bench.compile_cost import elf_object
    path = tmp_path / "every_form.o"
    path.write_bytes(elf_object(assemble_bytes(EVERY_FORM)))
    count = _check_llvm_syntax(path)
    assert count == len([line for line in EVERY_FORM.splitlines() if line])


def test_llvm_syntax_states_an_inexact_instruction_as_unknown():
    # add with a non-zero src field while the source is the immediate
    insn = isa.decode(bytes.fromhex("0721000005000000"))[0]
    assert format_insn(insn).startswith(".invalid ")
    assert format_insn(insn, "note", syntax="llvm") == "<unknown> # note"
