"""Bad-input fuzzing: damaged objects are refused with EbpfLtoError, never anything worse.

Mutations of the committed fixture objects (and of ../shared/ebpf-samples
when present): bit flips, truncation, byte insertion, and targeted damage to
the ELF header, section headers, symbols, relocations, instructions and BTF.
Each mutated file is loaded (`loader.load`) and every program of it linked
(`pipeline.link`, -O0). The only acceptable outcomes are success and
`EbpfLtoError`: another exception, a crash of the process (LLVM aborts), or
a case running past its time bound is a failure, reported with the file
kept for reproduction.

The cases run in a child process (a crash must not take pytest down) that
reads file paths on stdin and answers one JSON line per file; a child that
dies or stops answering is replaced and the remaining cases go on.

EBPF_LTO_FUZZ_SECONDS sets the time budget (default 40), EBPF_LTO_FUZZ_SEED
the mutation seed (default 0), EBPF_LTO_FUZZ_CASE_TIMEOUT the bound per case
(default 60 s); docs/testing.md.
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

from conftest import ROOT, shared_path

SECONDS = float(os.environ.get("EBPF_LTO_FUZZ_SECONDS", "40"))
SEED = int(os.environ.get("EBPF_LTO_FUZZ_SEED", "0"))
CASE_TIMEOUT = float(os.environ.get("EBPF_LTO_FUZZ_CASE_TIMEOUT", "60"))
MAX_SAMPLE_SIZE = 64 * 1024   # larger shared samples take seconds per link: left out

FIXTURES = ("tests/fixtures/btf/*.o", "tests/fixtures/corpus/*.o", "tests/contexts_c/*.o",
            "tests/helpers_c/*.o", "examples/*.o")

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
    path = line.rstrip("\n")
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
                pipeline.link(obj, pipeline.LinkOptions(opt_level=0, program=prog.name))
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


# --- mutations -------------------------------------------------------------

def _sections(data: bytes) -> list[dict]:
    """Section headers of an ELF64 little-endian file, as far as they can be read."""
    try:
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    except struct.error:
        return []
    out = []
    for i in range(shnum):
        at = shoff + i * shentsize
        if shentsize < 64 or at + 64 > len(data):
            break
        name, typ, flags, _, offset, size, link, info, _, entsize = struct.unpack_from(
            "<IIQQQQIIQQ", data, at)
        out.append(dict(index=i, at=at, name=name, type=typ, flags=flags, offset=offset,
                        size=size, link=link, info=info, entsize=entsize))
    return out


INTERESTING = (0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 0x7FFFFFFFFFFFFFFF)
# Section header fields: (offset in the header, size).
SH_FIELDS = {"name": (0, 4), "type": (4, 4), "flags": (8, 8), "offset": (24, 8), "size": (32, 8),
             "link": (40, 4), "info": (44, 4), "addralign": (48, 8), "entsize": (56, 8)}
EH_FIELDS = {"e_type": (0x10, 2), "e_machine": (0x12, 2), "e_shoff": (0x28, 8),
             "e_flags": (0x30, 4), "e_shentsize": (0x3A, 2), "e_shnum": (0x3C, 2),
             "e_shstrndx": (0x3E, 2), "ei_class": (4, 1), "ei_data": (5, 1)}


def _put(buf: bytearray, at: int, size: int, value: int) -> None:
    if 0 <= at and at + size <= len(buf):
        buf[at:at + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def _value(rng: random.Random, old: int, size: int) -> int:
    choice = rng.randrange(4)
    if choice == 0:
        return rng.choice(INTERESTING)
    if choice == 1:
        return old + rng.choice((-8, -1, 1, 8, 64))
    if choice == 2:
        return old ^ (1 << rng.randrange(8 * size))
    return rng.getrandbits(8 * size)


def _in_section(rng, data, buf, pick) -> str:
    """Damage entries of a section chosen by `pick(section)`: symbols, relocations, code, BTF."""
    secs = [s for s in _sections(data) if pick(s) and s["size"]]
    if not secs:
        return _bit_flips(rng, data, buf)
    sec = rng.choice(secs)
    start, end = sec["offset"], min(sec["offset"] + sec["size"], len(buf))
    if start >= end:
        return _bit_flips(rng, data, buf)
    for _ in range(rng.randint(1, 4)):
        size = rng.choice((1, 2, 4, 8))
        at = rng.randrange(start, end)
        _put(buf, at, size, _value(rng, int.from_bytes(buf[at:at + size], "little"), size))
    return f"section{sec['index']}"


def _bit_flips(rng, data, buf) -> str:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return "flip"


def mutate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    buf = bytearray(data)
    kind = rng.choice(("flip", "truncate", "insert", "elf_header", "section_header",
                       "symtab", "rel", "code", "btf", "strtab"))
    if kind == "flip":
        kind = _bit_flips(rng, data, buf)
    elif kind == "truncate":
        del buf[rng.randrange(len(buf)):]
    elif kind == "insert":
        at = rng.randrange(len(buf) + 1)
        buf[at:at] = bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 4, 8, 64))))
    elif kind == "elf_header":
        name, (at, size) = rng.choice(list(EH_FIELDS.items()))
        _put(buf, at, size, _value(rng, int.from_bytes(buf[at:at + size], "little"), size))
        kind = name
    elif kind == "section_header":
        secs = _sections(data)
        if secs:
            sec = rng.choice(secs)
            name, (off, size) = rng.choice(list(SH_FIELDS.items()))
            at = sec["at"] + off
            _put(buf, at, size, _value(rng, int.from_bytes(buf[at:at + size], "little"), size))
            kind = f"sh{sec['index']}_{name}"
    elif kind == "symtab":
        kind = "symtab_" + _in_section(rng, data, buf, lambda s: s["type"] == 2)
    elif kind == "rel":
        kind = "rel_" + _in_section(rng, data, buf, lambda s: s["type"] == 9)
    elif kind == "code":
        kind = "code_" + _in_section(rng, data, buf, lambda s: s["type"] == 1 and s["flags"] & 4)
    elif kind == "strtab":
        kind = "strtab_" + _in_section(rng, data, buf, lambda s: s["type"] == 3)
    else:  # BTF and .maps: PROGBITS sections without the exec flag
        kind = "data_" + _in_section(rng, data, buf, lambda s: s["type"] == 1
                                     and not s["flags"] & 4)
    return bytes(buf), kind


def seed_files() -> list[Path]:
    files = sorted(p for pattern in FIXTURES for p in ROOT.glob(pattern))
    samples = shared_path("ebpf-samples")
    if samples:
        files += sorted(p for p in samples.rglob("*.o")
                        if p.stat().st_size <= MAX_SAMPLE_SIZE)
    return files


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

    def run(self, path: Path, timeout: float) -> dict:
        """The case's outcome: done (with bad), crash or hang, and the step it was at."""
        self.proc.stdin.write(f"{path}\n".encode())
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


def test_damaged_objects_are_refused_cleanly(tmp_path):
    seeds = seed_files()
    assert seeds, "no fixture objects to mutate"
    originals = {p: p.read_bytes() for p in seeds}
    rng = random.Random(SEED)
    failures: list[str] = []
    cases = loaded = linked = 0
    driver_runs = 0
    driver = None
    start = time.monotonic()
    try:
        while time.monotonic() - start < SECONDS:
            src = rng.choice(seeds)
            data, kind = mutate(rng, originals[src])
            case = tmp_path / f"{cases:05d}-{src.stem}-{kind}.o"
            case.write_bytes(data)
            if driver is None:
                driver_runs += 1
                stderr_path = tmp_path / f"driver{driver_runs}.stderr"
                driver = Driver(stderr_path)
            result = driver.run(case, CASE_TIMEOUT)
            cases += 1
            if result["outcome"] == "done":
                loaded += result["loaded"]
                linked += result["linked"]
                for bad in result["bad"]:
                    failures.append(f"{case} ({bad['program'] or 'load'}, from {src}):\n"
                                    f"{bad['traceback']}")
                continue
            driver = None
            tail = stderr_path.read_text(errors="replace")[-2000:]
            failures.append(f"{case} (from {src}): {result['outcome']} at {result['step']}"
                            f"{' status ' + str(result.get('status')) if 'status' in result else ''}"
                            f"\n{tail}")
    finally:
        if driver is not None:
            driver.close()
    print(f"{cases} damaged objects from {len(seeds)} seeds (seed {SEED}): {loaded} loaded, "
          f"{linked} programs linked, {len(failures)} failures")
    if failures:
        keep = Path(os.environ.get("EBPF_LTO_FUZZ_KEEP", tmp_path / "failing"))
        keep.mkdir(parents=True, exist_ok=True)
        for f in failures:
            shutil.copy(f.split(" ", 1)[0], keep)
    assert not failures, (f"{len(failures)} of {cases} damaged objects (seed {SEED}) gave "
                          f"something other than success or EbpfLtoError; kept in "
                          f"{keep}:\n\n" + "\n\n".join(failures[:20]))
    assert cases > 0


def test_mutations_are_deterministic():
    data = (ROOT / "examples/ipv4_csum.o").read_bytes()
    a = [mutate(random.Random(7), data) for _ in range(3)]
    b = [mutate(random.Random(7), data) for _ in range(3)]
    assert a == b
    assert any(m != data for m, _ in a)
