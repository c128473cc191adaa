"""End-to-end exactness: C programs built for eBPF, lifted and run, against
the same C built natively.

Every program in tests/fixtures/progs is compiled twice from one source:
for eBPF by build.sh (the .o files are in the tree, so no clang is needed
here) and natively at test time with the system C compiler. The native
build is the independent expectation: for each input, the lifted program
at -O0 and -O2 must return what the native function returns and leave the
input memory exactly as the native function leaves it.

The programs live in section "raw" (r1 = plain memory, r2 = its length): a
kernel section such as "socket" would make r1 a struct __sk_buff. Each
takes a fixed-size input struct (carrying a length where the input is a
byte string) and writes intermediate results into it, so that a memory
mismatch points at the operation that differs.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from inliner import pipeline
from inliner.facts import abi
from inliner.elf import loader

PROGS = Path(__file__).parent / "fixtures" / "progs"
OPT_LEVELS = (0, 2)
M64 = (1 << 64) - 1

# Hypothesis: compiled programs are cached, so an example costs a few native
# and lifted calls; the example count is what keeps the file fast.
EXAMPLES = settings(max_examples=60, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow])


# -- the native side -----------------------------------------------------------

@dataclass
class Native:
    """Native builds of every test program, loaded with ctypes."""
    libs: dict[str, Path]
    tmp: Path
    _loaded: dict[str, ctypes.CDLL]
    _fresh: int = 0

    def entry(self, source: str, name: str, ret: str, fresh: bool = False):
        """The native entry; `fresh` loads a private copy (globals at their
        initial values) instead of the shared one."""
        if fresh:
            self._fresh += 1
            path = self.tmp / f"{source}.fresh{self._fresh}.so"
            shutil.copyfile(self.libs[source], path)
            lib = ctypes.CDLL(str(path))
        else:
            lib = self._loaded.get(source)
            if lib is None:
                lib = self._loaded[source] = ctypes.CDLL(str(self.libs[source]))
        fn = getattr(lib, name)
        fn.restype = ctypes.c_int32 if ret == "int" else ctypes.c_int64
        fn.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
        return fn


@pytest.fixture(scope="session")
def native(tmp_path_factory) -> Native:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler (cc) to build the native expectation")
    tmp = tmp_path_factory.mktemp("native")
    libs = {}
    for src in sorted(PROGS.glob("*.c")):
        out = tmp / f"{src.stem}.so"
        # -Bsymbolic: calls between the program's functions never resolve to
        # a same-named symbol elsewhere in the process.
        # -fno-strict-aliasing: the programs read byte buffers through wider
        # pointers, as eBPF code does (the kernel builds the same way).
        cmd = [cc, "-O2", "-shared", "-fPIC", "-DNATIVE", "-fno-strict-aliasing", "-Wl,-Bsymbolic",
               f"-I{PROGS}", str(src), "-o", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"native build of {src.name} failed:\n{done.stderr}")
        libs[src.stem] = out
    return Native(libs, tmp, {})


# -- the eBPF side ---------------------------------------------------------------

_objects: dict[str, loader.EbpfObject] = {}
_loaded: dict[tuple, object] = {}


def ebpf_object(obj_name: str) -> loader.EbpfObject:
    obj = _objects.get(obj_name)
    if obj is None:
        obj = _objects[obj_name] = loader.load(str(PROGS / obj_name))
    return obj


def load_lifted(obj_name: str, program: str, opt: int, cached: bool = True):
    """A callable running the lifted program over a bytearray. Cached: the
    hypothesis tests call each program many times; uncached: the program's
    globals start from their initial values."""
    key = (obj_name, program, opt)
    loaded = _loaded.get(key) if cached else None
    if loaded is None:
        # No helper set: the programs call no helpers, and the lifter alone is
        # under test here (check_run goes through the defaults).
        options = pipeline.LinkOptions(opt_level=opt, program=program, helpers=None)
        loaded, _ = pipeline.load(ebpf_object(obj_name), options)
        if cached:
            _loaded[key] = loaded
    return lambda buf: loaded.call(abi.ENTRY_SYMBOL, buf if buf else None)


def call_native(fn, data: bytes) -> tuple[int, bytes]:
    """r0 and the memory after, for the native entry `fn` run over a copy of data."""
    buf = bytearray(data)
    if not buf:
        return fn(None, 0), b""
    cbuf = (ctypes.c_char * len(buf)).from_buffer(buf)
    r0 = fn(ctypes.addressof(cbuf), len(buf))
    del cbuf  # release the export before reading the bytearray
    return r0, bytes(buf)


# -- comparing ---------------------------------------------------------------------

def _r0(value: int, ret: str) -> int:
    """Normalize a return value: all 64 bits of a long, the low 32 of an int
    (after a 32-bit return the upper half of r0 is not defined by C)."""
    return value & (0xFFFFFFFF if ret == "int" else M64)


def _short(data: bytes) -> str:
    return bytes(data[:48]).hex() + ("..." if len(data) > 48 else "")


def _memory_diff(want: bytes, got: bytes) -> str:
    if len(want) != len(got):
        return f"length {len(got)}, expected {len(want)}"
    bad = [i for i in range(len(want)) if want[i] != got[i]]
    first = bad[0] & ~7
    return (f"{len(bad)} bytes differ, first at offset {bad[0]}; 8 bytes at {first}: "
            f"got {got[first:first + 8].hex()} expected {want[first:first + 8].hex()}")


@dataclass(frozen=True)
class Prog:
    source: str                   # tests/fixtures/progs/<source>.c
    name: str                     # the entry function
    cpus: tuple[str, ...]         # built as <source>.<cpu>.o
    ret: str = "long"             # C return type of the entry: long or int
    stateful: bool = False        # keeps state in globals between runs

    def objects(self):
        return [f"{self.source}.{cpu}.o" for cpu in self.cpus]

    def __str__(self) -> str:
        return self.name


def check(native: Native, prog: Prog, inputs: list[bytes]) -> None:
    """Run `inputs` in order through the native build and every lifted build
    at each optimization level; the return value and the memory after each
    run must agree. A stateful program gets fresh instances on both sides,
    so the sequence starts from the initial globals everywhere."""
    nat = native.entry(prog.source, prog.name, prog.ret, fresh=prog.stateful)
    expected = [call_native(nat, data) for data in inputs]
    for obj_name in prog.objects():
        for opt in OPT_LEVELS:
            call = load_lifted(obj_name, prog.name, opt, cached=not prog.stateful)
            for i, (data, (want_r0, want_mem)) in enumerate(zip(inputs, expected)):
                buf = bytearray(data)
                got = _r0(call(buf), prog.ret)
                want_r0 = _r0(want_r0, prog.ret)
                where = f"{obj_name} {prog.name} -O{opt} input #{i} {_short(data)}"
                # Memory first: an output slot says which operation went wrong.
                assert bytes(buf) == want_mem, f"{where}: memory {_memory_diff(want_mem, buf)}"
                assert got == want_r0, f"{where}: r0 {got:#x}, native {want_r0:#x}"


def check_run(native: Native, prog: Prog, data: bytes) -> None:
    """One input through pipeline.run, the public entry, as a user calls it."""
    nat = native.entry(prog.source, prog.name, prog.ret, fresh=prog.stateful)
    want_r0, want_mem = call_native(nat, data)
    want_r0 = _r0(want_r0, prog.ret)
    for obj_name in prog.objects():
        for opt in OPT_LEVELS:
            options = pipeline.LinkOptions(opt_level=opt, program=prog.name)
            r0, mem = pipeline.run(ebpf_object(obj_name), bytes(data), options)
            where = f"{obj_name} {prog.name} -O{opt}"
            assert bytes(mem) == want_mem, f"{where}: memory {_memory_diff(want_mem, mem)}"
            assert _r0(r0, prog.ret) == want_r0, f"{where}: r0 {r0:#x}, native {want_r0:#x}"


# -- input strategies ------------------------------------------------------------------

# Values where arithmetic and comparisons change behaviour.
EDGES64 = [0, 1, 2, 3, 5, 7, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF,
           0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x100000000, 0x1_7FFFFFFF, 0x1_80000000,
           0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0x8000000000000001,
           M64, M64 - 1, M64 - 4, (-1000) & M64, (-0x7FFFFFFF) & M64, 0xFFFFFFFF80000000,
           0xDEADBEEFCAFEBABE, 0x0123456789ABCDEF]
u64s = st.one_of(st.sampled_from(EDGES64), st.integers(0, M64),
                 # high and low halves from the edges independently: 32-bit ops
                 st.builds(lambda h, l: ((h << 32) | (l & 0xFFFFFFFF)) & M64,
                           st.sampled_from(EDGES64), st.sampled_from(EDGES64)))


def q(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}Q", *(v & M64 for v in values))


# -- arithmetic ----------------------------------------------------------------------

ALU_OUT = 128
ALU = [Prog("alu", "alu", ("v2", "v3", "v4")), Prog("alu", "alu_int", ("v2", "v3", "v4"), ret="int")]
ALU_FIXED = [(0, 0), (1, 0), (0, 1), (M64, M64), (M64, 1), (1 << 63, M64), (1 << 63, 1 << 63),
             (0x80000000, 0xFFFFFFFF), (0xFFFFFFFF80000000, 0xFFFFFFFFFFFFFFFF),
             (0x1_80000000, 0x5_FFFFFFFF), (12345678901234, 97), ((-12345678901234) & M64, 97),
             (1000, (-7) & M64), ((-1000) & M64, 7), (0xDEADBEEFCAFEBABE, 0x0123456789ABCDEF),
             (0x7FFFFFFFFFFFFFFF, 64), (5, 63), (5, 64 + 31), (5, 32), (0x0102030405060708, 0)]


def alu_input(a: int, b: int) -> bytes:
    # The output slots start out non-zero so that a slot never written shows.
    return q(a, b) + bytes([0xA5]) * (8 * ALU_OUT)


@pytest.mark.parametrize("prog", ALU, ids=str)
def test_alu_fixed(native, prog):
    check(native, prog, [alu_input(a, b) for a, b in ALU_FIXED])


@pytest.mark.parametrize("prog", ALU, ids=str)
def test_alu_run(native, prog):
    check_run(native, prog, alu_input(0xFFFFFFFF80000001, 0x8000000000000003))


@EXAMPLES
@given(a=u64s, b=u64s)
def test_alu_hypothesis(native, a, b):
    for prog in ALU:
        check(native, prog, [alu_input(a, b)])


# -- comparisons ------------------------------------------------------------------------

CMP = [Prog("cmp", "cmp", ("v2", "v3", "v4")), Prog("cmp", "minmax", ("v2", "v3", "v4"))]
CMP_PAIRS = 8


def cmp_input(pairs: list[tuple[int, int]]) -> bytes:
    flat = [v for p in pairs for v in p]
    return q(*flat) + bytes([0x5A]) * (CMP_PAIRS * 3 * 8)


def _cmp_fixed() -> list[bytes]:
    # Each value against itself, its neighbours and values equal in the low
    # 32 bits only, so that every condition is met both ways.
    pairs = []
    for v in EDGES64:
        for w in (v, (v + 1) & M64, (v - 1) & M64, v ^ (1 << 32), v ^ (1 << 63), v ^ (1 << 31), 0, M64):
            pairs.append((v, w))
    pairs += [(-5 & M64, 0x7FFFFFF0), (3, 0x7FFFFFF0), (0x7FFFFFF0, 0x7FFFFFF0),
              (0x1_7FFFFFF0, 0x2_7FFFFFF1), (-4 & M64, 0xFFFFFFFB)]
    while len(pairs) % CMP_PAIRS:
        pairs.append((0, 0))
    return [cmp_input(pairs[i:i + CMP_PAIRS]) for i in range(0, len(pairs), CMP_PAIRS)]


@pytest.mark.parametrize("prog", CMP, ids=str)
def test_cmp_fixed(native, prog):
    check(native, prog, _cmp_fixed())


@EXAMPLES
@given(pairs=st.lists(st.tuples(u64s, u64s), min_size=CMP_PAIRS, max_size=CMP_PAIRS))
def test_cmp_hypothesis(native, pairs):
    for prog in CMP:
        check(native, prog, [cmp_input(pairs)])


# -- control flow ------------------------------------------------------------------------

LOOPS = Prog("loops", "loops", ("v2", "v3"))
LOOPS_MAX = 64


def bytes_input(data: bytes, length: int | None = None, maxlen: int = LOOPS_MAX, out: int = 4) -> bytes:
    """u32 length, u32 pad, data padded to maxlen, `out` output words."""
    length = len(data) if length is None else length
    return struct.pack("<II", length, 0) + data.ljust(maxlen, b"\0") + bytes([0xC3]) * (8 * out)


LOOPS_FIXED = [b"", b"\x00", b"a", bytes(range(64)), bytes(range(255, 191, -1)), b"\xff" * 64,
               b"hello, world", b"\x01\x02\x10\x03\x04\x20\x30\x60\x40\x55\x9a\xc1\x07",
               b"\x05\x05\x05\x05\x05\x05\x05\x05\x05\x10\x10\x70\x7f\xf0\x80\xc0",
               bytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 100, 200, 255])]


def test_loops_fixed(native):
    inputs = [bytes_input(d) for d in LOOPS_FIXED]
    inputs.append(bytes_input(bytes(range(64)), length=1000))   # length is clamped
    check(native, LOOPS, inputs)


def test_loops_run(native):
    check_run(native, LOOPS, bytes_input(b"\x01\x02\x10\x63\x9f\xa0\xff\x00\x35"))


@EXAMPLES
@given(data=st.binary(max_size=LOOPS_MAX))
def test_loops_hypothesis(native, data):
    check(native, LOOPS, [bytes_input(data)])


# -- memory ------------------------------------------------------------------------------

MEM = Prog("mem", "mem", ("v2", "v4"))
MEM_SIZE = 32 + 19 + 5 + 64 + 32 + 128 + 64 + 19 + 5


def mem_input(head: bytes) -> bytes:
    """The first 120 bytes are input; the rest starts out as a pattern."""
    return head.ljust(120, b"\0")[:120] + bytes((i * 7 + 1) & 0xFF for i in range(MEM_SIZE - 120))


MEM_FIXED = [bytes(120), b"\xff" * 120, bytes(range(120)), bytes(range(255, 135, -1)),
             b"\x80\x80\x00\x80\x00\x80" + b"\x00" * 6 + b"\x00\x00\x00\x80" * 3 + b"\x7f" * 102]


def test_mem_fixed(native):
    check(native, MEM, [mem_input(h) for h in MEM_FIXED])


def test_mem_run(native):
    check_run(native, MEM, mem_input(bytes(range(200, 255)) * 3))


@EXAMPLES
@given(head=st.binary(min_size=120, max_size=120))
def test_mem_hypothesis(native, head):
    check(native, MEM, [mem_input(head)])


# -- atomics -----------------------------------------------------------------------------

ATOMICS = Prog("atomics", "atomics", ("v3", "v4"))


def atomics_input(x, y, z, x32, y32, mem64, mem32) -> bytes:
    return (q(x, y, z) + struct.pack("<II", x32 & 0xFFFFFFFF, y32 & 0xFFFFFFFF) + q(mem64)
            + struct.pack("<II", mem32 & 0xFFFFFFFF, 0) + bytes([0x3C]) * (24 * 8))


ATOMICS_FIXED = [(0, 0, 0, 0, 0, 0, 0), (M64, M64, M64, 0xFFFFFFFF, 0xFFFFFFFF, M64, 0xFFFFFFFF),
                 (1, 42, 3, 5, 0xFFFFFFFE, 10, 20), (0x8000000000000000, 1, 0x5555, 0x80000000, 1, 1, 1),
                 (0xDEADBEEF, 0xCAFE, 0xF00D, 0x1234, 0x1233, 0xFFFFFFFF00000000, 0x80000000),
                 (7, 7, 7, 7, 7, 7, 7)]


def test_atomics_fixed(native):
    check(native, ATOMICS, [atomics_input(*a) for a in ATOMICS_FIXED])


def test_atomics_run(native):
    check_run(native, ATOMICS, atomics_input(*ATOMICS_FIXED[4]))


u32s = st.one_of(st.sampled_from([0, 1, 5, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]),
                 st.integers(0, 0xFFFFFFFF))


@EXAMPLES
@given(x=u64s, y=u64s, z=u64s, x32=u32s, y32=u32s, mem64=u64s, mem32=u32s)
def test_atomics_hypothesis(native, x, y, z, x32, y32, mem64, mem32):
    check(native, ATOMICS, [atomics_input(x, y, z, x32, y32, mem64, mem32)])


# -- calls and deep stacks -------------------------------------------------------------------

CALLS = [Prog("calls", "calls", ("v2", "v3", "v4")), Prog("calls", "args", ("v2", "v3", "v4"))]


def calls_input(*seed: int) -> bytes:
    return q(*seed) + bytes([0x77]) * (8 * 8)


CALLS_FIXED = [(0, 0, 0, 0, 0), (1, 2, 3, 4, 5), (M64,) * 5,
               (0x8000000000000000, 0x7F, 0xFFFF8000, 0x80000000, (-1) & M64),
               (0xDEADBEEFCAFEBABE, 319, 320, 0x0123456789ABCDEF, 42)]


@pytest.mark.parametrize("prog", CALLS, ids=str)
def test_calls_fixed(native, prog):
    check(native, prog, [calls_input(*s) for s in CALLS_FIXED])


@pytest.mark.parametrize("prog", CALLS, ids=str)
def test_calls_run(native, prog):
    check_run(native, prog, calls_input(*CALLS_FIXED[4]))


@settings(EXAMPLES, max_examples=25)
@given(seed=st.lists(u64s, min_size=5, max_size=5))
def test_calls_hypothesis(native, seed):
    for prog in CALLS:
        check(native, prog, [calls_input(*seed)])


# -- global data ------------------------------------------------------------------------------

GLOBALS = Prog("globals", "globals", ("v2", "v3"), stateful=True)
RODATA = Prog("globals", "rodata", ("v2", "v3"))


def glob_input(data: bytes, length: int | None = None) -> bytes:
    length = len(data) if length is None else length
    return struct.pack("<I", length) + data.ljust(32, b"\0") + bytes(4) + bytes([0x99]) * 64


GLOBALS_SEQUENCE = [b"", b"abc", b"open sesame", b"open sesam", b"Cxyz\xff\x80",
                    bytes(range(32)), b"open sesame!!", b"C", b"\xff" * 32, b"zzz"]


def test_globals_sequence(native):
    # Each run changes .data and .bss and the next run sees the changes.
    check(native, GLOBALS, [glob_input(d) for d in GLOBALS_SEQUENCE])


def test_globals_run(native):
    # pipeline.run loads afresh every time: one run from the initial state.
    check_run(native, GLOBALS, glob_input(b"Copen sesame"))


@settings(EXAMPLES, max_examples=10)
@given(seq=st.lists(st.binary(max_size=32), min_size=1, max_size=6))
def test_globals_hypothesis(native, seq):
    check(native, GLOBALS, [glob_input(d) for d in seq])


def test_rodata_fixed(native):
    check(native, RODATA, [glob_input(d) for d in GLOBALS_SEQUENCE])


@EXAMPLES
@given(data=st.binary(max_size=32))
def test_rodata_hypothesis(native, data):
    check(native, RODATA, [glob_input(data)])


# -- a packet parser ------------------------------------------------------------------------

PARSE = Prog("parse", "parse", ("v2", "v3"))
PKT_MAX = 128


def pkt_input(pkt: bytes, length: int | None = None) -> bytes:
    length = len(pkt) if length is None else length
    return struct.pack("<HHHH", length, 0, 0, 0) + pkt.ljust(PKT_MAX, b"\0")[:PKT_MAX] + bytes([0xEE]) * 48


def _ipv4_header(ttl: int, proto: int, src: int, dst: int, total: int, ihl: int = 5) -> bytes:
    hdr = bytearray(struct.pack(">BBHHHBBHII", 0x40 | ihl, 0, total, 0x1234, 0, ttl, proto, 0, src, dst))
    hdr += bytes(4 * ihl - 20)
    words = struct.unpack(f">{len(hdr) // 2}H", bytes(hdr))
    s = sum(words)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    hdr[10:12] = struct.pack(">H", ~s & 0xFFFF)
    return bytes(hdr)


def make_packet(*, vlan: int | None = None, ipv6: bool = False, ttl: int = 64, proto: int = 6,
                sport: int = 1234, dport: int = 80, src: int = 0x0A000001, dst: int = 0x0A000002,
                ihl: int = 5, payload: bytes = b"", tcp_flags: int = 0x12) -> bytes:
    eth = bytes.fromhex("020000000001") + bytes.fromhex("020000000002")
    if vlan is not None:
        eth += struct.pack(">HH", 0x8100, vlan)
    l4 = struct.pack(">HH", sport, dport)
    l4 += (bytes(9) + bytes([tcp_flags]) + bytes(6)) if proto == 6 else struct.pack(">HH", 8 + len(payload), 0)
    if ipv6:
        ip = struct.pack(">IHBB", 0x60000000, len(l4) + len(payload), proto, ttl) + \
            src.to_bytes(16, "big") + dst.to_bytes(16, "big")
        return eth + struct.pack(">H", 0x86DD) + ip + l4 + payload
    ip = _ipv4_header(ttl, proto, src, dst, 4 * ihl + len(l4) + len(payload), ihl)
    return eth + struct.pack(">H", 0x0800) + ip + l4 + payload


def _parse_fixed() -> list[bytes]:
    pkts = [make_packet(), make_packet(proto=17, dport=53), make_packet(vlan=0x0123),
            make_packet(ipv6=True), make_packet(ipv6=True, proto=17, ttl=1),
            make_packet(ttl=1), make_packet(ttl=0), make_packet(ihl=7), make_packet(dport=23),
            make_packet(proto=1), make_packet(payload=b"x" * 40), make_packet(src=0xFFFFFFFF, dst=0)]
    inputs = [pkt_input(p) for p in pkts]
    full = make_packet(payload=b"y" * 80)
    inputs += [pkt_input(full[:n]) for n in (0, 13, 14, 17, 33, 34, 37, 38, 47, 48, PKT_MAX)]
    inputs += [pkt_input(full, length=0xFFFF), pkt_input(b"\xff" * PKT_MAX),
               pkt_input(bytes(12) + b"\x81\x00\xff\xff\x08\x00" + b"\x4f" * 60)]
    return inputs


def test_parse_fixed(native):
    check(native, PARSE, _parse_fixed())


def test_parse_run(native):
    check_run(native, PARSE, pkt_input(make_packet(vlan=7, proto=17, sport=5353, dport=5353)))


def test_parse_cli(native):
    # The command line, as the docs show it: ebpf-lto run --mem HEX --json.
    data = pkt_input(make_packet(vlan=5, proto=6, sport=22, dport=23))
    want_r0, want_mem = call_native(native.entry("parse", "parse", "long"), data)
    cmd = [sys.executable, "-c", "from inliner.cli import main; main()", "run",
           str(PROGS / "parse.v3.o"), "--program", "parse", "--mem", data.hex(), "--json", "-O", "0"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert bytes.fromhex(out["mem"]) == want_mem, _memory_diff(want_mem, bytes.fromhex(out["mem"]))
    assert out["r0"] & M64 == want_r0 & M64


packets = st.builds(make_packet, vlan=st.none() | st.integers(0, 0xFFFF), ipv6=st.booleans(),
                    ttl=st.integers(0, 255), proto=st.sampled_from([6, 17, 1, 0]),
                    sport=st.integers(0, 0xFFFF), dport=st.integers(0, 0xFFFF),
                    src=st.integers(0, (1 << 32) - 1), dst=st.integers(0, (1 << 32) - 1),
                    ihl=st.integers(5, 8), payload=st.binary(max_size=32),
                    tcp_flags=st.integers(0, 255))


@EXAMPLES
@given(pkt=packets, cut=st.none() | st.integers(0, PKT_MAX), noise=st.binary(max_size=PKT_MAX))
def test_parse_hypothesis(native, pkt, cut, noise):
    # A well-formed packet, cut short or not, and raw bytes.
    pkt = pkt[:cut] if cut is not None else pkt
    check(native, PARSE, [pkt_input(pkt), pkt_input(noise)])


# -- v4-only instructions -------------------------------------------------------------------

V4 = Prog("v4", "v4", ("v4",))


def v4_input(sel: int, x: int, y: int) -> bytes:
    return q(sel, x, y) + bytes([0x11]) * (6 * 8)


def test_v4_fixed(native):
    inputs = [v4_input(sel, x, y) for sel in range(8)
              for x, y in ((0, 0), (M64, 7), (0x8000000000000080, 0x80808080FF7F), (12345, 64 + 5))]
    check(native, V4, inputs)


def test_v4_run(native):
    check_run(native, V4, v4_input(6, 0xDEADBEEF, 0xFFFF8001))


@EXAMPLES
@given(sel=st.integers(0, 255), x=u64s, y=u64s)
def test_v4_hypothesis(native, sel, x, y):
    check(native, V4, [v4_input(sel, x, y)])


# -- pointers in global data ------------------------------------------------------------------

POINTERS = [Prog("pointers", name, ("v4",)) for name in ("strtab", "fntab", "dataptr")]

# Runs the lifted program in a child process: a pointer table read wrongly
# makes the program dereference a section offset, which would take the test
# process down with it.
_CHILD = """
import json, sys
from inliner import errors, pipeline
from inliner.elf import loader
path, program, inputs = json.loads(sys.stdin.read())
out = []
for opt in (0, 2):
    options = pipeline.LinkOptions(opt_level=opt, program=program)
    try:  # refusing the object while loading or lifting it is a fine answer
        obj = loader.load(path)
        pipeline.lift(obj, options)
    except errors.EbpfLtoError as err:
        print(json.dumps(str(err)))
        sys.exit(0)
    loaded, _ = pipeline.load(obj, options)  # once compiled, it must run
    for data in inputs:
        mem = bytearray.fromhex(data)
        r0 = loaded.call("bpf_main", mem)
        out.append([opt, r0, mem.hex()])
print(json.dumps(out))
"""


@pytest.mark.parametrize("prog", POINTERS, ids=str)
def test_pointers_in_data(native, prog):
    # The loader must apply the R_BPF_64_ABS64 relocations of .rodata/.data
    # or refuse the object; silently keeping section offsets is wrong.
    inputs = [q(sel, x) + bytes(16) for sel in range(4) for x in (0, 7, M64)]
    nat = native.entry(prog.source, prog.name, prog.ret, fresh=True)
    expected = [call_native(nat, data) for data in inputs]
    request = json.dumps([str(PROGS / prog.objects()[0]), prog.name, [d.hex() for d in inputs]])
    done = subprocess.run([sys.executable, "-c", _CHILD], input=request, capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parent.parent)
    if done.returncode != 0:
        pytest.fail(f"{prog.name}: the lifted program crashed the process (exit {done.returncode})"
                    f"{done.stderr[-500:]}", pytrace=False)
    result = json.loads(done.stdout)
    if isinstance(result, str):
        return  # the loader or the lifter refused the object: acceptable
    for (opt, r0, mem), (want_r0, want_mem) in zip(result, expected * 2):
        assert bytes.fromhex(mem) == want_mem, f"{prog.name} -O{opt}: {_memory_diff(want_mem, bytes.fromhex(mem))}"
        want_r0 = _r0(want_r0, prog.ret)
        assert _r0(r0, prog.ret) == want_r0, f"{prog.name} -O{opt}: r0 {r0:#x}, native {want_r0:#x}"
