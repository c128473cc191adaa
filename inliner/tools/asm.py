"""Assembler and disassembler for the bpf_conformance (uBPF) text syntax.

One instruction per line; `#` starts a comment; `name:` alone on a line
defines a label. Operands are separated by commas:

    add %r0, %r1          add32 %r0, -5         neg %r0
    sdiv %r0, 3           smod32 %r0, %r1       movsx1664 %r0, %r1
    le16 %r0  be64 %r0    bswap32 %r0           (swap16/32/64 = bswap)
    ldxdw %r0, [%r1+8]    ldxsh %r0, [%r10-2]   stb [%r1], 0x11
    stxw [%r10-4], %r1    lock fetch add [%r10-8], %r1   lock cmpxchg32 ...
    lddw %r0, 0x1122334455667788
    lddw %r1, map_fd 3    lddw %r1, map_value 3, 16   lddw %r2, func cb
    ja +3   ja label      ja32 label            jsgt32 %r1, 0xb, -2
    call 5  call %r2      call local func1      call runtime 7     exit
    ldabsw 12             ldindb %r1, 4         (legacy packet access)
    .invalid 0x0000000100010007   (raw 64-bit words, as the suite's `-- raw`)

`call %r2` is callx (register in dst); `call runtime N` is the suite's name
for a call with src 2 (helper by BTF id).

Numbers are decimal or 0x hex. An immediate takes any signed 32-bit value,
or as unsigned hex any 32-bit pattern (0xffffffff); lddw likewise with 64
bits. Offsets (memory and jump) are signed 16-bit, whatever the base. Jump
and local-call targets are a label or a signed slot count (`+N`/`-N`)
relative to the next slot; lddw takes two slots. As in the suite, `exit`
names the first exit instruction unless a label `exit:` exists.

`assemble` returns the slot list `isa.decode` would return for the same
bytes (an LD_IMM64 is followed by None), so slot indices match jump offsets.

The disassembler also writes LLVM's syntax (`syntax="llvm"`), the one
llvm-objdump -d, clang -S and bpftool print: `r2 = *(u32 *)(r1 + 0x4)`,
`if r1 > 0x5 goto +0x3`, `lock *(u64 *)(r1 + 0x0) += r2`, immediates in
signed hex as llvm-objdump prints them. It is for reading: only the uBPF
syntax assembles back.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass, replace
from functools import partial
from typing import Callable, Iterable, Mapping

from ..facts.isa import (ABS, ADD, ALU, ALU64, ALU_OPS, AND, ARSH, ATOMIC, ATOMIC_OPS, B, CALL,
                  CALL_HELPER, CALL_KFUNC, CALL_LOCAL, CALLX, CMPXCHG, COND_JMP_OPS, DIV, DW,
                  END, EXIT, FETCH, H, IND, JA, JEQ, JGE, JGT, JLE, JLT, JMP, JMP32, JNE, JSET,
                  JSGE, JSGT, JSLE, JSLT, LD, LD_IMM64, LDX, LSH, MEM, MEMSX, MOD, MOV, MUL, NEG,
                  NUM_REGS, OR, PSEUDO_BTF_ID, PSEUDO_FUNC, PSEUDO_MAP_FD, PSEUDO_MAP_IDX,
                  PSEUDO_MAP_IDX_VALUE, PSEUDO_MAP_VALUE, RSH, SIZE_BYTES, SIZE_SUFFIX, ST, STX,
                  SUB, TO_BE, TO_LE, W, X, XCHG, XOR, DecodeError, Insn, decode, encode, mode, op,
                  size, src_bit)

__all__ = ["AsmError", "SYNTAXES", "assemble", "assemble_bytes", "format_insn", "disassemble"]

SYNTAXES = ("ubpf", "llvm")  # the disassembler's: ubpf (the default) assembles back


class AsmError(ValueError):
    """Text the assembler refuses; `line` is 1-based within the text."""

    def __init__(self, line: int, reason: str):
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


# RFC 9669: offset 1 turns DIV/MOD into their signed forms; MOV|X with offset
# 8/16/32 sign-extends that many low bits (ALU class: 8/16 only).
SIGNED_OFF = 1
MOVSX_WIDTHS = {ALU64: (8, 16, 32), ALU: (8, 16)}
END_WIDTHS = (16, 32, 64)

# Operand keywords of the pseudo LD_IMM64 forms (RFC 9669 section 5.4).
PSEUDO_NAMES = {PSEUDO_MAP_FD: "map_fd", PSEUDO_MAP_VALUE: "map_value",
                PSEUDO_BTF_ID: "btf_id", PSEUDO_FUNC: "func", PSEUDO_MAP_IDX: "map_idx",
                PSEUDO_MAP_IDX_VALUE: "map_idx_value"}
_PSEUDO_KINDS = {name: src for src, name in PSEUDO_NAMES.items()}
_PSEUDO_WITH_OFFSET = (PSEUDO_MAP_VALUE, PSEUDO_MAP_IDX_VALUE)

# Words after `lock`, keyed by the atomic operation in the immediate.
ATOMIC_NAMES = {**ATOMIC_OPS,
                **{o | FETCH: "fetch " + name for o, name in ATOMIC_OPS.items()},
                XCHG: "xchg", CMPXCHG: "cmpxchg"}
ATOMIC_SIZES = {DW: "", W: "32"}

CALL_MODES = {CALL_LOCAL: "local", CALL_KFUNC: "runtime"}

_CLASS_SUFFIX = {ALU64: "", ALU: "32", JMP: "", JMP32: "32"}

_NUMBER = re.compile(r"([+-]?)(0[xX][0-9a-fA-F]+|[0-9]+)")
_REGISTER = re.compile(r"%r([0-9]|10)")
_LABEL = re.compile(r"[A-Za-z_][\w.]*")
_MEMORY = re.compile(r"\[\s*([^\]+\-\s]+)\s*(?:([+-])\s*([^\]\s]+)\s*)?\]")
# `lock [fetch] op` and `call local|runtime` name their form with several words.
_MNEMONIC = re.compile(r"(lock(?:\s+fetch)?\s+\w+|call\s+(?:local|runtime)(?=\s|$)|\S+)\s*(.*)")

# Below this magnitude immediates print in decimal; above, as a hex pattern.
_DECIMAL_LIMIT = 0x10000


@dataclass(frozen=True)
class _Fixup:
    slot: int
    field: str        # "off" or "imm"
    label: str
    line: int


class _Line:
    """Operand parsers for one source line; every error names the line."""

    def __init__(self, lineno: int, slot: int, fixups: list[_Fixup]):
        self.lineno = lineno
        self.slot = slot
        self.fixups = fixups

    def error(self, reason: str) -> AsmError:
        return AsmError(self.lineno, reason)

    def reg(self, text: str) -> int:
        m = _REGISTER.fullmatch(text)
        if m is None:
            raise self.error(f"bad register {text!r} (expected %r0 to %r{NUM_REGS - 1})")
        return int(m[1])

    def number(self, text: str, bits: int, hex_pattern: bool) -> int:
        """A number in the signed `bits` range, or with `hex_pattern` any
        unsigned hex bit pattern of that width."""
        m = _NUMBER.fullmatch(text)
        if m is None:
            raise self.error(f"expected a number, got {text!r}")
        sign, digits = m.groups()
        is_hex = digits[:2].lower() == "0x"
        value = int(digits, 16 if is_hex else 10)
        if sign == "-":
            value = -value
        high = (1 << bits) - 1 if hex_pattern and is_hex and sign != "-" else (1 << (bits - 1)) - 1
        if not -(1 << (bits - 1)) <= value <= high:
            raise self.error(f"{text} does not fit in {bits} bits")
        return value

    def imm32(self, text: str) -> int:
        return _signed(self.number(text, 32, True), 32)

    def mem(self, text: str) -> tuple[int, int]:
        m = _MEMORY.fullmatch(text)
        if m is None:
            raise self.error(f"expected a memory operand like [%r1+8], got {text!r}")
        reg, sign, offset = m.groups()
        return self.reg(reg), self.number(sign + offset, 16, False) if sign else 0

    def target(self, text: str, field: str) -> int:
        """A jump target: a signed slot offset now, or a label resolved later."""
        if text[:1] in ("+", "-"):
            return self.number(text, 16 if field == "off" else 32, False)
        if _LABEL.fullmatch(text) is None:
            raise self.error(f"expected a label or a signed offset (+N/-N), got {text!r}")
        self.fixups.append(_Fixup(self.slot, field, text, self.lineno))
        return 0


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


# Encoders: each takes the line context and the operand texts.

def _alu(opcode: int, off: int, ln: _Line, ops: list[str]) -> Insn:
    dst = ln.reg(ops[0])
    if ops[1].startswith("%"):
        return Insn(opcode | X, dst, ln.reg(ops[1]), off)
    return Insn(opcode, dst, 0, off, ln.imm32(ops[1]))


def _neg(opcode: int, ln: _Line, ops: list[str]) -> Insn:
    return Insn(opcode, ln.reg(ops[0]))


def _movsx(opcode: int, width: int, ln: _Line, ops: list[str]) -> Insn:
    return Insn(opcode, ln.reg(ops[0]), ln.reg(ops[1]), width)


def _end(opcode: int, width: int, ln: _Line, ops: list[str]) -> Insn:
    return Insn(opcode, ln.reg(ops[0]), imm=width)


def _ldx(opcode: int, ln: _Line, ops: list[str]) -> Insn:
    src, off = ln.mem(ops[1])
    return Insn(opcode, ln.reg(ops[0]), src, off)


def _st(opcode: int, ln: _Line, ops: list[str]) -> Insn:
    dst, off = ln.mem(ops[0])
    return Insn(opcode, dst, 0, off, ln.imm32(ops[1]))


def _stx(opcode: int, imm: int, ln: _Line, ops: list[str]) -> Insn:
    dst, off = ln.mem(ops[0])
    return Insn(opcode, dst, ln.reg(ops[1]), off, imm)


def _ldabs(opcode: int, ln: _Line, ops: list[str]) -> Insn:
    return Insn(opcode, imm=ln.imm32(ops[0]))


def _ldind(opcode: int, ln: _Line, ops: list[str]) -> Insn:
    return Insn(opcode, 0, ln.reg(ops[0]), imm=ln.imm32(ops[1]))


def _lddw(ln: _Line, ops: list[str]) -> Insn:
    dst = ln.reg(ops[0])
    words = ops[1].split()
    if len(words) == 1 and len(ops) == 2:
        value = _signed(ln.number(ops[1], 64, True), 64)
        return Insn(LD_IMM64, dst, 0, 0, _signed(value, 32), value >> 32)
    src = _PSEUDO_KINDS.get(words[0])
    if src is None or len(words) != 2:
        raise ln.error(f"expected a number or one of {', '.join(PSEUDO_NAMES.values())} "
                       f"followed by a value, got {ops[1]!r}")
    if (len(ops) == 3) != (src in _PSEUDO_WITH_OFFSET):
        raise ln.error(f"lddw {words[0]} takes {3 if src in _PSEUDO_WITH_OFFSET else 2} operands")
    imm = ln.target(words[1], "imm") if src == PSEUDO_FUNC else ln.imm32(words[1])
    return Insn(LD_IMM64, dst, src, 0, imm, ln.imm32(ops[2]) if len(ops) == 3 else 0)


def _ja(ln: _Line, ops: list[str]) -> Insn:
    return Insn(JMP | JA, off=ln.target(ops[0], "off"))


def _ja32(ln: _Line, ops: list[str]) -> Insn:
    return Insn(JMP32 | JA, imm=ln.target(ops[0], "imm"))


def _jcond(opcode: int, ln: _Line, ops: list[str]) -> Insn:
    dst = ln.reg(ops[0])
    off = ln.target(ops[2], "off")
    if ops[1].startswith("%"):
        return Insn(opcode | X, dst, ln.reg(ops[1]), off)
    return Insn(opcode, dst, 0, off, ln.imm32(ops[1]))


def _call(ln: _Line, ops: list[str]) -> Insn:
    # callx keeps its register in dst, as LLVM, the kernel and the suite do.
    if ops[0].startswith("%"):
        return Insn(CALLX, ln.reg(ops[0]))
    return Insn(JMP | CALL, 0, CALL_HELPER, 0, ln.imm32(ops[0]))


def _call_local(ln: _Line, ops: list[str]) -> Insn:
    return Insn(JMP | CALL, 0, CALL_LOCAL, 0, ln.target(ops[0], "imm"))


def _call_runtime(ln: _Line, ops: list[str]) -> Insn:
    return Insn(JMP | CALL, 0, CALL_KFUNC, 0, ln.imm32(ops[0]))


def _exit(ln: _Line, ops: list[str]) -> Insn:
    return Insn(JMP | EXIT)


_Encoder = Callable[[_Line, list[str]], Insn]


def _forms() -> dict[str, tuple[_Encoder, tuple[int, ...]]]:
    """Mnemonic -> (encoder, accepted operand counts)."""
    forms: dict[str, tuple[_Encoder, tuple[int, ...]]] = {}
    for cls_, suffix in ((ALU64, ""), (ALU, "32")):
        for alu_op, name in ALU_OPS.items():
            if alu_op == NEG:
                forms[name + suffix] = (partial(_neg, cls_ | NEG), (1,))
            elif alu_op != END:
                forms[name + suffix] = (partial(_alu, cls_ | alu_op, 0), (2,))
        for alu_op in (DIV, MOD):
            forms["s" + ALU_OPS[alu_op] + suffix] = (partial(_alu, cls_ | alu_op, SIGNED_OFF), (2,))
        for width in MOVSX_WIDTHS[cls_]:
            forms[f"movsx{width}{suffix or '64'}"] = (partial(_movsx, cls_ | MOV | X, width), (2,))
    for width in END_WIDTHS:
        forms[f"le{width}"] = (partial(_end, ALU | END | TO_LE, width), (1,))
        forms[f"be{width}"] = (partial(_end, ALU | END | TO_BE, width), (1,))
        forms[f"bswap{width}"] = (partial(_end, ALU64 | END | TO_LE, width), (1,))
        # The suite's older name for bswap (its assembler's EBPF_OP_SWAP).
        forms[f"swap{width}"] = forms[f"bswap{width}"]
    for sz, s in SIZE_SUFFIX.items():
        forms["ldx" + s] = (partial(_ldx, LDX | MEM | sz), (2,))
        forms["st" + s] = (partial(_st, ST | MEM | sz), (2,))
        forms["stx" + s] = (partial(_stx, STX | MEM | sz, 0), (2,))
        forms["ldabs" + s] = (partial(_ldabs, LD | ABS | sz), (1,))
        forms["ldind" + s] = (partial(_ldind, LD | IND | sz), (2,))
    for sz in (B, H, W):
        forms["ldxs" + SIZE_SUFFIX[sz]] = (partial(_ldx, LDX | MEMSX | sz), (2,))
    for sz, suffix in ATOMIC_SIZES.items():
        for imm, words in ATOMIC_NAMES.items():
            forms[f"lock {words}{suffix}"] = (partial(_stx, STX | ATOMIC | sz, imm), (2,))
    forms["lddw"] = (_lddw, (2, 3))
    for cls_, suffix in ((JMP, ""), (JMP32, "32")):
        for jmp_op, name in COND_JMP_OPS.items():
            forms[name + suffix] = (partial(_jcond, cls_ | jmp_op), (3,))
    forms["ja"] = (_ja, (1,))
    forms["ja32"] = (_ja32, (1,))
    forms["call"] = (_call, (1,))
    forms["call local"] = (_call_local, (1,))
    forms["call runtime"] = (_call_runtime, (1,))
    forms["exit"] = (_exit, (0,))
    return forms


_FORMS = _forms()


def _raw_words(ln: _Line, ops: list[str]) -> list[Insn | None]:
    code = b"".join(struct.pack("<Q", ln.number(o, 64, True) & (1 << 64) - 1) for o in ops)
    try:
        return decode(code)
    except DecodeError as e:
        raise ln.error(e.reason) from None


def _parse(ln: _Line, text: str) -> list[Insn | None]:
    mnemonic, rest = _MNEMONIC.fullmatch(text).groups()
    mnemonic = " ".join(mnemonic.split())
    ops = [o.strip() for o in rest.split(",")] if rest else []
    if "" in ops:
        raise ln.error("empty operand")
    if mnemonic == ".invalid":
        if not ops:
            raise ln.error(".invalid needs at least one 64-bit word")
        return _raw_words(ln, ops)
    if mnemonic not in _FORMS:
        if mnemonic == "lock":
            raise ln.error("lock needs an operation and 2 operands")
        raise ln.error(f"unknown mnemonic {mnemonic!r}")
    encoder, counts = _FORMS[mnemonic]
    if len(ops) not in counts:
        raise ln.error(f"{mnemonic} takes {' or '.join(map(str, counts))} operand(s), got {len(ops)}")
    insn = encoder(ln, ops)
    return [insn, None] if insn.is_wide else [insn]


def assemble(text: str) -> list[Insn | None]:
    """Assemble `text` into the slot list `isa.decode` would give."""
    slots: list[Insn | None] = []
    labels: dict[str, tuple[int, int]] = {}   # name -> (slot, line)
    fixups: list[_Fixup] = []
    first_exit: int | None = None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.endswith(":") and _LABEL.fullmatch(line[:-1]):
            name = line[:-1]
            if name in labels:
                raise AsmError(number, f"duplicate label {name!r} (first defined on line "
                                       f"{labels[name][1]})")
            labels[name] = (len(slots), number)
            continue
        new = _parse(_Line(number, len(slots), fixups), line)
        if first_exit is None and new[0].opcode == JMP | EXIT:
            first_exit = len(slots)
        slots += new
    for fix in fixups:
        if fix.label in labels:
            target = labels[fix.label][0]
        elif fix.label == "exit" and first_exit is not None:
            target = first_exit
        else:
            raise AsmError(fix.line, f"unknown label {fix.label!r}")
        delta = target - fix.slot - 1
        if fix.field == "off" and not -0x8000 <= delta < 0x8000:
            raise AsmError(fix.line, f"label {fix.label!r} is {delta} slots away, "
                                     "beyond a 16-bit jump offset")
        slots[fix.slot] = replace(slots[fix.slot], **{fix.field: delta})
    return slots


def assemble_bytes(text: str) -> bytes:
    return encode(assemble(text))


# Disassembler.

def _r(n: int) -> str:
    return f"%r{n}"


def _imm(value: int, bits: int = 32) -> str:
    if -_DECIMAL_LIMIT < value < _DECIMAL_LIMIT:
        return str(value)
    return hex(value & ((1 << bits) - 1))


def _memory(reg: int, off: int) -> str:
    return f"[%r{reg}{off:+d}]" if off else f"[%r{reg}]"


def _format_alu(insn: Insn) -> str | None:
    o, suffix = op(insn.opcode), _CLASS_SUFFIX[insn.cls]
    if o == END:
        name = "bswap" if insn.cls == ALU64 else "be" if src_bit(insn.opcode) == TO_BE else "le"
        return f"{name}{insn.imm} {_r(insn.dst)}"
    if o not in ALU_OPS:
        return None
    if o == NEG:
        return f"neg{suffix} {_r(insn.dst)}"
    if o == MOV and src_bit(insn.opcode) and insn.off:
        return f"movsx{insn.off}{suffix or '64'} {_r(insn.dst)}, {_r(insn.src)}"
    name = ("s" if o in (DIV, MOD) and insn.off == SIGNED_OFF else "") + ALU_OPS[o]
    source = _r(insn.src) if src_bit(insn.opcode) else _imm(insn.imm)
    return f"{name}{suffix} {_r(insn.dst)}, {source}"


def _format_jmp(insn: Insn) -> str | None:
    o, suffix = op(insn.opcode), _CLASS_SUFFIX[insn.cls]
    if o == JA:
        return f"ja32 {insn.imm:+d}" if insn.cls == JMP32 else f"ja {insn.off:+d}"
    if o == EXIT:
        return "exit"
    if o == CALL:
        if src_bit(insn.opcode):
            return f"call {_r(insn.dst)}"
        if insn.src == CALL_LOCAL:
            return f"call local {insn.imm:+d}"
        return f"call {CALL_MODES[insn.src] + ' ' if insn.src in CALL_MODES else ''}{insn.imm}"
    if o not in COND_JMP_OPS:
        return None
    source = _r(insn.src) if src_bit(insn.opcode) else _imm(insn.imm)
    return f"{COND_JMP_OPS[o]}{suffix} {_r(insn.dst)}, {source}, {insn.off:+d}"


def _format_mem(insn: Insn) -> str | None:
    c, m, s = insn.cls, mode(insn.opcode), SIZE_SUFFIX[size(insn.opcode)]
    if insn.is_wide:
        if insn.src == 0:
            return f"lddw {_r(insn.dst)}, {_imm(_signed(insn.imm64, 64), 64)}"
        if insn.src not in PSEUDO_NAMES:
            return None
        value = f"{insn.imm:+d}" if insn.src == PSEUDO_FUNC else _imm(insn.imm)
        extra = f", {_imm(insn.next_imm)}" if insn.src in _PSEUDO_WITH_OFFSET else ""
        return f"lddw {_r(insn.dst)}, {PSEUDO_NAMES[insn.src]} {value}{extra}"
    if c == LD and m == ABS:
        return f"ldabs{s} {_imm(insn.imm)}"
    if c == LD and m == IND:
        return f"ldind{s} {_r(insn.src)}, {_imm(insn.imm)}"
    if c == LDX and m in (MEM, MEMSX):
        return f"ldx{'s' if m == MEMSX else ''}{s} {_r(insn.dst)}, {_memory(insn.src, insn.off)}"
    if c == ST and m == MEM:
        return f"st{s} {_memory(insn.dst, insn.off)}, {_imm(insn.imm)}"
    if c == STX and m == MEM:
        return f"stx{s} {_memory(insn.dst, insn.off)}, {_r(insn.src)}"
    if (c == STX and m == ATOMIC and insn.imm in ATOMIC_NAMES
            and size(insn.opcode) in ATOMIC_SIZES):
        return (f"lock {ATOMIC_NAMES[insn.imm]}{ATOMIC_SIZES[size(insn.opcode)]} "
                f"{_memory(insn.dst, insn.off)}, {_r(insn.src)}")
    return None


# LLVM's syntax (llvm/lib/Target/BPF/BPFInstrInfo.td), by the isa operation it spells.

_LLVM_ALU = {ADD: "+=", SUB: "-=", MUL: "*=", DIV: "/=", OR: "|=", AND: "&=", LSH: "<<=",
             RSH: ">>=", MOD: "%=", XOR: "^=", MOV: "=", ARSH: "s>>="}
_LLVM_JMP = {JEQ: "==", JGT: ">", JGE: ">=", JSET: "&", JNE: "!=", JSGT: "s>", JSGE: "s>=",
             JLT: "<", JLE: "<=", JSLT: "s<", JSLE: "s<="}


def _hex(value: int) -> str:
    """An immediate as llvm-objdump prints it: signed, in hex."""
    return f"-{-value:#x}" if value < 0 else f"{value:#x}"


def _jump(value: int) -> str:
    return ("+" if value >= 0 else "") + _hex(value)


def _llvm_reg(n: int, wide: bool = True) -> str:
    return f"{'r' if wide else 'w'}{n}"


def _llvm_addr(reg: int, off: int) -> str:
    return f"r{reg} {'-' if off < 0 else '+'} {_hex(abs(off))}"


def _llvm_alu(insn: Insn) -> str | None:
    o, wide = op(insn.opcode), insn.cls == ALU64
    dst = _llvm_reg(insn.dst, wide)
    if o == END:  # the byte swaps name 64-bit registers whatever their class
        name = "bswap" if wide else "be" if src_bit(insn.opcode) == TO_BE else "le"
        return f"r{insn.dst} = {name}{insn.imm} r{insn.dst}"
    if o == NEG:
        return f"{dst} = -{dst}"
    if o == MOV and src_bit(insn.opcode) and insn.off:
        return f"{dst} = (s{insn.off}){_llvm_reg(insn.src, wide)}"
    if o not in _LLVM_ALU:
        return None
    signed = "s" if o in (DIV, MOD) and insn.off == SIGNED_OFF else ""
    source = _llvm_reg(insn.src, wide) if src_bit(insn.opcode) else _hex(insn.imm)
    return f"{dst} {signed}{_LLVM_ALU[o]} {source}"


def _llvm_jmp(insn: Insn) -> str | None:
    o = op(insn.opcode)
    if o == JA:
        return f"gotol {_jump(insn.imm)}" if insn.cls == JMP32 else f"goto {_jump(insn.off)}"
    if o == EXIT:
        return "exit"
    if o == CALL:  # helper, local (pc-relative) and kfunc calls alike
        return f"callx r{insn.dst}" if src_bit(insn.opcode) else f"call {_hex(insn.imm)}"
    if o not in _LLVM_JMP:
        return None
    wide = insn.cls == JMP
    source = _llvm_reg(insn.src, wide) if src_bit(insn.opcode) else _hex(insn.imm)
    return f"if {_llvm_reg(insn.dst, wide)} {_LLVM_JMP[o]} {source} goto {_jump(insn.off)}"


def _llvm_mem(insn: Insn) -> str | None:
    c, m, sz = insn.cls, mode(insn.opcode), size(insn.opcode)
    if insn.is_wide:
        if insn.src:  # llvm-objdump's form shows neither the second immediate nor names
            return f"ld_pseudo r{insn.dst}, {_hex(insn.src)}, {_hex(insn.imm)}"
        return f"r{insn.dst} = {_hex(_signed(insn.imm64, 64))} ll"
    kind = f"{'s' if m == MEMSX else 'u'}{8 * SIZE_BYTES[sz]}"
    if c == LD:  # legacy packet loads; LLVM has no 64-bit one
        source = _hex(insn.imm) if m == ABS else f"r{insn.src}"
        return f"r0 = *({kind} *)skb[{source}]" if sz != DW else None
    addr = f"({_llvm_addr(insn.dst if c in (ST, STX) else insn.src, insn.off)})"
    if c == LDX:
        return f"r{insn.dst} = *({kind} *){addr}"
    if c == ST:
        return f"*({kind} *){addr} = {_hex(insn.imm)}"
    if m == MEM:
        return f"*({kind} *){addr} = r{insn.src}"
    # Atomics: 32-bit ones name w registers (LLVM decodes them with alu32, cpu v3 on).
    wide, bits = sz == DW, 8 * SIZE_BYTES[sz]
    value, r0 = _llvm_reg(insn.src, wide), _llvm_reg(0, wide)
    where = addr[1:-1]
    if insn.imm in ATOMIC_OPS:
        return f"lock *({kind} *){addr} {_LLVM_ALU[insn.imm]} {value}"
    if insn.imm & ~FETCH in ATOMIC_OPS:
        return f"{value} = atomic_fetch_{ATOMIC_OPS[insn.imm & ~FETCH]}(({kind} *){addr}, {value})"
    name = "xchg" if insn.imm == XCHG else "cmpxchg"
    operands = f"{where}, {value}" if insn.imm == XCHG else f"{where}, {r0}, {value}"
    return f"{value if insn.imm == XCHG else r0} = {name}{'' if wide else '32'}_{bits}({operands})"


def _llvm_text(insn: Insn) -> str | None:
    if insn.cls in (ALU, ALU64):
        return _llvm_alu(insn)
    if insn.cls in (JMP, JMP32):
        return _llvm_jmp(insn)
    return _llvm_mem(insn)


def format_insn(insn: Insn, annotation: str | None = None, syntax: str = "ubpf") -> str:
    """One instruction as a line of assembly, `annotation` as its comment.

    An instruction the uBPF syntax cannot state exactly (unknown opcode,
    non-zero unused field, register above r10) becomes `.invalid` with its
    raw words, or in LLVM's syntax `<unknown>`, as llvm-objdump says.
    """
    if syntax not in SYNTAXES:
        raise ValueError(f"unknown syntax {syntax!r} (syntaxes: {', '.join(SYNTAXES)})")
    if insn.cls in (ALU, ALU64):
        text = _format_alu(insn)
    elif insn.cls in (JMP, JMP32):
        text = _format_jmp(insn)
    else:
        text = _format_mem(insn)
    # Re-assembling is the one exact test that the text keeps every field.
    exact = text is not None and _reassemble(text) == insn.encode()
    if syntax == "llvm":
        text = (_llvm_text(insn) if exact else None) or "<unknown>"
    elif not exact:
        code = insn.encode()
        words = struct.unpack(f"<{len(code) // 8}Q", code)
        text = ".invalid " + ", ".join(f"0x{w:016x}" for w in words)
    return f"{text} # {annotation}" if annotation else text


def _reassemble(text: str) -> bytes | None:
    try:
        return assemble_bytes(text)
    except AsmError:
        return None


def disassemble(slots: Iterable[Insn | None],
                annotations: Mapping[int, str] | None = None, syntax: str = "ubpf") -> list[str]:
    """One line per instruction of a slot list (None entries are skipped).

    `annotations` maps the slot index of an instruction to a comment for it,
    e.g. {4: "map:counters"} for the lddw a relocation targets or the name of
    a local call's callee; lines keep their +N/-N offsets, so the output in
    the uBPF syntax assembles back to the same bytes.
    """
    lines = []
    slot = 0
    for insn in slots:
        if insn is None:
            continue
        lines.append(format_insn(insn, annotations.get(slot) if annotations else None, syntax))
        slot += 2 if insn.is_wide else 1
    return lines
