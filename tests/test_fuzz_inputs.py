"""Bad-input fuzzing: damaged objects are refused with EbpfLtoError, never anything worse.

Mutations of the committed fixture objects, and in a test of their own of
the shared samples when EBPF_LTO_SHARED names them: bit flips, truncation, byte insertion,
and targeted damage to the ELF header, section headers and names, symbols
and their names, relocations, string tables, instructions, data and BTF,
with values near integer limits. Each mutated file is loaded
(`loader.load`) and every program of it linked (`pipeline.link`, -O0, with
link options drawn with the damage). The
only acceptable outcomes are success and `EbpfLtoError`: another exception,
a crash of the process (LLVM aborts), or a case running past its time bound
is a failure, reported with the file kept for reproduction.

Case i of a campaign damages file i mod n (files sorted by name), with a
generator seeded from the seed, that file's name and i div n: what a file
gets never depends on which other files exist, so the fixture test damages
the same objects the same way whether or not the shared data is there.

The cases run in a child process (a crash must not take pytest down) that
reads file paths on stdin and answers one JSON line per file; a child that
dies or stops answering is replaced and the remaining cases go on.

EBPF_LTO_FUZZ_SECONDS sets the fixtures' time budget (default 40),
EBPF_LTO_FUZZ_SHARED_SECONDS the shared samples' (default 20),
EBPF_LTO_FUZZ_SEED the mutation seed (default 0), EBPF_LTO_FUZZ_CASE_TIMEOUT
the bound per case (default 60 s); docs/testing.md.
"""
from __future__ import annotations

import json
import os
import random
import selectors
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, needs_shared, shared_path

SECONDS = float(os.environ.get("EBPF_LTO_FUZZ_SECONDS", "40"))
SHARED_SECONDS = float(os.environ.get("EBPF_LTO_FUZZ_SHARED_SECONDS", "20"))
SEED = int(os.environ.get("EBPF_LTO_FUZZ_SEED", "0"))
CASE_TIMEOUT = float(os.environ.get("EBPF_LTO_FUZZ_CASE_TIMEOUT", "60"))
MAX_SAMPLE_SIZE = 64 * 1024   # larger shared samples take seconds per link: left out

# Objects with BTF maps, legacy maps, globals, bpf-to-bpf calls, callx and
# v4 instructions, tail calls, the bpftime ABI, packet contexts.
FIXTURES = ("tests/fixtures/btf/*.o", "tests/fixtures/corpus/*.o", "tests/contexts_c/*.o",
            "tests/helpers_c/*.o", "examples/*.o", "tests/fixtures/progs/calls.v2.o",
            "tests/fixtures/progs/globals.v2.o", "tests/fixtures/progs/pointers.v4.o",
            "tests/fixtures/progs/v4.v4.o", "tests/maps_prog/tail.o",
            "tests/maps_prog/bpftime.o", "tests/packet_c/xdp.o", "tests/pgo_c/parser.o")

DRIVER = r"""
import json, sys, traceback
sys.path.insert(0, sys.argv[1])
from inliner import pipeline
from inliner.elf import loader
from inliner.errors import EbpfLtoError

def report(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()

for line in sys.stdin:
    path, options = line.rstrip("\n").split("\t")
    options = json.loads(options)
    report(event="start", path=path)
    bad = []
    loaded = linked = 0
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        obj = loader.load(path, data)
        loaded = 1
        for prog in obj.programs:
            report(event="program", path=path, program=prog.name)
            try:
                pipeline.link(obj, pipeline.LinkOptions(opt_level=0, program=prog.name,
                                                        **options))
                linked += 1
            except EbpfLtoError:
                pass
            except Exception:
                bad.append({"program": prog.name, "traceback": traceback.format_exc()})
    except EbpfLtoError:
        pass
    except Exception:
        bad.append({"program": None, "traceback": traceback.format_exc()})
    report(event="done", path=path, bad=bad, loaded=loaded, linked=linked)
"""


# --- reading the ELF and BTF to damage them (independent of inliner.loader) ---

SHDR_SIZE, SYM_SIZE, REL_SIZE = 64, 24, 16
SHT_SYMTAB, SHT_STRTAB, SHT_REL, SHT_PROGBITS = 2, 3, 9, 1
SHF_EXECINSTR = 4


def elf_sections(data: bytes) -> list[dict]:
    """Section headers of an ELF64 little-endian file, as far as they can be read."""
    try:
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    except struct.error:
        return []
    out = []
    for i in range(shnum):
        at = shoff + i * shentsize
        if shentsize < SHDR_SIZE or at + SHDR_SIZE > len(data):
            break
        name, typ, flags, _, offset, size, link, info, _, entsize = struct.unpack_from(
            "<IIQQQQIIQQ", data, at)
        out.append(dict(index=i, at=at, name=name, type=typ, flags=flags, offset=offset,
                        size=size, link=link, info=info, entsize=entsize))
    if 0 < shstrndx < len(out):
        names = out[shstrndx]
        table = data[names["offset"]:names["offset"] + names["size"]]
        for sec in out:
            sec["str"] = table[sec["name"]:].split(b"\0", 1)[0]
    return out


def table_entries(data: bytes, secs: list[dict], sh_type: int,
                  size: int) -> list[tuple[dict, int]]:
    """(section, file offset) of every entry of the tables of a type, skipping entry 0
    of symbol tables (the null symbol)."""
    out = []
    for sec in secs:
        if sec["type"] == sh_type:
            first = 1 if sh_type == SHT_SYMTAB else 0
            count = min(sec["size"], max(len(data) - sec["offset"], 0)) // size
            out += [(sec, sec["offset"] + i * size) for i in range(first, count)]
    return out


# Bytes after struct btf_type, fixed and per vlen entry (linux/btf.h), by kind number.
BTF_EXTRA = {1: 4, 3: 12, 14: 4, 17: 4}
BTF_VLEN = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}


def _btf_records(blob: bytes) -> list[tuple[int, int]]:
    """(offset in the blob, kind) of each type record, as far as they can be walked."""
    try:
        hdr_len, type_off, type_len = struct.unpack_from("<III", blob, 4)
    except struct.error:
        return []
    pos = hdr_len + type_off
    end = min(pos + type_len, len(blob))
    out = []
    while pos + 12 <= end:
        info, = struct.unpack_from("<I", blob, pos + 4)
        kind, vlen = info >> 24 & 0x1F, info & 0xFFFF
        out.append((pos, kind))
        pos += 12 + BTF_EXTRA.get(kind, 0) + vlen * BTF_VLEN.get(kind, 0)
    return out


# --- mutations -----------------------------------------------------------------

# Integer limits (each also +-1, cut to the field's width by put) and small values.
LIMITS = (0, 0x7FFFFFFF, 0xFFFFFFFF, 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
SMALL = (1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0xFFFF)
# Header fields: (offset, size).
SH_FIELDS = {"name": (0, 4), "type": (4, 4), "flags": (8, 8), "offset": (24, 8), "size": (32, 8),
             "link": (40, 4), "info": (44, 4), "addralign": (48, 8), "entsize": (56, 8)}
EH_FIELDS = {"e_type": (0x10, 2), "e_machine": (0x12, 2), "e_shoff": (0x28, 8),
             "e_flags": (0x30, 4), "e_shentsize": (0x3A, 2), "e_shnum": (0x3C, 2),
             "e_shstrndx": (0x3E, 2), "ei_class": (4, 1), "ei_data": (5, 1)}
SYM_FIELDS = {"st_name": (0, 4), "st_info": (4, 1), "st_other": (5, 1), "st_shndx": (6, 2),
              "st_value": (8, 8), "st_size": (16, 8)}
REL_FIELDS = {"r_offset": (0, 8), "r_type": (8, 4), "r_sym": (12, 4)}
BTF_HEADER = {"magic": (0, 2), "version": (2, 1), "flags": (3, 1), "hdr_len": (4, 4),
              "type_off": (8, 4), "type_len": (12, 4), "str_off": (16, 4), "str_len": (20, 4)}
# A type record's header, then the words after it: an int's encoding; an array's
# element type, index type and length; a struct's first member's name, type, offset.
BTF_TYPE = {"name_off": (0, 4), "vlen": (4, 2), "kind": (7, 1), "size_type": (8, 4),
            "word0": (12, 4), "word1": (16, 4), "word2": (20, 4)}
BPF_RELOCATIONS = (1, 2, 3, 4, 10)   # R_BPF_64_64, ABS64, ABS32, NODYLD32, 64_32


def put(buf: bytearray, at: int, size: int, value: int) -> None:
    if 0 <= at and at + size <= len(buf):
        buf[at:at + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def get(buf: bytearray, at: int, size: int) -> int:
    return int.from_bytes(buf[at:at + size], "little")


def _value(rng: random.Random, old: int, size: int, file_len: int) -> int:
    choice = rng.randrange(6)
    if choice == 0:
        return rng.choice(LIMITS) + rng.choice((-1, 0, 0, 1))
    if choice == 1:
        return rng.choice(SMALL)
    if choice == 2:
        return old + rng.choice((-8, -1, 1, 8, 64))
    if choice == 3:   # offsets and sizes at and past the end of the file
        return rng.choice((file_len, file_len - 1, file_len + 1, file_len - old, 2 * file_len))
    if choice == 4:
        return old ^ (1 << rng.randrange(8 * size))
    return rng.getrandbits(8 * size)


def _field(rng, buf, at: int, fields: dict, file_len: int) -> str:
    name, (off, size) = rng.choice(list(fields.items()))
    put(buf, at + off, size, _value(rng, get(buf, at + off, size), size, file_len))
    return name


def _bit_flips(rng, data, buf) -> str:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return "flip"


def _in_section(rng, data, buf, pick) -> str:
    """Damage words of a section chosen by `pick(section)`: code, string tables, data."""
    secs = [s for s in elf_sections(data) if pick(s) and s["size"] and s["offset"] < len(buf)]
    if not secs:
        return _bit_flips(rng, data, buf)
    sec = rng.choice(secs)
    start, end = sec["offset"], min(sec["offset"] + sec["size"], len(buf))
    for _ in range(rng.randint(1, 4)):
        size = rng.choice((1, 2, 4, 8))
        at = rng.randrange(start, end)
        put(buf, at, size, _value(rng, get(buf, at, size), size, len(data)))
    return f"section{sec['index']}"


def new_string(buf: bytearray, table: dict, text: bytes, terminate: bool = True) -> int:
    """Append `text` to a copy of string table `table` placed at the end of the file
    (its header moved there); its offset in the table."""
    old = bytes(buf[table["offset"]:table["offset"] + table["size"]])
    new = old + text + (b"\0" if terminate else b"")
    put(buf, table["at"] + 24, 8, len(buf))
    put(buf, table["at"] + 32, 8, len(new))
    buf += new
    return len(old)


# Names that mean something: sections the loader reads, symbols of the native
# object's ABI (docs/abi.md), as a fuzzer's dictionary.
NAMES = (b".text", b".data", b".rodata", b".bss", b".maps", b"maps", b".BTF", b"license",
         b".symtab", b".strtab", b"xdp", b"raw", b"tc", b"bpf_main", b"ebpf_lto_maps",
         b"ebpf_lto_program_names", b"ebpf_lto_counters", b"_bpf_helper_ext_0001",
         b"ebpf_lto_map_lookup", b"bpf.data.data")


def _bad_name(rng, old: bytes) -> tuple[str, bytes]:
    how = rng.choice(("non_utf8", "long", "long_prefix", "quote", "known"))
    if how == "known":
        return how, rng.choice(NAMES)
    if how == "non_utf8":
        return how, old[:rng.randrange(len(old) + 1)] + rng.choice((b"\xff", b"\xc3(", b"\x80"))
    if how == "long":
        return how, bytes([rng.randrange(0x21, 0x7F)]) * rng.choice((256, 4096, 65536))
    if how == "long_prefix":   # still names a program type, or .data, or .maps
        return how, old + b"A" * rng.choice((255, 4096))
    return how, old + rng.choice((b'"', b"\\", b" ", b"\n", b"@", b"$"))


def _rename(rng, buf, table: dict | None, name_at: int, others: list[int], old: bytes) -> str:
    """Point a 4-byte name field at another entry's name, the empty name, or a new name."""
    how = rng.choice(("dup", "empty", "new", "new", "unterminated"))
    if how == "dup" and others:
        put(buf, name_at, 4, rng.choice(others))
        return how
    if how == "empty" or table is None:
        put(buf, name_at, 4, 0)
        return "empty"
    if how == "unterminated":
        put(buf, name_at, 4, new_string(buf, table, old or b"x", terminate=False))
        return how
    how, text = _bad_name(rng, old)
    put(buf, name_at, 4, new_string(buf, table, text))
    return how


def _section_name(rng, data, buf) -> str:
    secs = elf_sections(data)
    named = [s for s in secs[1:] if "str" in s]
    if not named:
        return _bit_flips(rng, data, buf)
    shstrndx, = struct.unpack_from("<H", data, 0x3E)
    sec = rng.choice(named)
    how = _rename(rng, buf, secs[shstrndx], sec["at"], [s["name"] for s in named], sec["str"])
    return f"sh{sec['index']}_name_{how}"


def _symbol(rng, data, buf) -> str:
    secs = elf_sections(data)
    syms = table_entries(data, secs, SHT_SYMTAB, SYM_SIZE)
    if not syms:
        return _bit_flips(rng, data, buf)
    sec, at = rng.choice(syms)
    how = rng.choice(("field", "field", "field", "copy", "name"))
    if how == "copy":   # a duplicate of another symbol: same name, section and value
        _, other = rng.choice(syms)
        buf[at:at + SYM_SIZE] = data[other:other + SYM_SIZE]
        return "sym_copy"
    if how == "name":
        strtab = secs[sec["link"]] if 0 < sec["link"] < len(secs) else None
        st_name = get(buf, at, 4)
        old = b""
        if strtab is not None:
            old = data[strtab["offset"] + st_name:strtab["offset"] + strtab["size"]].split(b"\0")[0]
        return "sym_name_" + _rename(rng, buf, strtab, at, [get(data, a, 4) for _, a in syms],
                                     old)
    return _field(rng, buf, at, SYM_FIELDS, len(data))


def _relocation(rng, data, buf) -> str:
    rels = table_entries(data, elf_sections(data), SHT_REL, REL_SIZE)
    if not rels:
        return _bit_flips(rng, data, buf)
    _, at = rng.choice(rels)
    if rng.randrange(4) == 0:
        put(buf, at + 8, 4, rng.choice(BPF_RELOCATIONS))
        return "r_type"
    return _field(rng, buf, at, REL_FIELDS, len(data))


def _btf(rng, data, buf) -> str:
    btf = [s for s in elf_sections(data) if s.get("str") == b".BTF"]
    if not btf or btf[0]["offset"] + btf[0]["size"] > len(data):
        return _bit_flips(rng, data, buf)
    start = btf[0]["offset"]
    blob = data[start:start + btf[0]["size"]]
    records = _btf_records(blob)
    if rng.randrange(3) == 0 or not records:
        return "btf_" + _field(rng, buf, start, BTF_HEADER, len(blob))
    pos, kind = rng.choice(records)
    return f"btf_kind{kind}_" + _field(rng, buf, start + pos, BTF_TYPE, len(blob))


def _section_header(rng, data, buf) -> str:
    secs = elf_sections(data)
    if not secs:
        return _bit_flips(rng, data, buf)
    sec = rng.choice(secs)
    if rng.randrange(6) == 0:   # another section's header: a duplicate name, type, place
        other = rng.choice(secs)
        buf[sec["at"]:sec["at"] + SHDR_SIZE] = data[other["at"]:other["at"] + SHDR_SIZE]
        return f"sh{sec['index']}_copy{other['index']}"
    return f"sh{sec['index']}_" + _field(rng, buf, sec["at"], SH_FIELDS, len(data))


def mutate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    buf = bytearray(data)
    kind = rng.choice(("flip", "truncate", "insert", "elf_header", "section_header",
                       "section_name", "symbol", "rel", "code", "btf", "data", "strtab"))
    if kind == "flip":
        kind = _bit_flips(rng, data, buf)
    elif kind == "truncate":
        del buf[rng.randrange(len(buf)):]
    elif kind == "insert":
        at = rng.randrange(len(buf) + 1)
        buf[at:at] = bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 4, 8, 64))))
    elif kind == "elf_header":
        kind = _field(rng, buf, 0, EH_FIELDS, len(data))
    elif kind == "section_header":
        kind = _section_header(rng, data, buf)
    elif kind == "section_name":
        kind = _section_name(rng, data, buf)
    elif kind == "symbol":
        kind = _symbol(rng, data, buf)
    elif kind == "rel":
        kind = _relocation(rng, data, buf)
    elif kind == "btf":
        kind = _btf(rng, data, buf)
    elif kind == "code":
        kind = "code_" + _in_section(rng, data, buf, lambda s: s["type"] == SHT_PROGBITS
                                     and s["flags"] & SHF_EXECINSTR)
    elif kind == "strtab":
        kind = "strtab_" + _in_section(rng, data, buf, lambda s: s["type"] == SHT_STRTAB)
    else:  # .maps, global data, license: PROGBITS sections without the exec flag
        kind = "data_" + _in_section(rng, data, buf, lambda s: s["type"] == SHT_PROGBITS
                                     and not s["flags"] & SHF_EXECINSTR)
    return bytes(buf), kind


def fixture_files() -> list[tuple[str, Path]]:
    """The committed objects, named by their path in the repository."""
    files = {p.relative_to(ROOT).as_posix(): p for pattern in FIXTURES for p in ROOT.glob(pattern)}
    return sorted(files.items())


def sample_files(shared: Path) -> list[tuple[str, Path]]:
    samples = shared / "ebpf-samples"
    return sorted((p.relative_to(samples).as_posix(), p) for p in samples.rglob("*.o")
                  if p.stat().st_size <= MAX_SAMPLE_SIZE)


# Link options a case is linked with: each takes the lifter down other paths.
LINK_VARIANTS = ({}, {}, {"maps_extern": True}, {"abi": "bpftime"}, {"instrument": True},
                 {"inline": "none"})


def cases(files: list[tuple[str, bytes]], seed: int):
    """Endless (index, name, damaged bytes, mutation, link options) from the named originals."""
    i = 0
    while True:
        name, data = files[i % len(files)]
        rng = random.Random(f"{seed}/{name}/{i // len(files)}")
        damaged, kind = mutate(rng, data)
        yield i, name, damaged, kind, rng.choice(LINK_VARIANTS)
        i += 1


# --- the child process ------------------------------------------------------

class Driver:
    """A child process running DRIVER; answers one case at a time."""

    def __init__(self, stderr_path: Path):
        self.stderr = open(stderr_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(ROOT)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.pending = b""   # read from the pipe, not yet split into lines

    def _line(self, deadline: float) -> bytes | None:
        """The next line, b"" at end of file, None past the deadline."""
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sel.select(left):
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return b""
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line

    def run(self, path: Path, options: dict, timeout: float) -> dict:
        """The case's outcome: done (with bad), crash or hang, and the step it was at."""
        self.proc.stdin.write(f"{path}\t{json.dumps(options)}\n".encode())
        self.proc.stdin.flush()
        step = "load"
        deadline = time.monotonic() + timeout
        while True:
            line = self._line(deadline)
            if line is None:
                self.close(kill=True)
                return {"outcome": "hang", "step": step}
            if not line:
                code = self.proc.wait()
                self.close()
                return {"outcome": "crash", "step": step, "status": code}
            msg = json.loads(line)
            if msg["event"] == "program":
                step = f"link {msg['program']}"
                deadline = time.monotonic() + timeout   # the bound is per step
            elif msg["event"] == "done":
                return {"outcome": "done", **msg}

    def close(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.stdin.close()
            self.proc.wait()
        self.sel.close()
        self.stderr.close()


def campaign(files: list[tuple[str, Path]], seconds: float, tmp_path: Path) -> None:
    """Damage the files for `seconds`; fail naming every case that broke the contract."""
    assert files, "no objects to damage"
    originals = [(name, path.read_bytes()) for name, path in files]
    failures: list[tuple[Path, str]] = []
    count = loaded = linked = 0
    driver_runs = 0
    driver = None
    start = time.monotonic()
    try:
        for i, name, data, kind, options in cases(originals, SEED):
            if time.monotonic() - start >= seconds:
                break
            case = tmp_path / f"{i:05d}-{Path(name).stem}-{kind}.o"
            case.write_bytes(data)
            if driver is None:
                driver_runs += 1
                stderr_path = tmp_path / f"driver{driver_runs}.stderr"
                driver = Driver(stderr_path)
            result = driver.run(case, options, CASE_TIMEOUT)
            count += 1
            origin = f"from {name}, link options {options}"
            if result["outcome"] == "done":
                loaded += result["loaded"]
                linked += result["linked"]
                for bad in result["bad"]:
                    failures.append((case, f"{case} ({bad['program'] or 'load'}, {origin}):\n"
                                           f"{bad['traceback']}"))
                continue
            driver = None
            tail = stderr_path.read_text(errors="replace")[-2000:]
            status = f" status {result['status']}" if "status" in result else ""
            failures.append((case, f"{case} ({origin}): {result['outcome']} at "
                                   f"{result['step']}{status}\n{tail}"))
    finally:
        if driver is not None:
            driver.close()
    print(f"{count} damaged objects from {len(files)} files (seed {SEED}): {loaded} loaded, "
          f"{linked} programs linked, {len(failures)} failures")
    if failures:
        keep = Path(os.environ.get("EBPF_LTO_FUZZ_KEEP", tmp_path / "failing"))
        keep.mkdir(parents=True, exist_ok=True)
        for case, _ in failures:
            shutil.copy(case, keep)
    assert not failures, (f"{len(failures)} of {count} damaged objects (seed {SEED}) gave "
                          f"something other than success or EbpfLtoError; kept in "
                          f"{keep}:\n\n" + "\n\n".join(text for _, text in failures[:20]))
    assert count > 0


def test_damaged_objects_are_refused_cleanly(tmp_path):
    campaign(fixture_files(), SECONDS, tmp_path)


@needs_shared("ebpf-samples")
def test_damaged_shared_samples_are_refused_cleanly(tmp_path):
    campaign(sample_files(shared_path()), SHARED_SECONDS, tmp_path)


def test_mutations_are_deterministic():
    data = (ROOT / "examples/ipv4_csum.o").read_bytes()
    a = [mutate(random.Random(7), data) for _ in range(3)]
    b = [mutate(random.Random(7), data) for _ in range(3)]
    assert a == b
    assert any(m != data for m, _ in a)


def test_a_files_cases_do_not_depend_on_the_other_files():
    """The fixture run is the same with or without ../shared: a file's damage is
    a function of the seed, its name and its turn, not of the file list."""
    files = [(name, path.read_bytes()) for name, path in fixture_files()]
    alone = [c for _, c in zip(range(6), cases(files[:1], SEED))]
    among = [c for _, c in zip(range(6 * len(files)), cases(files, SEED))
             if c[1] == files[0][0]]
    assert [c[2:] for c in alone] == [c[2:] for c in among]


def test_targeted_mutations_reach_their_targets():
    """Each targeted mutation finds what it damages in an object that has it
    (a fallback to bit flips would silently narrow the campaign)."""
    data = (ROOT / "tests/fixtures/btf/maps.o").read_bytes()
    for target in (_section_name, _symbol, _relocation, _btf, _section_header):
        changed = 0
        for k in range(20):
            buf = bytearray(data)
            kind = target(random.Random(k), data, buf)
            assert kind != "flip", (target.__name__, k)
            changed += bytes(buf) != data
        assert changed >= 15, target.__name__
