"""`ebpf-lto bench`: every mode must answer as the native twin does (no timing here).

The benchmark suite itself measures speed (docs/benchmarks.md); these tests
only check that the modes it compares compute the same thing, and that the
native twin computes the right thing (checked against Python).
"""
from __future__ import annotations

import json
import re
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from inliner import codegen, pipeline
from inliner.elf import loader
from inliner.pgo import profile
from inliner.tools.bench.build import OPT_LEVEL, TRAINING_RUNS, Builder
from inliner.tools.bench.compile_cost import elf_object, parse_sizes, synthetic_asm
from inliner.tools.bench.plot import ratio_chart
from inliner.tools.bench.report import results_from_json
from inliner.tools.bench.stats import Outcome, Result, summary
from inliner.tools.bench.suite import (BENCHMARKS, LLVMBPF_MODES, TLV_CSUM, TLV_DATA,
                                       TLV_MALFORMED, TLV_OTHER, TLV_RECORDS, Benchmark,
                                       bench_dir, tlv_records)
from inliner.tools.bench.toolchain import Toolchain
from inliner.tools.bench.twin import twin_shim
from inliner.cli import main

from conftest import needs_shared, shared_dir

pytestmark = pytest.mark.skipif(shutil.which("clang-19") is None and shutil.which("clang") is None,
                                reason="the native twins need clang")


def _quick(capsys, *names, env=None, monkeypatch=None):
    if env and monkeypatch:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
    status = main(["bench", "--quick", "--json", *names])
    out = capsys.readouterr().out
    return status, json.loads(out)


def _ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _csum_hdrs(headers: bytes) -> int:
    """benchmarks/csum_hdrs.c's r0: the sum of the 16 headers' IPv4 checksums."""
    expected = 0
    for i in range(16):
        h = bytearray(headers[20 * i:20 * i + 20])
        h[10:12] = b"\0\0"
        # The program adds each checksum as it reads it back: a little-endian u16.
        expected += int.from_bytes(_ipv4_checksum(bytes(h)).to_bytes(2, "big"), "little")
    return expected


def _tlv_parse(batch: bytes) -> int:
    """benchmarks/tlv_parse.c in Python: r0 for one batch of records.

    r0 adds up every counter and sum, so each counted record adds 1 here.
    Python's integers wrap like u64 once reduced modulo 2**64.
    """
    acc = total = 0
    for kind, flags, length, value in struct.iter_unpack("<BBHI", batch):
        total += flags & 1
        if length == 0:
            total += 1
        elif kind == 2:
            total += 1
            acc ^= value
        elif kind == 3:
            acc += value
        elif kind == 5:
            acc -= value
        elif kind == 19:
            acc |= value
        elif kind == 34:
            acc &= value
        elif kind == TLV_CSUM:
            # An intact record's 16-bit words sum to 0xffff: its Internet checksum is 0.
            record = struct.pack("<BBHI", kind, flags, length, value)
            total += _ipv4_checksum(record) != 0
        elif kind == TLV_DATA:
            total += 1 + length + value
        else:  # padding, no-op, skip and unknown records are each counted
            total += 1
    return (total + acc) % 2**64


@pytest.fixture(scope="module")
def quick_report():
    """One --quick run over a helper-heavy program, a loop and a parser, shared below."""
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = main(["bench", "--quick", "--json", "csum_hdrs", "crc32", "tlv_parse"])
    return status, json.loads(buf.getvalue())


def test_every_mode_gives_the_twins_r0_and_memory(quick_report):
    status, report = quick_report
    assert status == 0
    assert [b["name"] for b in report["benchmarks"]] == ["csum_hdrs", "crc32", "tlv_parse"]
    for b in report["benchmarks"]:
        twin = b["modes"]["twin"]
        assert twin["status"] == "ok"
        for mode in ("none", "lto", "pgo", "twin-clang19"):
            got = b["modes"][mode]
            assert got["status"] == "ok", (b["name"], mode, got["reason"])
            assert (got["r0"], got["output_sha256"]) == (twin["r0"], twin["output_sha256"])
        for mode in ("dpdk-interp", "dpdk-jit"):  # a peer: it may be absent or refuse
            got = b["modes"][mode]
            assert got["status"] in ("ok", "refused", "unavailable"), got
            if got["status"] == "ok":
                assert (got["r0"], got["output_sha256"]) == (twin["r0"], twin["output_sha256"])
            else:
                assert got["reason"]
        # --quick times nothing
        assert all(m["reps_ns"] == [] and m["median_ns"] is None for m in b["modes"].values())


def test_the_twin_itself_is_right(quick_report):
    """The reference is checked independently: Python computes the same answers."""
    _, report = quick_report
    by_name = {b["name"]: b for b in report["benchmarks"]}
    crc_input = next(b for b in BENCHMARKS if b.name == "crc32").input
    assert by_name["crc32"]["modes"]["twin"]["r0"] == zlib.crc32(crc_input)
    hdrs = next(b for b in BENCHMARKS if b.name == "csum_hdrs").input
    assert by_name["csum_hdrs"]["modes"]["twin"]["r0"] == _csum_hdrs(hdrs)
    assert by_name["tlv_parse"]["modes"]["twin"]["r0"] == _tlv_parse(tlv_records())


def test_tlv_parse_input_takes_the_unlikely_branches():
    """Nearly every record is what the program tests under unlikely(); every other path runs."""
    records = list(struct.iter_unpack("<BBHI", tlv_records()))
    assert len(records) == TLV_RECORDS
    data = [r for r in records if r[0] == TLV_DATA and r[2]]
    assert len(data) > 0.98 * len(records)
    assert sum(r[1] & 1 for r in records) > 0.95 * len(records)
    assert {r[0] for r in records} == {TLV_DATA, TLV_CSUM, *TLV_OTHER}
    checks = [_ipv4_checksum(struct.pack("<BBHI", *r)) == 0
              for r in records if r[0] == TLV_CSUM]
    assert sorted(checks) == [False, True]
    assert sum(r[2] == 0 for r in records) == TLV_MALFORMED


# What a hint the bytecode cannot carry becomes in clang's IR: a kept call or a
# hot or cold function (attributes), a branch weight, an assumption, restrict,
# a loop's vectorizer setting.
HINTS = re.compile(r"^attributes #\d+ = \{.*\b(noinline|cold|hot)\b|@llvm\.expect|!prof|"
                   r"@llvm\.assume|\bnoalias\b|llvm\.loop\.(vectorize|interleave)", re.M)


def test_the_twins_c_carries_no_hint_the_bytecode_cannot(tmp_path):
    """ebpf-lto optimizes bytecode, which holds no attribute nor branch weight: the
    IR the fair twin's optimizer starts from holds none either, nor clang's cpu (the
    target machine's applies, as to the lifted module). The eBPF build still keeps
    call_chain's seven calls, the benchmark's point."""
    builder = Builder(tmp_path, Toolchain.find())
    for source in sorted({b.source for b in BENCHMARKS}):
        bench = next(b for b in BENCHMARKS if b.source == source)
        ir, _ = builder.twin_ir(bench, loader.load(str(bench_dir() / f"{source}.o")))
        ir = "\n".join(line for line in ir.splitlines()  # LLVM's own declarations
                       if not line.startswith("declare"))
        assert not HINTS.search(ir), (source, HINTS.search(ir).group(0))
        assert "target-cpu" not in ir and "define" in ir
    obj = loader.load(str(bench_dir() / "call_chain.o"))
    assert [ref.kind for ref in obj.refs.values()] == ["call"] * 7


def test_the_fair_twin_is_optimized_as_inline_lto_is(tmp_path, monkeypatch):
    """The twin's module, with the helper bitcode linked in, goes through ebpf-lto's
    optimizer at the lto mode's level and for its target machine."""
    seen = []
    optimize = codegen.optimize

    def spy(mod, tm, opt_level):
        seen.append(({fn.name for fn in mod.functions if not fn.is_declaration}, tm, opt_level))
        return optimize(mod, tm, opt_level)
    monkeypatch.setattr(codegen, "optimize", spy)
    builder = Builder(tmp_path, Toolchain.find())
    bench = next(b for b in BENCHMARKS if b.name == "csum_hdrs")
    built = builder.build("twin", bench, loader.load(str(bench_dir() / "csum_hdrs.o")))
    assert built.status == "ok", built.reason
    lto_tm = codegen.target_machine(codegen.make_target("x86_64", "native"), OPT_LEVEL)
    [(defined, tm, level)] = [s for s in seen if "twin_main" in s[0]]
    assert (tm, level) == (lto_tm, OPT_LEVEL)
    assert "_bpf_helper_ext_0028" in defined  # bpf_csum_diff, from the helper bitcode


def test_pgo_trains_on_the_benchmarks_input(tmp_path):
    """The pgo mode's profile counts TRAINING_RUNS runs over the input, and the link uses it."""
    builder = Builder(tmp_path, Toolchain.find())
    tlv = next(b for b in BENCHMARKS if b.name == "tlv_parse")
    obj = loader.load(str(bench_dir() / "tlv_parse.o"))
    path = builder.train(tlv, obj, builder.options, tmp_path / "tlv.profdata")
    _, counters = profile.load(str(path))["tlv_parse"]
    assert counters[0] == TRAINING_RUNS                  # the entry block
    assert max(counters) == TLV_RECORDS * TRAINING_RUNS  # the loop's head
    ir, linked = pipeline.link(obj, pipeline.LinkOptions(opt_level=0, profile=str(path)),
                               emit="llvm")
    assert linked.stale == []
    assert f'!"function_entry_count", i64 {TRAINING_RUNS}'.encode() in ir
    assert b'!"branch_weights"' in ir


def test_maps_and_packet_helpers_agree(capsys):
    """The Katran-style balancer: hash and array maps, a per-cpu array, adjust_head."""
    status, report = _quick(capsys, "katran_lb")
    assert status == 0
    modes = report["benchmarks"][0]["modes"]
    twin = modes["twin"]
    assert twin["status"] == "ok" and twin["r0"] & 0xFFFFFFFF == 3  # XDP_TX
    for mode in ("none", "lto", "pgo"):  # pgo trains on a packet, after the setup program
        assert modes[mode]["status"] == "ok", modes[mode]["reason"]
        assert modes[mode]["output_sha256"] == twin["output_sha256"]
    assert modes["dpdk-jit"]["status"] == "refused"  # an XDP program


def test_without_llvmbpf_its_modes_are_unavailable_and_say_why(capsys, monkeypatch):
    monkeypatch.delenv("EBPF_LTO_SHARED", raising=False)
    status, report = _quick(capsys, "crc32")
    assert status == 0
    modes = report["benchmarks"][0]["modes"]
    for mode in LLVMBPF_MODES:
        assert modes[mode]["status"] == "unavailable"
        assert modes[mode]["reason"] == "llvmbpf: EBPF_LTO_SHARED is not set (llvmbpf's " \
            "source is its peers/llvmbpf)"
    assert modes["lto-generic"]["status"] == "ok"


@needs_shared("peers", "llvmbpf")
def test_llvmbpf_modes_give_the_twins_r0_and_memory(capsys, monkeypatch):
    """bpftime's engine in the driver: llvmbpf's JIT and AOT of the bytecode, and
    ebpf-lto's --abi bpftime objects through load_aot_object, on programs with maps
    (array, hash, per-cpu), a setup program, xdp_adjust_head and csum_diff (Linux's
    semantics, as the twin's), each answering as the native twin does."""
    monkeypatch.setenv("EBPF_LTO_SHARED", str(shared_dir()))
    status, report = _quick(capsys, "--modes", ",".join(LLVMBPF_MODES), "csum_counter/64",
                            "array_counter", "flow_table", "katran_lb", "crc32", "call_chain")
    assert status == 0
    for b in report["benchmarks"]:
        twin = b["modes"]["twin"]
        for mode in LLVMBPF_MODES:
            got = b["modes"][mode]
            assert got["status"] == "ok", (b["name"], mode, got["reason"])
            assert (got["r0"], got["output_sha256"]) == (twin["r0"], twin["output_sha256"])


@needs_shared("peers", "llvmbpf")
def test_ebpf_lto_on_bpftimes_inputs_gives_the_known_answers(capsys, monkeypatch):
    """ebpf-lto linking what bpftime's toolchain holds of a program, loaded by llvmbpf's
    load_aot_object: llvmbpf's own IR (llvmbpf-ir) and the bytecode with its maps
    relocated to fds (raw). r0 is Python's answer: crc32's is zlib's CRC-32 of the
    input, csum_hdrs' the sum of its headers' checksums (bpf_csum_diff, which ebpf-lto
    splices into llvmbpf's IR), katran_lb's XDP_TX (maps a setup program fills,
    xdp_adjust_head), its packet the twin's."""
    monkeypatch.setenv("EBPF_LTO_SHARED", str(shared_dir()))
    status, report = _quick(capsys, "--modes", "llvmbpf-ir,raw", "crc32", "csum_hdrs",
                            "katran_lb")
    unavailable = [o["reason"] for b in report["benchmarks"] for o in b["modes"].values()
                   if o["status"] == "unavailable"]
    if unavailable:
        pytest.skip(unavailable[0])
    assert status == 0
    inputs = {b.name: b.input for b in BENCHMARKS}
    expected = {"crc32": zlib.crc32(inputs["crc32"]),
                "csum_hdrs": _csum_hdrs(inputs["csum_hdrs"]), "katran_lb": 3}
    for b in report["benchmarks"]:
        twin = b["modes"]["twin"]
        mask = 0xFFFFFFFF if b["type"] == "xdp" else 2**64 - 1  # an XDP action is an int
        for mode in ("llvmbpf-ir", "raw"):
            got = b["modes"][mode]
            assert got["status"] == "ok", (b["name"], mode, got["reason"])
            assert got["r0"] & mask == expected[b["name"]], (b["name"], mode)
            assert got["output_sha256"] == twin["output_sha256"], (b["name"], mode)


@needs_shared("peers", "llvmbpf")
def test_raw_refuses_a_program_its_input_cannot_express(tmp_path, monkeypatch):
    """bpftime holds an lddw of a global's value as src 2 (map fd + offset), which
    raw input does not take: the mode is refused, saying so; llvmbpf's IR of the
    same program links."""
    monkeypatch.setenv("EBPF_LTO_SHARED", str(shared_dir()))
    builder = Builder(tmp_path, Toolchain.find())
    if not isinstance(builder.llvmbpf_library(), Path):
        pytest.skip(f"llvmbpf cannot be built here: {builder.llvmbpf_library()}")
    bench = Benchmark("globals", "../tests/fixtures/progs/globals.v3", "globals",
                      lambda: bytes(64))
    obj = loader.load(str(bench_dir() / f"{bench.source}.o"))
    built = builder.build("raw", bench, obj)
    assert built.status == "refused" and built.line is None
    assert "BPF_PSEUDO_MAP_VALUE" in built.reason, built.reason
    assert builder.build("llvmbpf-ir", bench, obj).status == "ok"


def test_without_dpdk_the_peer_is_unavailable_and_the_run_passes(capsys, monkeypatch):
    status, report = _quick(capsys, "csum_hdrs", env={"EBPF_LTO_BENCH_DPDK_LIB":
                                                      "libno-such-dpdk.so"},
                            monkeypatch=monkeypatch)
    assert status == 0
    modes = report["benchmarks"][0]["modes"]
    assert modes["dpdk-interp"]["status"] == modes["dpdk-jit"]["status"] == "unavailable"
    assert modes["lto"]["status"] == "ok"


def test_off_a_terminal_quick_prints_a_line_per_benchmark_and_a_summary(capsys, monkeypatch):
    """Redirected (stderr captured here), --quick says how each benchmark's modes
    answered as it goes, then sums up; no DPDK, so both of its modes are unavailable."""
    monkeypatch.setenv("EBPF_LTO_BENCH_DPDK_LIB", "libno-such-dpdk.so")
    monkeypatch.delenv("EBPF_LTO_SHARED", raising=False)  # and no llvmbpf
    assert main(["bench", "--quick", "csum_hdrs", "crc32"]) == 0
    lines = [re.sub(r"\d+ s;", "T s;", line) for line in capsys.readouterr().err.splitlines()]
    peers = "unavailable: bpftime-lto, llvmbpf-ir, raw, dpdk-interp, dpdk-jit, llvmbpf-jit, " \
        "llvmbpf-aot"
    linked = "none, lto, unchecked, pgo, lto-generic, twin-clang19"
    assert lines == [f"bench --quick [1/2] csum_hdrs: same as the twin: {linked}; {peers}",
                     f"bench --quick [2/2] crc32: same as the twin: {linked}; {peers}",
                     "bench --quick: 2 benchmarks, T s; modes: 12 same as the twin, "
                     "14 unavailable"]


def test_off_a_terminal_a_timed_run_ends_with_its_headline_ratios(capsys):
    """The summary's ratios are the medians' (recomputed here from the JSON
    report); nothing about their size is asserted."""
    assert main(["bench", "csum_counter/64", "--reps", "1", "--modes", "none,lto",
                 "--json"]) == 0
    captured = capsys.readouterr()
    medians = {m: o["median_ns"] for m, o in
               json.loads(captured.out)["benchmarks"][0]["modes"].items()}
    item, last = captured.err.splitlines()
    assert item.startswith("bench [1/1] csum_counter/64: twin ")
    assert item.endswith(f" ns; × twin: none {medians['none'] / medians['twin']:.2f}, "
                         f"lto {medians['lto'] / medians['twin']:.2f}")
    assert re.fullmatch(
        r"bench: 1 benchmark, \d+ s; time × native twin \(geomean\): "
        + re.escape(f"--inline none {medians['none'] / medians['twin']:.2f}, "
                    f"inline+LTO {medians['lto'] / medians['twin']:.2f}; inline+LTO "
                    f"{medians['none'] / medians['lto']:.2f}× as fast as --inline none "
                    "on the helper/map set"), last)


def test_charts_keep_each_modes_colour_and_read_ratios_as_multiples():
    """The two ratio charts show different modes, yet each mode keeps one
    colour, and the log axis is labelled 0.5×, 1×, 2×... from the power of
    two at or below the least ratio to the one above the greatest."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def timed(b: Benchmark, medians: dict[str, float]) -> Result:
        return Result(b, "raw", {m: Outcome("ok", reps=[ns])
                                 for m, ns in medians.items()})

    results = [timed(BENCHMARKS[0], {"twin": 100, "none": 300, "lto": 90, "pgo": 80,
                                     "dpdk-jit": 150}),
               timed(BENCHMARKS[1], {"twin": 100, "none": 110, "lto": 55, "pgo": 50})]
    modes = ["twin", "none", "lto", "pgo", "dpdk-jit"]
    colours: dict[str, set] = {}
    ticks = {}
    for to in ("twin", "none"):
        fig = ratio_chart(plt, results, modes, to)
        ax = fig.axes[0]
        for bars in ax.containers:
            colours.setdefault(bars.get_label(), set()).add(bars.patches[0].get_facecolor())
        fig.canvas.draw()
        low, high = ax.get_ylim()
        ticks[to] = [t.get_text() for t in ax.get_yticklabels()
                     if low * 0.999 <= t.get_position()[1] <= high * 1.001]
        plt.close(fig)
    # Over the twin: 0.5 (pgo/twin) to 3 (none/twin); over none: 80/300 to 100/110.
    assert ticks == {"twin": ["0.5×", "1×", "2×", "4×"], "none": ["0.25×", "0.5×", "1×"]}
    assert set(colours) == {"--inline none", "inline+LTO", "inline+LTO+PGO", "native twin",
                            "DPDK JIT"}
    assert all(len(c) == 1 for c in colours.values())
    assert len({c for cs in colours.values() for c in cs}) == len(colours)


def test_a_saved_run_reads_back_as_it_was_measured(tmp_path, capsys):
    """--from redraws a saved run: the committed full run (docs/bench/run.json)
    read back gives the summary that run computed when it was measured."""
    saved = Path(__file__).resolve().parents[1] / "docs" / "bench" / "run.json"
    report = json.loads(saved.read_text())
    results, modes = results_from_json(report)
    assert modes == list(report["modes"])
    assert summary(results, modes) == report["summary"]
    assert main(["bench", "--from", str(tmp_path / "missing.json")]) == 2
    (tmp_path / "other.json").write_text('{"not": "a bench report"}')
    assert main(["bench", "--from", str(tmp_path / "other.json")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "cannot read" in err[0] and "not a saved" in err[1]


def test_unknown_benchmark_is_one_line_of_bad_input(capsys):
    assert main(["bench", "--quick", "no_such_bench"]) == 2
    assert "no benchmark named" in capsys.readouterr().err


def test_twin_shim_maps_helpers_to_direct_calls():
    shim = twin_shim()
    assert "#define bpf_csum_diff(a0, a1, a2, a3, a4) ((__s64)_bpf_helper_ext_0028(" in shim
    assert "twin_map(a0)" in shim.split("#define bpf_map_lookup_elem(")[1].splitlines()[0]


def test_generated_programs_for_compile_cost_link(tmp_path):
    from inliner.tools.asm import assemble_bytes
    code = assemble_bytes(synthetic_asm(300))
    assert 290 <= len(code) // 8 <= 310
    path = tmp_path / "synthetic.o"
    path.write_bytes(elf_object(code))
    obj = loader.load(str(path))
    assert [p.name for p in obj.programs] == ["bench"]
    image, linked = pipeline.link(obj, pipeline.LinkOptions(opt_level=1))
    assert image[:4] == b"\x7fELF" and not linked.external_helpers


def test_compile_cost_times_each_stage_of_the_link(tmp_path):
    """Each link row carries the stages `link -v` timed, which are parts of the
    child's whole run: each under its wall time, together too."""
    from inliner.tools.bench.compile_cost import STAGES, compile_cost
    report = compile_cost(sizes=(200,), opt_level=1, work=tmp_path)
    start, *links = report["rows"]
    assert start["stages_s"] == {} and len(links) == 2
    for row in links:
        assert row["status"] == 0, row["error"]
        stages = row["stages_s"]
        assert {"load", "lift", "verify", "optimize", "emit"} <= set(stages) <= set(STAGES)
        assert all(secs >= 0 for secs in stages.values())
        assert sum(stages.values()) <= row["wall_s"]


def test_compile_cost_sizes_option():
    assert parse_sizes("1k,10000,1M") == (1000, 10_000, 1_000_000)
    for bad in ("ten", "2M", "1k,,2k", "8", "-5"):
        assert main(["bench", "--compile-cost", "--compile-cost-sizes", bad]) == 2
    assert main(["bench", "--compile-cost-sizes", "1k"]) == 2   # without --compile-cost


def test_slower_than_the_peer_means_beyond_the_interquartile_ranges():
    """A higher median counts as slower only when ebpf-lto's first quartile is above
    llvmbpf AOT's third; inside overlapping ranges it is a tie (`level`)."""
    bench = BENCHMARKS[0]

    def result(ours: list[float], peer: list[float]) -> Result:
        return Result(bench, "raw", {"lto": Outcome("ok", reps=ours),
                                     "llvmbpf-aot": Outcome("ok", reps=peer)})
    # quartiles (inclusive): ours 101..103 against 100..102, overlapping: a tie.
    tie = result([100, 101, 102, 103, 104], [99, 100, 101, 102, 103])
    # ours 111..113 against 100..102: slower.
    loss = result([110, 111, 112, 113, 114], [99, 100, 101, 102, 103])
    win = result([90, 91, 92, 93, 94], [99, 100, 101, 102, 103])
    assert [r.slower("lto", "llvmbpf-aot") for r in (tie, loss, win)] == [False, True, False]
    s = summary([tie, loss, win], ["lto", "llvmbpf-aot"])["lto"]
    assert s["level_with_peer"] == [bench.name]
    assert s["slower_than_peer"] == [bench.name]


def test_each_mode_is_timed_in_several_driver_processes_in_turn(tmp_path):
    """The repetitions are shared among driver processes that load the modes in
    turn (a process's placement moves a program's time by itself), and a mode that
    answers otherwise in one of them is wrong, not averaged in."""
    from inliner.tools.bench import driver as bench_driver
    from inliner.tools.bench.build import Built
    log = tmp_path / "log"
    # A stand-in for benchmarks/driver.c: it records the order it was given, and
    # its `b` answers 2 instead of 1 in a process that loads `b` first.
    fake = tmp_path / "driver"
    fake.write_text(f"""#!/bin/sh
modes=$(awk '$1 == "mode" {{print $2}}' "$1" | tr '\\n' ' ')
reps=$(awk '$1 == "reps" {{print $2}}' "$1")
echo "$modes" >> {log}
for m in $modes; do
  r0=1; [ "$m" = b ] && [ "${{modes%% *}}" = b ] && r0=2
  echo "check $m $r0 00"
done
i=0; while [ $i -lt $reps ]; do for m in $modes; do echo "rep $i $m 5.0"; done; i=$((i+1)); done
echo "harness 1.5"
""")
    fake.chmod(0o755)

    class Stand:
        work, driver = tmp_path, fake

        def build(self, mode, bench, obj):
            return Built(f"mode {mode} so x.so f -")

        def driver_settings(self):
            return []
    bench = next(b for b in BENCHMARKS if b.name == "array_counter")
    result = bench_driver.run_benchmark(Stand(), bench, ["a", "b", "c"], 31, quick=False)
    orders = log.read_text().split("\n")[:-1]
    assert [o.split() for o in orders] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    assert [len(result.outcomes[m].reps) for m in ("a", "c")] == [31, 31]
    assert result.outcomes["b"].status == "wrong" and "another driver process" in \
        result.outcomes["b"].reason
    assert result.harness_ns == 1.5
