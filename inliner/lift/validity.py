"""Structural checks before lifting: every instruction is one RFC 9669 defines.

Refuses unknown opcodes, registers past r10, writes to r10 and non-zero
reserved fields (the conformance suite's negative/unused-* files are the
reference). Control-flow checks (jump targets, falling off the end) happen
in the lifter, which walks the control flow anyway; it calls `check` on
every slot of each function it lifts, reachable or not, as the kernel does.
"""
from __future__ import annotations

from ..facts import isa


def _reserved(insn: isa.Insn, *fields: str) -> str | None:
    for f in fields:
        if getattr(insn, f):
            return f"reserved field {f} is {getattr(insn, f)}, not 0 (opcode {insn.opcode:#04x})"
    return None


def check(insn: isa.Insn) -> str | None:
    """Why `insn` is not a valid instruction, or None."""
    if insn.dst > 10 or insn.src > 10:
        return f"register r{max(insn.dst, insn.src)} does not exist"
    c, op, opcode = insn.cls, isa.op(insn.opcode), insn.opcode
    if c in (isa.ALU, isa.ALU64):
        return _check_alu(insn, c, op)
    if c in (isa.JMP, isa.JMP32):
        return _check_jmp(insn, c, op)
    if c == isa.LD:
        if isa.is_packet_load(insn) and isa.size(opcode) != isa.DW:
            # RFC 9669 5.5: dst and offset 0, and src 0 for ld_abs
            return _reserved(insn, "dst", "off", *(("src",) if isa.mode(opcode) == isa.ABS
                                                    else ()))
        if not insn.is_wide:
            return f"unknown load (opcode {opcode:#04x})"
        if insn.src > isa.PSEUDO_MAP_IDX_VALUE:
            return f"lddw with unknown source {insn.src}"
        return _reserved(insn, "off") or _dst_not_r10(insn)
    mode, size = isa.mode(opcode), isa.size(opcode)
    if c == isa.LDX:
        if mode not in (isa.MEM, isa.MEMSX) or (mode == isa.MEMSX and size == isa.DW):
            return f"unknown load (opcode {opcode:#04x})"
        return _reserved(insn, "imm") or _dst_not_r10(insn)
    if c == isa.ST:
        if mode != isa.MEM:
            return f"unknown store (opcode {opcode:#04x})"
        return _reserved(insn, "src")
    # STX
    if mode == isa.MEM:
        return _reserved(insn, "imm")
    if mode == isa.ATOMIC and size in (isa.W, isa.DW):
        base = insn.imm & ~isa.FETCH
        if insn.imm in (isa.XCHG, isa.CMPXCHG) or base in isa.ATOMIC_OPS:
            return None
        return f"unknown atomic operation {insn.imm:#x}"
    return f"unknown store (opcode {opcode:#04x})"


def _dst_not_r10(insn: isa.Insn) -> str | None:
    return "write to r10, the read-only frame pointer" if insn.dst == 10 else None


def _check_alu(insn: isa.Insn, c: int, op: int) -> str | None:
    if op not in isa.ALU_OPS:
        return f"unknown arithmetic operation (opcode {insn.opcode:#04x})"
    is_x = insn.opcode & isa.X
    if op == isa.END:
        if c == isa.ALU64 and is_x:
            return f"unknown byte swap (opcode {insn.opcode:#04x})"
        if insn.imm not in (16, 32, 64):
            return f"byte swap of width {insn.imm}"
        return _reserved(insn, "src", "off") or _dst_not_r10(insn)
    if op == isa.NEG:
        if is_x:
            return f"neg with register source (opcode {insn.opcode:#04x})"
        return _reserved(insn, "src", "off", "imm") or _dst_not_r10(insn)
    allowed_off = {0}
    if op in (isa.DIV, isa.MOD):
        allowed_off = {0, 1}
    elif op == isa.MOV and is_x:
        allowed_off = {0, 8, 16, 32} if c == isa.ALU64 else {0, 8, 16}
    if insn.off not in allowed_off:
        return f"offset {insn.off} is not valid for this operation (opcode {insn.opcode:#04x})"
    return _reserved(insn, "imm" if is_x else "src") or _dst_not_r10(insn)


def _check_jmp(insn: isa.Insn, c: int, op: int) -> str | None:
    opcode = insn.opcode
    if op not in isa.JMP_OPS or (c == isa.JMP32 and op in (isa.CALL, isa.EXIT)):
        return f"unknown jump (opcode {opcode:#04x})"
    if op == isa.JA:
        if opcode & isa.X:
            return f"unknown jump (opcode {opcode:#04x})"
        return _reserved(insn, "dst", "src", "off" if c == isa.JMP32 else "imm")
    if op == isa.EXIT:
        if opcode & isa.X:
            return f"unknown jump (opcode {opcode:#04x})"
        return _reserved(insn, "dst", "src", "off", "imm")
    if op == isa.CALL:
        if opcode == isa.CALLX:
            if insn.dst == 0 and 0 < insn.imm < isa.NUM_REGS:  # older uBPF encoding
                return _reserved(insn, "src", "off")
            return _reserved(insn, "src", "off", "imm")
        if insn.src not in (isa.CALL_HELPER, isa.CALL_LOCAL, isa.CALL_KFUNC):
            return f"call with unknown source {insn.src}"
        return _reserved(insn, "dst", "off")
    return _reserved(insn, "imm" if opcode & isa.X else "src")
