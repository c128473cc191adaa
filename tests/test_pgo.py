"""PGO: counters collected from runs, in LLVM's profile formats, used by the link step."""
import random
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT
from inliner import pipeline
from inliner.elf import loader
from inliner.pgo import profile

PARSER = ROOT / "tests" / "pgo_c" / "parser.o"
CSUM = ROOT / "tests" / "helpers_c" / "checksum.o"
PROFDATA = shutil.which("llvm-profdata-19")
needs_tool = pytest.mark.skipif(PROFDATA is None, reason="llvm-profdata-19 is not installed")


def inputs(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [bytes(rng.randrange(256) for _ in range(32)) for _ in range(n)]


def collect(path, packets, out, program=None):
    args = [sys.executable, "-m", "inliner.cli", "run", str(path), "--profile-out", str(out)]
    if program:
        args += ["--program", program]
    for p in packets:
        args += ["--packet", p.hex()]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return profile.load(str(out))


@pytest.mark.parametrize("suffix", [".proftext", ".profdata"])
def test_counts_match_the_runs(tmp_path, suffix):
    packets = inputs(7, 1)
    counts = collect(PARSER, packets, tmp_path / f"p{suffix}")
    hash_, counters = counts["classify"]
    high = sum(b >> 7 for p in packets for b in p)
    assert counters[0] == len(packets)               # the entry block ran once per run
    assert max(counters) == 32 * len(packets)        # the loop body, 32 times a run
    assert high in counters or 32 * len(packets) - high in counters  # the branch on bit 7


@needs_tool
def test_llvm_profdata_shows_and_merges_what_we_write(tmp_path):
    a = collect(PARSER, inputs(3, 2), tmp_path / "a.profdata")
    b = collect(PARSER, inputs(4, 3), tmp_path / "b.proftext")
    shown = subprocess.run([PROFDATA, "show", "--all-functions", "--counts",
                            str(tmp_path / "a.profdata")], capture_output=True, text=True)
    assert shown.returncode == 0 and "classify" in shown.stdout
    merged = tmp_path / "m.profdata"
    subprocess.run([PROFDATA, "merge", "-o", str(merged), str(tmp_path / "a.profdata"),
                    str(tmp_path / "b.proftext")], check=True)
    m = profile.load(str(merged))["classify"]
    assert m[0] == a["classify"][0]
    assert m[1] == [x + y for x, y in zip(a["classify"][1], b["classify"][1])]


def _weights(ir: str | bytes) -> set[str]:
    """The module's branch weights (the checks weigh their own: docs/safety.md)."""
    text = ir.decode() if isinstance(ir, bytes) else ir
    return set(re.findall(r'!"branch_weights"[^}]*', text))


def test_profile_becomes_branch_weights_and_entry_counts(tmp_path):
    collect(PARSER, inputs(5, 4), tmp_path / "p.profdata")
    ir, linked = pipeline.link(loader.load(str(PARSER)), pipeline.LinkOptions(
        opt_level=0, profile=str(tmp_path / "p.profdata")), emit="llvm")
    plain, _ = pipeline.link(loader.load(str(PARSER)), pipeline.LinkOptions(opt_level=0),
                             emit="llvm")
    assert b'!"function_entry_count", i64 5' in ir
    assert _weights(ir) - _weights(plain) and linked.stale == []


def test_a_profile_that_no_longer_fits_is_reported_and_ignored(tmp_path):
    counts = collect(PARSER, inputs(2, 5), tmp_path / "p.proftext")
    stale = {name: (h ^ 1, c) for name, (h, c) in counts.items()}
    (tmp_path / "stale.proftext").write_bytes(profile.save(stale, "stale.proftext"))
    done = subprocess.run([sys.executable, "-m", "inliner.cli", "link", str(PARSER), "-O0",
                           "--profile", str(tmp_path / "stale.proftext"), "--emit", "llvm",
                           "-o", "-"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0
    assert "profile of classify does not match" in done.stderr
    plain, _ = pipeline.link(loader.load(str(PARSER)), pipeline.LinkOptions(opt_level=0),
                             emit="llvm")
    assert _weights(done.stdout) == _weights(plain)


def test_call_site_counts_reach_the_plan(tmp_path):
    header = bytes.fromhex("45000073000040004011" "0000" "c0a80001c0a800c7")
    collect(CSUM, [header] * 3, tmp_path / "c.profdata", program="ipv4_checksum")
    _, linked = pipeline.link(loader.load(str(CSUM)), pipeline.LinkOptions(
        program="ipv4_checksum", profile=str(tmp_path / "c.profdata"), inline_threshold=10))
    [decision] = linked.decisions
    assert decision.count == 3
    assert (decision.action, decision.reason) == ("inline", "hot in the profile (3 calls)")


def test_a_file_that_is_not_a_profile_is_refused(tmp_path):
    bad = tmp_path / "bad.profdata"
    bad.write_bytes(b"\xff" * 40)
    done = subprocess.run([sys.executable, "-m", "inliner.cli", "link", str(PARSER), "-o", "-",
                           "--profile", str(bad)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
