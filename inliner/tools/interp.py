"""A reference interpreter for eBPF, written from RFC 9669 alone.

It is the oracle the differential tests hold the native pipeline to, so it
shares nothing with the lifter but the opcode table (`isa.py`) and the
helper names: every instruction's meaning is spelled out below, in one flat
switch over the instruction classes (as uBPF's `vm/ubpf_vm.c` does), each
case citing the RFC section it follows. It favours being checkable over
being fast.

Machine model
-------------
- Registers r0-r10 hold unsigned 64-bit integers. r10 is the read-only frame
  pointer. A register that was not written on the path to a read is refused
  (`InterpError`), as the verifier the lifter follows refuses it: r1-r5 are
  written on entry (r1 = the memory, r2 = its length, r3-r5 = 0) and after a
  call only r0 is; a callee starts with r1-r5. Likewise a read of stack bytes
  the program never wrote. (`check_reads=False` lifts both rules: registers
  and frames then start at zero.)
- A flat 64-bit address space with mapped regions: the input memory, one
  512-byte frame per active call (fresh, zero-filled, unmapped when the call
  returns) and, for objects, their global data sections. Every load, store
  and atomic must lie inside one region (and a writable one, to write);
  anything else raises `InterpError`. Memory is little-endian: the project
  handles bpfel only.
- bpf-to-bpf calls save r6-r9 and restore them on `exit` (callee-saved);
  r1-r5 carry the arguments; calls nest at most `isa.MAX_CALL_DEPTH` deep.
- Helpers are Python callables `fn(memory, r1, r2, r3, r4, r5) -> int`
  (`memory` is the `Memory` of the run). A helper may end the whole program
  by raising `ProgramExit(r0)`. `CONFORMANCE_HELPERS` is uBPF's test set.
- A call of the C library's memset, memcpy, memmove or memcmp (an object's
  call against an undefined symbol, a "libc" ref of the loader) runs as C
  defines them, its bytes in mapped memory as a load's or store's are.
- `callx` (docs/abi.md): the register's value names a helper of `helpers`
  (called) or a function address loaded by `lddw rN, func ...` (called as a
  bpf-to-bpf call); any other value ends the program with r0 = 2**64 - 1.
- Execution stops with `InterpError` after `max_steps` instructions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

from ..facts import contexts, isa
from ..facts.helpers import KERNEL_HELPERS

__all__ = ["InterpError", "StepLimitExceeded", "ProgramExit", "Memory", "run", "run_object",
           "CONFORMANCE_HELPERS", "INPUT_BASE", "STOPPED_R0", "DEFAULT_MAX_STEPS"]

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1
STOPPED_R0 = U64               # r0 when a callx names nothing callable (docs/abi.md)
DEFAULT_MAX_STEPS = 1_000_000

# Where the simulated address space puts things. The values are arbitrary but
# distinct from small integers, so a program that mixes them up faults.
INPUT_BASE = 0x0000_1000_0000_0000
DATA_BASE = 0x0000_2000_0000_0000    # + section number << 32
CODE_BASE = 0x0000_3000_0000_0000    # + section number << 32 + slot * 8 (never mapped)
STACK_BASE = 0x0000_7FF0_0000_0000   # frame d spans [STACK_BASE + d * FRAME_GAP - 512, + 512)
FRAME_GAP = 0x1_0000


# Called before each instruction runs: (section, slot, r0..r10, bit r set when r is written).
Trace = Callable[[str, int, tuple[int, ...], int], None]


class InterpError(Exception):
    """The program did something RFC 9669 leaves without a meaning, or this machine forbids."""

    def __init__(self, reason: str, pc: int | None = None, section: str | None = None):
        where = f"{section or ''}{'+' if section else ''}{pc}: " if pc is not None else ""
        super().__init__(where + reason)
        self.reason = reason
        self.pc = pc
        self.section = section


class StepLimitExceeded(InterpError):
    """More than `max_steps` instructions ran."""


class ProgramExit(Exception):
    """Raised by a helper to end the whole program with r0 = `value`."""

    def __init__(self, value: int):
        super().__init__(value)
        self.value = value & U64


# --- memory -----------------------------------------------------------------

@dataclass
class Region:
    base: int
    data: bytearray
    writable: bool
    name: str
    written: bytearray | None = None   # stack frames: 1 for each byte written so far

    def check_written(self, off: int, size: int, addr: int) -> None:
        if self.written is not None and not all(self.written[off:off + size]):
            raise InterpError(f"read of {size} bytes at {addr:#x} in {self.name} reads stack "
                              "bytes never written")

    @property
    def end(self) -> int:
        return self.base + len(self.data)


class Memory:
    """The flat address space: a set of non-overlapping mapped regions."""

    def __init__(self) -> None:
        self.regions: list[Region] = []

    def map(self, base: int, data: bytearray, writable: bool, name: str,
            track_writes: bool = False) -> Region:
        region = Region(base, data, writable, name,
                        bytearray(len(data)) if track_writes else None)
        for other in self.regions:
            if base < other.end and other.base < region.end:
                raise InterpError(f"{name} overlaps {other.name}")
        self.regions.append(region)
        return region

    def unmap(self, region: Region) -> None:
        self.regions.remove(region)

    def _find(self, addr: int, size: int, write: bool) -> tuple[bytearray, int]:
        for region in self.regions:
            if region.base <= addr and addr + size <= region.end:
                off = addr - region.base
                if write and not region.writable:
                    raise InterpError(f"write of {size} bytes at {addr:#x} into read-only "
                                      f"{region.name}")
                if write and region.written is not None:
                    region.written[off:off + size] = b"\x01" * size
                elif not write:
                    region.check_written(off, size, addr)
                return region.data, off
        raise InterpError(f"{'write' if write else 'read'} of {size} bytes at {addr:#x} is "
                          "outside every mapped region")

    def read(self, addr: int, size: int) -> bytes:
        data, off = self._find(addr, size, False)
        return bytes(data[off:off + size])

    def write(self, addr: int, payload: bytes) -> None:
        data, off = self._find(addr, len(payload), True)
        data[off:off + len(payload)] = payload

    def fill(self, addr: int, size: int, byte: int) -> None:
        """`size` copies of `byte` from addr (the region found before any is made)."""
        data, off = self._find(addr, size, True)
        data[off:off + size] = bytes([byte]) * size

    def load(self, addr: int, size: int) -> int:
        """An unsigned little-endian integer of `size` bytes."""
        return int.from_bytes(self.read(addr, size), "little")

    def store(self, addr: int, size: int, value: int) -> None:
        self.write(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    def cstring(self, addr: int, limit: int = 1 << 20) -> bytes:
        out = bytearray()
        while len(out) < limit:
            byte = self.load(addr + len(out), 1)
            if byte == 0:
                return bytes(out)
            out.append(byte)
        raise InterpError(f"no NUL within {limit} bytes of {addr:#x}")


# --- the conformance helpers (uBPF's test helpers) ----------------------------

def _gather_bytes(mem: Memory, a: int, b: int, c: int, d: int, e: int) -> int:
    return ((a & 0xFF) << 32) | ((b & 0xFF) << 24) | ((c & 0xFF) << 16) | ((d & 0xFF) << 8) | (e & 0xFF)


def _memfrob(mem: Memory, a: int, b: int, c: int, d: int, e: int) -> int:
    if b:
        mem.write(a, bytes(x ^ 42 for x in mem.read(a, b)))
    return 0


def _no_op(mem: Memory, a: int, b: int, c: int, d: int, e: int) -> int:
    return 0


def _sqrti(mem: Memory, a: int, b: int, c: int, d: int, e: int) -> int:
    # uBPF: static_cast<uint64_t>(std::sqrt(a)) with a a uint64_t: the value
    # rounded to a double, its correctly rounded square root, truncated.
    return int(math.sqrt(float(a)))


def _strcmp_ext(mem: Memory, a: int, b: int, c: int, d: int, e: int) -> int:
    x, y = mem.cstring(a), mem.cstring(b)
    for i in range(min(len(x), len(y)) + 1):
        cx = x[i] if i < len(x) else 0
        cy = y[i] if i < len(y) else 0
        if cx != cy or cx == 0:
            return (cx - cy) & U64  # strcmp's int, sign-extended to 64 bits
    return 0


def _unwind(mem: Memory, a: int, b: int, c: int, d: int, e: int) -> int:
    # uBPF's unwind extension: when this helper returns 0 the program ends with r0 = 0.
    if a == 0:
        raise ProgramExit(0)
    return a


CONFORMANCE_HELPERS: dict[int, Callable[..., int]] = {
    0: _gather_bytes, 1: _memfrob, 2: _no_op, 3: _sqrti, 4: _strcmp_ext, 5: _unwind,
}


# --- the machine --------------------------------------------------------------

def _sext(value: int, bits: int) -> int:
    """Sign extend the low `bits` of value (RFC 9669 2.3) to a Python int."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _tdiv(a: int, b: int) -> int:
    """Truncated signed division, as C and RFC 9669 4.1 define it (b != 0)."""
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def _bswap(value: int, bits: int) -> int:
    return int.from_bytes((value & ((1 << bits) - 1)).to_bytes(bits // 8, "little"), "big")


@dataclass
class _Frame:
    section: str
    return_pc: int              # where the caller resumes
    saved: list[int]            # the caller's r6-r10
    saved_written: int          # the caller's written-register mask
    stack: Region


@dataclass
class _Program:
    """What the machine needs from the code: slots per section and resolved references."""
    code: dict[str, list]
    refs: Mapping[tuple[str, int], object] = field(default_factory=dict)
    data: dict[str, int] = field(default_factory=dict)   # data section -> base address
    maps: Mapping[str, int] = field(default_factory=dict)  # map -> what lddw of it gives


class _Machine:
    def __init__(self, prog: _Program, mem: Memory, helpers: Mapping[int, Callable[..., int]],
                 max_steps: int, check_reads: bool, trace: Trace | None = None):
        self.prog = prog
        self.trace = trace
        self.mem = mem
        self.helpers = helpers
        self.max_steps = max_steps
        self.check_reads = check_reads
        self.sections = list(prog.code)
        self.reg = [0] * isa.NUM_REGS
        self.written = 0
        self.frames: list[_Frame] = []

    # -- helpers of the switch

    def fail(self, reason: str) -> InterpError:
        return InterpError(reason, self.pc, self.section)

    def new_frame(self, depth: int) -> Region:
        top = STACK_BASE + depth * FRAME_GAP
        return self.mem.map(top - isa.STACK_SIZE, bytearray(isa.STACK_SIZE), True, f"frame {depth}",
                            track_writes=self.check_reads)

    def code_address(self, section: str, slot: int) -> int:
        return CODE_BASE + (self.sections.index(section) << 32) + slot * isa.INSN_SIZE

    def function_at(self, value: int) -> tuple[str, int] | None:
        """The (section, slot) a code address names, if it names an instruction."""
        rel = value - CODE_BASE
        if rel < 0 or rel % isa.INSN_SIZE:
            return None
        index, slot = rel >> 32, (rel & U32) // isa.INSN_SIZE
        if index >= len(self.sections):
            return None
        slots = self.prog.code[self.sections[index]]
        if slot >= len(slots) or slots[slot] is None:
            return None
        return self.sections[index], slot

    def read_reg(self, r: int) -> int:
        if r >= isa.NUM_REGS:
            raise self.fail(f"register r{r} does not exist")
        if self.check_reads and not self.written >> r & 1:
            raise self.fail(f"reads r{r}, which was not written")
        return self.reg[r]

    def write_reg(self, r: int, value: int) -> None:
        if r >= 10:
            raise self.fail("write to r10, the read-only frame pointer" if r == 10
                            else f"register r{r} does not exist")
        self.reg[r] = value & U64
        self.written |= 1 << r

    def call_local(self, section: str, target: int) -> None:
        if len(self.frames) + 1 >= isa.MAX_CALL_DEPTH:  # the caller's frames and the main one
            raise self.fail(f"calls nest deeper than {isa.MAX_CALL_DEPTH} frames")
        frame = _Frame(self.section, self.pc + 1, self.reg[6:11], self.written,
                       self.new_frame(len(self.frames) + 1))
        self.frames.append(frame)
        # The callee's frame: r1-r5 are its arguments, r6-r9 hold the caller's
        # values (restored on exit) but count as unwritten, r10 is its own frame.
        self.reg[10] = frame.stack.end
        self.written = 0b111110 | 1 << 10
        self.section, self.pc = section, target

    def call_helper(self, hid: int) -> None:
        fn = self.helpers.get(hid)
        if fn is None:
            raise self.fail(f"helper {hid} ({KERNEL_HELPERS.get(hid, 'unknown')}) is not provided")
        result = fn(self.mem, *self.reg[1:6])
        self.write_reg(0, result)

    def call_libc(self, name: str) -> int:
        """The C library's memset(r1, r2, r3), memcpy and memmove(r1, r2, r3) (both as
        memmove: every byte read before any is written), which return r1, and
        memcmp(r1, r2, r3), which returns the difference of the first bytes that
        differ as a sign-extended int, else 0. Their bytes must lie in mapped
        memory, as a load's or store's; size 0 touches nothing."""
        dst, src, size = (self.read_reg(r) for r in (1, 2, 3))
        if name == "memset":
            if size:
                self.mem.fill(dst, size, src & 0xFF)
            return dst
        if name in ("memcpy", "memmove"):
            if size:
                self.mem.write(dst, self.mem.read(src, size))
            return dst
        if name != "memcmp":
            raise self.fail(f"call of C library function {name!r}, which has no meaning here")
        if not size:
            return 0
        a, b = self.mem.read(dst, size), self.mem.read(src, size)
        return next(((x - y) & U64 for x, y in zip(a, b) if x != y), 0)

    def after_call(self) -> None:
        """r1-r5 are scratch across calls: unreadable until written again."""
        self.written &= ~0b111110

    def packet_load(self, insn: isa.Insn, nbytes: int) -> int:
        """ld_abs/ld_ind as the kernel's bpf_skb_load_helper_*: r6 is the userspace
        __sk_buff (facts/contexts.py), the offset imm or src + imm in 32 signed bits,
        the bytes big-endian; outside the packet the program ends with r0 = 0."""
        skb = self.read_reg(6)
        data = self.mem.load((skb + contexts.SKB.data) & U64, 8)
        end = self.mem.load((skb + contexts.SKB.data_end) & U64, 8)
        if isa.mode(insn.opcode) == isa.ABS:
            off = insn.imm
        else:
            off = _sext((self.read_reg(insn.src) + insn.imm) & U32, 32)
        if contexts.SKF_LL_OFF <= off < contexts.SKF_NET_OFF:
            off -= contexts.SKF_LL_OFF
        if off < 0 or off + nbytes > end - data:
            raise ProgramExit(0)
        value = self.mem.load(data + off, nbytes)
        return int.from_bytes(value.to_bytes(nbytes, "little"), "big")

    def lddw_value(self, insn: isa.Insn) -> int:
        """RFC 9669 5.4, 64-bit immediate instructions, by src_reg."""
        ref = self.prog.refs.get((self.section, self.pc))
        if ref is not None:
            kind = getattr(ref, "kind")
            if kind == "func":
                fk = ref.function
                return self.code_address(fk.section, fk.start)
            if kind == "data":
                if ref.target not in self.prog.data:
                    raise self.fail(f"data section {ref.target} is not mapped")
                return self.prog.data[ref.target] + ref.offset
            if kind == "map" and ref.target in self.prog.maps:
                return self.prog.maps[ref.target]
            raise self.fail(f"lddw of a {kind} ({ref.target}): maps need a map runtime")
        if insn.src == 0:                      # dst = (next_imm << 32) | imm
            return insn.imm64
        if insn.src == isa.PSEUDO_FUNC:        # dst = code_addr(imm): relative, in slots
            target = self.pc + insn.imm + 1
            slots = self.prog.code[self.section]
            if not 0 <= target < len(slots) or slots[target] is None:
                raise self.fail(f"lddw func names slot {target}, which is no instruction")
            return self.code_address(self.section, target)
        raise self.fail(f"lddw with src {insn.src} needs maps or platform variables")

    # -- the interpreter loop: one flat switch over the instruction classes

    def run(self, section: str, entry: int) -> int:
        self.section, self.pc = section, entry
        main_stack = self.new_frame(0)
        self.reg[10] = main_stack.end
        self.written |= 0b111110 | 1 << 10
        steps = 0
        try:
            while True:
                steps += 1
                if steps > self.max_steps:
                    raise StepLimitExceeded(f"more than {self.max_steps} instructions ran",
                                            self.pc, self.section)
                if self.trace is not None:
                    self.trace(self.section, self.pc, tuple(self.reg), self.written)
                result = self.step()
                if result is not None:
                    return result
        except ProgramExit as stop:
            return stop.value
        finally:
            for frame in self.frames:
                self.mem.unmap(frame.stack)
            self.mem.unmap(main_stack)

    def step(self) -> int | None:
        """Execute the instruction at pc; returns r0 when the program ends."""
        slots = self.prog.code[self.section]
        if not 0 <= self.pc < len(slots):
            raise self.fail("execution left the code (no exit on this path)")
        insn = slots[self.pc]
        if insn is None:
            raise self.fail("jump into the second slot of lddw")
        opcode, cls = insn.opcode, isa.cls(insn.opcode)
        op, is_x = isa.op(opcode), isa.src_bit(opcode) == isa.X
        if insn.dst >= isa.NUM_REGS or insn.src >= isa.NUM_REGS and not insn.is_wide:
            raise self.fail(f"register r{max(insn.dst, insn.src)} does not exist")

        # RFC 9669 4.1 Arithmetic instructions (ALU: 32-bit, ALU64: 64-bit).
        if cls in (isa.ALU, isa.ALU64):
            bits = 64 if cls == isa.ALU64 else 32
            mask = (1 << bits) - 1
            if op == isa.END:
                # 4.2 Byte swap: ALU TO_LE/TO_BE convert to that order (the host is
                # little-endian), ALU64 swaps unconditionally; imm is the width.
                width = insn.imm
                if width not in (16, 32, 64):
                    raise self.fail(f"byte swap of width {width}")
                if cls == isa.ALU64 and is_x:
                    raise self.fail("ALU64 byte swap with the reserved source bit set")
                dst = self.read_reg(insn.dst)
                if cls == isa.ALU and not is_x:      # htole: truncate to the width
                    value = dst & ((1 << width) - 1)
                else:                                # htobe / bswap
                    value = _bswap(dst, width)
                self.write_reg(insn.dst, value)
                self.pc += 1
                return None
            if op == isa.NEG:                        # dst = -dst, K only
                if is_x:
                    raise self.fail("neg with the X source bit")
                self.write_reg(insn.dst, -self.read_reg(insn.dst) & mask)
                self.pc += 1
                return None
            if op == isa.MOV and is_x and insn.off in ((8, 16, 32) if bits == 64 else (8, 16)):
                # MOVSX: sign extend the low off bits of src to the operand width;
                # ALU zeroes the upper 32 bits.
                self.write_reg(insn.dst, _sext(self.read_reg(insn.src), insn.off) & mask)
                self.pc += 1
                return None
            signed = insn.off == 1 and op in (isa.DIV, isa.MOD)
            if insn.off != 0 and not signed:
                raise self.fail(f"offset {insn.off} is undefined for opcode {opcode:#04x}")
            if op not in isa.ALU_OPS:
                raise self.fail(f"unknown arithmetic operation, opcode {opcode:#04x}")
            # The source operand: src, or imm sign extended to 64 bits (ALU64) /
            # taken as 32 bits (ALU). Both are then seen at the operand width.
            src = self.read_reg(insn.src) if is_x else insn.imm & U64
            src &= mask
            dst = self.read_reg(insn.dst) & mask if op != isa.MOV else 0
            if op == isa.ADD:
                value = dst + src
            elif op == isa.SUB:
                value = dst - src
            elif op == isa.MUL:
                value = dst * src
            elif op == isa.DIV and not signed:       # dst = (src != 0) ? dst / src : 0
                value = dst // src if src else 0
            elif op == isa.DIV:                      # SDIV: truncated, INT_MIN / -1 wraps
                value = _tdiv(_sext(dst, bits), _sext(src, bits)) if src else 0
            elif op == isa.MOD and not signed:       # dst = (src != 0) ? dst % src : dst
                value = dst % src if src else dst
            elif op == isa.MOD:                      # SMOD: a - n * trunc(a / n)
                a, n = _sext(dst, bits), _sext(src, bits)
                value = a - n * _tdiv(a, n) if n else dst
            elif op == isa.OR:
                value = dst | src
            elif op == isa.AND:
                value = dst & src
            elif op == isa.LSH:                      # shift counts masked: 63 / 31
                value = dst << (src & (bits - 1))
            elif op == isa.RSH:
                value = dst >> (src & (bits - 1))
            elif op == isa.ARSH:                     # sign extending shift right
                value = _sext(dst, bits) >> (src & (bits - 1))
            elif op == isa.XOR:
                value = dst ^ src
            elif op == isa.MOV:
                value = src
            else:
                raise self.fail(f"unknown arithmetic operation, opcode {opcode:#04x}")
            self.write_reg(insn.dst, value & mask)   # ALU: upper 32 bits zeroed
            self.pc += 1
            return None

        # RFC 9669 4.3 Jump instructions (JMP: 64-bit operands, JMP32: 32-bit).
        if cls in (isa.JMP, isa.JMP32):
            if op == isa.JA:
                if is_x:
                    raise self.fail("ja with the X source bit")
                # JMP: PC += offset; JMP32: PC += imm (gotol).
                self.pc += 1 + (insn.imm if cls == isa.JMP32 else insn.off)
                return None
            if op == isa.CALL and cls == isa.JMP:
                if is_x:                             # callx (docs/abi.md)
                    target = self.read_reg(isa.callx_register(insn))
                    if target in self.helpers:
                        self.call_helper(target)
                        self.after_call()
                        self.pc += 1
                    elif (where := self.function_at(target)) is not None:
                        self.call_local(*where)
                    else:
                        return STOPPED_R0
                    return None
                ref = self.prog.refs.get((self.section, self.pc))
                if getattr(ref, "kind", None) == "libc":   # memset & co., as C defines them
                    self.write_reg(0, self.call_libc(ref.target))
                    self.after_call()
                    self.pc += 1
                    return None
                if insn.src == isa.CALL_HELPER:      # 4.3.1 helper by id
                    self.call_helper(insn.imm)
                    self.after_call()
                    self.pc += 1
                    return None
                if insn.src == isa.CALL_LOCAL:       # 4.3.2 call PC += imm
                    ref = self.prog.refs.get((self.section, self.pc))
                    if ref is not None and getattr(ref, "function", None) is not None:
                        self.call_local(ref.function.section, ref.function.start)
                    else:
                        self.call_local(self.section, self.pc + insn.imm + 1)
                    return None
                raise self.fail(f"call with src {insn.src} (helper by BTF id) is not supported")
            if op == isa.EXIT and cls == isa.JMP:
                r0 = self.read_reg(0)
                if not self.frames:
                    return r0
                frame = self.frames.pop()
                self.mem.unmap(frame.stack)
                self.reg[6:11] = frame.saved         # r6-r9 callee-saved, r10 the caller's
                self.written = frame.saved_written
                self.written |= 1                    # r0: the callee's return value
                self.after_call()
                self.section, self.pc = frame.section, frame.return_pc
                return None
            if op not in isa.COND_JMP_OPS:
                raise self.fail(f"unknown jump, opcode {opcode:#04x}")
            bits = 64 if cls == isa.JMP else 32
            mask = (1 << bits) - 1
            dst = self.read_reg(insn.dst) & mask
            src = (self.read_reg(insn.src) if is_x else insn.imm & U64) & mask
            sd, ss = _sext(dst, bits), _sext(src, bits)
            if op == isa.JEQ:
                taken = dst == src
            elif op == isa.JGT:
                taken = dst > src
            elif op == isa.JGE:
                taken = dst >= src
            elif op == isa.JSET:
                taken = dst & src != 0
            elif op == isa.JNE:
                taken = dst != src
            elif op == isa.JSGT:
                taken = sd > ss
            elif op == isa.JSGE:
                taken = sd >= ss
            elif op == isa.JLT:
                taken = dst < src
            elif op == isa.JLE:
                taken = dst <= src
            elif op == isa.JSLT:
                taken = sd < ss
            else:  # JSLE
                taken = sd <= ss
            self.pc += 1 + (insn.off if taken else 0)
            return None

        size_code, mode = isa.size(opcode), isa.mode(opcode)
        nbytes = isa.SIZE_BYTES[size_code]

        # RFC 9669 5.4 64-bit immediate instructions.
        if cls == isa.LD:
            if insn.is_wide:
                self.write_reg(insn.dst, self.lddw_value(insn))
                self.pc += 2
                return None
            if not isa.is_packet_load(insn) or size_code == isa.DW:
                raise self.fail(f"unknown load, opcode {opcode:#04x}")
            # RFC 9669 5.5, legacy packet access
            self.write_reg(0, self.packet_load(insn, nbytes))
            self.after_call()   # r1-r5 clobbered, as by the kernel's helper call
            self.pc += 1
            return None

        # RFC 9669 5.1 / 5.2 loads: dst = *(unsigned size *)(src + offset), MEMSX signed.
        if cls == isa.LDX:
            addr = (self.read_reg(insn.src) + insn.off) & U64
            if mode == isa.MEM:
                value = self.mem.load(addr, nbytes)
            elif mode == isa.MEMSX and size_code != isa.DW:
                value = _sext(self.mem.load(addr, nbytes), 8 * nbytes)
            else:
                raise self.fail(f"unknown load, opcode {opcode:#04x}")
            self.write_reg(insn.dst, value)
            self.pc += 1
            return None

        # RFC 9669 5.1 stores: *(size *)(dst + offset) = imm.
        if cls == isa.ST:
            if mode != isa.MEM:
                raise self.fail(f"unknown store, opcode {opcode:#04x}")
            self.mem.store((self.read_reg(insn.dst) + insn.off) & U64, nbytes, insn.imm)
            self.pc += 1
            return None

        # STX: 5.1 stores of src, 5.3 atomic operations.
        addr = (self.read_reg(insn.dst) + insn.off) & U64
        if mode == isa.MEM:
            self.mem.store(addr, nbytes, self.read_reg(insn.src))
            self.pc += 1
            return None
        if mode != isa.ATOMIC or size_code not in (isa.W, isa.DW):
            raise self.fail(f"unknown store, opcode {opcode:#04x}")
        mask = (1 << (8 * nbytes)) - 1
        src = self.read_reg(insn.src) & mask
        old = self.mem.load(addr, nbytes)
        aop = insn.imm
        if aop == isa.CMPXCHG:
            # Compare *(dst + off) with R0; store src when equal; R0 = the old
            # value, zero-extended.
            if old == self.read_reg(0) & mask:
                self.mem.store(addr, nbytes, src)
            self.write_reg(0, old)
        elif aop == isa.XCHG:
            self.mem.store(addr, nbytes, src)
            self.write_reg(insn.src, old)
        elif aop & ~isa.FETCH in isa.ATOMIC_OPS:
            base = aop & ~isa.FETCH
            if base == isa.ADD:
                new = old + src
            elif base == isa.OR:
                new = old | src
            elif base == isa.AND:
                new = old & src
            else:  # XOR
                new = old ^ src
            self.mem.store(addr, nbytes, new)
            if aop & isa.FETCH:                      # FETCH: src = the old value
                self.write_reg(insn.src, old)
        else:
            raise self.fail(f"unknown atomic operation {aop:#x}")
        self.pc += 1
        return None


def _prepare(mem: Memory, memory: bytearray | None) -> tuple[int, int]:
    """Map the input memory; returns r1, r2."""
    if memory is None or len(memory) == 0:
        return 0, 0
    if not isinstance(memory, bytearray):
        raise TypeError("memory must be a bytearray (the program may write it)")
    return mem.map(INPUT_BASE, memory, True, "input memory").base, len(memory)


def _start(prog: _Program, mem: Memory, memory, helpers, max_steps, check_reads,
           section: str, entry: int, trace: Trace | None = None,
           args: tuple[int, int] | None = None) -> int:
    machine = _Machine(prog, mem, helpers, max_steps, check_reads, trace)
    r1, r2 = args or _prepare(mem, memory)
    machine.reg[1], machine.reg[2] = r1, r2   # r3-r5 = 0 (docs/abi.md)
    return machine.run(section, entry)


def run(slots: list, memory: bytearray | None, helpers: Mapping[int, Callable[..., int]],
        *, max_steps: int = DEFAULT_MAX_STEPS, check_reads: bool = True,
        trace: Trace | None = None) -> int:
    """Run the program `slots` (as `isa.decode` returns them) from slot 0; returns r0.

    r1 = the address of `memory` and r2 its length (0 and 0 for None or
    empty); the program's writes to `memory` happen in place. Local calls are
    pc-relative, as in a raw program.
    """
    prog = _Program({"raw": list(slots)})
    return _start(prog, Memory(), memory, helpers, max_steps, check_reads, "raw", 0, trace)


def run_object(obj, memory: bytearray | None, helpers: Mapping[int, Callable[..., int]],
               *, program: str | None = None, max_steps: int = DEFAULT_MAX_STEPS,
               check_reads: bool = True, mem: Memory | None = None,
               maps: Mapping[str, int] | None = None,
               data: dict[str, bytearray] | None = None,
               args: tuple[int, int] | None = None) -> int:
    """Run one program of a loaded `EbpfObject` (the first, or the one named).

    Calls and function addresses follow the object's resolved references;
    global data sections are mapped (read-only unless writable) and start
    with their initial contents. Maps are not modelled here: lddw of a map
    gives its value in `maps` (what the helpers take for it), or raises.
    `mem` may hold regions mapped beforehand (what `memory` points into);
    `data` keeps the data sections' contents from one run to the next;
    `args`, r1 and r2 into regions of `mem`, take the place of `memory`.
    """
    prog = _Program(obj.code, obj.refs, maps=maps or {})
    mem = Memory() if mem is None else mem
    contents = {} if data is None else data
    for i, (name, section) in enumerate(obj.data.items()):
        base = DATA_BASE + (i << 32)
        if section.data:
            kept = contents.setdefault(name, bytearray(section.data))
            base = mem.map(base, kept, section.writable, f"section {name}").base
        prog.data[name] = base
    entry = obj.program(program).entry
    return _start(prog, mem, memory, helpers, max_steps, check_reads, entry.section, entry.start,
                  args=args)
