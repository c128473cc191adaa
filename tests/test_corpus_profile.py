"""`ebpf-lto corpus DIR --profile OUTDIR`: every runnable packet program is trained on the
shipped traffic, its profile written as indexed .profdata, relinked with it, and checked
against the plain build. Speed is never asserted."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from inliner import pipeline
from inliner.cli import main
from inliner.pgo.profdata import read_indexed
from inliner.tools import asm, corpus_profile, traffic
from inliner.tools.bench.compile_cost import elf_object

ROOT = Path(__file__).resolve().parent.parent
PCAP = ROOT / "examples" / "traffic.pcap"
# Object -> its packet programs (xdp, tc, socket filter) that run, as their sources say.
OBJECTS = {
    "packet_c/xdp.o": ["xdp_pop_vlan", "xdp_decap_ipip", "xdp_encap_ipip", "xdp_head_delta",
                       "xdp_tail_delta", "xdp_tail_regrow", "xdp_meta_delta", "xdp_meta_head",
                       "xdp_meta_write"],
    "packet_c/tc.o": ["tc_nat4", "tc_nat2", "tc_nat_diff", "tc_csum_call", "tc_load8",
                      "tc_reverse64", "tc_store16", "tc_hash", "tc_hash_invalidated",
                      "tc_hash_kept", "tc_change_tail", "tc_change_head", "tc_to_ipv6",
                      "tc_to_ipv4", "tc_to_ipv6_flagged", "tc_vlan_push", "tc_vlan_pop",
                      "tc_realm"],
    "legacy_c/ldabs.o": ["headers", "indirect", "link_layer", "network", "nested"],
    # stamp (xdp) calls ktime_get_ns; poke (a socket filter) reads a constant address.
    "fixtures/corpus/two_programs.o": ["stamp"],
    "pgo_c/parser.o": [],                                 # raw: no packet context, skipped
    # They tail-call each other: linked whole, with one profile for the object.
    "pgo_c/tail.o": ["xdp_classify", "xdp_ttl"],
}
WHOLE = {"tail.o"}


def profile_path(out: Path, file: str, program: str) -> Path:
    return out / file / ("object.profdata" if file in WHOLE else f"{program}.profdata")


def pcap_frames() -> int:
    """How many records examples/traffic.pcap holds, counted from its record headers."""
    data, offset, n = PCAP.read_bytes(), 24, 0
    while offset < len(data):
        offset += 16 + struct.unpack_from("<I", data, offset + 8)[0]
        n += 1
    return n


def get_stack_program() -> bytes:
    """An XDP program that links but cannot run here: bpf_get_stack is the kernel's."""
    code = asm.assemble_bytes("mov %r2, 0\nmov %r3, 0\nmov %r4, 0\ncall 67\nmov %r0, 2\nexit")
    return elf_object(code, "stack", "xdp")


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus")
    for rel in OBJECTS:
        (corpus / Path(rel).name).write_bytes((ROOT / "tests" / rel).read_bytes())
    (corpus / "stack.o").write_bytes(get_stack_program())
    (corpus / "notes.o").write_bytes(b"not an object")
    out = tmp_path_factory.mktemp("profiles") / "out"
    proc = subprocess.run(["python", "-m", "inliner.cli", "corpus", str(corpus), "--profile",
                           str(out), "--json", "--jobs", "2"], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return proc, out


def test_every_packet_program_is_trained_and_relinked(profiled):
    proc, out = profiled
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    rows = {(r["file"], r["program"]): r for r in report["rows"]}
    expected = {(Path(rel).name, p) for rel, progs in OBJECTS.items() for p in progs}
    others = {("stack.o", "stack"), ("two_programs.o", "poke"), ("notes.o", None),
              ("tail.o", "xdp_poke")}
    assert set(rows) == expected | others
    for key in expected:
        row = rows[key]
        assert row["status"] == "trained", row
        assert row["agreement"] == "same"   # stamp's clock too: every load's is fixed
        assert Path(row["profile"]) == profile_path(out, *key)
    assert rows["two_programs.o", "poke"]["status"] == "not linked"
    # Linked whole with its sisters, it alone calls a helper no set provides.
    poke = rows["tail.o", "xdp_poke"]
    assert poke["status"] == "not run" and "probe_write_user" in poke["reason"]
    assert rows["notes.o", None]["status"] == "not loaded"
    assert report["programs"]["trained"] == len(expected)
    # Progress: a line per object, since standard error is not a terminal here.
    assert sum(line.startswith("corpus --profile [") for line in proc.stderr.splitlines()) == 8


def test_a_program_that_cannot_run_says_why(profiled):
    proc, _ = profiled
    row = next(r for r in json.loads(proc.stdout)["rows"] if r["file"] == "stack.o")
    assert row["status"] == "not run" and "get_stack" in row["reason"]


def test_profiles_are_indexed_profdata_counting_every_frame(profiled):
    """Each program's entry block ran once per frame of the pcap, so its first counter
    (the entry block's, docs/pgo.md) is the number of frames."""
    _, out = profiled
    frames = pcap_frames()
    for rel, progs in OBJECTS.items():
        for prog in progs:
            data = profile_path(out, Path(rel).name, prog).read_bytes()
            assert data[:8] == b"\xfflprofi\x81"
            functions = read_indexed(data).functions
            assert functions[prog].counters[0] == frames


@pytest.mark.skipif(shutil.which("llvm-profdata-19") is None, reason="needs llvm-profdata-19")
def test_llvm_profdata_reads_the_profiles(profiled):
    _, out = profiled
    shown = subprocess.run(["llvm-profdata-19", "show", "--all-functions",
                            str(out / "xdp.o" / "xdp_pop_vlan.profdata")],
                           capture_output=True, text=True, check=True).stdout
    assert "xdp_pop_vlan:" in shown
    assert f"Maximum function count: {pcap_frames()}" in shown


def test_a_pgo_build_that_answers_differently_is_reported(monkeypatch, tmp_path):
    """Stand xdp_decap_ipip's build in for xdp_pop_vlan's PGO build: they first differ on
    the first 802.1Q frame, which pop_vlan strips of its tag and decap_ipip passes."""
    real_load = pipeline.load

    def wrong_pgo_build(obj, options):
        if options.profile:
            return real_load(obj, options.__class__(program="xdp_decap_ipip"))
        return real_load(obj, options)

    monkeypatch.setattr(pipeline, "load", wrong_pgo_build)
    root = tmp_path / "c"
    root.mkdir()
    (root / "xdp.o").write_bytes((ROOT / "tests/packet_c/xdp.o").read_bytes())
    frames = [f.data for f in traffic.frames()]
    monkeypatch.setattr(corpus_profile, "ROUNDS", 1)
    rows = [r for r in corpus_profile.object_rows(root / "xdp.o", root, tmp_path / "out", 2,
                                                  "default", frames)
            if isinstance(r, dict) and r["program"] == "xdp_pop_vlan"]
    first_tagged = next(n for n, f in enumerate(frames, 1) if f[12:14] == b"\x81\x00")
    assert rows[0]["status"] == "differs"
    assert rows[0]["reason"] == f"PGO build: frame {first_tagged}: r0 3 against 2"


def test_bad_output_directory_costs_one_line(tmp_path, capsys):
    taken = tmp_path / "file"
    taken.write_bytes(b"mine")
    assert main(["corpus", str(ROOT / "tests/packet_c"), "--profile", str(taken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a directory" in err
    assert taken.read_bytes() == b"mine"


def test_profile_and_compare_do_not_go_together(tmp_path, capsys):
    assert main(["corpus", str(ROOT / "tests/packet_c"), "--profile", str(tmp_path / "o"),
                 "--compare"]) == 2
    assert "do not go together" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
