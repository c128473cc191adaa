"""Differential fuzzing of the run-time checks against the reference interpreter.

Random programs move pointers into the input memory and the frame by random
amounts (constants, and numbers read from the memory) and load and store
through them. The reference interpreter (tools/interp.py), written from RFC
9669 alone, stops on an access outside every mapped region; a checked build
must stop on the same runs (at -O0 and at -O2), or refuse the program at link
time when the facts prove an access always faults, and otherwise give the
same r0 and memory. It never dies by a signal: the native code runs in this
process, so a wild access would take pytest down.

The checks may stop a run before a store that comes after the first
out-of-bounds access in the same block (docs/safety.md: checks are merged and
hoisted), so the memory is compared only for runs that end normally.
"""
from hypothesis import HealthCheck, given, settings, strategies as st

from inliner import pipeline
from inliner.elf import loader
from inliner.errors import EbpfLtoError
from inliner.run.runner import ProgramFault
from inliner.tools import asm as assembler, interp

SIZES = ("b", "h", "w", "dw")
# Pointers: r6 into the input memory, r7 into the frame; r8 a moved copy of either.
POINTERS = ("%r6", "%r7", "%r8")

ops = st.one_of(
    st.tuples(st.just("move"), st.sampled_from(POINTERS), st.integers(-96, 160)),
    st.tuples(st.just("copy"), st.sampled_from(("%r6", "%r7")), st.just(0)),
    # r8 += a number read from the memory, masked: a variable offset
    st.tuples(st.just("index"), st.sampled_from((0x07, 0x3F, 0xFF, 0xFFF)), st.integers(0, 7)),
    st.tuples(st.just("load"), st.sampled_from(SIZES), st.tuples(st.sampled_from(POINTERS),
                                                                 st.integers(-24, 72))),
    st.tuples(st.just("store"), st.sampled_from(SIZES), st.tuples(st.sampled_from(POINTERS),
                                                                  st.integers(-24, 72))),
    st.tuples(st.just("add"), st.sampled_from(SIZES), st.tuples(st.sampled_from(POINTERS),
                                                                st.integers(-24, 72))),
)


def program(steps) -> str:
    lines = [f"stdw [%r10-{8 * k}], 0" for k in range(1, 65)]   # a zeroed frame
    lines += ["mov %r6, %r1", "mov %r7, %r10", "add %r7, -256", "mov %r8, %r6",
              "mov %r9, 0", "mov %r0, 0"]
    for kind, a, b in steps:
        if kind == "move":
            lines.append(f"add {a}, {b}")
        elif kind == "copy":
            lines.append(f"mov %r8, {a}")
        elif kind == "index":
            lines += [f"ldxb %r9, [%r6+{b}]", "lsh %r9, 3", f"and %r9, {a}",
                      "add %r8, %r9"]
        else:
            base, off = b
            where = f"[{base}{off:+d}]"
            if kind == "load":
                lines += [f"ldx{a} %r9, {where}", "xor %r0, %r9"]
            elif kind == "store":
                lines.append(f"stx{a} {where}, %r0")
            else:
                lines.append(f"st{a} {where}, {abs(off) + 1}")
    lines.append("exit")
    return "\n".join(lines)


def native(text: str, memory: bytes, level: int):
    """('ok', r0, memory after), ('fault',) or ('refused',)."""
    code = assembler.assemble_bytes(text)
    try:
        loaded, _ = pipeline.load(loader.from_raw(code, path="<fuzz>"),
                                  pipeline.LinkOptions(opt_level=level, helpers="conformance"))
    except EbpfLtoError:
        return ("refused",)
    buf = bytearray(memory)
    try:
        r0 = loaded.call(pipeline.abi.ENTRY_SYMBOL, buf)
    except ProgramFault:
        return ("fault",)
    return ("ok", r0, bytes(buf))


def reference(text: str, memory: bytes):
    buf = bytearray(memory)
    try:
        r0 = interp.run(assembler.assemble(text), buf, interp.CONFORMANCE_HELPERS,
                        check_reads=False)
    except interp.InterpError:
        return ("fault",)
    return ("ok", r0, bytes(buf))


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=12), st.binary(min_size=8, max_size=96))
def test_checked_builds_stop_where_the_reference_interpreter_does(steps, memory):
    agree(program(steps), memory)


def agree(text: str, memory: bytes) -> None:
    """The checked build at -O0 and -O2 ends as the interpreter does."""
    expected = reference(text, memory)
    for level in (0, 2):
        got = native(text, memory, level)
        if got == ("refused",):
            # Only a program the facts prove faults: the interpreter must fault too.
            assert expected == ("fault",), f"-O{level}: refused, but it runs:\n{text}"
        else:
            assert got == expected, f"-O{level} on {len(memory)} bytes:\n{text}"


# Loops: a counter to a bound, a pointer moved by a constant each time round,
# loads and stores through it. The checked build emits such loops twice (an
# unchecked copy entered when the whole walk is in bounds) and proves their
# bound; the interpreter walks them.
loop_body = st.lists(st.tuples(st.sampled_from(("load", "store")), st.sampled_from(SIZES),
                               st.integers(-16, 40)), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(loop_body, st.sampled_from((1, 2, 4, 8)), st.integers(1, 24), st.integers(-8, 24),
       st.integers(-4, 40), st.sampled_from(("jlt", "jne")), st.integers(8, 400))
def test_loops_over_memory_stop_where_the_reference_interpreter_does(body, step, rounds, move,
                                                                     start, exit_, size):
    lines = ["mov %r0, 0", "mov %r6, %r1", f"add %r6, {start}", "mov %r4, 0", "loop:"]
    for kind, width, off in body:
        where = f"[%r6{off:+d}]"
        lines += ([f"ldx{width} %r9, {where}", "xor %r0, %r9"] if kind == "load"
                  else [f"st{width} {where}, {abs(off) + 1}"])
    lines += [f"add %r6, {move}", f"add %r4, {step}", f"{exit_} %r4, {step * rounds}, loop",
              "exit"]
    agree("\n".join(lines), (bytes(range(256)) * 2)[:size])
