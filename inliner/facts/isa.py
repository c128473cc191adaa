"""The eBPF instruction set (RFC 9669), defined once.

Every other module (assembler, disassembler, loader, lifter, interpreter)
takes opcode numbers, field layouts and mnemonics from here.
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

INSN_SIZE = 8
STACK_SIZE = 512          # bytes in one eBPF stack frame
MAX_CALL_DEPTH = 8        # frames, the program's own included (the kernel's MAX_CALL_FRAMES)
NUM_REGS = 11             # r0..r10; r10 is the read-only frame pointer

# Instruction classes: the low three bits of the opcode.
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
CLASS_NAMES = ("ld", "ldx", "st", "stx", "alu", "jmp", "jmp32", "alu64")

# Source bit of arithmetic and jump instructions.
K, X = 0x00, 0x08

# Arithmetic operations (opcode & 0xf0).
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
NEG, MOD, XOR, MOV, ARSH, END = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
ALU_OPS = {ADD: "add", SUB: "sub", MUL: "mul", DIV: "div", OR: "or", AND: "and",
           LSH: "lsh", RSH: "rsh", NEG: "neg", MOD: "mod", XOR: "xor", MOV: "mov",
           ARSH: "arsh", END: "end"}
# BPF_END's source bit picks the byte order of the ALU class form.
TO_LE, TO_BE = 0x00, 0x08

# Jump operations (opcode & 0xf0).
JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
CALL, EXIT, JLT, JLE, JSLT, JSLE = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
JMP_OPS = {JA: "ja", JEQ: "jeq", JGT: "jgt", JGE: "jge", JSET: "jset", JNE: "jne",
           JSGT: "jsgt", JSGE: "jsge", CALL: "call", EXIT: "exit", JLT: "jlt",
           JLE: "jle", JSLT: "jslt", JSLE: "jsle"}
COND_JMP_OPS = {op: name for op, name in JMP_OPS.items() if op not in (JA, CALL, EXIT)}

# Load/store sizes (opcode & 0x18) and modes (opcode & 0xe0).
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
SIZE_BYTES = {B: 1, H: 2, W: 4, DW: 8}
SIZE_SUFFIX = {B: "b", H: "h", W: "w", DW: "dw"}
IMM, ABS, IND, MEM, MEMSX, ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0

# Atomic operations, held in the immediate of STX|ATOMIC.
FETCH = 0x01
XCHG = 0xE0 | FETCH
CMPXCHG = 0xF0 | FETCH
ATOMIC_OPS = {ADD: "add", OR: "or", AND: "and", XOR: "xor"}

# Source field of CALL: what the immediate names.
CALL_HELPER, CALL_LOCAL, CALL_KFUNC = 0, 1, 2
# Source field of LD_IMM64 (the kernel's BPF_PSEUDO_* values).
PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_BTF_ID, PSEUDO_FUNC = 1, 2, 3, 4
PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE = 5, 6

LD_IMM64 = LD | IMM | DW  # 0x18: the only two-slot instruction


def cls(opcode: int) -> int:
    return opcode & 0x07


def op(opcode: int) -> int:
    return opcode & 0xF0


def src_bit(opcode: int) -> int:
    return opcode & 0x08


def size(opcode: int) -> int:
    return opcode & 0x18


def mode(opcode: int) -> int:
    return opcode & 0xE0


@dataclass(frozen=True, slots=True)
class Insn:
    """One 64-bit instruction slot as RFC 9669 lays it out.

    For LD_IMM64 the decoder folds the second slot into `imm64` and
    `next_imm` (the second slot's immediate, which pseudo loads use).
    """
    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    next_imm: int = 0
    # The class, stored rather than computed: every pass over the code asks it of
    # every instruction (millions of times for a large program).
    cls: int = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "cls", self.opcode & 0x07)

    @property
    def is_wide(self) -> bool:
        return self.opcode == LD_IMM64

    @property
    def imm64(self) -> int:
        return ((self.next_imm & 0xFFFFFFFF) << 32) | (self.imm & 0xFFFFFFFF)

    def encode(self) -> bytes:
        regs = (self.dst & 0xF) | ((self.src & 0xF) << 4)
        first = struct.pack("<BBhi", self.opcode, regs, self.off, _s32(self.imm))
        if self.is_wide:
            return first + struct.pack("<BBhi", 0, 0, 0, _s32(self.next_imm))
        return first


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


class DecodeError(ValueError):
    """A byte sequence that is not a whole number of instructions."""

    def __init__(self, index: int, reason: str):
        super().__init__(reason)
        self.index = index
        self.reason = reason


def decode(code: bytes) -> list[Insn | None]:
    """Decode instruction slots.

    Returns one entry per 8-byte slot so that slot indices (which jump offsets
    and relocations use) stay valid: the second slot of an LD_IMM64 is None.
    """
    if len(code) % INSN_SIZE:
        raise DecodeError(len(code) // INSN_SIZE,
                          f"code size {len(code)} is not a multiple of {INSN_SIZE}")
    slots: list[Insn | None] = []
    count = len(code) // INSN_SIZE
    i = 0
    while i < count:
        opcode, regs, off, imm = struct.unpack_from("<BBhi", code, i * INSN_SIZE)
        if opcode == LD_IMM64:
            if i + 1 >= count:
                raise DecodeError(i, "lddw is missing its second slot")
            op2, regs2, off2, imm2 = struct.unpack_from("<BBhi", code, (i + 1) * INSN_SIZE)
            if op2 or regs2 or off2:
                raise DecodeError(i + 1, "second slot of lddw has non-zero reserved fields")
            slots.append(Insn(opcode, regs & 0xF, regs >> 4, off, imm, imm2))
            slots.append(None)
            i += 2
        else:
            slots.append(Insn(opcode, regs & 0xF, regs >> 4, off, imm))
            i += 1
    return slots


def encode(insns: list[Insn | None]) -> bytes:
    return b"".join(insn.encode() for insn in insns if insn is not None)


CALLX = JMP | CALL | X  # 0x8d: call through a register


class CallKind(enum.Enum):
    """What a call instruction calls (RFC 9669 section 4.3.1)."""
    HELPER = "helper"        # src 0: a helper function by id
    LOCAL = "local"          # src 1: a bpf-to-bpf call, pc-relative
    KFUNC = "kfunc"          # src 2: a kernel function by BTF id
    REGISTER = "register"    # callx: through a register


def call_kind(insn: Insn | None) -> CallKind | None:
    """The kind of call `insn` makes, or None if it is no call (or an unknown one)."""
    if insn is None or insn.opcode not in (JMP | CALL, CALLX):
        return None
    if insn.opcode == CALLX:
        return CallKind.REGISTER
    return {CALL_HELPER: CallKind.HELPER, CALL_LOCAL: CallKind.LOCAL,
            CALL_KFUNC: CallKind.KFUNC}.get(insn.src)


def callx_register(insn: Insn) -> int:
    """The register a callx names.

    LLVM and the kernel put it in dst; older uBPF-derived tools put it in
    imm, so a zero dst with a register number in imm is read that way.
    """
    if insn.dst == 0 and 0 < insn.imm < NUM_REGS:
        return insn.imm
    return insn.dst


def is_packet_load(insn: Insn) -> bool:
    """RFC 9669 5.5's legacy packet access (ld_abs, ld_ind): r0 = the packet's
    bytes at imm (or src + imm), big-endian, through the context in r6."""
    return insn.cls == LD and mode(insn.opcode) in (ABS, IND)


def regs_read(insn: Insn) -> tuple[int, ...]:
    """Registers whose value `insn` uses (call arguments excepted: arity is the callee's)."""
    c, o, x = insn.cls, op(insn.opcode), insn.opcode & X
    if c in (ALU, ALU64):
        if o == MOV:
            return (insn.src,) if x else ()
        if o in (NEG, END) or not x:
            return (insn.dst,)
        return (insn.dst, insn.src)
    if c in (JMP, JMP32):
        if o == EXIT:
            return (0,)
        if insn.opcode == CALLX:
            return (callx_register(insn),)
        if o in (JA, CALL):
            return ()
        return (insn.dst, insn.src) if x else (insn.dst,)
    if c == LDX:
        return (insn.src,)
    if is_packet_load(insn):   # r6: the context, as the kernel requires
        return (6, insn.src) if mode(insn.opcode) == IND else (6,)
    if c == ST:
        return (insn.dst,)
    if c == STX:
        if mode(insn.opcode) == ATOMIC and insn.imm == CMPXCHG:
            return (insn.dst, insn.src, 0)
        return (insn.dst, insn.src)
    return ()


def regs_written(insn: Insn) -> tuple[int, ...]:
    """Registers `insn` sets; a call or a legacy packet load also leaves r1-r5
    unreadable (clobbers)."""
    c = insn.cls
    if c in (ALU, ALU64, LDX) or insn.is_wide:
        return (insn.dst,)
    if (c == JMP and op(insn.opcode) == CALL) or is_packet_load(insn):
        return (0,)
    if c == STX and mode(insn.opcode) == ATOMIC and insn.imm & FETCH:
        return (0,) if insn.imm == CMPXCHG else (insn.src,)
    return ()
