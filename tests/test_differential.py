"""Differential testing: random well-formed programs, the reference interpreter against native code.

A hypothesis strategy builds eBPF programs that are well formed by
construction (every register written before it is read, every memory access
inside a stack slot written first or inside the input buffer, loops bounded
by a counter, calls acyclic and at most 3 deep, every path ending in exit).
Each program runs in `inliner.interp` and through the native pipeline at
-O0 and -O2, with helpers inlined (`auto`) and left out of line (`none`);
r0 and the input memory after the run must agree. Hypothesis shrinks a
difference to a small program, printed as assembly in the failure.

EBPF_LTO_FUZZ_EXAMPLES sets the number of programs (default 150);
EBPF_LTO_FUZZ_EXAMPLES=5000 is the long run (docs/testing.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inliner import pipeline
from inliner.elf import loader
from inliner.facts import isa
from inliner.tools import interp
from inliner.tools.asm import assemble, disassemble
from inliner.errors import EbpfLtoError

EXAMPLES = int(os.environ.get("EBPF_LTO_FUZZ_EXAMPLES", "150"))
CONFIGS = [(level, inline) for level in (0, 2) for inline in ("auto", "none")]

PTR = 9                     # holds the input buffer's address, never used as a value
VALUE_REGS = tuple(range(9))  # r0-r8 hold values
COUNTER_REGS = (6, 7, 8)    # callee-saved: loop counters survive calls
MAX_SUBPROGRAMS = 3         # subprogram i calls only j > i: depth <= 3
MAX_NESTING = 2

ALU_BINARY = ("add", "sub", "mul", "div", "sdiv", "mod", "smod", "or", "and", "xor",
              "lsh", "rsh", "arsh", "mov")
JUMPS = ("jeq", "jne", "jgt", "jge", "jlt", "jle", "jset", "jsgt", "jsge", "jslt", "jsle")
ATOMICS = ("add", "or", "and", "xor", "fetch add", "fetch or", "fetch and", "fetch xor",
           "xchg", "cmpxchg")
PURE_HELPERS = (0, 2, 3)    # gather_bytes, no_op, sqrti
SIZES = {"b": 1, "h": 2, "w": 4, "dw": 8}
MASK64 = (1 << 64) - 1

# Values that hit the edges RFC 9669 defines: zero divisors, INT_MIN / -1,
# shift counts at and past the width, sign bits of every width.
SPECIAL_IMM = (0, 1, -1, 2, -2, 7, 31, 32, 33, 63, 64, 65, 127, 128, 255, 0x7FFF, -0x8000,
               0xFFFF, 0x7FFFFFFF, -0x80000000)
SPECIAL_U64 = (0, 1, 2, MASK64, MASK64 - 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x100000000,
               0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFF80000000, 0x80, 0x8000, 0xFF,
               0xFFFF, 0x1122334455667788, 0x8877665544332211)

imm32 = st.one_of(st.sampled_from(SPECIAL_IMM), st.integers(-16, 16),
                  st.integers(-(1 << 31), (1 << 31) - 1))
imm64 = st.one_of(st.sampled_from(SPECIAL_U64), st.integers(0, 64),
                  st.integers(0, MASK64), st.integers(0, 0xFFFFFFFF))


@dataclass
class Gen:
    """Program text under construction, and what the generator may use where."""
    draw: object
    mem_size: int
    n_subprograms: int
    ptr_arg: dict[int, bool] = field(default_factory=dict)  # subprogram -> r2 is a pointer
    lines: list[str] = field(default_factory=list)
    labels: int = 0

    def label(self) -> str:
        self.labels += 1
        return f"L{self.labels}"

    def emit(self, line: str) -> None:
        self.lines.append(line)


@dataclass
class Scope:
    """Where generation is: which function, which stack slots exist, which registers are locked."""
    func: int                    # 0 = main, i = subprogram i
    slots: tuple[int, ...]       # initialised 8-byte stack slots, as offsets from r10 (negative)
    locked: frozenset[int]       # loop counters of enclosing loops
    nesting: int = 0
    ptr_spill: bool = False      # [r10-8] holds a pointer to 8 bytes the caller owns

    def writable(self) -> list[int]:
        return [r for r in VALUE_REGS if r not in self.locked]


def reg(r: int) -> str:
    return f"%r{r}"


def set_value(g: Gen, r: int) -> None:
    """Write a random value into r (a 32-bit mov or a 64-bit lddw)."""
    if g.draw(st.booleans()):
        g.emit(f"mov {reg(r)}, {g.draw(imm32)}")
    else:
        g.emit(f"lddw {reg(r)}, {g.draw(imm64):#x}")


def stack_operand(g: Gen, s: Scope, size: int) -> str:
    slot = g.draw(st.sampled_from(s.slots))
    sub = g.draw(st.integers(0, 8 // size - 1)) * size
    return f"[%r10{slot + sub:+d}]"


def mem_operand(g: Gen, size: int) -> str:
    off = g.draw(st.integers(0, g.mem_size // size - 1)) * size
    return f"[%r{PTR}+{off}]"


def operand(g: Gen, s: Scope, size: int) -> str:
    return stack_operand(g, s, size) if g.draw(st.booleans()) else mem_operand(g, size)


def gen_alu(g: Gen, s: Scope) -> None:
    w = s.writable()
    dst = g.draw(st.sampled_from(w))
    suffix = g.draw(st.sampled_from(("", "32")))
    kind = g.draw(st.integers(0, 9))
    if kind <= 5:
        op = g.draw(st.sampled_from(ALU_BINARY))
        if g.draw(st.booleans()):
            g.emit(f"{op}{suffix} {reg(dst)}, {g.draw(imm32)}")
        else:
            g.emit(f"{op}{suffix} {reg(dst)}, {reg(g.draw(st.sampled_from(VALUE_REGS)))}")
    elif kind == 6:
        g.emit(f"neg{suffix} {reg(dst)}")
    elif kind == 7:
        width = g.draw(st.sampled_from((8, 16, 32) if suffix == "" else (8, 16)))
        g.emit(f"movsx{width}{suffix or '64'} {reg(dst)}, "
               f"{reg(g.draw(st.sampled_from(VALUE_REGS)))}")
    elif kind == 8:
        name = g.draw(st.sampled_from(("le", "be", "bswap")))
        g.emit(f"{name}{g.draw(st.sampled_from((16, 32, 64)))} {reg(dst)}")
    else:
        set_value(g, dst)


def gen_load(g: Gen, s: Scope) -> None:
    dst = g.draw(st.sampled_from(s.writable()))
    if g.draw(st.booleans()):
        sz = g.draw(st.sampled_from(("b", "h", "w", "dw")))
        g.emit(f"ldx{sz} {reg(dst)}, {operand(g, s, SIZES[sz])}")
    else:
        sz = g.draw(st.sampled_from(("b", "h", "w")))
        g.emit(f"ldxs{sz} {reg(dst)}, {operand(g, s, SIZES[sz])}")


def gen_store(g: Gen, s: Scope) -> None:
    sz = g.draw(st.sampled_from(("b", "h", "w", "dw")))
    where = operand(g, s, SIZES[sz])
    if g.draw(st.booleans()):
        g.emit(f"st{sz} {where}, {g.draw(imm32)}")
    else:
        g.emit(f"stx{sz} {where}, {reg(g.draw(st.sampled_from(VALUE_REGS)))}")


def gen_atomic(g: Gen, s: Scope) -> None:
    name = g.draw(st.sampled_from(ATOMICS))
    wide = g.draw(st.booleans())
    writes_src = name.startswith("fetch") or name == "xchg"
    pool = s.writable() if writes_src else list(VALUE_REGS)
    src = g.draw(st.sampled_from(pool))
    where = operand(g, s, 8 if wide else 4)
    g.emit(f"lock {name}{'' if wide else '32'} {where}, {reg(src)}")


def gen_pointer_access(g: Gen, s: Scope) -> None:
    """An access through a derived pointer: r10 or the buffer plus a constant, maybe
    spilled to the stack and reloaded, or the pointer argument; the registers that
    held the pointer are overwritten after, so no address becomes a value."""
    w = s.writable()
    pointer_regs = [r for r in w if r != 0]   # r0 is cmpxchg's comparand: keep it a value
    px = g.draw(st.sampled_from(pointer_regs))
    size = g.draw(st.sampled_from((1, 2, 4, 8)))
    kinds = ["stack", "input", "spill"] + (["arg"] if s.ptr_spill else [])
    kind = g.draw(st.sampled_from(kinds))
    spill_slots = s.slots
    if kind == "arg":
        g.emit(f"ldxdw {reg(px)}, [%r10-8]")
        target = g.draw(st.integers(0, 8 // size - 1)) * size
        delta = 0
    else:
        delta = g.draw(st.integers(-24, 24))
        if kind == "input":
            target = g.draw(st.integers(0, g.mem_size // size - 1)) * size
            g.emit(f"mov {reg(px)}, %r{PTR}")
        else:
            slot = g.draw(st.sampled_from(s.slots))
            target = slot + g.draw(st.integers(0, 8 // size - 1)) * size
            g.emit(f"mov {reg(px)}, %r10")
            spill_slots = tuple(x for x in s.slots if x != slot)
        g.emit(f"add {reg(px)}, {target + delta}")
    base, used, spill = px, [px], None
    if kind == "spill" and spill_slots:     # the pointer goes to another slot than its target
        spill = g.draw(st.sampled_from(spill_slots))
        base = g.draw(st.sampled_from(pointer_regs))
        used = sorted({px, base})
        g.emit(f"stxdw [%r10{spill:+d}], {reg(px)}")
        g.emit(f"ldxdw {reg(base)}, [%r10{spill:+d}]")
    off = -delta
    where = f"[{reg(base)}{off:+d}]" if off else f"[{reg(base)}]"
    values = [r for r in VALUE_REGS if r not in used]
    sz = {1: "b", 2: "h", 4: "w", 8: "dw"}[size]
    action = g.draw(st.sampled_from(("load", "store", "atomic") if size >= 4 else ("load", "store")))
    if action == "load":
        signed = size < 8 and g.draw(st.booleans())
        g.emit(f"ldx{'s' if signed else ''}{sz} {reg(g.draw(st.sampled_from(w)))}, {where}")
    elif action == "store":
        if g.draw(st.booleans()):
            g.emit(f"st{sz} {where}, {g.draw(imm32)}")
        else:
            g.emit(f"stx{sz} {where}, {reg(g.draw(st.sampled_from(values)))}")
    else:
        name = g.draw(st.sampled_from(ATOMICS))
        writes_src = name.startswith("fetch") or name == "xchg"
        src = g.draw(st.sampled_from([r for r in (w if writes_src else values) if r not in used]
                                     or [0]))
        g.emit(f"lock {name}{'' if size == 8 else '32'} {where}, {reg(src)}")
    if spill is not None:                    # the slot holds a value again
        g.emit(f"stdw [%r10{spill:+d}], {g.draw(imm32)}")
    for r in used:
        set_value(g, r)


def reinit_scratch(g: Gen) -> None:
    """After a call r1-r5 are unreadable: write them again."""
    for r in range(1, 6):
        set_value(g, r)


def gen_helper_call(g: Gen, s: Scope) -> None:
    hid = g.draw(st.sampled_from(PURE_HELPERS))
    if g.draw(st.integers(0, 3)) == 0:        # callx: the id in a register
        r = g.draw(st.sampled_from(s.writable()))
        g.emit(f"mov {reg(r)}, {hid}")
        g.emit(f"call {reg(r)}")
    else:
        g.emit(f"call {hid}")
    reinit_scratch(g)


def gen_local_call(g: Gen, s: Scope) -> None:
    callee = g.draw(st.integers(s.func + 1, g.n_subprograms))
    g.emit(f"mov %r1, %r{PTR}")              # the callee finds the buffer in r1
    if g.ptr_arg[callee]:                    # and 8 bytes of the caller's in r2
        if g.draw(st.booleans()):
            g.emit("mov %r2, %r10")
            g.emit(f"add %r2, {g.draw(st.sampled_from(s.slots))}")
        else:
            g.emit(f"mov %r2, %r{PTR}")
            g.emit(f"add %r2, {g.draw(st.integers(0, g.mem_size // 8 - 1)) * 8}")
    g.emit(f"call local fn{callee}")
    reinit_scratch(g)


def fold_and_exit(g: Gen, regs) -> None:
    """Fold registers into r0 (so their values are observed), then exit."""
    for r in regs:
        g.emit("mul %r0, 0x1000193")
        g.emit(f"xor %r0, {reg(r)}")
    g.emit("exit")


def exit_regs(s: Scope) -> list[int]:
    return list(range(1, 9)) if s.func == 0 else [6, 7, 8]


def gen_if(g: Gen, s: Scope) -> None:
    op = g.draw(st.sampled_from(JUMPS)) + g.draw(st.sampled_from(("", "32")))
    dst = g.draw(st.sampled_from(VALUE_REGS))
    src = reg(g.draw(st.sampled_from(VALUE_REGS))) if g.draw(st.booleans()) else g.draw(imm32)
    skip, end = g.label(), g.label()
    inner = replace(s, nesting=s.nesting + 1)
    g.emit(f"{op} {reg(dst)}, {src}, {skip}")
    gen_block(g, inner, g.draw(st.integers(1, 5)))
    if g.draw(st.integers(0, 3)) == 0:
        fold_and_exit(g, exit_regs(s))      # an early exit on one path
    elif g.draw(st.booleans()):              # an else branch
        g.emit(f"{g.draw(st.sampled_from(('ja', 'ja32')))} {end}")
        g.emit(f"{skip}:")
        gen_block(g, inner, g.draw(st.integers(1, 5)))
        g.emit(f"{end}:")
        return
    g.emit(f"{skip}:")


def gen_loop(g: Gen, s: Scope) -> None:
    free = [r for r in COUNTER_REGS if r not in s.locked]
    counter = g.draw(st.sampled_from(free))
    top = g.label()
    g.emit(f"mov {reg(counter)}, {g.draw(st.integers(1, 4))}")
    g.emit(f"{top}:")
    gen_block(g, replace(s, locked=s.locked | {counter}, nesting=s.nesting + 1),
              g.draw(st.integers(1, 5)))
    g.emit(f"add {reg(counter)}, -1")
    test = g.draw(st.sampled_from(("jne {c}, 0", "jsgt {c}, 0", "jgt32 {c}, 0", "jne32 {c}, 0")))
    g.emit(f"{test.format(c=reg(counter))}, {top}")


def gen_item(g: Gen, s: Scope) -> None:
    choices = ["alu"] * 6 + ["load"] * 2 + ["store"] * 2 + ["atomic"] * 2 + ["helper", "pointer"]
    if s.func < g.n_subprograms:
        choices.append("call")
    if s.nesting < MAX_NESTING:
        choices += ["if", "if"]
        if len(s.locked) < len(COUNTER_REGS):
            choices.append("loop")
    kind = g.draw(st.sampled_from(choices))
    {"alu": gen_alu, "load": gen_load, "store": gen_store, "atomic": gen_atomic,
     "helper": gen_helper_call, "pointer": gen_pointer_access, "call": gen_local_call, "if": gen_if,
     "loop": gen_loop}[kind](g, s)


@st.composite
def _item(draw, g: Gen, s: Scope) -> None:
    # One item is one hypothesis span, so the shrinker can delete it whole.
    outer, g.draw = g.draw, draw
    try:
        gen_item(g, s)
    finally:
        g.draw = outer


def gen_block(g: Gen, s: Scope, n: int) -> None:
    for _ in range(n):
        g.draw(_item(g, s))


def gen_function(g: Gen, func: int, n_items: int) -> None:
    """Prologue (buffer pointer, registers, stack slots), a body, an exit."""
    if func:
        g.emit(f"fn{func}:")
    g.emit(f"mov %r{PTR}, %r1")
    ptr_spill = bool(func) and g.ptr_arg[func]
    if ptr_spill:
        g.emit("stxdw [%r10-8], %r2")        # the pointer argument, kept in the frame
    for r in VALUE_REGS:
        if func and 2 <= r <= 5 and not (ptr_spill and r == 2) and g.draw(st.booleans()):
            continue                         # keep some arguments as the caller passed them
        set_value(g, r)
    # Value slots: [r10-8] is left to the pointer argument.
    slots = g.draw(st.lists(st.integers(2, isa.STACK_SIZE // 8), min_size=1, max_size=6,
                            unique=True))
    offsets = tuple(-8 * k for k in slots)
    for off in offsets:
        if g.draw(st.booleans()):
            g.emit(f"stdw [%r10{off:+d}], {g.draw(imm32)}")
        else:
            g.emit(f"stxdw [%r10{off:+d}], {reg(g.draw(st.sampled_from(VALUE_REGS)))}")
    scope = Scope(func, offsets, frozenset(), ptr_spill=ptr_spill)
    gen_block(g, scope, n_items)
    fold_and_exit(g, exit_regs(scope))


@st.composite
def programs(draw) -> tuple[str, bytes]:
    mem_size = draw(st.sampled_from((8, 16, 32, 64)))
    g = Gen(draw, mem_size, draw(st.integers(0, MAX_SUBPROGRAMS)))
    g.ptr_arg = {f: draw(st.booleans()) for f in range(1, g.n_subprograms + 1)}
    gen_function(g, 0, draw(st.integers(1, 20)))
    for func in range(1, g.n_subprograms + 1):
        gen_function(g, func, draw(st.integers(1, 8)))
    mem = draw(st.binary(min_size=mem_size, max_size=mem_size))
    return "\n".join(g.lines), mem


def listing(code: bytes) -> str:
    return "\n".join(f"{i:4}: {line}" for i, line in enumerate(disassemble(isa.decode(code))))


def run_interp(code: bytes, mem: bytes) -> tuple[int, bytes]:
    buf = bytearray(mem)
    r0 = interp.run(isa.decode(code), buf, interp.CONFORMANCE_HELPERS, max_steps=200_000)
    return r0, bytes(buf)


def run_native(code: bytes, mem: bytes, level: int, inline: str) -> tuple[int, bytes]:
    options = pipeline.LinkOptions(opt_level=level, helpers="conformance", inline=inline)
    r0, buf = pipeline.run(loader.from_raw(code), bytearray(mem), options)
    return r0, bytes(buf)


_last_failing = [CONFIGS[0]]


def check_program(text: str, mem: bytes) -> None:
    code = b"".join(i.encode() for i in assemble(text) if i is not None)
    where = f"program:\n{listing(code)}\nmemory: {mem.hex()}"
    try:
        expected = run_interp(code, mem)
    except interp.InterpError as err:
        pytest.fail(f"the generator built a program the interpreter refuses: {err}\n{where}")
    # The configuration that failed last goes first: shrinking runs it on every candidate.
    configs = _last_failing + [c for c in CONFIGS if c not in _last_failing]
    for level, inline in configs:
        try:
            got = run_native(code, mem, level, inline)
        except EbpfLtoError as err:
            pytest.fail(f"-O{level} inline={inline} refused a well-formed program: {err}\n{where}")
        if got != expected:
            _last_failing[:] = [(level, inline)]
        assert got == expected, (
            f"-O{level} inline={inline}: native r0={got[0]:#x} memory={got[1].hex()}, "
            f"interpreter r0={expected[0]:#x} memory={expected[1].hex()}\n{where}")


@settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 150,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example])
@given(programs())
def test_native_code_agrees_with_the_interpreter(program):
    check_program(*program)


def test_generated_programs_pass_the_lifters_checks():
    """A sample of generated programs: all lift (the strategy's well-formedness holds)."""
    @settings(max_examples=20, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(programs())
    def lifts(program):
        text, mem = program
        code = b"".join(i.encode() for i in assemble(text) if i is not None)
        pipeline.link(loader.from_raw(code), pipeline.LinkOptions(opt_level=0,
                                                                  helpers="conformance"))
        run_interp(code, mem)
    lifts()
