"""The suite: the benchmarks (program, input, setup) and the modes each one runs in."""
from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ...errors import EbpfLtoError


def bench_dir() -> Path:
    """benchmarks/ of the source tree: the programs, their objects, the driver."""
    path = Path(__file__).resolve().parents[3] / "benchmarks"
    if not (path / "driver.c").is_file():
        raise EbpfLtoError(f"no benchmark sources at {path} (bench runs from a source checkout)")
    return path


# --- inputs ---------------------------------------------------------------------------

def _ipv4_checksum(header: bytes) -> int:
    words = struct.unpack(f"!{len(header) // 2}H", header)
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_packet(size: int, src: str = "10.0.0.1", dst: str = "10.100.0.1",
               sport: int = 12345, dport: int = 80) -> bytes:
    """An Ethernet/IPv4/TCP packet of `size` bytes with a correct IPv4 checksum."""
    eth = bytes.fromhex("020000000002" "020000000001" "0800")
    payload = bytes((i * 7 + 3) & 0xFF for i in range(size - 14 - 20 - 20))
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 20 + len(payload), 1, 0x4000, 64,
                               6, 0, bytes(map(int, src.split("."))),
                               bytes(map(int, dst.split(".")))))
    struct.pack_into("!H", ip, 10, _ipv4_checksum(bytes(ip)))
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
    return eth + bytes(ip) + tcp + payload


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


def _u64s(values) -> bytes:
    return b"".join(struct.pack("<Q", v & (2**64 - 1)) for v in values)


def _u32s(values) -> bytes:
    return b"".join(struct.pack("<I", v & 0xFFFFFFFF) for v in values)


def _headers() -> bytes:
    out = b""
    for i in range(16):
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 60 + i, i, 0x4000, 64, 17, 0xFFFF,
                                   bytes([10, 0, 0, i]), bytes([192, 168, 1, 200 - i])))
        out += ip
    return out


def _strings() -> bytes:
    a = bytearray(b"eBPF" * 256)
    b = bytearray(a)
    a[1000], b[1000] = ord("x"), ord("y")
    a[1023] = b[1023] = 0
    return bytes(a + b)


def _binary_search_input() -> bytes:
    rng = _rng(4)
    return _u32s(i * 7 + 3 for i in range(1024)) + _u32s(rng.randrange(0, 7300)
                                                          for _ in range(64))


TLV_RECORDS = 1024
TLV_DATA, TLV_CSUM = 0x7F, 30
TLV_OTHER = (0, 1, 2, 3, 5, 8, 19, 34, 99)  # tlv_parse's types but data and checksum; unknown
TLV_MALFORMED = 4


def tlv_records() -> bytes:
    """tlv_parse's batch: traffic whose common case is what the program calls unlikely.

    The batch opens with its rare records: every other type once, a checksum
    record corrupt and one intact, then malformed records (length 0). The
    rest are data records, 97% of them with the extension flag set: the two
    tests tlv_parse makes under unlikely(). The rare records come first so
    that the branch predictor learns them; scattered at random, how well it
    learns their places swings both modes' times by up to 2x from run to run.
    """
    rng = _rng(7)
    control = (*TLV_OTHER, TLV_CSUM, TLV_CSUM)
    recs = [bytearray(struct.pack("<BBHI", kind, int(rng.random() < 0.97),
                                  rng.randrange(1, 1500), rng.getrandbits(32)))
            for kind in control + (TLV_DATA,) * (TLV_RECORDS - len(control))]
    # The Internet checksum of the record's first six bytes in its last two
    # makes its four 16-bit words sum to 0xffff: intact.
    intact = recs[len(control) - 1]
    struct.pack_into("!H", intact, 6, _ipv4_checksum(bytes(intact[:6])))
    for rec in recs[len(control):len(control) + TLV_MALFORMED]:
        struct.pack_into("<H", rec, 2, 0)
    return b"".join(recs)


# --- the benchmarks -------------------------------------------------------------------

@dataclass(frozen=True)
class Benchmark:
    name: str                      # the row: NAME or NAME/SIZE
    source: str                    # benchmarks/SOURCE.c and .o
    program: str                   # the program timed
    make_input: Callable[[], bytes]
    setup: str | None = None       # a raw program run once before (fills maps)
    restore: bool = False          # the program changes its input: copy it back each call
    about: str = ""
    heavy: bool = False            # dominated by helpers and map lookups: the 1.8x target's set

    @property
    def input(self) -> bytes:
        return self.make_input()

    @property
    def stem(self) -> str:
        """The row's name as a file name: what is built or written for this row alone."""
        return self.name.replace("/", "_")


def _packet(size: int) -> Callable[[], bytes]:
    return lambda: tcp_packet(size)


def _words(count: int) -> Callable[[], bytes]:
    """`count` random 64-bit words, the same on every call."""
    return lambda: _u64s(_rng(9).getrandbits(64) for _ in range(count))


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("csum_counter/64", "csum_counter", "csum_counter", _packet(64),
              about="bpf_csum_diff over the packet + array-map counter", heavy=True),
    Benchmark("csum_counter/512", "csum_counter", "csum_counter", _packet(512),
              about="the same, 512-byte packet", heavy=True),
    Benchmark("csum_counter/1500", "csum_counter", "csum_counter", _packet(1500),
              about="the same, 1500-byte packet", heavy=True),
    Benchmark("array_counter", "array_counter", "array_counter", _packet(64),
              about="per-protocol and per-size counters in two array maps", heavy=True),
    Benchmark("sum_bytes/1500", "sum_bytes", "sum_bytes", _packet(1500),
              about="loop summing packet bytes (vectorizable)"),
    Benchmark("flow_table", "flow_table", "flow_table", _packet(64), setup="flow_setup",
              about="5-tuple parse, hash-map lookup and update", heavy=True),
    Benchmark("katran_lb", "katran_lb", "katran_lb", _packet(64), setup="katran_setup",
              restore=True, about="Katran-style L4 load balancer, IP-in-IP encapsulation"),
    Benchmark("csum_hdrs", "csum_hdrs", "csum_hdrs", _headers,
              about="16 IPv4 header checksums, one bpf_csum_diff call each"),
    Benchmark("memcpy", "memcpy", "memcpy_4k",
              lambda: _u64s(_rng(1).getrandbits(64) for _ in range(512)) + bytes(4096),
              about="copy 4 KiB"),
    Benchmark("switch", "switch", "switch_dispatch",
              lambda: _u32s(_rng(2).getrandbits(32) for _ in range(1024)),
              about="16-way switch over 1024 opcodes"),
    Benchmark("prime", "prime", "prime_count", lambda: _u32s([5000]),
              about="count primes below 5000 by trial division"),
    Benchmark("strcmp", "strcmp", "strcmp_1k", _strings, about="compare two 1 KiB strings"),
    Benchmark("log2", "log2", "log2_16",
              lambda: _u64s(_rng(3).getrandbits(64) >> (i * 4) for i in range(16)),
              about="integer log2 of 16 values, unrolled"),
    Benchmark("bitcount", "bitcount", "bitcount",
              lambda: _u64s(_rng(5).getrandbits(64) for _ in range(256)),
              about="SWAR popcount of 256 words"),
    Benchmark("binary_search", "binary_search", "binary_search", _binary_search_input,
              about="64 binary searches in 1024 sorted keys"),
    Benchmark("crc32", "crc32", "crc32_256", lambda: bytes(_rng(6).getrandbits(8)
                                                       for _ in range(256)),
              about="bitwise CRC-32 of 256 bytes"),
    Benchmark("call_chain", "call_chain", "call_chain", lambda: _u64s([42]),
              about="a chain of 8 bpf-to-bpf calls, 256 times"),
    Benchmark("tlv_parse", "tlv_parse", "tlv_parse", tlv_records,
              about="1024-record parser whose common records take its unlikely() branches"),
    # Compute shapes where lifted bytecode can trail a compiler that saw the C (issue 19).
    Benchmark("spill", "spill", "spill", _words(512),
              about="12 accumulators over 512 words: eBPF keeps some on the stack"),
    Benchmark("accum/4", "accum", "accum_4", _words(1024),
              about="4 independent sums over 1024 words"),
    Benchmark("accum/8", "accum", "accum_8", _words(1024),
              about="8 independent sums over 1024 words"),
    Benchmark("mulconst", "mulconst", "mulconst", _words(512),
              about="multiplies by 3, 5, 9, 10, 31 and 33 over 512 words"),
    Benchmark("select_chain", "select_chain", "select_chain",
              lambda: _u32s(_rng(10).getrandbits(32) for _ in range(1024)),
              about="512 chains of six dependent selects, unpredictable"),
    Benchmark("straight/500", "straight", "straight_500", _words(32),
              about="a straight-line block of 500 instructions"),
    Benchmark("straight/1000", "straight", "straight_1000", _words(32),
              about="a straight-line block of 1000 instructions"),
)


def select(names: list[str]) -> list[Benchmark]:
    """The benchmarks `names` pick (all if none): a row's name, or a program's for all its sizes."""
    if not names:
        return list(BENCHMARKS)
    chosen = []
    for name in names:
        hits = [b for b in BENCHMARKS if b.name == name or b.source == name
                or b.name.startswith(name + "/")]
        if not hits:
            known = ", ".join(sorted({b.source for b in BENCHMARKS}))
            raise EbpfLtoError(f"no benchmark named {name!r} (benchmarks: {known})")
        chosen += [b for b in hits if b not in chosen]
    return chosen


# --- modes ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Mode:
    key: str
    label: str
    about: str
    colour: str  # the mode's colour in every chart (matplotlib's tab10)


MODES: tuple[Mode, ...] = (
    Mode("none", "--inline none", "helpers out of line in their own object (bpftime AOT)",
         "tab:gray"),
    Mode("lto", "inline+LTO", "ebpf-lto link --inline auto", "tab:blue"),
    Mode("unchecked", "inline+LTO --no-checks",
         "ebpf-lto link --no-checks: no run-time memory checks, no step budget", "tab:cyan"),
    Mode("pgo", "inline+LTO+PGO", "ebpf-lto link --profile, trained on the benchmark's input",
         "tab:green"),
    Mode("lto-generic", "inline+LTO --cpu generic",
         "ebpf-lto link --cpu generic: the target llvmbpf's AOT compiles for", "navy"),
    Mode("bpftime-lto", "inline+LTO in llvmbpf",
         "ebpf-lto link --abi bpftime, loaded by llvmbpf's load_aot_object", "tab:olive"),
    Mode("llvmbpf-ir", "inline+LTO of llvmbpf IR",
         "llvmbpf's own IR of the program (bpftime-aot compile -e), linked by ebpf-lto link "
         "--abi bpftime, loaded by load_aot_object", "gold"),
    Mode("raw", "inline+LTO of raw bytecode",
         "the bytecode as bpftime holds it (maps relocated to fds), linked by ebpf-lto link "
         "--raw --map-def --abi bpftime, loaded by load_aot_object", "darkkhaki"),
    Mode("twin", "native twin", "the C by clang-19's front end, then optimized and emitted "
         "as inline+LTO is (ebpf-lto's LLVM, -O3, its target, its helper bitcode)", "tab:brown"),
    Mode("twin-clang19", "native twin, clang-19",
         "the C compiled natively by clang-19 -O3 -flto with the helper C (LLVM 19)", "peru"),
    Mode("dpdk-interp", "DPDK interp", "librte_bpf's interpreter", "tab:orange"),
    Mode("dpdk-jit", "DPDK JIT", "librte_bpf's x86-64 JIT", "tab:purple"),
    Mode("llvmbpf-jit", "llvmbpf JIT",
         "bpftime's engine: llvmbpf's JIT of the bytecode, bpftime's helpers out of line",
         "tab:pink"),
    Mode("llvmbpf-aot", "llvmbpf AOT", "bpftime's engine: llvmbpf's AOT object (generic CPU) "
         "loaded by load_aot_object, bpftime's helpers out of line", "tab:red"),
)
MODE_KEYS = tuple(m.key for m in MODES)
BY_KEY = {m.key: m for m in MODES}
REFERENCE = "twin"
BASELINE = "none"
UNCHECKED = "unchecked"    # the cost of the checks is measured against it
PEER = "llvmbpf-aot"       # what a bpftime user runs today: ebpf-lto's gain is over it
# the summary's ebpf-lto against PEER
AGAINST_PEER = ("lto", "lto-generic", "bpftime-lto", "llvmbpf-ir", "raw")
# run by libllvmbpf-bench.so
LLVMBPF_MODES = ("llvmbpf-jit", "llvmbpf-aot", "bpftime-lto", "llvmbpf-ir", "raw")
