"""Random stores and loads in one block, with and without store forwarding
(inliner/codegen/storefwd.py), run natively on the same bytes.

A mistake in the rewrite is a miscompile, so the expectation is the original
IR itself, compiled as written: from the same memory, the rewritten function
must load the same values and leave the same bytes. The sequences mix
constant and SSA-value stores of 1, 2, 4 and 8 bytes, narrow and wide loads,
integer and vector, at offsets from one base (constants, in bytes or in i16
elements; `%n + c`, `%n - c`; `%m + c`, `%m | c` disjoint or not), from a
second base that overlaps the first at run time, and calls between them that
write memory or do not. Each sequence runs as ebpf-lto's passes leave it
(the printed text screening, llvmlite deciding) and as what llvmlite reads
alone makes of every block, unscreened. A second test checks that the
sequences reach each of the rewrite's cases, so that the first does not pass
on sequences storefwd leaves alone.
"""
from __future__ import annotations

import ctypes
import os
import re
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, event, find, given, settings
from hypothesis.errors import NoSuchExample
from hypothesis import strategies as st

from inliner import codegen
from inliner.codegen import irview, storefwd
from inliner.run import runner

EXAMPLES = int(os.environ.get("EBPF_LTO_FUZZ_EXAMPLES", "150"))
MEM = 64      # bytes at %p; %q is QOFF bytes in
QMAX = 16     # the largest QOFF
SPAN = 24     # accesses start at most this far from their base
N = 8         # %n at run time; %m = %n & -8 is N too
INTS = {1: "i8", 2: "i16", 4: "i32", 8: "i64"}
VECTORS = {"<16 x i8>": 16, "<8 x i16>": 16, "<4 x i32>": 16, "<2 x i64>": 16,
           "<4 x i16>": 8, "<2 x i32>": 8}
VALS = {1: 0, 2: 2, 4: 4, 8: 8}   # where in %vals each width's SSA value is loaded from
# The address forms a sequence draws from, most of the time: a constant offset
# (from %p, from %p + 4, or in i16 elements), %n plus or minus one, %m plus one,
# or `or disjoint` one, or `or` one where that is no sum (%m | 12 is 12).
FAMILIES = {"const": ("const", "chain", "gep16"), "chain": ("chain",), "n": ("add", "sub"),
            "m": ("madd", "mor", "mxor")}
SIGNATURE = "(ptr %p, ptr %q, ptr %vals, ptr %out, i64 %n)"
CALL = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                        ctypes.c_void_p, ctypes.c_uint64)
PRELUDE = """declare i64 @llvm.umin.i64(i64, i64)

define void @clobber(ptr %x) noinline {
  %a = getelementptr i8, ptr %x, i64 5
  store i8 -86, ptr %a, align 1
  %b = getelementptr i8, ptr %x, i64 9
  store i64 -6144092014192636707, ptr %b, align 1
  ret void
}
"""


@dataclass(frozen=True)
class Access:
    base: str     # "p" or "q"
    form: str     # how the address is built: const, chain, add, sub, madd, mor
    offset: int   # bytes from the base, at run time


@dataclass(frozen=True)
class Store:
    at: Access
    width: int
    value: int | str   # a constant, "arg" (loaded from %vals) or "load" (an earlier load's)


@dataclass(frozen=True)
class Load:
    at: Access
    ty: str


@dataclass(frozen=True)
class Call:
    writes: bool   # @clobber, or an intrinsic that touches no memory


@st.composite
def accesses(draw, family: str, offsets=st.integers(0, SPAN - 1)) -> Access:
    if draw(st.integers(0, 11)) == 0:
        return Access("q", "const", draw(offsets))
    if draw(st.integers(0, 19)) == 0:
        family = draw(st.sampled_from(sorted(FAMILIES)))  # another form: a base of its own
    form, offset = draw(st.sampled_from(FAMILIES[family])), draw(offsets)
    if form in ("mor", "mxor") and not N <= offset < 2 * N:
        form = "madd"  # `%m | c` adds only what is below %m's lowest set bit
    if form == "gep16" and offset % 2:
        form = "const"
    return Access("p", form, offset)


def values(width: int):
    return st.one_of(st.integers(0, (1 << (8 * width)) - 1), st.sampled_from(("arg", "load")))


@st.composite
def single(draw, family: str) -> list:
    """Any one store, load or call."""
    kind = draw(st.sampled_from(("store", "load", "call")))
    if kind == "call":
        return [Call(draw(st.booleans()))]
    if kind == "load":
        ty = draw(st.sampled_from(sorted(INTS.values()) + sorted(VECTORS)))
        return [Load(draw(accesses(family)), ty)]
    width = draw(st.sampled_from(sorted(INTS)))
    return [Store(draw(accesses(family)), width, draw(values(width)))]


@st.composite
def cluster(draw, family: str) -> list:
    """A few stores around one place, then a load there: what storefwd looks for."""
    origin = draw(st.integers(2, SPAN - 8))
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        width = draw(st.sampled_from(sorted(INTS)))
        at = draw(accesses(family, st.integers(origin - 2, origin + 7)))
        ops.append(Store(at, width, draw(values(width))))
    if draw(st.integers(0, 7)) == 0:
        ops.append(Call(draw(st.booleans())))  # the stores must not move past a write
    ty = draw(st.sampled_from(("i16", "i32", "i64", "i64", *sorted(VECTORS))))
    return ops + [Load(draw(accesses(family, st.integers(origin - 2, origin + 2))), ty)]


@st.composite
def programs(draw) -> list:
    family = draw(st.sampled_from(sorted(FAMILIES)))
    parts = st.one_of(cluster(family), cluster(family), single(family))
    return [op for part in draw(st.lists(parts, min_size=1, max_size=5)) for op in part]


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def function(name: str, ops: list) -> str:
    """`ops` as one block of IR, each load's value stored to %out at the end."""
    lines = [f"define void @{name}{SIGNATURE} {{", "entry:"]
    lines += [f"  %v{w} = load {INTS[w]}, ptr %vals{w}, align 1" for w in INTS]
    lines[2:2] = [f"  %vals{w} = getelementptr i8, ptr %vals, i64 {VALS[w]}" for w in INTS]
    lines.append("  %m = and i64 %n, -8")
    loads: list[tuple[str, str]] = []   # (name, type) of each load, in order
    for k, op in enumerate(ops):
        if isinstance(op, Call):
            lines.append("  call void @clobber(ptr %p)" if op.writes else
                         f"  %u{k} = call i64 @llvm.umin.i64(i64 %n, i64 {k})")
            continue
        a = op.at
        index = {"const": f"{a.offset}", "chain": f"{a.offset - 4}",
                 "gep16": f"{a.offset // 2}"}.get(a.form, f"%i{k}")
        if a.form in ("add", "sub", "madd", "mor", "mxor"):
            lines.append({"add": f"  %i{k} = add i64 %n, {a.offset - N}",
                          "sub": f"  %i{k} = sub nsw i64 %n, {N - a.offset}",
                          "madd": f"  %i{k} = add i64 %m, {a.offset - N}",
                          "mor": f"  %i{k} = or disjoint i64 %m, {a.offset - N}",
                          "mxor": f"  %i{k} = or i64 %m, {a.offset}"}[a.form])
        base = f"%{a.base}"
        if a.form == "chain":
            lines.append(f"  %c{k} = getelementptr inbounds i8, ptr %p, i64 4")
            base = f"%c{k}"
        element = "i16" if a.form == "gep16" else "i8"
        lines.append(f"  %a{k} = getelementptr {element}, ptr {base}, i64 {index}")
        if isinstance(op, Load):
            lines.append(f"  %l{k} = load {op.ty}, ptr %a{k}, align 1")
            loads.append((f"%l{k}", op.ty))
            continue
        ty = INTS[op.width]
        if isinstance(op.value, int):
            value = str(_signed(op.value, 8 * op.width))
        else:
            earlier = [n for n, t in loads if t == ty]
            value = earlier[-1] if op.value == "load" and earlier else f"%v{op.width}"
        lines.append(f"  store {ty} {value}, ptr %a{k}, align 1")
    for j, (value, ty) in enumerate(loads):
        lines.append(f"  %o{j} = getelementptr i8, ptr %out, i64 {16 * j}")
        lines.append(f"  store {ty} {value}, ptr %o{j}, align 1")
    lines += ["  ret void", "}", ""]
    return "\n".join(lines)


def forwarded(ops: list) -> tuple[str, int]:
    """The module of `ops` as @f after ebpf-lto's own passes, and the loads forwarded."""
    mod, done, _ = codegen.own_passes(codegen.parse_ir(PRELUDE + function("f", ops), "test"))
    return str(mod), done


def read_everywhere(ops: list) -> str:
    """`ops` as @read, forwarded wherever what llvmlite reads allows, unscreened."""
    view = irview.ModuleView(codegen.parse_ir(PRELUDE + function("read", ops), "test"))
    blocks, _ = storefwd.forward(view, screen=False)
    text = view.rewrite(blocks)
    start = text.index("define void @read(")
    return text[start:text.index("\n}\n", start) + 3]


def run(module: str, memory: bytes, qoff: int, vals: bytes, loads: int
        ) -> dict[str, tuple[bytes, bytes]]:
    """Memory and out bytes after each of @f, @read and @orig, from the same bytes."""
    tm = codegen.target_machine(codegen.make_target(codegen.host_arch()), 0)
    loaded = runner.LoadedObjects([codegen.emit(codegen.parse_ir(module, "test"), tm)],
                                  ["f", "read", "orig"])
    after = {}
    for name in ("f", "read", "orig"):
        mem = (ctypes.c_char * MEM).from_buffer(bytearray(memory))
        out = (ctypes.c_char * (16 * loads + 1))()
        val = (ctypes.c_char * len(vals)).from_buffer(bytearray(vals))
        CALL(loaded.address(name))(ctypes.addressof(mem), ctypes.addressof(mem) + qoff,
                                   ctypes.addressof(val), ctypes.addressof(out), N)
        after[name] = bytes(mem), bytes(out)
    return after


def _over(forms: tuple[str, ...]):
    """Whether every access of a sequence is through %p, with its address in `forms`."""
    return lambda ops: all(op.at.base == "p" and op.at.form in forms
                           for op in ops if not isinstance(op, Call))


# What each of the rewrite's cases leaves in @f's text, `done` loads forwarded.
CASES = {
    "a constant store blended into a wider integer load":
        lambda ops, f, done: re.search(r"= or i\d+ %storefwd\.\d+, \d+", f),
    "a vector load blended with constant stores":
        lambda ops, f, done: re.search(r"= and <\d+ x i\d+> %storefwd", f),
    "a value store blended into a wider load": lambda ops, f, done: " = zext i" in f,
    "a value store starting before the load": lambda ops, f, done: " = lshr i" in f,
    "a value store wider than the load": lambda ops, f, done: " = trunc i" in f,
    "a value store shifted into place":
        lambda ops, f, done: re.search(r"= shl i\d+ %storefwd", f),
    "a load the stores cover entirely, left out":
        lambda ops, f, done: done > f.count(" = freeze "),
    "a load blended in several steps": lambda ops, f, done: f.count(" = and ") > done,
    "addresses over %n": lambda ops, f, done: _over(("add", "sub"))(ops),
    "addresses over %m, by `add` and `or disjoint`":
        lambda ops, f, done: _over(("madd", "mor"))(ops) and " = or disjoint" in f,
    "addresses through two getelementptrs": lambda ops, f, done: _over(("chain",))(ops),
}


def _body(text: str) -> str:
    return text[text.index("define void @f("):]


def test_the_random_sequences_reach_each_case():
    """Without this the property below could pass on sequences storefwd leaves alone."""
    seen = set()

    def all_seen(ops):
        text, done = forwarded(ops)
        seen.update(case for case, test in CASES.items() if done and test(ops, _body(text), done))
        return len(seen) == len(CASES)
    try:
        find(programs(), all_seen, settings=settings(
            max_examples=3000, phases=[Phase.generate], database=None, derandomize=True,
            suppress_health_check=list(HealthCheck)))
    except NoSuchExample:
        pytest.fail(f"no sequence reaches {sorted(set(CASES) - seen)}")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs(), st.binary(min_size=MEM, max_size=MEM), st.integers(0, QMAX),
       st.binary(min_size=16, max_size=16))
def test_forwarded_stores_load_and_leave_what_the_original_does(ops, memory, qoff, vals):
    text, done = forwarded(ops)
    event(f"loads forwarded: {min(done, 3)}{'+' if done >= 3 else ''}")
    for case, seen in CASES.items():
        if done and seen(ops, _body(text), done):
            event(case)
    loads = sum(isinstance(op, Load) for op in ops)
    module = "\n".join([text, read_everywhere(ops), function("orig", ops)])
    after = run(module, memory, qoff, vals, loads)
    assert after["f"] == after["orig"], "ebpf-lto's passes"
    assert after["read"] == after["orig"], "what llvmlite reads, on every block"
