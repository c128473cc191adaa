"""The Linux helper library (`--helpers default`, docs/helpers.md), through
eBPF programs written in C against libbpf's helper declarations.

The programs in tests/helpers_c are built by build.sh (the .o files are in
the tree) and run with pipeline.run / pipeline.load in this process, so the
helpers see this process: its pid, its clocks, its fd 2. Every expectation
is computed here independently of the helper code: checksums by RFC 1071 in
Python, clocks and ids from the os and time modules, strings and formats by
hand or from the kernel's own selftests.
"""
from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from inliner import pipeline
from inliner.facts import abi
from inliner.elf import loader
from inliner.link import helpers

PROGS = Path(__file__).parent / "helpers_c"
M64 = (1 << 64) - 1
OPT_LEVELS = (0, 2)
EINVAL, E2BIG, EFAULT, ENOSPC = 22, 7, 14, 28
LITTLE = sys.byteorder == "little"

pytestmark = pytest.mark.skipif(
    pipeline.codegen.host_arch() not in ("x86_64", "aarch64"),
    reason="the helper library is built for x86_64 and aarch64")


def neg(errno: int) -> int:
    """-errno as r0 holds it: the unsigned 64-bit two's complement."""
    return (1 << 64) - errno


def signed(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


_objects: dict[str, loader.EbpfObject] = {}
_loaded: dict[tuple, object] = {}


def obj(name: str) -> loader.EbpfObject:
    if name not in _objects:
        _objects[name] = loader.load(str(PROGS / f"{name}.o"))
    return _objects[name]


def options(program: str, opt: int = 2) -> pipeline.LinkOptions:
    return pipeline.LinkOptions(opt_level=opt, helpers="default", program=program)


def run(name: str, program: str, mem: bytes, opt: int = 2, checks: bool = True
        ) -> tuple[int, bytes]:
    """One run through the public entry, pipeline.run."""
    opts = dataclasses.replace(options(program, opt), checks=checks)
    r0, after = pipeline.run(obj(name), mem, opts)
    return r0, bytes(after)


def caller(name: str, program: str, opt: int = 2):
    """A loaded program kept for many calls: (memory) -> (r0, memory after)."""
    key = (name, program, opt)
    if key not in _loaded:
        loaded, _ = pipeline.load(obj(name), options(program, opt))
        _loaded[key] = loaded

    def call(mem: bytes) -> tuple[int, bytes]:
        buf = bytearray(mem)
        r0 = _loaded[key].call(abi.ENTRY_SYMBOL, buf)
        return r0, bytes(buf)
    return call


@contextmanager
def captured_stderr():
    """Redirect fd 2 (what the helpers write to) into a temporary file; the
    yielded list receives the bytes written once the block ends."""
    got: list[bytes] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield got
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            got.append(tmp.read())


# -- coverage ----------------------------------------------------------------

def test_every_default_helper_is_called_by_a_test_program():
    called: set[int] = set()
    # The packet helpers' programs are in tests/packet_c (test_packet_helpers.py), the
    # forwarding helpers' in tests/redirect_c (test_redirect.py).
    for path in sorted(PROGS.glob("*.o")) + sorted((PROGS.parent / "packet_c").glob("*.o")) \
            + sorted((PROGS.parent / "redirect_c").glob("*.o")):
        lifted = pipeline.lift(loader.load(str(path)), pipeline.LinkOptions())
        called |= {site.helper_id for site in lifted.sites if site.helper_id is not None}
    provided = helpers.resolve("default", pipeline.codegen.host_arch()).ids
    # The map runtime's helpers (docs/maps.md) are tested natively, through
    # ctypes, by tests/test_maps_core.py and tests/test_maps_more.py (perf
    # event output 25, ringbuf 130-134) until programs can use maps.
    map_helpers = {1, 2, 3, 25, 87, 88, 89, 130, 131, 132, 133, 134, 164, 195}
    assert provided - map_helpers == {4, 5, 6, 7, 8, 9, 10, 11, 14, 15, 16, 18, 19, 23, 24, 26, 28,
                                      31, 34, 38, 42, 43, 44, 45, 51, 54, 65, 69, 84, 85, 86, 99,
                                      112, 113, 114, 115, 118, 125, 155, 160, 165, 177, 181, 182,
                                      208}
    assert map_helpers <= provided
    assert provided - map_helpers - called == set(), "helpers without a test program"


def test_default_set_builds_for_both_arches():
    for arch in ("x86_64", "aarch64"):
        hset = helpers.resolve("default", arch)
        for mod in hset.modules():
            assert not [g for g in mod.global_variables if "thread_local" in str(g)]


# -- csum_diff (28) ------------------------------------------------------------

def rfc1071_sum(data: bytes) -> int:
    """RFC 1071: the ones'-complement sum of the big-endian 16-bit words, an
    odd last byte padded with a zero byte, folded to 16 bits."""
    if len(data) % 2:
        data += b"\0"
    total = sum(w for (w,) in struct.iter_unpack(">H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def in_memory_order(be16: int) -> int:
    """The 16-bit sum as the host reads it from memory: the ones'-complement
    sum is byte-order independent up to a swap (RFC 1071 section 2(B))."""
    return int.from_bytes(be16.to_bytes(2, "big"), sys.byteorder)


def ones_add(a: int, b: int) -> int:
    s = a + b
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def fold32(x: int) -> int:
    return ones_add(x & 0xFFFF, x >> 16)


CSUM_MAX = 1500
CSUM_LAYOUT = f"<IIIIq{CSUM_MAX}s{CSUM_MAX}s"


def csum_mem(from_: bytes, to: bytes, seed: int, sizes: tuple[int, int] | None = None) -> bytes:
    fs, ts = sizes if sizes else (len(from_), len(to))
    return struct.pack(CSUM_LAYOUT, fs, ts, seed, 0, 0, from_, to)


def pattern(n: int, salt: int) -> bytes:
    """Deterministic bytes with every value and carries in the sums."""
    return bytes((i * 131 + salt * 29 + (i >> 3) * 7) & 0xFF for i in range(n))


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_csum_diff_push_matches_rfc1071(opt):
    """to only, seed 0: the helper's result is the RFC 1071 sum, in memory order."""
    call = caller("checksum", "csum_diff", opt)
    push = caller("checksum", "csum_push", opt)
    for size in range(4, CSUM_MAX + 1, 4):
        data = pattern(size, size)
        want = in_memory_order(rfc1071_sum(data))
        r0, mem = call(csum_mem(b"", data, 0))
        assert r0 == want, f"size {size}: {r0:#x}, expected {want:#x}"
        assert struct.unpack_from("<q", mem, 16)[0] == want
        assert push(csum_mem(b"", data, 0))[0] == want


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_csum_diff_seed_diff_and_pull(opt):
    """With a seed and with a from buffer: to + seed - from in ones'
    complement, compared modulo 0xffff (the two zeros), result in 16 bits."""
    call = caller("checksum", "csum_diff", opt)
    for size in range(4, CSUM_MAX + 1, 4):
        to, from_ = pattern(size, 1), pattern(min(size * 3 // 4 // 4 * 4 + 4, CSUM_MAX), 2)
        seed = (size * 0x9E3779B1) & 0xFFFFFFFF
        s_to, s_from = in_memory_order(rfc1071_sum(to)), in_memory_order(rfc1071_sum(from_))
        cases = {
            "push+seed": (b"", to, ones_add(fold32(seed), s_to)),
            "diff": (from_, to, ones_add(fold32(seed), ones_add(s_to, 0xFFFF - s_from))),
            "pull": (from_, b"", ones_add(fold32(seed), 0xFFFF - s_from)),
        }
        for what, (f, t, want) in cases.items():
            r0, _ = call(csum_mem(f, t, seed))
            assert 0 <= r0 <= 0xFFFF, f"{what} size {size}: {r0:#x} not folded to 16 bits"
            assert r0 % 0xFFFF == want % 0xFFFF, f"{what} size {size}: {r0:#x}, expected {want:#x}"


# Linux's own vectors (tools/testing/selftests/bpf/prog_tests/test_csum_diff.c,
# added with the 6.13 change the helper follows): buffers of little-endian
# u64 words, (to, to_len, from, from_len, seed) -> result.
DEADBEEF = [0xDEADBEEFDEADBEEF, 0xBEEFDEADBEEFDEAD]


def words(*ws: int) -> bytes:
    return b"".join(struct.pack("<Q", w) for w in ws)


KERNEL_VECTORS = [
    ("push 8", words(DEADBEEF[0]), 8, b"", 0, 0, 0x3B3B),
    ("push 16 seed", words(*DEADBEEF), 16, b"", 0, 0x1234, 0x88AA),
    ("push 15 (odd)", words(*DEADBEEF), 15, b"", 0, 0x1234, 0xCAA9),
    ("pull 8", b"", 0, words(DEADBEEF[0]), 8, 0, 0xC4C4),
    ("pull 16 seed", b"", 0, words(*DEADBEEF), 16, 0x1234, 0x9BBD),
    ("pull 15 (odd)", b"", 0, words(*DEADBEEF), 15, 0x1234, 0x59BE),
    ("diff 8", words(0xABABABABABABABAB), 8, words(DEADBEEF[0]), 8, 0, 0x7373),
    ("diff 7 (odd)", words(0xABABABABABABABAB), 7, words(DEADBEEF[0]), 7, 0, 0xA673),
    ("diff from zeros", words(0xABABABABABABABAB), 8, words(0), 8, 0, 0xAEAE),
    ("diff to zeros", words(0), 8, words(DEADBEEF[0]), 8, 0xFFFF, 0xC4C4),
    ("nothing", b"", 0, b"", 0, 0, 0),
    ("nothing, seed", b"", 0, b"", 0, 0x1234, 0x1234),
    ("pull 512 zeros", b"", 0, bytes(512), 512, 0xFFFF, 0xFFFF),
]


@pytest.mark.skipif(not LITTLE, reason="the kernel's odd-size vectors are for little-endian")
@pytest.mark.parametrize("opt", OPT_LEVELS)
@pytest.mark.parametrize("vector", KERNEL_VECTORS, ids=[v[0] for v in KERNEL_VECTORS])
def test_csum_diff_kernel_selftest_vectors(vector, opt):
    _, to, to_len, from_, from_len, seed, want = vector
    r0, _ = run("checksum", "csum_diff", csum_mem(from_, to, seed, (from_len, to_len)), opt)
    assert r0 == want


def test_csum_diff_odd_sizes_match_rfc1071():
    """Since 6.13 any size is accepted; an odd tail byte is zero-padded."""
    call = caller("checksum", "csum_diff")
    for size in range(1, 64):
        data = pattern(size, 7)
        assert call(csum_mem(b"", data, 0))[0] == in_memory_order(rfc1071_sum(data)), size


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_ipv4_header_checksum(opt):
    """RFC 1071's usual example header: the stored checksum is 0xb861."""
    header = bytes.fromhex("45000073000040004011b861c0a80001c0a800c7")
    zeroed = header[:10] + b"\xff\xff" + header[12:]   # the program clears it
    r0, mem = run("checksum", "ipv4_checksum", zeroed, opt)
    assert mem[10:12] == b"\xb8\x61"
    assert mem == header
    assert r0 == int.from_bytes(b"\xb8\x61", sys.byteorder)
    assert rfc1071_sum(mem) == 0xFFFF        # a valid header sums to all ones


# -- clocks (5, 118, 125, 160, 208) ----------------------------------------------

CLOCK_MONOTONIC_COARSE = 6
INITIAL_JIFFIES = (-300 * 1000) & 0xFFFFFFFF     # the kernel's, at HZ = 1000


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_clocks(opt):
    tai0 = time.clock_gettime_ns(time.CLOCK_TAI)
    t0 = time.monotonic_ns()
    _, mem = run("time", "clocks", bytes(48), opt)
    t1 = time.monotonic_ns()
    boot1 = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    tai1 = time.clock_gettime_ns(time.CLOCK_TAI)
    mono1, boot, coarse, jiffies, tai, mono2 = struct.unpack("<6Q", mem)

    assert t0 <= mono1 <= mono2 <= t1                 # CLOCK_MONOTONIC, non-decreasing
    assert mono1 <= boot <= boot1                     # boot time includes suspend
    tick = time.clock_getres(CLOCK_MONOTONIC_COARSE)
    assert t0 - int(2 * tick * 1e9) <= coarse <= mono2
    assert INITIAL_JIFFIES + t0 // 1_000_000 <= jiffies <= INITIAL_JIFFIES + t1 // 1_000_000
    assert tai0 <= tai <= tai1


def test_ktime_is_monotonic_across_calls():
    call = caller("time", "clocks")
    last = 0
    for _ in range(200):
        _, mem = call(bytes(48))
        mono1, _, _, _, _, mono2 = struct.unpack("<6Q", mem)
        assert last <= mono1 <= mono2
        last = mono2


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_a_fixed_clock_is_read_by_every_clock_helper(opt):
    # ebpf_lto_clock (docs/helpers.md): while ns is set every clock reads it, jiffies64
    # as the kernel derives jiffies at HZ = 1000; ns = 0 gives the host's clocks back.
    loaded, _ = pipeline.load(obj("time"), options("clocks", opt))
    fixed = 7_200_000_123_456_789
    loaded.fix_clock(fixed)
    mem = bytearray(48)
    loaded.call(abi.ENTRY_SYMBOL, mem)
    assert struct.unpack("<6Q", mem) == (fixed, fixed, fixed,
                                         INITIAL_JIFFIES + 7_200_000_123, fixed, fixed)
    loaded.fix_clock(0)
    t0 = time.monotonic_ns()
    loaded.call(abi.ENTRY_SYMBOL, mem)
    assert t0 <= struct.unpack_from("<Q", mem)[0] <= time.monotonic_ns()


# -- the current task (7, 8, 14, 15, 16, 42) ------------------------------------

ID_LAYOUT = "<6Q16s4s4x16I"
ID_SIZE = struct.calcsize(ID_LAYOUT)


def identity(opt: int = 2):
    _, mem = run("identity", "identity", bytes(ID_SIZE), opt)
    return struct.unpack(ID_LAYOUT, mem)


def expected_comm() -> bytes:
    # The calling thread's name; the kernel limits it to 15 bytes.
    return Path("/proc/thread-self/comm").read_bytes().rstrip(b"\n")[:15]


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_identity_in_main_thread(opt):
    pid_tgid, uid_gid, cpu, numa, comm_ret, small_ret, comm, small, *rand = identity(opt)
    assert pid_tgid >> 32 == os.getpid()
    assert pid_tgid & 0xFFFFFFFF == threading.get_native_id()
    assert uid_gid == (os.getgid() << 32 | os.getuid())
    assert cpu in os.sched_getaffinity(0)
    nodes = sorted(int(p.name[4:]) for p in Path("/sys/devices/system/node").glob("node[0-9]*"))
    assert numa in (nodes or [0])

    name = Path("/proc/self/comm").read_bytes().rstrip(b"\n")
    assert comm_ret == 0 and small_ret == 0
    assert comm == name[:15] + bytes(16 - len(name[:15]))   # NUL-terminated, zero-padded
    assert small == name[:3] + b"\0"                        # cut to size - 1, NUL

    assert len(set(rand)) >= 15                              # 16 draws of 32 bits


def test_identity_in_another_thread():
    """pid is the thread id and comm the thread's own name, as in the kernel."""
    result = {}

    def worker():
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, b"ebpf-lto-worker", 0, 0, 0)            # PR_SET_NAME
        result["tid"] = threading.get_native_id()
        result["want_comm"] = expected_comm()
        result["values"] = identity()

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    pid_tgid, _, _, _, _, _, comm, *_ = result["values"]
    assert pid_tgid >> 32 == os.getpid()
    assert pid_tgid & 0xFFFFFFFF == result["tid"] != os.getpid()
    assert result["want_comm"] == b"ebpf-lto-worker"
    assert comm.rstrip(b"\0") == result["want_comm"]


def test_prandom_varies():
    call = caller("identity", "identity")
    draws = []
    for _ in range(100):
        draws += struct.unpack(ID_LAYOUT, call(bytes(ID_SIZE))[1])[8:]
    assert len(set(draws)) >= len(draws) - 2
    for bit in range(32):                                    # each bit about half the time
        ones = sum(d >> bit & 1 for d in draws)
        assert 0.4 * len(draws) < ones < 0.6 * len(draws), f"bit {bit}: {ones}/{len(draws)}"


def test_prandom_from_many_threads():
    """The shared state is updated atomically: concurrent draws stay distinct."""
    call = caller("identity", "identity")
    out: list[list[int]] = [[] for _ in range(4)]

    def worker(k):
        for _ in range(40):
            out[k] += struct.unpack(ID_LAYOUT, call(bytes(ID_SIZE))[1])[8:]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    draws = [d for part in out for d in part]
    assert len(draws) == 4 * 40 * 16
    assert len(set(draws)) >= len(draws) - 3


# -- memory reads (4, 45, 112, 113, 114, 115) and strncmp (182) -------------------

READS_LAYOUT = "<IIQ3q64s64s64s"
FILL = 0xAA


def reads(program: str, size: int, src: int, opt: int = 2, checks: bool = False):
    """The probe_read family on host memory at src: a checked build reads only the
    program's own memory (tests/test_safety.py), so these run unchecked."""
    mem = struct.pack(READS_LAYOUT, size, 0, src, 7, 7, 7, *(bytes([FILL]) * 64,) * 3)
    _, after = run("memory", program, mem, opt, checks)
    _, _, _, *rest = struct.unpack(READS_LAYOUT, after)
    return rest[:3], rest[3:]


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_probe_read(opt):
    data = bytes(range(1, 64))
    src = ctypes.create_string_buffer(data, 64)
    for size in (0, 1, 7, 8, 33, 63):
        rets, dsts = reads("probe_reads", size, ctypes.addressof(src), opt)
        assert rets == [0, 0, 0], size
        for dst in dsts:          # probe_read, probe_read_user, probe_read_kernel
            assert dst == data[:size] + bytes([FILL]) * (64 - size)


@pytest.mark.parametrize("checks", [False, True])
def test_probe_read_bad_pointer_faults(checks):
    # Checked, any host memory is a bad pointer, however readable.
    good = ctypes.create_string_buffer(b"host", 64)
    for src in (0, ctypes.addressof(good)) if checks else (0,):
        rets, dsts = reads("probe_reads", 16, src, 2, checks)
        assert rets == [-EFAULT] * 3
        for dst in dsts:              # the kernel zeroes the destination on a fault
            assert dst == bytes(16) + bytes([FILL]) * 48


# (string at src, size) -> (return value, bytes written); hand-computed from
# the kernel's rules: the NUL is counted, a long string is cut to size - 1
# bytes plus NUL, nothing is padded, size 0 writes nothing.
STR_CASES = [
    (b"hello", 63, 6, b"hello\0"),
    (b"hello", 7, 6, b"hello\0"),
    (b"hello", 6, 6, b"hello\0"),
    (b"hello", 5, 5, b"hell\0"),
    (b"hello", 3, 3, b"he\0"),
    (b"hello", 1, 1, b"\0"),
    (b"hello", 0, 0, b""),
    (b"", 10, 1, b"\0"),
    (b"x" * 40, 63, 41, b"x" * 40 + b"\0"),
    (b"x" * 70, 63, 63, b"x" * 62 + b"\0"),
]


@pytest.mark.parametrize("opt", OPT_LEVELS)
@pytest.mark.parametrize("string,size,ret,written", STR_CASES)
def test_probe_read_str(string, size, ret, written, opt):
    src = ctypes.create_string_buffer(string + b"\0" + b"\x01" * 8)   # junk after the NUL
    rets, dsts = reads("probe_read_strs", size, ctypes.addressof(src), opt)
    assert rets == [ret] * 3      # probe_read_str, probe_read_user_str, probe_read_kernel_str
    for dst in dsts:
        assert dst == written + bytes([FILL]) * (64 - len(written))


def test_probe_read_str_bad_pointer_faults():
    rets, dsts = reads("probe_read_strs", 10, 8, 2)
    assert rets == [-EFAULT] * 3
    for dst in dsts:
        assert dst == bytes(10) + bytes([FILL]) * 54


def c_strncmp_sign(s1: bytes, n: int, s2: bytes) -> int:
    """The sign of C's strncmp: both strings end at their first NUL; Python
    compares bytes as unsigned values, a prefix first."""
    a, b = s1.split(b"\0")[0][:n], s2.split(b"\0")[0][:n]
    return (a > b) - (a < b)


STRNCMP_CASES = [
    (b"hello", 5, b"hello"), (b"hello", 31, b"hello"), (b"hello", 5, b"help"),
    (b"help", 5, b"hello"), (b"hel", 31, b"hello"), (b"hello", 31, b"hel"),
    (b"hello", 3, b"help"), (b"abc", 0, b"xyz"), (b"", 5, b""), (b"", 5, b"a"),
    (b"\xff", 5, b"a"), (b"a", 5, b"\xff"), (b"abc\0x", 31, b"abc\0y"),
    (b"Zebra", 31, b"apple"), (b"same prefix 1", 12, b"same prefix 2"),
    (b"same prefix 1", 13, b"same prefix 2"),
]


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_strncmp(opt):
    call = caller("memory", "strncmp_prog", opt)
    for s1, n, s2 in STRNCMP_CASES:
        r0, mem = call(struct.pack("<IIq32s32s", n, 0, 9, s1, s2))
        want = c_strncmp_sign(s1, n, s2)
        assert signed(r0) == want, (s1, n, s2)           # the kernel returns -1, 0 or 1
        assert struct.unpack_from("<q", mem, 8)[0] == want


def test_strncmp_constant_string():
    call = caller("memory", "strncmp_const")
    for s1, n in [(b"hello", 5), (b"hello", 31), (b"help", 4), (b"hellp", 5), (b"he", 31),
                  (b"hellz", 4), (b"a", 1), (b"z", 1)]:
        r0, _ = call(struct.pack("<IIq32s32s", n, 0, 0, s1, b""))
        assert signed(r0) == c_strncmp_sign(s1, n, b"hello"), (s1, n)


# -- formatted output (6, 165, 177) ---------------------------------------------------

FMT_LAYOUT = "<IIIIq12Q128s128s"
OUT_OFFSET = struct.calcsize("<IIIIq12Q128s")


def fmt_mem(fmt: bytes, args=(), *, str_size=127, data_len=None, fmt_size=None) -> bytes:
    args = [a & M64 for a in args]
    return struct.pack(FMT_LAYOUT, len(fmt) + 1 if fmt_size is None else fmt_size, str_size,
                       8 * len(args) if data_len is None else data_len, 0, 0,
                       *(args + [0] * (12 - len(args))), fmt, b"")


_keep: list = []


def cstr(s: bytes) -> int:
    """The address of a NUL-terminated copy of s, kept alive for the session."""
    buf = ctypes.create_string_buffer(s)
    _keep.append(buf)
    return ctypes.addressof(buf)


def snprintf(fmt: bytes, args=(), opt: int = 2, **kw) -> tuple[int, bytes]:
    r0, mem = caller("output", "snprintf_prog", opt)(fmt_mem(fmt, args, **kw))
    return r0, mem[OUT_OFFSET:]


# (format, arguments, the text the kernel's vsnprintf prints)
FORMATS = [
    (b"%d", [-5], b"-5"),
    (b"%i", [-5], b"-5"),
    (b"%d", [0x1_0000_0005], b"5"),                    # int: the low 32 bits
    (b"%d", [0x8000_0000], b"-2147483648"),
    (b"%u", [-5], b"4294967291"),
    (b"%x", [255], b"ff"),
    (b"%X", [255], b"FF"),
    (b"%x", [-1], b"ffffffff"),
    (b"%ld", [-5], b"-5"),
    (b"%li", [-1234567890123], b"-1234567890123"),
    (b"%lu", [-1], b"18446744073709551615"),
    (b"%lx", [0xDEADBEEFCAFE], b"deadbeefcafe"),
    (b"%lld", [-(1 << 63)], b"-9223372036854775808"),
    (b"%lli", [42], b"42"),
    (b"%llu", [1 << 63], b"9223372036854775808"),
    (b"%llx", [0x123456789ABCDEF0], b"123456789abcdef0"),
    (b"%c", [ord("A")], b"A"),
    (b"%%", [], b"%"),
    (b"100%% %d%%", [7], b"100% 7%"),
    (b"%p", [0xDEADBEEF], b"00000000deadbeef"),
    (b"%px", [0x7F00DEADBEEF], b"00007f00deadbeef"),
    (b"%pK", [1], b"0000000000000001"),
    (b"%5d|", [42], b"   42|"),
    (b"%-5d|", [42], b"42   |"),
    (b"%05d", [-42], b"-0042"),
    (b"%+d %+d", [5, -5], b"+5 -5"),
    (b"% d", [5], b" 5"),
    (b"%08x", [0xBEEF], b"0000beef"),
    (b"%3c|%-3c|", [ord("a"), ord("b")], b"  a|b  |"),
    (b"no conversions", [], b"no conversions"),
    (b"tab\tnewline\n", [], b"tab\tnewline\n"),
]


@pytest.mark.parametrize("opt", OPT_LEVELS)
@pytest.mark.parametrize("fmt,args,want", FORMATS, ids=[f[0].decode() for f in FORMATS])
def test_snprintf_conversions(fmt, args, want, opt):
    r0, out = snprintf(fmt, args, opt)
    assert out[:len(want) + 1] == want + b"\0"
    assert r0 == len(want) + 1                 # the kernel counts the NUL


def test_snprintf_strings_and_addresses():
    hello = cstr(b"hello")
    cases = [
        (b"%s", [hello], b"hello"),
        (b"<%s>", [hello], b"<hello>"),
        (b"%8s|%-8s|", [hello, hello], b"   hello|hello   |"),
        (b"%s", [0], b""),                     # a faulting string reads as empty
        (b"%pks %pus", [hello, hello], b"hello hello"),
        (b"%d %s %c %x", [-1, hello, ord("!"), 16], b"-1 hello ! 10"),
        (b"%pI4", [cstr(bytes([192, 168, 0, 1]))], b"192.168.0.1"),
        (b"%pi4", [cstr(bytes([192, 168, 0, 1]))], b"192.168.000.001"),
        (b"%pI6", [cstr(bytes.fromhex("20010db8000000000000000000000001"))],
         b"2001:0db8:0000:0000:0000:0000:0000:0001"),
        (b"%pi6", [cstr(bytes.fromhex("20010db8000000000000000000000001"))],
         b"20010db8000000000000000000000001"),
    ]
    for fmt, args, want in cases:
        r0, out = snprintf(fmt, args)
        assert (out[:len(want) + 1], r0) == (want + b"\0", len(want) + 1), fmt


def test_snprintf_truncates_and_counts_the_full_length():
    hello = cstr(b"hello world")
    r0, out = snprintf(b"%s", [hello], str_size=5)
    assert out[:5] == b"hell\0" and out[5:] == bytes(len(out) - 5)
    assert r0 == 12
    r0, out = snprintf(b"%s", [hello], str_size=0)
    assert r0 == 12 and out == bytes(len(out))           # nothing written
    r0, out = snprintf(b"%s", [hello], str_size=1)
    assert r0 == 12 and out[:2] == b"\0\0"


def test_snprintf_long_string_is_cut_by_the_argument_buffer():
    """The kernel copies string arguments into a 512-byte buffer first."""
    long = cstr(b"a" * 600)
    r0, out = snprintf(b"%s", [long])
    assert r0 == 511 + 1
    assert out[:127] == b"a" * 126 + b"\0"
    r0, _ = snprintf(b"%s%s", [long, long])
    assert r0 == neg(ENOSPC)


BAD_FORMATS = [
    (b"%f", [1]), (b"%hd", [1]), (b"%.2d", [1]), (b"%#x", [1]), (b"%n", [1]), (b"%*d", [1, 2]),
    (b"%lc", [1]), (b"%lls", [1]), (b"%q", [1]), (b"%sx", [1]), (b"%pZ", [1]),
    (b"%d %d", [1]),                           # more conversions than arguments
    (b"%d", []),
    (b"bell\x07", []),                         # not printable
    (b"\xc3\xa9", []),                         # not ASCII
    (b"%", [1]),
]


@pytest.mark.parametrize("fmt,args", BAD_FORMATS, ids=[repr(f[0]) for f in BAD_FORMATS])
def test_snprintf_refuses_bad_formats(fmt, args):
    r0, out = snprintf(fmt, args)
    assert r0 == neg(EINVAL) == 2**64 - 22
    assert out == bytes(len(out))              # nothing written


def test_snprintf_refuses_bad_data():
    assert snprintf(b"%d", [1], data_len=4)[0] == neg(EINVAL)        # not a multiple of 8
    assert snprintf(b"x", [], data_len=13 * 8)[0] == neg(EINVAL)     # more than 12 args
    assert snprintf(b"%d" * 12, list(range(12)))[0] == len("01234567891011") + 1  # 12 is fine


def trace_printk(program: str, fmt: bytes, args=(), **kw) -> tuple[int, bytes]:
    call = caller("output", program)
    with captured_stderr() as text:
        r0, _ = call(fmt_mem(fmt, args, **kw))
    return r0, text[0]


def test_trace_printk_writes_to_fd2():
    hello = cstr(b"abc")
    r0, text = trace_printk("trace_printk_prog", b"%d %x %s\n", [-5, 255, hello])
    assert text == b"-5 ff abc\n"
    assert r0 == len(text)
    r0, text = trace_printk("trace_printk_prog", b"%llx %c%%", [0xABCDEF0123, ord("z")])
    assert (r0, text) == (13, b"abcdef0123 z%")


def test_trace_printk_errors_write_nothing():
    assert trace_printk("trace_printk_prog", b"%d %d %d %d", [1, 2, 3]) == (neg(EINVAL), b"")
    assert trace_printk("trace_printk_prog", b"%f", [1]) == (neg(EINVAL), b"")
    # fmt_size must cover the NUL
    assert trace_printk("trace_printk_prog", b"abc", fmt_size=3) == (neg(EINVAL), b"")
    assert trace_printk("trace_printk_prog", b"abc", fmt_size=4) == (3, b"abc")
    assert trace_printk("trace_printk_prog", b"ab\0cd", fmt_size=6) == (2, b"ab")


def test_trace_printk_long_output_is_cut_at_1023_bytes():
    long = cstr(b"b" * 500)
    r0, text = trace_printk("trace_printk_prog", b"%s%500d%50d", [long, 1, 2])
    assert r0 == 500 + 500 + 50
    assert text == (b"b" * 500 + b" " * 499 + b"1" + b" " * 49 + b"2")[:1023]


def test_trace_vprintk():
    args = [1, -2, 3, 0xFF, ord("x")]
    r0, text = trace_printk("trace_vprintk_prog", b"%d %d %u %lx %c\n", args)
    assert (r0, text) == (12, b"1 -2 3 ff x\n")
    assert trace_printk("trace_vprintk_prog", b"%d", [1], data_len=12)[0] == neg(EINVAL)


def test_libbpf_printk_and_snprintf_macros():
    call = caller("output", "macros")
    with captured_stderr() as text:
        r0, mem = call(fmt_mem(b"", []))
    assert text[0] == b"printk -5 abc|vprintk 1 2 3 abcdef|"
    printk_ret, vprintk_ret = struct.unpack_from("<2Q", mem, 24)
    assert (printk_ret, vprintk_ret) == (14, 21)
    assert mem[OUT_OFFSET:OUT_OFFSET + 7] == b"x=7 z%\0"
    assert r0 == 7


# -- bpf_loop (181) ------------------------------------------------------------------

LOOP_LAYOUT = "<IIQQqQQQ"


def bpf_loop(nr: int, stop_at: int, flags: int = 0, opt: int = 2):
    _, mem = run("loop", "loop", struct.pack(LOOP_LAYOUT, nr, 0x5EED, flags, stop_at, 0, 0, 0, 0),
                 opt)
    _, _, _, _, result, total, calls, ctx_ok = struct.unpack(LOOP_LAYOUT, mem)
    return result, total, calls, ctx_ok


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_loop_runs_to_the_end(opt):
    assert bpf_loop(10, 1000, opt=opt) == (10, sum(range(10)), 10, 1)
    assert bpf_loop(0, 1000, opt=opt) == (0, 0, 0, 1)
    assert bpf_loop(1000, 5000, opt=opt) == (1000, sum(range(1000)), 1000, 1)


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_loop_stops_when_the_callback_returns_1(opt):
    # stopping at index 3 means 4 calls, and the helper returns that count
    assert bpf_loop(10, 3, opt=opt) == (4, 0 + 1 + 2 + 3, 4, 1)
    assert bpf_loop(10, 0, opt=opt) == (1, 0, 1, 1)
    assert bpf_loop(10, 9, opt=opt) == (10, 45, 10, 1)


def test_loop_errors():
    assert bpf_loop(10, 1000, flags=1)[:3] == (-EINVAL, 0, 0)
    assert bpf_loop((1 << 23) + 1, 0)[:3] == (-E2BIG, 0, 0)
    assert bpf_loop(1 << 23, 2) == (3, 3, 3, 1)          # the limit itself is allowed


# -- the command line ------------------------------------------------------------------

def test_cli_run_with_default_helpers():
    mem = struct.pack(LOOP_LAYOUT, 6, 0x5EED, 0, 100, 0, 0, 0, 0)
    done = subprocess.run([sys.executable, "-m", "inliner.cli", "run", str(PROGS / "loop.o"),
                           "--helpers", "default", "--mem", mem.hex(), "--json"],
                          capture_output=True, text=True, check=True)
    out = json.loads(done.stdout)
    assert out["r0"] == 6
    result, total, calls = struct.unpack_from("<qQQ", bytes.fromhex(out["mem"]), 24)
    assert (result, total, calls) == (6, 15, 6)
