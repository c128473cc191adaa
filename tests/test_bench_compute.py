"""The compute shapes of `ebpf-lto bench` (issue 19): each program's r0 against Python.

benchmarks/spill.c, accum.c, mulconst.c, select_chain.c and straight.c written
again in Python, so that the native twin every mode is compared with is itself
checked; accum.c and straight.c hold two programs each, which must each be
built and run as itself.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import struct

import pytest

from inliner.cli import main
from inliner.tools.bench.suite import BENCHMARKS, LLVMBPF_MODES

from conftest import needs_shared, shared_dir

pytestmark = pytest.mark.skipif(shutil.which("clang-19") is None and shutil.which("clang") is None,
                                reason="the native twins need clang")

M64 = 2**64 - 1
M32 = 2**32 - 1
SHAPES = ("spill", "accum/4", "accum/8", "mulconst", "select_chain", "straight/500",
          "straight/1000")


def _u64s(data: bytes) -> list[int]:
    return [w for (w,) in struct.iter_unpack("<Q", data)]


def _spill(ws: list[int]) -> int:
    a = list(range(1, 13))
    for x in ws:
        a[0] = (a[0] + x) & M64
        a[1] ^= x
        a[2] = (a[2] + (x >> 3)) & M64
        a[3] ^= (x << 5) & M64
        a[4] = (a[4] + (x ^ a[0])) & M64
        a[5] = ((a[5] ^ x) + a[1]) & M64
        a[6] = (a[6] + (x & 0xff00ff00ff00ff00)) & M64
        a[7] ^= x >> 17
        a[8] = ((a[8] | x) + (a[8] >> 9)) & M64
        a[9] = (a[9] + ((x >> 29) ^ a[9])) & M64
        a[10] ^= (x + a[2]) & M64
        a[11] = ((a[11] << 1) & M64) ^ x
    out = 0
    for i, v in enumerate(a):
        out ^= (v << i) & M64
    return out


def _accum(ws: list[int], lanes: int) -> int:
    sums = [0] * lanes
    for i, x in enumerate(ws):
        sums[i % lanes] = (sums[i % lanes] + (x ^ (x >> 11))) & M64
    out = 0
    for i, v in enumerate(sums):
        out ^= (v << i) & M64
    return out


def _mulconst(ws: list[int]) -> int:
    h, a, b, c, d = 5381, 0, 0, 0, 1
    for x in ws:
        h = (h * 33 + x) & M64
        a = (a + x * 3) & M64
        b ^= (x * 5 + (x >> 7) * 9) & M64
        c = (c + (x & 0xFFFF) * 10) & M64
        d = (d * 31 + (x >> 40)) & M64
    return h ^ a ^ ((b << 1) & M64) ^ ((c << 2) & M64) ^ ((d << 3) & M64)


def _select_chain(vs: list[int]) -> int:
    acc = 0
    for x, y in zip(vs[0::2], vs[1::2]):
        r = min(x, y)
        r = r - 0x40000000 if r > 0x40000000 else r + 0x1000
        r = r ^ x if y & 1 else r
        r = r + y if (x ^ y) >> 31 else r - x
        r &= M32
        r = r >> 3 if r & 0x300 == 0x100 else (r << 1) & M32
        acc = (acc + (r if x > 0x80000000 else r << 32)) & M64
    return acc


def _straight(ws: list[int], rounds: int) -> int:
    a, b = 0x6a09e667f3bcc908, 0xbb67ae8584caa73b
    c, d = 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1
    for i in range(rounds):
        a = (a + (ws[i & 31] ^ b)) & M64
        b = (b >> (i % 13 + 1)) ^ ((c + i * 0x9e3779b97f4a7c15) & M64)
        c = (c - (d | ((a << (i % 7 + 3)) & M64))) & M64
        d = (((d ^ a) * 3) + c) & M64
    return a ^ b ^ c ^ d


EXPECTED = {
    "spill": lambda data: _spill(_u64s(data)),
    "accum/4": lambda data: _accum(_u64s(data), 4),
    "accum/8": lambda data: _accum(_u64s(data), 8),
    "mulconst": lambda data: _mulconst(_u64s(data)),
    "select_chain": lambda data: _select_chain([v for (v,) in struct.iter_unpack("<I", data)]),
    "straight/500": lambda data: _straight(_u64s(data), 31),
    "straight/1000": lambda data: _straight(_u64s(data), 60),
}


def _quick(*args: str) -> tuple[int, dict]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = main(["bench", "--quick", "--json", *args])
    return status, json.loads(buf.getvalue())


@pytest.fixture(scope="module")
def shapes_report():
    return _quick("--modes", "twin,none,lto,unchecked,pgo", "spill", "accum", "mulconst",
                  "select_chain", "straight")


def test_the_suite_has_each_compute_shape():
    assert set(SHAPES) <= {b.name for b in BENCHMARKS}


def test_each_shapes_twin_computes_what_python_does(shapes_report):
    _, report = shapes_report
    by_name = {b["name"]: b for b in report["benchmarks"]}
    assert sorted(by_name) == sorted(SHAPES)
    for bench in BENCHMARKS:
        if bench.name in SHAPES:
            twin = by_name[bench.name]["modes"]["twin"]
            assert twin["status"] == "ok", twin
            assert twin["r0"] == EXPECTED[bench.name](bench.input), bench.name


def test_each_shape_links_to_the_twins_answer(shapes_report):
    status, report = shapes_report
    assert status == 0
    for b in report["benchmarks"]:
        twin = b["modes"]["twin"]
        for mode in ("none", "lto", "unchecked", "pgo"):
            got = b["modes"][mode]
            assert got["status"] == "ok", (b["name"], mode, got["reason"])
            assert (got["r0"], got["output_sha256"]) == (twin["r0"], twin["output_sha256"])


@needs_shared("peers", "llvmbpf")
def test_bpftimes_engine_runs_each_program_of_a_source(monkeypatch):
    """llvmbpf's JIT and AOT, and the --abi bpftime object through load_aot_object
    (which runs its bpf_main), give each program's own answer, not its source's first."""
    monkeypatch.setenv("EBPF_LTO_SHARED", str(shared_dir()))
    status, report = _quick("--modes", ",".join(LLVMBPF_MODES), "accum", "straight")
    assert status == 0
    inputs = {b.name: b.input for b in BENCHMARKS}
    for b in report["benchmarks"]:
        for mode in LLVMBPF_MODES:
            got = b["modes"][mode]
            assert got["status"] == "ok", (b["name"], mode, got["reason"])
            assert got["r0"] == EXPECTED[b["name"]](inputs[b["name"]]), (b["name"], mode)
