"""Code emitted for aarch64, executed under qemu-user (inliner/emulate.py).

The rest of the suite runs x86_64 code in-process; this file runs what
`--target aarch64` emits, so that every target ebpf-lto emits is executed,
inlined and not, at -O0 and -O2:

- the examples and a few conformance-style programs against known answers
  (RFC 1071, RFC 9669);
- every benchmark program, setup program first, on its input: r0 and memory
  must be what the same object gives on x86_64, which test_bench.py checks
  against the native build of the same C (an aarch64-only miscompile shows
  as a difference);
- the harness itself, with the host's own emulator, against in-process runs.

Skipped with the reason when the cross compiler or qemu-user is missing
(Debian: gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user).
"""
from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from inliner import pipeline
from inliner.elf import loader
from inliner.facts import contexts
from inliner.tools import asm
from inliner.tools.bench import compile_cost, suite
from inliner.run.emulate import Emulator, Step
from inliner.errors import EbpfLtoError

ROOT = Path(__file__).resolve().parents[1]
TEXTBOOK_HEADER = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")


def _emulator(arch: str) -> Emulator:
    try:
        return Emulator(arch)
    except EbpfLtoError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def aarch64():
    emu = _emulator("aarch64")
    yield emu
    emu.close()


def _rfc1071(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _run(emu, obj, options, steps):
    objects, exports, _ = pipeline.images(obj, options)
    return emu.run(objects, exports, steps)


@pytest.mark.parametrize("level", (0, 2))
@pytest.mark.parametrize("inline", ("auto", "none"))
def test_ipv4_checksum_example(aarch64, level, inline):
    obj = loader.load(str(ROOT / "examples/ipv4_csum.o"))
    options = pipeline.LinkOptions(opt_level=level, arch="aarch64", inline=inline)
    [(r0, mem)] = _run(aarch64, obj, options, [Step("bpf_main", TEXTBOOK_HEADER + bytes(40))])
    assert r0 == _rfc1071(TEXTBOOK_HEADER) == 0xB861
    assert mem == TEXTBOOK_HEADER + bytes(40)


@pytest.mark.parametrize("inline", ("auto", "none"))
def test_map_example(aarch64, inline):
    """examples/csum_count.o: bpf_csum_diff and an array-map counter (the map
    runtime's atomics on aarch64), XDP_PASS for every packet, none changed."""
    obj = loader.load(str(ROOT / "examples/csum_count.o"))
    options = pipeline.LinkOptions(arch="aarch64", inline=inline)
    packet = suite.tcp_packet(64)
    results = _run(aarch64, obj, options, [Step("bpf_main", packet, contexts.XDP)] * 3
                   + [Step("bpf_main", packet[:40], contexts.XDP)])
    for r0, after in results[:3]:
        assert r0 == 2  # XDP_PASS
        assert after == packet
    assert results[3] == (2, packet[:40])


CONFORMANCE_STYLE = [
    # RFC 9669: division by zero gives 0, modulo by zero keeps the dividend.
    ("mov %r0, 7\nmov %r1, 0\ndiv %r0, %r1\nexit", b"", 0),
    ("mov %r0, 7\nmov %r1, 0\nmod %r0, %r1\nexit", b"", 7),
    # 32-bit ALU zero-extends; arsh is arithmetic.
    ("lddw %r0, 0xffffffff00000001\nadd32 %r0, 1\nexit", b"", 2),
    ("mov %r0, -16\narsh %r0, 2\nexit", b"", 2**64 - 4),
    # big-endian load of the memory's first word
    ("ldxw %r0, [%r1]\nbe32 %r0\nexit", bytes.fromhex("11223344"), 0x11223344),
    # a store the caller sees
    ("stw [%r1+4], 0x55667788\nmov %r0, 0\nexit", bytes(8), 0),
]


@pytest.mark.parametrize("text,mem,expected", CONFORMANCE_STYLE)
def test_instruction_semantics(aarch64, text, mem, expected):
    obj = loader.from_raw(asm.assemble_bytes(text))
    for level in (0, 2):
        options = pipeline.LinkOptions(opt_level=level, arch="aarch64", helpers=None)
        [(r0, after)] = _run(aarch64, obj, options, [Step("bpf_main", mem)])
        assert r0 == expected
    if text.startswith("stw"):
        assert after == bytes(4) + (0x55667788).to_bytes(4, "little")


@pytest.mark.parametrize("b", suite.BENCHMARKS, ids=lambda b: b.name)
def test_benchmark_programs_agree_with_x86_64(aarch64, b):
    obj = loader.load(str(suite.bench_dir() / f"{b.source}.o"))
    layout = contexts.for_program_type(obj.program(b.program).prog_type)
    data = b.input
    steps = ([Step(b.setup)] if b.setup else []) + [Step(b.program, data, layout)] * 2
    for inline in ("auto", "none"):
        host = pipeline.LinkOptions(opt_level=2, inline=inline)
        loaded, _ = pipeline.load(obj, host)
        expected = []
        for s in steps:
            if s.layout is not None:
                expected.append(loaded.call_packet(s.entry, layout, s.data))
            else:
                memory = bytearray(s.data)
                expected.append((loaded.call(s.entry, memory if s.data else None),
                                 bytes(memory)))
        options = pipeline.LinkOptions(opt_level=2, arch="aarch64", inline=inline)
        assert _run(aarch64, obj, options, steps) == expected, inline


def test_harness_matches_in_process_runs_on_the_host():
    """The harness itself, checked with the host's emulator against ORC JIT runs."""
    emu = _emulator(pipeline.codegen.host_arch())
    with emu:
        obj = loader.load(str(suite.bench_dir() / "katran_lb.o"))
        b = next(b for b in suite.BENCHMARKS if b.name == "katran_lb")
        steps = [Step(b.setup), Step(b.program, b.input, contexts.XDP)]
        options = pipeline.LinkOptions()
        loaded, _ = pipeline.load(obj, options)
        expected = [(loaded.call(b.setup, None), b""),
                    loaded.call_packet(b.program, contexts.XDP, b.input)]
        assert _run(emu, obj, options, steps) == expected


def test_cli_links_aarch64_objects(tmp_path):
    """`link --target aarch64` of an object using a map: an aarch64 ELF object."""
    out = tmp_path / "csum_count.aarch64.o"
    done = subprocess.run([sys.executable, "-m", "inliner.cli", "link",
                           str(ROOT / "examples/csum_count.o"), "--target", "aarch64",
                           "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    header = out.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    assert struct.unpack_from("<H", header, 18)[0] == 183  # EM_AARCH64


def test_inline_asm_for_another_target_is_refused(tmp_path):
    """Helper code with inline assembly: LLVM here has only the host's assembly
    parser, so an aarch64 object is refused in one line instead of an abort."""
    helper = tmp_path / "yield.ll"
    helper.write_text(
        "define i64 @_bpf_helper_ext_0007(i64 %a, i64 %b, i64 %c, i64 %d, i64 %e) {\n"
        '  call void asm sideeffect "yield", "~{memory}"()\n'
        "  ret i64 0\n}\n")
    prog = tmp_path / "prog.o"
    prog.write_bytes(compile_cost.elf_object(asm.assemble_bytes("call 7\nexit")))
    done = subprocess.run([sys.executable, "-m", "inliner.cli", "link", str(prog),
                           "--helpers", str(helper), "--target", "aarch64",
                           "-o", str(tmp_path / "out.o")], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "inline assembly" in done.stderr
    assert not (tmp_path / "out.o").exists()
