"""LLVM instrumentation profiles: inliner.profdata against llvm-profdata-19.

The tests that need the real tool skip when llvm-profdata-19 is missing;
the rest check the reader/writer against each other, against byte layouts
taken from the tool's own output, and against malformed input.
"""
from __future__ import annotations

import random
import re
import shutil
import struct
import subprocess

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from inliner.pgo.merge import MergeReport, merge, merge_report
from inliner.pgo.profdata import (
    INDEXED_MAGIC, MAX_COUNT, FunctionProfile, Profile, ProfdataError, name_hash, read_indexed,
    read_text, summarize, validate_name, write_indexed, write_text,
)

U64 = (1 << 64) - 1
LLVM_PROFDATA = shutil.which("llvm-profdata-19")
needs_tool = pytest.mark.skipif(LLVM_PROFDATA is None, reason="llvm-profdata-19 not installed")
TOOL_SETTINGS = settings(max_examples=20, deadline=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture])


def fp(name, fhash, counters):
    return FunctionProfile(name, fhash, list(counters))


# A small profile exercising the awkward values: ':' and '/' in names, 0 and
# 2^64-1 counters (not first, where LLVM would read 2^64-1 as "pseudo hot").
SAMPLE = Profile.of([
    fp("foo", 1234, [1, 2, 3]),
    fp("bar:baz/qux", 0x10, [0, U64]),
    fp("lib/x.c;helper", 0x0FFF_FFFF_FFFF_FFFF, [7]),
])


def tool(*args, check=True):
    run = subprocess.run([LLVM_PROFDATA, *map(str, args)], capture_output=True, text=True)
    if check and run.returncode:
        raise AssertionError(f"llvm-profdata-19 {args} failed: {run.stderr}")
    return run


def show(path) -> dict[str, tuple[int, list[int] | str]]:
    """Parse `show --all-functions --counts`: name -> (hash, counts or marker)."""
    out = tool("show", "--all-functions", "--counts", path).stdout
    functions: dict[str, tuple[int, list[int] | str]] = {}
    lines = out.splitlines()
    i = 1 if lines[0] == "Counters:" else len(lines)    # no heading when nothing is shown
    while i < len(lines) and lines[i].startswith("  ") and not lines[i].startswith("    "):
        name = lines[i][2:-1]
        fhash = int(re.fullmatch(r"    Hash: (0x[0-9a-f]{16})", lines[i + 1]).group(1), 16)
        m = re.fullmatch(r"    Counters: (\d+)(?:\s+<(Pseudo\w+)>)?", lines[i + 2])
        if m.group(2):
            functions[name] = (fhash, m.group(2))
            i += 3
        else:
            counts = re.fullmatch(r"    Block counts: \[(.*)\]", lines[i + 3]).group(1)
            values = [int(c) for c in counts.split(", ")] if counts else []
            assert len(values) == int(m.group(1))
            functions[name] = (fhash, values)
            i += 4
    shown = re.search(r"^Functions shown: (\d+)$", out, re.M)
    assert int(shown.group(1)) == len(functions)
    return functions


def expected_show(profile: Profile) -> dict[str, tuple[int, list[int] | str]]:
    """What `show` prints for `profile`, computed independently of the module."""
    out = {}
    for f in profile.functions.values():
        if f.counters[0] == U64:
            out[f.name] = (f.hash, "PseudoHot")
        elif f.counters[0] == U64 - 1:
            out[f.name] = (f.hash, "PseudoWarm")
        else:
            out[f.name] = (f.hash, f.counters)
    return out


# ---------------------------------------------------------------- strategies

def _valid(name: str) -> bool:
    try:
        validate_name(name)
    except ProfdataError:
        return False
    return True


names = st.text(alphabet="abcxyz_019:/.;$#- éλ", min_size=1, max_size=12).filter(_valid)
show_names = names.filter(lambda n: n == n.strip())   # show indents names with spaces
hashes = st.integers(0, U64).map(lambda h: h & ~(1 << 60))
counter = st.one_of(st.just(0), st.just(U64), st.just(MAX_COUNT), st.integers(0, U64),
                    st.integers(0, 1000))
counter_lists = st.lists(counter, min_size=1, max_size=8)


@st.composite
def profiles(draw, name_strategy=names, max_functions=25, counters=counter_lists):
    table = draw(st.dictionaries(name_strategy, st.tuples(hashes, counters),
                                 max_size=max_functions))
    return Profile({n: fp(n, h, c) for n, (h, c) in table.items()})


def random_profile(n: int, seed: int, *, max_count: int = U64) -> Profile:
    rng = random.Random(seed)
    fns = []
    for i in range(n):
        counts = [rng.choice([0, 1, rng.randrange(1000), rng.randrange(max_count + 1)])
                  for _ in range(rng.randint(1, 6))]
        if counts[0] >= U64 - 1:
            counts[0] = 5   # keep pseudo counts out of the sum checks
        fns.append(fp(f"prog/f{i}:{rng.randrange(10**6)}", rng.getrandbits(60), counts))
    return Profile.of(fns)


# ---------------------------------------------------------------- data model

def test_name_hash_is_md5_low_half():
    # The key hash llvm-profdata-19 wrote for "foo": the first 8 MD5 bytes.
    assert name_hash("foo") == int.from_bytes(bytes.fromhex("acbd18db4cc2f85c"), "little")
    assert name_hash(b"bar:baz/qux") == int.from_bytes(bytes.fromhex("479412d835bb8e8f"),
                                                       "little")


@pytest.mark.parametrize("name", ["", "a\nb", "tab\there", "nul\0", "#c", ":x", "$b", "123",
                                  "cr\r"])
def test_unrepresentable_names_refused(name):
    with pytest.raises(ProfdataError):
        fp(name, 1, [1])


@pytest.mark.parametrize("fhash, counters", [(-1, [1]), (1 << 64, [1]), (1 << 60, [1]),
                                             (1, []), (1, [-1]), (1, [1 << 64]),
                                             (1, [1.0]), (True, [1])])
def test_out_of_range_records_refused(fhash, counters):
    with pytest.raises(ProfdataError):
        fp("f", fhash, counters)


def test_profile_keys_must_match_names():
    bad = Profile({"a": fp("b", 1, [1])})
    with pytest.raises(ProfdataError):
        write_text(bad)
    with pytest.raises(ProfdataError):
        write_indexed(bad)
    with pytest.raises(ProfdataError):
        Profile.of([fp("a", 1, [1]), fp("a", 2, [1])])


def test_mutated_counters_checked_at_write():
    prof = Profile.of([fp("f", 1, [1])])
    prof.functions["f"].counters.append(-3)
    with pytest.raises(ProfdataError):
        write_indexed(prof)


# ---------------------------------------------------------------- summary

def test_summary_matches_llvm_layout():
    # The fields llvm-profdata-19 wrote for foo [1,2,3] + bar [0, 2^64-1]:
    # the total wraps modulo 2^64, as in the tool's output.
    prof = Profile.of([fp("foo", 1234, [1, 2, 3]), fp("bar:baz/qux", 16, [0, U64])])
    s = summarize(prof)
    assert s.fields() == (2, 5, 1, U64, U64, 5)
    assert [(e.cutoff, e.min_count, e.num_counts) for e in s.entries[:3]] == [
        (10000, 0, 0), (100000, 0, 0), (200000, U64, 1)]
    assert len(s.entries) == 16


def test_summary_skips_pseudo_count_records():
    prof = Profile.of([fp("hot", 1, [U64, 9]), fp("warm", 2, [U64 - 1, 9]), fp("f", 3, [4, 6])])
    s = summarize(prof)
    assert s.fields() == (1, 2, 4, 6, 6, 10)
    assert s.entries[-1].min_count == 4 and s.entries[-1].num_counts == 2


# ---------------------------------------------------------------- text format

def test_text_layout():
    text = write_text(Profile.of([fp("b", 0x10, [0, U64]), fp("a", 7, [3])]))
    assert text == ("# IR level Instrumentation Flag\n:ir\n"
                    "a\n# Func Hash:\n7\n# Num Counters:\n1\n# Counter Values:\n3\n\n"
                    "b\n# Func Hash:\n16\n# Num Counters:\n2\n# Counter Values:\n0\n"
                    f"{U64}\n\n")
    assert write_text(Profile()) == "# IR level Instrumentation Flag\n:ir\n"


def test_text_reader_follows_llvm_lexing():
    text = ("# leading comment\r\n:IR\r\n:not_entry_first\n\n"
            "f:1\n0x4d2\n# comment between fields\n2\n\n5\n6\n$0\n"
            "g\n010\n1\n" + str(U64) + "\n")
    prof = read_text(text)
    assert prof == Profile.of([fp("f:1", 1234, [5, 6]), fp("g", 8, [U64])])
    assert read_text(text.encode()) == prof


@pytest.mark.parametrize("text, why", [
    ("", "header"),
    ("f\n1\n1\n1\n", "header"),
    (":fe\nf\n1\n1\n1\n", "front-end"),
    (":csir\nf\n1\n1\n1\n", "context-sensitive"),
    (":ir\n:entry_first\nf\n1\n1\n1\n", "entry-first"),
    (":ir\n:single_byte_coverage\nf\n1\n1\n1\n", "coverage"),
    (":ir\n:temporal_prof_traces\n1\n1\n1\nf,\nf\n1\n1\n1\n", "temporal"),
    (":ir\n:bogus\n", "unknown header"),
    (":ir\nf\n1\n0\n", "zero counters"),
    (":ir\nf\n1\n3\n1\n2\n", "truncated"),
    (":ir\nf\n", "truncated"),
    (":ir\nf\nzz\n1\n1\n", "hash"),
    (":ir\nf\n1\n1\n0x5\n", "counter"),
    (":ir\nf\n1\n1\n-5\n", "counter"),
    (":ir\nf\n1\n1\n18446744073709551616\n", "counter"),
    (":ir\nf\n1\n1\n5\n$2\n0x1\n0x2\n", "bitmap"),
    (":ir\nf\n1\n1\n5\n1\n1\n1\n1\n8:100\n", "value profiling"),
    (":ir\nf\n1\n1\n5\nf\n2\n1\n5\n", "twice"),
    (":ir\nf\n1\n1\n5\nf\n1\n1\n5\n", "twice"),
    (":ir\nf\n1152921504606846976\n1\n5\n", "context-sensitive"),
    ("\x01\x02:ir\n", "not a text profile"),
    (":ir\nf\0\n1\n1\n5\n", "NUL"),
    (b":ir\nf\xff\n1\n1\n5\n", "UTF-8"),
])
def test_text_refusals(text, why):
    with pytest.raises(ProfdataError, match=why):
        read_text(text)


@given(profiles())
def test_text_round_trip(prof):
    assert read_text(write_text(prof)) == prof


@settings(max_examples=300)
@given(st.text(alphabet=":ir\n0123456789abx#$ \r-", max_size=80))
def test_text_reader_never_crashes(text):
    try:
        read_text(text)
    except ProfdataError:
        pass


# ---------------------------------------------------------------- indexed format

def test_indexed_header_layout():
    data = write_indexed(SAMPLE)
    magic, version, unused, hash_type, hash_off, memprof, binid, temporal, vtable = \
        struct.unpack_from("<9Q", data)
    assert data[:8] == b"\xfflprofi\x81" and magic == INDEXED_MAGIC == 0x8169666F72706CFF
    assert version == 12 | 1 << 56          # Version12 with VARIANT_MASK_IR_PROF
    assert (unused, hash_type, memprof, temporal) == (0, 0, 0, 0)
    assert struct.unpack_from("<QQ", data, 72) == (6, 16)     # summary sizes
    assert hash_off % 8 == 0 and binid < vtable == len(data) - 8
    assert struct.unpack_from("<QQ", data, hash_off)[1] == 3  # entries
    assert struct.unpack_from("<Q", data, binid) == (0,)


@given(profiles())
def test_indexed_round_trip(prof):
    assert read_indexed(write_indexed(prof)) == prof


@given(profiles())
def test_text_indexed_text(prof):
    text = write_text(prof)
    assert write_text(read_indexed(write_indexed(read_text(text)))) == text


@pytest.mark.parametrize("version", [8, 9, 10, 11, 12])
def test_older_versions_round_trip(version):
    data = write_indexed(SAMPLE, version=version)
    assert read_indexed(data) == SAMPLE
    assert struct.unpack_from("<Q", data, 8)[0] & 0xFFFFFFFF == version


def test_many_functions_round_trip():
    prof = random_profile(4000, seed=7)
    data = write_indexed(prof)
    hash_off = struct.unpack_from("<Q", data, 32)[0]
    nbuckets, nentries = struct.unpack_from("<QQ", data, hash_off)
    assert (nbuckets, nentries) == (8192, 4000)
    assert read_indexed(data) == prof
    assert read_text(write_text(prof)) == prof


def _patched(data: bytes, offset: int, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<Q", out, offset, value)
    return bytes(out)


def test_indexed_refusals():
    data = write_indexed(SAMPLE)
    version = struct.unpack_from("<Q", data, 8)[0]
    cases = {
        "bad magic": _patched(data, 0, INDEXED_MAGIC ^ 1),
        "newer": _patched(data, 8, version + 1),
        "older": _patched(data, 8, (version & ~0xFFFFFFFF) | 7),
        "context-sensitive": _patched(data, 8, version | 1 << 57),
        "entry-first": _patched(data, 8, version | 1 << 58),
        "MemProf": _patched(data, 8, version | 1 << 62),
        "temporal": _patched(data, 8, version | 1 << 63),
        "unknown variant": _patched(data, 8, version | 1 << 40),
        "front-end": _patched(data, 8, version & ~(1 << 56)),
        "hash type": _patched(data, 24, 1),
        "hash table offset": _patched(data, 32, 8),
        "truncated": data[:20],
    }
    for why, blob in cases.items():
        with pytest.raises(ProfdataError, match=why):
            read_indexed(blob)
    with pytest.raises(ProfdataError, match="bytes"):
        read_indexed("not bytes")


def test_binary_ids_and_vtable_names_refused():
    data = bytearray(write_indexed(SAMPLE))
    binid, vtable = struct.unpack_from("<Q", data, 48)[0], struct.unpack_from("<Q", data, 64)[0]
    with_ids = data[:binid] + struct.pack("<QQ", 16, 4) + b"abcd\0\0\0\0" + struct.pack("<Q", 0)
    struct.pack_into("<Q", with_ids, 64, binid + 24)
    with pytest.raises(ProfdataError, match="binary ids"):
        read_indexed(bytes(with_ids))
    with_names = data[:vtable] + struct.pack("<Q", 3) + b"\x01\x00v\0\0\0\0\0"
    with pytest.raises(ProfdataError, match="vtable"):
        read_indexed(bytes(with_names))


def test_every_truncation_refused():
    data = write_indexed(SAMPLE)
    for size in range(len(data)):
        with pytest.raises(ProfdataError):
            read_indexed(data[:size])


def test_every_bit_flip_read_or_refused():
    data = write_indexed(SAMPLE)
    for bit in range(8 * len(data)):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        try:
            prof = read_indexed(bytes(flipped))
        except ProfdataError:
            continue
        prof.validate()     # whatever is read is a well-formed profile


@settings(max_examples=300)
@given(st.data())
def test_random_corruption_read_or_refused(data):
    blob = bytearray(write_indexed(random_profile(40, seed=3)))
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        read_indexed(bytes(blob[:cut]))
    except ProfdataError:
        pass


# ---------------------------------------------------------------- merging

def test_merge_sums_equal_name_and_hash():
    a = Profile.of([fp("f", 1, [1, 2]), fp("only_a", 2, [3])])
    b = Profile.of([fp("f", 1, [10, 20]), fp("only_b", 3, [4])])
    assert merge(a, b) == Profile.of([fp("f", 1, [11, 22]), fp("only_a", 2, [3]),
                                      fp("only_b", 3, [4])])
    assert a.functions["f"].counters == [1, 2]      # inputs untouched


def test_merge_saturates_below_pseudo_values():
    a = Profile.of([fp("f", 1, [5, U64, U64 - 5])])
    b = Profile.of([fp("f", 1, [7, 0, U64 - 5])])
    report = merge_report(a, b)
    assert report.profile.functions["f"].counters == [12, MAX_COUNT, MAX_COUNT]
    assert report.saturated == ["f"] and not report.mismatches


def test_merge_pseudo_counts():
    hot, warm = U64, U64 - 1
    a = Profile.of([fp("f", 1, [warm, 4]), fp("g", 1, [warm, 1])])
    b = Profile.of([fp("f", 1, [hot, 9]), fp("g", 1, [warm, 2])])
    assert merge(a, b) == Profile.of([fp("f", 1, [hot, 4]), fp("g", 1, [warm, 1])])


@pytest.mark.parametrize("second, kind", [
    (fp("f", 2, [1, 1]), "hash"),
    (fp("f", 1, [1, 1, 1]), "counters"),
    (fp("f", 1, [U64, 1]), "pseudo"),
])
def test_merge_mismatches(second, kind):
    a = Profile.of([fp("f", 1, [3, 4])])
    report = merge_report(a, Profile.of([second]))
    assert isinstance(report, MergeReport)
    assert [m.kind for m in report.mismatches] == [kind]
    assert report.profile == a                      # the first record is kept
    with pytest.raises(ProfdataError, match="cannot merge: f: "):
        merge(a, Profile.of([second]))


# ---------------------------------------------------------------- against llvm-profdata-19

@needs_tool
def test_tool_shows_written_text(tmp_path):
    path = tmp_path / "p.proftext"
    path.write_text(write_text(SAMPLE))
    assert show(path) == expected_show(SAMPLE)


@needs_tool
def test_tool_shows_written_indexed(tmp_path):
    for version in (8, 9, 10, 11, 12):
        path = tmp_path / f"p{version}.profdata"
        path.write_bytes(write_indexed(SAMPLE, version=version))
        assert show(path) == expected_show(SAMPLE)


@needs_tool
@TOOL_SETTINGS
@given(prof=profiles(name_strategy=show_names, max_functions=12))
def test_tool_shows_random_profiles(tmp_path, prof):
    text, indexed = tmp_path / "r.proftext", tmp_path / "r.profdata"
    text.write_text(write_text(prof))
    indexed.write_bytes(write_indexed(prof))
    assert show(text) == expected_show(prof)
    assert show(indexed) == expected_show(prof)


@needs_tool
@pytest.mark.parametrize("n", [0, 1, 2, 3, 47, 48, 49, 1000, 4000])
def test_written_indexed_is_byte_identical_to_tool(tmp_path, n):
    # From the same text, llvm-profdata-19 and write_indexed produce the same
    # bytes: header, summary, hash table layout and bucket order included.
    prof = random_profile(n, seed=n)
    (tmp_path / "p.proftext").write_text(write_text(prof))
    tool("merge", "-o", tmp_path / "p.profdata", tmp_path / "p.proftext")
    assert (tmp_path / "p.profdata").read_bytes() == write_indexed(prof)


@needs_tool
def test_written_text_is_identical_to_tool(tmp_path):
    prof = random_profile(300, seed=11)
    (tmp_path / "p.profdata").write_bytes(write_indexed(prof))
    out = tool("merge", "--text", "-o", "-", tmp_path / "p.profdata").stdout
    assert out == write_text(prof)


HAND_WRITTEN = """\
# a profile as a person would write it
:ir
main
0x4d2
4
100
0
18446744073709551615
42

net/rx.c;parse:hdr
010
1
0

zero
0
3
0
0
0
"""
HAND_VALUES = Profile({
    "main": fp("main", 1234, [100, 0, U64, 42]),
    "net/rx.c;parse:hdr": fp("net/rx.c;parse:hdr", 8, [0]),      # 010 is octal
    "zero": fp("zero", 0, [0, 0, 0]),
})


@needs_tool
def test_reads_what_the_tool_writes(tmp_path):
    (tmp_path / "h.proftext").write_text(HAND_WRITTEN)
    tool("merge", "-o", tmp_path / "h.profdata", tmp_path / "h.proftext")
    assert read_indexed((tmp_path / "h.profdata").read_bytes()) == HAND_VALUES
    text = tool("merge", "--text", "-o", "-", tmp_path / "h.profdata").stdout
    assert read_text(text) == HAND_VALUES
    assert read_text(HAND_WRITTEN) == HAND_VALUES


@needs_tool
def test_tool_merge_of_written_files_sums(tmp_path):
    rng = random.Random(5)
    base = random_profile(200, seed=5, max_count=1 << 40)
    a = Profile({n: fp(n, f.hash, [rng.randrange(1 << 40) for _ in f.counters])
                 for n, f in base.functions.items()})
    b = Profile({n: fp(n, f.hash, [rng.randrange(1 << 40) for _ in f.counters])
                 for n, f in base.functions.items() if rng.random() < 0.7})
    b.functions["only_in_b"] = fp("only_in_b", 99, [1, 2])
    (tmp_path / "a.profdata").write_bytes(write_indexed(a))
    (tmp_path / "b.profdata").write_bytes(write_indexed(b))
    tool("merge", "-o", tmp_path / "m.profdata", tmp_path / "a.profdata", tmp_path / "b.profdata")
    merged = read_indexed((tmp_path / "m.profdata").read_bytes())
    expected = {n: [x + y for x, y in zip(f.counters, b.functions[n].counters)]
                if n in b.functions else f.counters for n, f in a.functions.items()}
    expected["only_in_b"] = [1, 2]
    assert {n: f.counters for n, f in merged.functions.items()} == expected
    assert {n: f.hash for n, f in merged.functions.items()} == \
        {**{n: f.hash for n, f in a.functions.items()}, "only_in_b": 99}
    assert merged == merge(a, b)


@needs_tool
@pytest.mark.parametrize("first, second", [
    ([5, U64, U64 - 5], [7, 0, U64 - 5]),        # saturation at 2^64-3
    ([U64 - 1, 4], [U64, 9]),                    # pseudo warm + hot
    ([U64 - 1, 4], [U64 - 1, 9]),                # pseudo warm + warm
    ([U64, 4], [3, 9]),                          # pseudo + counted: first kept
    ([3, 4], [1, 2, 3]),                         # counter count mismatch: first kept
])
def test_merge_agrees_with_tool(tmp_path, first, second):
    a, b = Profile.of([fp("f", 9, first)]), Profile.of([fp("f", 9, second)])
    (tmp_path / "a.profdata").write_bytes(write_indexed(a))
    (tmp_path / "b.profdata").write_bytes(write_indexed(b))
    tool("merge", "-o", tmp_path / "m.profdata", tmp_path / "a.profdata", tmp_path / "b.profdata")
    assert read_indexed((tmp_path / "m.profdata").read_bytes()) == merge_report(a, b).profile


@needs_tool
@pytest.mark.parametrize("text, why", [
    (":ir\nf\n10\n2\n5\n6\n1\n1\n1\n1\n8:100\n", "value profiling"),
    (":ir\nf\n10\n2\n5\n6\n$2\n0x1\n0x2\n", "bitmap"),
    (":ir\nf\n10\n1\n5\n\nf\n11\n1\n6\n", "several records"),
    (":ir\n:temporal_prof_traces\n1\n1\n1\nf,\nf\n10\n1\n5\n", "temporal"),
    (":csir\nf\n10\n1\n5\n", "context-sensitive"),
    (":ir\n:entry_first\nf\n10\n1\n5\n", "entry-first"),
    (":ir\n:single_byte_coverage\nf\n10\n1\n5\n", "coverage"),
    (":fe\nf\n10\n1\n5\n", "front-end"),
    ("f\n10\n1\n5\n", "front-end"),
])
def test_refuses_tool_output_with_unsupported_features(tmp_path, text, why):
    (tmp_path / "u.proftext").write_text(text)
    tool("merge", "-o", tmp_path / "u.profdata", tmp_path / "u.proftext")
    with pytest.raises(ProfdataError, match=why):
        read_indexed((tmp_path / "u.profdata").read_bytes())
    with pytest.raises(ProfdataError):
        read_text(text)


@needs_tool
def test_tool_accepts_synthesized_binary_ids(tmp_path):
    # The binary-id layout refused above is one the tool really reads.
    data = bytearray(write_indexed(SAMPLE))
    binid = struct.unpack_from("<Q", data, 48)[0]
    blob = data[:binid] + struct.pack("<QQ", 16, 4) + b"abcd\0\0\0\0" + struct.pack("<Q", 0)
    struct.pack_into("<Q", blob, 64, binid + 24)
    (tmp_path / "b.profdata").write_bytes(blob)
    assert "61626364" in tool("show", "--binary-ids", tmp_path / "b.profdata").stdout


@needs_tool
@TOOL_SETTINGS
@given(st.data())
def test_corrupted_files_read_as_the_tool_reads_them(tmp_path, data):
    # Wherever a bit flip still reads, the tool sees the same profile.
    blob = bytearray(write_indexed(SAMPLE))
    bit = data.draw(st.integers(0, 8 * len(blob) - 1))
    blob[bit // 8] ^= 1 << (bit % 8)
    try:
        prof = read_indexed(bytes(blob))
    except ProfdataError:
        assume(False)
    (tmp_path / "c.profdata").write_bytes(blob)
    run = tool("merge", "--text", "-o", "-", tmp_path / "c.profdata", check=False)
    assert run.returncode == 0, run.stderr
    assert read_text(run.stdout) == prof
