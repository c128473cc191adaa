"""Tests for `ebpf-lto corpus`: outcomes of objects whose fate is known
(tests/fixtures/corpus/two_programs.c says which program links and which is
refused, and why), and the shared real-world corpus when it is there."""
from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

import pytest

from conftest import needs_shared, shared_path
from inliner import cli, pipeline
from inliner.elf import loader
from inliner.facts import abi
from inliner.tools import corpus_compare
from inliner.tools.corpus import find_objects, normalise, object_events

FIXTURE = Path(__file__).parent / "fixtures" / "corpus" / "two_programs.o"
COMPARED = Path(__file__).parent / "fixtures" / "corpus" / "compared.o"  # answers in its .c
SAMPLES = shared_path("ebpf-samples")

# Objects under invalid/ that are invalid for the PREVAIL verifier only: what
# this tool reads of them is well formed, so linking them is right.
WELL_FORMED_INVALID = {
    "timeout-29db93548c671165313b314d4f83a3eefa24df37",  # made PREVAIL time out
    "dac31099c3bb5b6395908c82cc8540e77a6a1849",  # only .debug_line is truncated
    "ef2e42c0bfcf4dab6b9c3926759365b6dfa73634",  # only a debug section's name differs
}


def corpus(capsys, *args: str) -> tuple[int, dict]:
    status = cli.main(["corpus", *map(str, args), "--json"])
    return status, json.loads(capsys.readouterr().out)


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    elf = FIXTURE.read_bytes()
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    shutil.copy(FIXTURE, tmp_path / "nested" / "deeper" / "two_programs.o")
    (tmp_path / "notes.json").write_text('{"not": "an object"}\n')
    (tmp_path / "text.o").write_text("not an object either\n")
    (tmp_path / "nested" / "truncated").write_bytes(elf[:100])  # ELF by its magic alone
    return tmp_path


def test_normalise_masks_names_and_numbers():
    assert (normalise("lddw refers to 'map_a' in section .maps at 0x18")
            == normalise('lddw refers to "b" in section .maps at 7')
            == "lddw refers to '…' in section .maps at N")
    assert normalise("R_BPF_64_64 is fine") == "R_BPF_64_64 is fine"


def test_find_objects_by_magic_or_extension(small_corpus: Path):
    found = [p.relative_to(small_corpus).as_posix() for p in find_objects(small_corpus)]
    assert found == ["nested/deeper/two_programs.o", "nested/truncated", "text.o"]


def test_counts(small_corpus: Path, capsys):
    status, report = corpus(capsys, small_corpus, "--jobs", "2", "--helpers", "none")
    assert status == 0
    assert report["objects"] == {"total": 3, "linked": 0, "partial": 1, "refused": 2,
                                 "internal": 0}
    assert report["programs"] == {"total": 2, "linked": 1, "refused": 1, "internal": 0}
    refusals = {(g["stage"], g["reason"]): g for g in report["refusals"]}
    assert set(refusals) == {
        ("load", "not an eBPF object (it looks like text)"),
        ("load", "malformed ELF file: the section header table (N entries at offset N) lies "
                 "outside the N-byte file"),
        ("link", "load of N byte at the constant address N: the program owns no memory there"),
    }
    poke = refusals[("link", "load of N byte at the constant address N: the program owns no "
                     "memory there")]
    assert poke["count"] == 1
    assert poke["examples"] == [{
        "file": "nested/deeper/two_programs.o", "program": "poke",
        "message": "section socket: insn 1: load of 1 byte at the constant address 0x1000: "
                   "the program owns no memory there"}]
    assert report["external_helpers"] == [{"id": 5, "name": "ktime_get_ns", "programs": 1}]
    assert report["internal_errors"] == []
    # With the default helper library linked in, nothing is left external.
    _, linked_in = corpus(capsys, small_corpus, "--jobs", "2")
    assert linked_in["external_helpers"] == [] and linked_in["programs"]["linked"] == 1
    assert {f["file"]: f["status"] for f in report["files"]} == {
        "nested/deeper/two_programs.o": "partial", "nested/truncated": "refused",
        "text.o": "refused"}


def test_compare_runs_programs_three_ways(tmp_path: Path, capsys):
    # The project's own XDP and tc programs and the kprobe and XDP program of
    # compared.c: every one runs, inlined, not inlined and in the interpreter,
    # and the three agree.
    for src in ("packet_c/xdp.o", "packet_c/tc.o", "contexts_c/packets.o"):
        shutil.copy(Path(__file__).parent / src, tmp_path / Path(src).name)
    shutil.copy(COMPARED, tmp_path / "compared.o")
    shutil.copy(FIXTURE, tmp_path / "two_programs.o")  # reads the clock, fixed for all three
    status, report = corpus(capsys, tmp_path, "--compare", "--jobs", "2")
    assert status == 0
    compared = report["compared"]
    assert compared["differ"] == []
    assert compared["same"] == report["programs"]["linked"] > 10
    assert compared["not_run"] == {}


def _pcap_frames() -> list[bytes]:
    """The captured bytes of each record of examples/traffic.pcap, read as
    libpcap's format says (24-byte header, 16-byte record headers)."""
    data = (Path(__file__).parent.parent / "examples" / "traffic.pcap").read_bytes()
    frames, at = [], 24
    while at < len(data):
        caplen, = struct.unpack_from("<I", data, at + 8)
        frames.append(data[at + 16:at + 16 + caplen])
        at += 16 + caplen
    return frames


def _compared_obj():
    return loader.load(str(COMPARED))


def test_compare_known_answers():
    """compared.c's answers, worked out by hand from its source, the synthetic
    pt_regs and the 25 frames of examples/traffic.pcap (docs/corpus.md lists
    them): the interpreter gives them, and both native builds give what it gives."""
    obj = _compared_obj()
    options = pipeline.LinkOptions()
    kprobe = corpus_compare.run_three(obj, "record_args", options)
    runs, maps = kprobe["interpreter"]
    assert [r.r0 for r in runs] == [0x70]
    assert maps["args"]["entries"] == [{"key": (0x1070).to_bytes(8, "little").hex(),
                                        "value": (0x1069).to_bytes(8, "little").hex()}]
    assert corpus_compare.agreement(kprobe) == "same"
    xdp = corpus_compare.run_three(obj, "count_protos", options)
    runs, maps = xdp["interpreter"]
    assert [r.r0 for r in runs] == [2] * 25  # XDP_PASS
    assert [r.memory for r in runs] == _pcap_frames()  # untouched
    # untagged IPv4 (the TCP conversation 6, DNS 2, ICMP 2, fragments 3, sizes 4,
    # the cut frame 1), untagged IPv6 (3), ARP (1), the rest: the three VLAN-tagged
    assert [bytes.fromhex(e["value"]) for e in maps["protos"]["entries"]] == [
        n.to_bytes(8, "little") for n in (18, 3, 1, 3)]
    assert set(xdp) == {"inlined", "not inlined", "interpreter"}
    assert corpus_compare.agreement(xdp) == "same"


def test_compare_runs_random_numbers_and_clocks_three_ways():
    """xdp_random (tests/redirect_c) writes four get_prandom_u32 draws over each
    frame: in all three runs the draws go on from frame to frame as SplitMix64
    gives them for the seed; two_programs.c's `stamp` returns 2 when the time
    is odd, 1 when even, and every run reads the fixed time."""
    obj = loader.load(str(Path(__file__).parent / "redirect_c" / "redirect.o"))
    results = corpus_compare.run_three(obj, "xdp_random", pipeline.LinkOptions())
    assert corpus_compare.agreement(results) == "same"
    key = abi.prandom_key(corpus_compare.SEED)
    frames = _pcap_frames()
    for n, (run, frame) in enumerate(zip(results["interpreter"][0], frames)):
        draws = [abi.prandom_u32(key, 4 * n + i) for i in range(4)]
        assert run.r0 == 2 and run.memory == struct.pack("<4I", *draws) + frame[16:]
    stamp = corpus_compare.run_three(loader.load(str(FIXTURE)), "stamp", pipeline.LinkOptions())
    assert corpus_compare.agreement(stamp) == "same"
    expected = 2 if corpus_compare.CLOCK_NS & 1 else 1
    assert [r.r0 for r in stamp["interpreter"][0]] == [expected] * len(frames)


def test_compare_checks_the_flow_hash_with_the_interpreters_own(monkeypatch):
    """get_hash_recalc in the interpreter is interp_net's, not the helper
    library's: the three agree on every frame, and an interpreter whose flow
    hash is off makes them differ."""
    from inliner.tools import interp_net
    obj = loader.load(str(Path(__file__).parent / "packet_c" / "tc.o"))
    results = corpus_compare.run_three(obj, "tc_hash", pipeline.LinkOptions())
    assert corpus_compare.agreement(results) == "same"
    hashes = [r.r0 >> 32 for r in results["interpreter"][0]]
    assert hashes[0] == hashes[1] != hashes[6]   # a TCP SYN and its answer; DNS
    real = interp_net.flow_hash
    monkeypatch.setattr(interp_net, "flow_hash", lambda packet: real(packet) ^ 1)
    results = corpus_compare.run_three(obj, "tc_hash", pipeline.LinkOptions())
    assert corpus_compare.agreement(results).startswith("differs: input 0: r0:")


def test_a_mismatch_is_reported_as_differs(monkeypatch):
    # An interpreter that is off by one in r0: the worker says where it differs.
    real = corpus_compare.interp.run_object
    monkeypatch.setattr(corpus_compare.interp, "run_object", lambda *a, **k: real(*a, **k) + 1)
    events = list(object_events(str(COMPARED), 2, "default", 0, True))
    verdicts = {e[1]: e[2] for e in events if e[0] == "compared"}
    assert verdicts == {
        "record_args": "differs: input 0: r0: interpreter 0x71, inlined 0x70",
        "count_protos": "differs: input 0: r0: interpreter 0x3, inlined 0x2"}


def test_agreement_compares_every_field_and_the_maps():
    Outcome = corpus_compare.Outcome
    ref = ([Outcome(1, b"ab"), Outcome(2, b"cd")], {"m": {"entries": []}})
    same = {"interpreter": ref, "inlined": ref, "not inlined": ref}
    assert corpus_compare.agreement(same) == "same"
    memory = dict(same, inlined=([Outcome(1, b"ab"), Outcome(2, b"cde")], ref[1]))
    assert corpus_compare.agreement(memory) == ("differs: input 1: memory: interpreter 2 bytes, "
                                                "inlined 3 bytes")
    maps = dict(same, **{"not inlined": (ref[0], {"m": {"entries": [{"key": "00"}]}})})
    assert corpus_compare.agreement(maps) == ("differs: the maps after the runs: interpreter "
                                              "and not inlined")


def test_compare_links_each_object_twice(monkeypatch):
    # The survey's link (inlined) and one not inlined, each of every program:
    # not two links per program, each lifting the object whole when it tail-calls.
    links = []
    real = pipeline.link

    def counting(obj, options, emit="obj"):
        links.append((options.program, options.inline))
        return real(obj, options, emit)
    monkeypatch.setattr(pipeline, "link", counting)
    events = list(object_events(str(COMPARED), 2, "default", 0, True))
    assert links == [(None, "auto"), (None, "none")]
    assert [(e[0], e[1]) for e in events if e[0] in ("linked", "compared")] == [
        ("linked", "record_args"), ("linked", "count_protos"),
        ("compared", "record_args"), ("compared", "count_protos")]


def test_each_program_counts_the_helpers_it_calls():
    # Linked together, each program is still counted with the helpers that
    # linking it alone leaves external: xdp.c's programs call different ones.
    path = Path(__file__).parent / "packet_c" / "xdp.o"
    events = [e for e in object_events(str(path), 0, "none", 0, False) if e[0] == "linked"]
    obj = loader.load(str(path))
    assert len(events) == len(obj.programs) > 1
    for _, name, external in events:
        _, alone = pipeline.link(obj, pipeline.LinkOptions(opt_level=0, program=name,
                                                           helpers="none"))
        assert sorted(external) == sorted(alone.external_helpers), name
    # Where linking one program alone takes in the others (tail-call targets),
    # each is counted with what its own code calls: compared.c's source says.
    events = [e for e in object_events(str(COMPARED), 0, "none", 0, False) if e[0] == "linked"]
    assert [(e[1], e[2]) for e in events] == [("record_args", [2]),   # map_update_elem
                                              ("count_protos", [1])]  # map_lookup_elem


def test_table_output(small_corpus: Path, capsys):
    assert cli.main(["corpus", str(small_corpus), "--jobs", "1", "--helpers", "none"]) == 0
    out = capsys.readouterr().out
    assert "ktime_get_ns" in out
    assert "not an eBPF" in out
    assert "internal errors" in out  # the summary column, with no error listed below
    assert "please report" not in out


def test_off_a_terminal_each_object_is_a_line_and_the_run_ends_with_a_summary(
        small_corpus: Path, capsys):
    """Redirected, a long run is not silent: a line per object as it completes
    (one worker: in path order), then the totals, with what the fixture
    holds: two_programs.o links one of its two programs, the others are not
    objects."""
    assert cli.main(["corpus", str(small_corpus), "--jobs", "1", "--helpers", "none",
                     "--json"]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)  # the report alone on standard output
    lines = [re.sub(r"\d+\.\d s", "T s", line) for line in captured.err.splitlines()]
    assert lines[0] == ("corpus [1/3] nested/deeper/two_programs.o: 2 programs: 1 linked, "
                        "1 refused, 0 internal errors (T s)")
    assert lines[1].startswith("corpus [2/3] nested/truncated: refused: malformed ELF file")
    assert lines[2].startswith("corpus [3/3] text.o: refused: ")  # the loader's reason
    assert lines[3:] == ["corpus: 3 objects (0 linked, 1 partly linked, 2 refused, "
                         "0 internal errors), 2 programs: 1 linked, 1 refused, "
                         "0 internal errors; T s"]


def test_a_hung_step_is_an_internal_error(tmp_path: Path, capsys):
    """A step that outlives --timeout costs its program, not the run."""
    shutil.copy(FIXTURE, tmp_path / "two_programs.o")
    status, report = corpus(capsys, tmp_path, "--timeout", "0.001")
    assert status == cli.EXIT_INTERNAL
    assert report["internal_errors"]
    for err in report["internal_errors"]:
        assert err["file"] == "two_programs.o"
        assert err["error"] == "timed out after 0.001 s"
        assert "ebpf-lto link" in err["reproducer"]
        assert str(tmp_path / "two_programs.o") in err["reproducer"]


def test_not_a_directory(tmp_path: Path, capsys):
    assert cli.main(["corpus", str(tmp_path / "missing")]) == cli.EXIT_BAD_INPUT
    assert "not a directory" in capsys.readouterr().err


@needs_shared("ebpf-samples")
def test_shared_corpus(capsys):
    status, report = corpus(capsys, SAMPLES, "--compare")
    assert report["internal_errors"] == []
    # Every program that runs in userspace gives the same r0, memory and maps
    # inlined, out of line and in the interpreter (117 of them when this was written).
    assert report["compared"]["differ"] == []
    assert report["compared"]["same"] >= 110
    assert status == 0
    files = {f["file"]: f for f in report["files"]}
    invalid = [name for name in files if name.startswith("invalid/")]
    assert invalid
    accepted = [name for name in invalid if files[name]["status"] != "refused"
                and name.removeprefix("invalid/") not in WELL_FORMED_INVALID]
    assert accepted == []


TAIL = Path(__file__).parent / "maps_prog" / "tail.o"   # three programs that tail-call


def _events(path: Path, monkeypatch) -> tuple[list, list]:
    """The corpus worker's events for one object, and the programs each link was of."""
    links = []
    real = pipeline.link

    def counting(obj, options, emit="obj"):
        links.append(options.program)
        return real(obj, options, emit)
    monkeypatch.setattr(pipeline, "link", counting)
    return list(object_events(str(path), 0, "default", 0, False)), links


def test_programs_that_tail_call_each_other_are_linked_once(monkeypatch):
    # Linking one of them lifts all three (each is a possible target), so the
    # corpus links them together: one link, not three of the whole object.
    events, links = _events(TAIL, monkeypatch)
    assert links == [None]
    assert [(e[0], e[1]) for e in events[1:]] == [
        ("linked", "dispatch"), ("linked", "second"), ("linked", "chain")]


def test_a_refused_program_among_them_is_found_one_by_one(tmp_path: Path, monkeypatch):
    # `second`'s only instruction (mov r0, 222) made an unknown opcode: the link
    # of all three fails, and the programs one by one say which is refused.
    data = bytearray(TAIL.read_bytes())
    at = data.find(bytes([0xB7, 0x00, 0x00, 0x00, 0xDE, 0x00, 0x00, 0x00]))
    assert at > 0
    data[at] = 0xFF
    damaged = tmp_path / "tail.o"
    damaged.write_bytes(data)
    events, links = _events(damaged, monkeypatch)
    assert links == [None, "dispatch", "second", "chain"]
    assert [(e[0], e[1]) for e in events[1:]] == [
        ("linked", "dispatch"), ("refused", "second"), ("linked", "chain")]


def test_compare_sees_the_redirect_target():
    """bpf_redirect(5, 0) in XDP (tests/redirect_c): XDP_REDIRECT with ifindex 5 as
    the target, as net/core/filter.c records it, in both native builds and in the
    interpreter; a run whose target differs is a difference."""
    obj = loader.load(str(Path(__file__).parent / "redirect_c" / "redirect.o"))
    name, layout = "xdp_redirect_dev", corpus_compare.contexts.XDP
    packet = (5).to_bytes(4, "little") + bytes(60)
    inlined, outlined = corpus_compare._builds(obj, pipeline.LinkOptions(program=name))
    seen = []
    for build in (inlined, outlined):
        with build.load() as loaded:
            seen.append(corpus_compare.Input(layout, packet).run_native(loaded, name))
    runs, _ = corpus_compare._interpret(obj, name, layout, [packet], outlined, [23], False)
    seen += runs
    assert [(o.r0, o.redirect.helper, o.redirect.target) for o in seen] == [(4, 23, 5)] * 3
    other = corpus_compare.Outcome(4, seen[0].memory, seen[0].redirect._replace(target=6))
    results = {"interpreter": ([seen[2]], {}), "inlined": ([other], {})}
    assert corpus_compare.agreement(results).startswith("differs: input 0: redirect:")
