"""LLVM instrumentation profiles (IR-level PGO): text and indexed formats.

ebpf-lto collects per-function counter arrays and stores them in the same
files clang's `-fprofile-generate` flow produces, so that the standard
`llvm-profdata-19 merge` / `show` work on them and merged profiles can be
read back. Two encodings are supported:

* the text format (`llvm-profdata merge --text`), with the `:ir` header;
* the indexed format (`.profdata`), version 12 as LLVM 19 writes it
  (versions 8 to 12 are read, and can be written for older tools).

A profile here is only names, structural hashes and 64-bit counters. Every
other feature those formats can carry -- value profiling, MC/DC bitmap
bytes, context-sensitive or front-end profiles, entry-first or single-byte
coverage variants, MemProf, temporal traces, binary ids, vtable names -- is
refused with a ProfdataError rather than dropped or mis-read. The layouts
follow LLVM's InstrProfWriter.cpp / InstrProfReader.cpp / InstrProf.cpp,
OnDiskHashTable.h and ProfileSummaryBuilder.cpp; docs/pgo.md has the byte
layout. Input is untrusted: malformed data raises ProfdataError, nothing else.
"""
from __future__ import annotations

import hashlib
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

__all__ = [
    "ProfdataError", "FunctionProfile", "Profile", "SummaryEntry", "ProfileSummary",
    "name_hash", "summarize", "validate_name",
    "write_text", "read_text", "write_indexed", "read_indexed",
    "INDEXED_MAGIC", "INDEXED_VERSION", "MIN_INDEXED_VERSION", "MAX_COUNT",
]

U64_MASK = (1 << 64) - 1
U32_MASK = (1 << 32) - 1

# IndexedInstrProf::Magic: "\xfflprofi\x81" read as a little-endian u64.
INDEXED_MAGIC = 0x8169666F72706CFF
# IndexedInstrProf::ProfVersion::CurrentVersion in LLVM 19 (Version12).
INDEXED_VERSION = 12
# Oldest indexed version read or written: Version8 introduced the MemProf
# header field; older layouts are not worth supporting.
MIN_INDEXED_VERSION = 8
# Header::size() per version: magic, version, unused, hash type, hash offset,
# then MemProfOffset (v8), BinaryIdOffset (v9), TemporalProfTracesOffset (v10),
# VTableNamesOffset (v12).
_HEADER_FIELDS = {8: 6, 9: 7, 10: 8, 11: 8, 12: 9}

# Variant flags in the upper 32 bits of the version word (InstrProfData.inc).
VARIANT_MASK_IR_PROF = 1 << 56
_VARIANT_FLAGS = {
    1 << 57: "context-sensitive IR profile (VARIANT_MASK_CSIR_PROF)",
    1 << 58: "entry-first instrumentation (VARIANT_MASK_INSTR_ENTRY)",
    1 << 59: "debug-info correlation (VARIANT_MASK_DBG_CORRELATE)",
    1 << 60: "single-byte coverage (VARIANT_MASK_BYTE_COVERAGE)",
    1 << 61: "function-entry-only coverage (VARIANT_MASK_FUNCTION_ENTRY_ONLY)",
    1 << 62: "MemProf data (VARIANT_MASK_MEMPROF)",
    1 << 63: "temporal profile traces (VARIANT_MASK_TEMPORAL_PROF)",
}
HASH_TYPE_MD5 = 0   # IndexedInstrProf::HashT::MD5, the only hash type
# Bit of a record's function hash that marks a context-sensitive record
# (NamedInstrProfRecord::CS_FLAG_IN_FUNC_HASH).
CS_FLAG_BIT = 60
# First-counter values LLVM reads as pseudo counts (InstrProfRecord::
# PseudoHot/PseudoWarm): such a record is "hot"/"warm" with no real counts.
PSEUDO_HOT = U64_MASK
PSEUDO_WARM = U64_MASK - 1
# getInstrMaxCountValue(): merging saturates here, below the pseudo values.
MAX_COUNT = U64_MASK - 2

# ProfileSummaryBuilder::DefaultCutoffs, in parts per ProfileSummary::Scale.
SUMMARY_CUTOFFS = (10000, 100000, 200000, 300000, 400000, 500000, 600000, 700000,
                   800000, 900000, 950000, 990000, 999000, 999900, 999990, 999999)
SUMMARY_SCALE = 1_000_000
_SUMMARY_FIELDS = 6   # IndexedInstrProf::Summary::NumKinds

_TEXT_HEADER = "# IR level Instrumentation Flag\n:ir\n"


class ProfdataError(ValueError):
    """A profile that is malformed, or uses a feature this module refuses."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------
# Data model


@dataclass
class FunctionProfile:
    """One function's record: its PGO name, structural hash and counters."""
    name: str
    hash: int
    counters: list[int]

    def __post_init__(self) -> None:
        self.counters = list(self.counters)
        _check_function(self)


@dataclass
class Profile:
    """An IR-level instrumentation profile: records keyed by function name."""
    functions: dict[str, FunctionProfile] = field(default_factory=dict)

    @classmethod
    def of(cls, functions: Iterable[FunctionProfile]) -> "Profile":
        """Build a profile from records; a repeated name is an error."""
        out: dict[str, FunctionProfile] = {}
        for fp in functions:
            if fp.name in out:
                raise ProfdataError(f"function {fp.name!r} appears twice")
            out[fp.name] = fp
        return cls(out)

    def validate(self) -> None:
        """Raise ProfdataError unless every record is representable."""
        for key, fp in self.functions.items():
            if not isinstance(fp, FunctionProfile):
                raise ProfdataError(f"entry {key!r} is not a FunctionProfile")
            if key != fp.name:
                raise ProfdataError(f"entry {key!r} holds the record of {fp.name!r}")
            _check_function(fp)


def validate_name(name: str) -> None:
    """Raise ProfdataError unless `name` survives both formats unchanged.

    LLVM's text reader skips blank lines and lines starting with '#', reads
    leading ':' lines as the header, a line starting with '$' after the
    counters as MC/DC bitmap bytes and an all-digits line there as value
    profiling data; NUL ends its buffer and CR/LF end lines. Names that would
    be read back differently are refused in both formats, so that any Profile
    converts between them.
    """
    if not isinstance(name, str):
        raise ProfdataError(f"function name {name!r} is not a string")
    if not name:
        raise ProfdataError("empty function name")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise ProfdataError(f"function name {name!r} contains a control character")
    if name[0] in "#:$":
        raise ProfdataError(f"function name {name!r} starts with {name[0]!r}, "
                            "which the text format reads as a comment, header or bitmap")
    if name.isascii() and name.isdigit():
        raise ProfdataError(f"function name {name!r} is all digits, which the text "
                            "format reads as value profiling data")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ProfdataError(f"function name {name!r} is not encodable as UTF-8") from None


def _check_function(fp: FunctionProfile) -> None:
    validate_name(fp.name)
    h = fp.hash
    if not isinstance(h, int) or isinstance(h, bool) or not 0 <= h <= U64_MASK:
        raise ProfdataError(f"{fp.name}: hash {h!r} is not a 64-bit unsigned integer")
    if h >> CS_FLAG_BIT & 1:
        raise ProfdataError(f"{fp.name}: hash {h:#x} has bit {CS_FLAG_BIT} set, which LLVM "
                            "reads as a context-sensitive record (not supported)")
    if not fp.counters:
        raise ProfdataError(f"{fp.name}: no counters (LLVM requires at least one)")
    for c in fp.counters:
        if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c <= U64_MASK:
            raise ProfdataError(f"{fp.name}: counter {c!r} is not a 64-bit unsigned integer")


def _sorted_records(profile: Profile) -> list[tuple[bytes, FunctionProfile]]:
    if not isinstance(profile, Profile):
        raise ProfdataError(f"expected a Profile, not {type(profile).__name__}")
    profile.validate()
    # LLVM orders records by (StringRef name, hash): bytewise on the name.
    return sorted(((fp.name.encode("utf-8"), fp) for fp in profile.functions.values()),
                  key=lambda item: (item[0], item[1].hash))


def name_hash(name: str | bytes) -> int:
    """IndexedInstrProf::ComputeHash: the MD5 of the name, low 64 bits.

    MD5Result::low() reads the first eight digest bytes as little-endian.
    """
    data = name.encode("utf-8") if isinstance(name, str) else bytes(name)
    return int.from_bytes(hashlib.md5(data).digest()[:8], "little")


# --------------------------------------------------------------------------
# Profile summary (InstrProfSummaryBuilder)


@dataclass(frozen=True)
class SummaryEntry:
    """The smallest count among the hottest counters reaching `cutoff`."""
    cutoff: int       # parts per million of the total count
    min_count: int
    num_counts: int


@dataclass(frozen=True)
class ProfileSummary:
    """What LLVM stores after the indexed header (IndexedInstrProf::Summary)."""
    total_functions: int
    total_blocks: int
    max_function_count: int
    max_block_count: int
    max_internal_block_count: int
    total_block_count: int
    entries: tuple[SummaryEntry, ...]

    def fields(self) -> tuple[int, ...]:
        """The six summary fields in their on-disk order (SummaryFieldKind)."""
        return (self.total_functions, self.total_blocks, self.max_function_count,
                self.max_block_count, self.max_internal_block_count, self.total_block_count)


def summarize(profile: Profile) -> ProfileSummary:
    """The summary llvm-profdata-19 computes for `profile`, bit for bit.

    The first counter counts as the function's entry count, the rest as
    internal blocks; records whose first counter is a pseudo count are left
    out; the total wraps modulo 2^64 and the function/block tallies modulo
    2^32, as LLVM's fixed-width fields do.
    """
    total = max_count = max_function = max_internal = 0
    num_counts = num_functions = 0
    frequencies: Counter[int] = Counter()
    for _, fp in _sorted_records(profile):
        counts = fp.counters
        if counts[0] in (PSEUDO_HOT, PSEUDO_WARM):
            continue
        num_functions += 1
        max_function = max(max_function, counts[0])
        if len(counts) > 1:
            max_internal = max(max_internal, max(counts[1:]))
        max_count = max(max_count, max(counts))
        total += sum(counts)
        num_counts += len(counts)
        frequencies.update(counts)
    total &= U64_MASK
    # computeDetailedSummary: walk counts from the hottest down until their
    # sum reaches each cutoff's share of the total.
    ordered = sorted(frequencies.items(), reverse=True)
    entries = []
    index = seen = current = count = 0
    for cutoff in sorted(SUMMARY_CUTOFFS):
        desired = total * cutoff // SUMMARY_SCALE
        while current < desired and index < len(ordered):
            count, freq = ordered[index]
            freq &= U32_MASK
            current = (current + count * freq) & U64_MASK
            seen = (seen + freq) & U32_MASK
            index += 1
        entries.append(SummaryEntry(cutoff, count, seen))
    return ProfileSummary(num_functions & U32_MASK, num_counts & U32_MASK, max_function,
                          max_count, max_internal, total, tuple(entries))


# --------------------------------------------------------------------------
# Text format


def write_text(profile: Profile) -> str:
    """The profile as `llvm-profdata-19 merge --text` would print it."""
    parts = [_TEXT_HEADER]
    for _, fp in _sorted_records(profile):
        parts.append(f"{fp.name}\n# Func Hash:\n{fp.hash}\n# Num Counters:\n"
                     f"{len(fp.counters)}\n# Counter Values:\n")
        parts.append("".join(f"{c}\n" for c in fp.counters))
        parts.append("\n")
    return "".join(parts)


_TEXT_HEADERS_REFUSED = {
    "fe": "front-end (clang -fprofile-instr-generate) profile",
    "csir": "context-sensitive IR profile",
    "entry_first": "entry-first instrumentation",
    "single_byte_coverage": "single-byte coverage",
    "temporal_prof_traces": "temporal profile traces",
}


def _llvm_uint(text: str, radix: int, bits: int = 64) -> int | None:
    """StringRef::getAsInteger for an unsigned type; None where LLVM fails.

    Radix 0 senses the radix the way LLVM does: 0x/0X hex, 0b/0B binary,
    0o octal, a leading 0 followed by a digit octal, else decimal. No sign,
    no whitespace, and the whole string must be consumed.
    """
    if radix == 0:
        low = text[:2].lower()
        if low == "0x":
            radix, text = 16, text[2:]
        elif low == "0b":
            radix, text = 2, text[2:]
        elif text.startswith("0o"):
            radix, text = 8, text[2:]
        elif len(text) > 1 and text[0] == "0" and text[1].isascii() and text[1].isdigit():
            radix, text = 8, text[1:]
        else:
            radix = 10
    if not text:
        return None
    value = 0
    for ch in text:
        if "0" <= ch <= "9":
            digit = ord(ch) - 48
        elif "a" <= ch <= "z":
            digit = ord(ch) - 87
        elif "A" <= ch <= "Z":
            digit = ord(ch) - 55
        else:
            return None
        if digit >= radix:
            return None
        value = value * radix + digit
        if value >> bits:
            return None
    return value


def _text_lines(data: str) -> list[tuple[int, str]]:
    """The lines LLVM's line_iterator(SkipBlanks, '#') yields, numbered.

    Lines end at LF or CRLF; empty lines and lines starting with '#' are
    skipped.
    """
    lines = []
    for number, line in enumerate(data.split("\n"), 1):
        if line.endswith("\r"):
            line = line[:-1]
        if line and not line.startswith("#"):
            lines.append((number, line))
    return lines


def read_text(data: str | bytes) -> Profile:
    """Parse an IR-level text profile (what `llvm-profdata merge --text` writes)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ProfdataError(f"text profile is not UTF-8 (byte {err.start})") from None
    elif isinstance(data, str):
        text = data
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:
            raise ProfdataError("text profile contains unencodable characters") from None
    else:
        raise ProfdataError(f"expected str or bytes, not {type(data).__name__}")
    if "\0" in text:
        raise ProfdataError("NUL byte in text profile")
    # TextInstrProfReader::hasFormat: the first 8 bytes are printable or space.
    if not all(0x20 <= b < 0x7F or b in b" \t\n\v\f\r" for b in raw[:8]):
        raise ProfdataError("not a text profile (non-printable bytes at the start)")

    lines = _text_lines(text)
    pos = 0
    ir = False
    while pos < len(lines) and lines[pos][1].startswith(":"):
        number, line = lines[pos]
        kind = line[1:].lower()
        if kind == "ir":
            ir = True
        elif kind == "not_entry_first":
            pass
        elif kind in _TEXT_HEADERS_REFUSED:
            raise ProfdataError(f"line {number}: not supported: "
                                f"{_TEXT_HEADERS_REFUSED[kind]} ({line!r})")
        else:
            raise ProfdataError(f"line {number}: unknown header {line!r}")
        pos += 1
    if not ir:
        raise ProfdataError("text profile lacks the ':ir' header: front-end "
                            "(clang) profiles are not supported")

    functions: dict[str, FunctionProfile] = {}

    def take(what: str, radix: int) -> int:
        nonlocal pos
        if pos >= len(lines):
            raise ProfdataError(f"truncated: missing {what} of {name!r}")
        number, line = lines[pos]
        value = _llvm_uint(line, radix)
        if value is None:
            raise ProfdataError(f"line {number}: {what} of {name!r} is not a "
                                f"64-bit unsigned integer: {line!r}")
        pos += 1
        return value

    while pos < len(lines):
        number, name = lines[pos]
        pos += 1
        fhash = take("function hash", 0)
        ncounters = take("number of counters", 10)
        if ncounters == 0:
            raise ProfdataError(f"line {number}: {name!r} has zero counters")
        if ncounters > len(lines) - pos:
            raise ProfdataError(f"truncated: {name!r} declares {ncounters} counters")
        counters = [take("counter", 10) for _ in range(ncounters)]
        if pos < len(lines) and lines[pos][1].startswith("$"):
            bnumber, bline = lines[pos]
            nbytes = _llvm_uint(bline[1:].strip(), 0)
            if nbytes is None:
                raise ProfdataError(f"line {bnumber}: bad bitmap byte count {bline!r}")
            if nbytes:
                raise ProfdataError(f"line {bnumber}: {name!r} has MC/DC bitmap bytes "
                                    "(not supported)")
            pos += 1
        if pos < len(lines) and _llvm_uint(lines[pos][1], 10, 32) is not None:
            raise ProfdataError(f"line {lines[pos][0]}: {name!r} has value profiling "
                                "data (not supported)")
        if name in functions:
            raise ProfdataError(f"line {number}: function {name!r} appears twice "
                                "(records with several hashes are not supported)")
        try:
            functions[name] = FunctionProfile(name, fhash, counters)
        except ProfdataError as err:
            raise ProfdataError(f"line {number}: {err.reason}") from None
    return Profile(functions)


# --------------------------------------------------------------------------
# Indexed format


def _hash_table_buckets(keys: list[tuple[int, bytes, FunctionProfile]]) -> list[list]:
    """Bucket contents exactly as OnDiskChainedHashTableGenerator leaves them.

    Items are inserted in `keys` order into 64 buckets, prepended to their
    bucket's chain; the table doubles when 4*entries >= 3*buckets; before
    emitting it is resized to 1 bucket for <= 2 entries, else to
    bit_ceil(entries*4/3 + 1). Resizing walks old buckets in order, each chain
    from its head, prepending into the new buckets.
    """
    def rehash(old: list[list], size: int) -> list[list]:
        new: list[list] = [[] for _ in range(size)]
        for chain in old:
            for item in chain:
                new[item[0] & (size - 1)].insert(0, item)
        return new

    buckets: list[list] = [[] for _ in range(64)]
    entries = 0
    for item in keys:
        entries += 1
        if 4 * entries >= 3 * len(buckets):
            buckets = rehash(buckets, 2 * len(buckets))
        buckets[item[0] & (len(buckets) - 1)].insert(0, item)
    target = 1 if entries <= 2 else 1 << (entries * 4 // 3).bit_length()
    if target != len(buckets):
        buckets = rehash(buckets, target)
    return buckets


def write_indexed(profile: Profile, *, version: int = INDEXED_VERSION) -> bytes:
    """The profile as an indexed `.profdata` file, as llvm-profdata-19 writes it.

    `version` selects the indexed format version (8 to 12); the default, 12,
    is LLVM 19's. Older versions are for tools that predate it (an LLVM
    reads versions up to its own CurrentVersion); llvm-profdata-19 reads all.
    """
    if version not in _HEADER_FIELDS:
        raise ProfdataError(f"cannot write indexed version {version!r}: "
                            f"supported are {MIN_INDEXED_VERSION} to {INDEXED_VERSION}")
    records = _sorted_records(profile)
    summary = summarize(profile)
    pack = struct.pack

    out = bytearray()
    nfields = _HEADER_FIELDS[version]
    out += pack("<QQQQ", INDEXED_MAGIC, version | VARIANT_MASK_IR_PROF, 0, HASH_TYPE_MD5)
    offsets_at = len(out)
    out += bytes(8 * (nfields - 4))     # HashOffset .. VTableNamesOffset, patched below

    out += pack("<QQ", _SUMMARY_FIELDS, len(summary.entries))
    out += pack(f"<{_SUMMARY_FIELDS}Q", *summary.fields())
    for entry in summary.entries:
        out += pack("<QQQ", entry.cutoff, entry.min_count, entry.num_counts)

    # The hash table payload: per non-empty bucket a u16 item count, then per
    # item the u64 key hash, u64 key length, u64 data length, key, data.
    keyed = [(name_hash(name), name, fp) for name, fp in records]
    buckets = _hash_table_buckets(keyed)
    bucket_offsets = []
    for chain in buckets:
        if not chain:
            bucket_offsets.append(0)
            continue
        if len(chain) > 0xFFFF:
            raise ProfdataError("hash table bucket overflow")   # needs ~65536 MD5 collisions
        bucket_offsets.append(len(out))
        out += pack("<H", len(chain))
        for key_hash, name, fp in chain:
            data = _record_data(fp, version)
            out += pack("<QQQ", key_hash, len(name), len(data))
            out += name
            out += data
    out += bytes(-len(out) % 8)
    hash_offset = len(out)
    out += pack("<QQ", len(buckets), len(keyed))
    out += pack(f"<{len(buckets)}Q", *bucket_offsets)

    offsets = [hash_offset, 0]              # no MemProf section
    if version >= 9:
        offsets.append(len(out))            # binary ids: an empty list
        out += pack("<Q", 0)
    if version >= 10:
        offsets.append(0)                   # no temporal profile traces
    if version >= 12:
        offsets.append(len(out))            # vtable names: an empty string
        out += pack("<Q", 0)
    struct.pack_into(f"<{len(offsets)}Q", out, offsets_at, *offsets)
    return bytes(out)


def _record_data(fp: FunctionProfile, version: int) -> bytes:
    """One record: hash, counter count, counters, bitmap count (v11+), and an
    empty ValueProfData (u32 TotalSize 8, u32 NumValueKinds 0)."""
    n = len(fp.counters)
    data = struct.pack(f"<QQ{n}Q", fp.hash, n, *fp.counters)
    if version > 10:
        data += struct.pack("<Q", 0)
    return data + struct.pack("<II", 8, 0)


class _Reader:
    """Bounds-checked little-endian reads from an untrusted buffer."""

    def __init__(self, data: bytes):
        self.data = data

    def u64(self, offset: int, what: str) -> int:
        if offset < 0 or offset + 8 > len(self.data):
            raise ProfdataError(f"truncated: {what} at offset {offset:#x} is past the "
                                f"end ({len(self.data)} bytes)")
        return int.from_bytes(self.data[offset:offset + 8], "little")

    def u32(self, offset: int, what: str) -> int:
        if offset < 0 or offset + 4 > len(self.data):
            raise ProfdataError(f"truncated: {what} at offset {offset:#x} is past the end")
        return int.from_bytes(self.data[offset:offset + 4], "little")

    def u16(self, offset: int, what: str) -> int:
        if offset < 0 or offset + 2 > len(self.data):
            raise ProfdataError(f"truncated: {what} at offset {offset:#x} is past the end")
        return int.from_bytes(self.data[offset:offset + 2], "little")

    def span(self, offset: int, size: int, what: str) -> bytes:
        if offset < 0 or size < 0 or offset + size > len(self.data):
            raise ProfdataError(f"truncated: {what} ({size} bytes at offset {offset:#x}) "
                                f"runs past the end ({len(self.data)} bytes)")
        return self.data[offset:offset + size]


def read_indexed(data: bytes) -> Profile:
    """Parse an indexed `.profdata` file (versions 8 to 12, IR-level only)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProfdataError(f"expected bytes, not {type(data).__name__}")
    buf = bytes(data)
    rd = _Reader(buf)
    if len(buf) < 8 or rd.u64(0, "magic") != INDEXED_MAGIC:
        raise ProfdataError("not an indexed profile (bad magic)")
    version_word = rd.u64(8, "version")
    version = version_word & U32_MASK
    if version > INDEXED_VERSION:
        raise ProfdataError(f"indexed version {version} is newer than LLVM 19's "
                            f"({INDEXED_VERSION})")
    if version < MIN_INDEXED_VERSION:
        raise ProfdataError(f"indexed version {version} is older than supported "
                            f"({MIN_INDEXED_VERSION})")
    flags = version_word & ~U32_MASK
    for mask, what in _VARIANT_FLAGS.items():
        if flags & mask:
            raise ProfdataError(f"not supported: {what}")
    if flags & ~(VARIANT_MASK_IR_PROF | sum(_VARIANT_FLAGS)):
        raise ProfdataError(f"unknown variant flags {flags:#x} in the version word")
    if not flags & VARIANT_MASK_IR_PROF:
        raise ProfdataError("front-end (clang) profile: only IR-level profiles are supported")
    nfields = _HEADER_FIELDS[version]
    header = [rd.u64(8 * i, "header") for i in range(nfields)]
    if header[3] != HASH_TYPE_MD5:
        raise ProfdataError(f"unsupported hash type {header[3]}")
    hash_offset = header[4]
    binary_id_offset = header[6] if version >= 9 else None
    vtable_names_offset = header[8] if version >= 12 else None

    # The profile summary (version 4 and later).
    cur = 8 * nfields
    nsummary = rd.u64(cur, "summary field count")
    ncutoffs = rd.u64(cur + 8, "summary entry count")
    if nsummary < _SUMMARY_FIELDS:
        raise ProfdataError(f"summary has {nsummary} fields, fewer than {_SUMMARY_FIELDS}")
    if nsummary > len(buf) or ncutoffs > len(buf):
        raise ProfdataError("truncated: summary runs past the end")
    rd.span(cur, 16 + 8 * nsummary + 24 * ncutoffs, "summary")
    payload = cur + 16 + 8 * nsummary + 24 * ncutoffs

    # The OnDiskChainedHashTable: buckets at HashOffset, payload after the summary.
    if hash_offset % 8 or hash_offset < payload:
        raise ProfdataError(f"hash table offset {hash_offset:#x} is misplaced")
    nbuckets = rd.u64(hash_offset, "hash table bucket count")
    nentries = rd.u64(hash_offset + 8, "hash table entry count")
    if nbuckets == 0 or nbuckets & (nbuckets - 1):
        raise ProfdataError(f"hash table bucket count {nbuckets} is not a power of two")
    if nbuckets > len(buf):
        raise ProfdataError("truncated: hash table buckets run past the end")
    table = rd.span(hash_offset + 16, 8 * nbuckets, "hash table buckets")
    bucket_offsets = struct.unpack(f"<{nbuckets}Q", table)

    functions: dict[str, FunctionProfile] = {}
    chains: dict[int, list[int]] = {}       # bucket offset -> key hashes in it
    pos = payload
    left = nentries
    while left:
        start = pos
        count = rd.u16(pos, "hash table bucket")
        pos += 2
        if count == 0 or count > left:
            raise ProfdataError(f"hash table bucket at {start:#x} has {count} items, "
                                f"with {left} entries left")
        chain = chains[start] = []
        for _ in range(count):
            key_hash = rd.u64(pos, "key hash")
            key_len = rd.u64(pos + 8, "key length")
            data_len = rd.u64(pos + 16, "data length")
            key = rd.span(pos + 24, key_len, "function name")
            pos += 24 + key_len
            record = rd.span(pos, data_len, "function record")
            pos += data_len
            if pos > hash_offset:
                raise ProfdataError("hash table payload overlaps its bucket array")
            if key_hash != name_hash(key):
                raise ProfdataError(f"key hash {key_hash:#x} of {key!r} is not its MD5")
            chain.append(key_hash)
            fp = _parse_record(key, record, version)
            if fp.name in functions:
                raise ProfdataError(f"function {fp.name!r} appears twice in the hash table")
            functions[fp.name] = fp
        left -= count
    if hash_offset != pos + (-pos % 8) or any(buf[pos:hash_offset]):
        raise ProfdataError("unexpected bytes between the hash table payload and buckets")
    # The bucket array must lead to exactly the chains walked above, each
    # holding the keys that hash to it, or LLVM's lookups would disagree.
    used = {}
    for index, offset in enumerate(bucket_offsets):
        if offset == 0:
            continue
        if offset not in chains or offset in used:
            raise ProfdataError(f"hash table bucket {index} points to {offset:#x}, "
                                "not to a bucket of the payload")
        used[offset] = index
        if any(h & (nbuckets - 1) != index for h in chains[offset]):
            raise ProfdataError(f"hash table bucket {index} holds a key of another bucket")
    if len(used) != len(chains):
        raise ProfdataError("hash table payload has buckets no bucket entry points to")

    # The sections after the table must be empty.
    if binary_id_offset is not None:
        size = rd.u64(binary_id_offset, "binary id section size")
        if size % 8:
            raise ProfdataError(f"binary id section size {size} is not a multiple of 8")
        if size:
            raise ProfdataError("binary ids are not supported")
    if vtable_names_offset is not None:
        if rd.u64(vtable_names_offset, "vtable names length"):
            raise ProfdataError("vtable names (vtable value profiling) are not supported")
    return Profile(functions)


def _parse_record(key: bytes, data: bytes, version: int) -> FunctionProfile:
    """Decode one key's data: exactly one record, without bitmap or value data."""
    try:
        name = key.decode("utf-8")
    except UnicodeDecodeError:
        raise ProfdataError(f"function name {key!r} is not UTF-8") from None
    if len(data) % 8:
        raise ProfdataError(f"{name}: record size {len(data)} is not a multiple of 8")
    rd = _Reader(data)
    fhash = rd.u64(0, f"{name}: function hash")
    ncounters = rd.u64(8, f"{name}: counter count")
    if ncounters > len(data) // 8:
        raise ProfdataError(f"{name}: truncated: {ncounters} counters declared")
    counters_bytes = rd.span(16, 8 * ncounters, f"{name}: counters")
    counters = list(struct.unpack(f"<{ncounters}Q", counters_bytes))
    pos = 16 + 8 * ncounters
    if version > 10:
        if rd.u64(pos, f"{name}: bitmap byte count"):
            raise ProfdataError(f"{name}: MC/DC bitmap bytes are not supported")
        pos += 8
    total_size = rd.u32(pos, f"{name}: value profile size")
    value_kinds = rd.u32(pos + 4, f"{name}: value kind count")
    if value_kinds:
        raise ProfdataError(f"{name}: value profiling data is not supported")
    if total_size != 8:
        raise ProfdataError(f"{name}: value profile size {total_size} is not 8 for no data")
    pos += 8
    if pos != len(data):
        raise ProfdataError(f"{name}: several records (hashes) under one name are not "
                            "supported" if len(data) - pos >= 16 else
                            f"{name}: {len(data) - pos} stray bytes after the record")
    return FunctionProfile(name, fhash, counters)
