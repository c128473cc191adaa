"""`ebpf-lto bench`: the benchmark suite, timed natively, every mode in one process.

Each benchmark is an eBPF C program in benchmarks/ (committed with its
object) and one input. Every mode of a benchmark is built into a shared
object (or, for DPDK, handed to librte_bpf), and benchmarks/driver.c, a small
C program compiled here, loads them all into one process, checks that they
agree, and times them round-robin. Python never runs between calls.

Modes:

- `none`: `ebpf-lto link --inline none`, the shape of bpftime's AOT: helpers
  stay calls to `_bpf_helper_ext_NNNN`, defined by the helper set compiled as
  an object of its own (pipeline.helper_object), linked beside the program.
- `lto`: `ebpf-lto link` with the plan's inlining (`--inline auto`): helpers
  linked in as bitcode and optimized with the program.
- `pgo`: `lto` linked with a profile (docs/pgo.md): the program is first
  linked with `--instrument` and run over the benchmark's own input (training
  on representative traffic), its counters are written as an LLVM indexed
  profile, and the program is linked again with `--profile`.
- `twin`: the same C compiled natively by clang -O3 with the same helper C,
  LTO over both (`-flto`): what the program would cost written as native code.
- `dpdk-interp`, `dpdk-jit`: DPDK's librte_bpf (Debian's librte-bpf23),
  interpreter and x86-64 JIT, given the helpers as C functions.

`--quick` is a correctness check, not a measurement: one call per mode,
every mode's r0 and memory compared with the native twin's.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import codegen, pipeline
from ..elf import loader
from ..elf.model import EbpfObject
from ..errors import EbpfLtoError
from ..facts import cabi, contexts, isa, maps
from ..facts.abi import helper_symbol
from ..facts.helpers import helper_name
from ..link import helpers
from ..pgo import profile
from .progress import Progress

OPT_LEVEL = 3
DEFAULT_REPS = 31
REP_MS = 2.0       # one repetition of one mode: short, so a preemption spoils few of them
WARMUP_MS = 20.0
TRAINING_RUNS = 100  # calls that train the pgo mode: a first call's map inserts weigh little
COMPILE_COST_SIZES = (1000, 10000, 100000)
COMPILE_COST_TIMEOUT = 600.0  # seconds one link may take before it counts as a timeout
HELPER_DEFS = "bpf/bpf_helper_defs.h"
DPDK_LIB = "librte_bpf.so.23"  # Debian's librte-bpf23; EBPF_LTO_BENCH_DPDK_LIB overrides


def bench_dir() -> Path:
    """benchmarks/ of the source tree: the programs, their objects, the driver."""
    path = Path(__file__).resolve().parent.parent / "benchmarks"
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


# --- the suite ------------------------------------------------------------------------

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


def _packet(size: int) -> Callable[[], bytes]:
    return lambda: tcp_packet(size)


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
)

# The small, fast benchmarks the test suite's --quick run uses.
QUICK_DEFAULT = ("csum_hdrs", "crc32")


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
    Mode("pgo", "inline+LTO+PGO", "ebpf-lto link --profile, trained on the benchmark's input",
         "tab:green"),
    Mode("twin", "native twin", "the C compiled natively, clang -O3 -flto with the helper C",
         "tab:brown"),
    Mode("dpdk-interp", "DPDK interp", "librte_bpf's interpreter", "tab:orange"),
    Mode("dpdk-jit", "DPDK JIT", "librte_bpf's x86-64 JIT", "tab:purple"),
)
MODE_KEYS = tuple(m.key for m in MODES)
REFERENCE = "twin"
BASELINE = "none"


@dataclass
class Outcome:
    """One mode of one benchmark."""
    status: str                    # ok | refused | unavailable | needs | wrong | failed
    reason: str = ""
    r0: int | None = None
    output_sha: str | None = None
    reps: list[float] = field(default_factory=list)
    calls: int | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.reps) if self.reps else None

    @property
    def best(self) -> float | None:
        return min(self.reps) if self.reps else None

    @property
    def spread(self) -> float | None:
        """The interquartile range relative to the median."""
        if len(self.reps) < 2:
            return None
        q = statistics.quantiles(self.reps, n=4, method="inclusive")
        return (q[2] - q[0]) / statistics.median(self.reps)


@dataclass
class Result:
    bench: Benchmark
    prog_type: str
    outcomes: dict[str, Outcome]
    harness_ns: float | None = None

    @property
    def is_packet(self) -> bool:
        return self.prog_type == "xdp"

    def ratio(self, mode: str, to: str) -> float | None:
        a, b = self.outcomes.get(mode), self.outcomes.get(to)
        if a and b and a.status == "ok" and b.status == "ok" and a.median and b.median:
            return a.median / b.median
        return None


# --- toolchain ------------------------------------------------------------------------

@dataclass(frozen=True)
class Toolchain:
    clang: str
    cc: str

    @staticmethod
    def find() -> "Toolchain":
        clang = shutil.which("clang-19") or shutil.which("clang")
        if clang is None:
            raise EbpfLtoError("bench needs clang (clang-19) for the native twins")
        cc = shutil.which("cc") or clang
        return Toolchain(clang, cc)


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EbpfLtoError(f"{what} failed: {' '.join(cmd)}\n{proc.stderr.strip()[-2000:]}")


def _include_dirs() -> list[str]:
    multiarch = f"/usr/include/{platform.machine()}-linux-gnu"
    return [f"-I{multiarch}"] if Path(multiarch).is_dir() else []


# --- the native twin ------------------------------------------------------------------

_DEF = re.compile(r"^static (.+?)\(\*\s*(?:const\s+)?(\w+)\)\((.*)\) = \(void \*\) (\d+);$")


def _helper_defs() -> Path:
    for base in ("/usr/include", "/usr/local/include"):
        path = Path(base) / HELPER_DEFS
        if path.is_file():
            return path
    raise EbpfLtoError("bench needs libbpf's headers (bpf/bpf_helper_defs.h, libbpf-dev)")


def twin_shim() -> str:
    """The header force-included before a program's C when it is compiled natively.

    It gives `struct xdp_md` bpftime's userspace layout (what r1 points at,
    docs/abi.md) and turns every libbpf helper declaration into a direct call
    of `_bpf_helper_ext_NNNN`, with map arguments turned into the map's
    descriptor (`twin_map`, defined after the program by the twin's tail).
    """
    lines = [
        "/* Generated by inliner/bench.py: libbpf's helpers as direct calls. */",
        "#define xdp_md xdp_md_kernel_layout",
        "#include <linux/bpf.h>",
        "#undef xdp_md",
        "#include <stdint.h>",
        *[line.replace(f"struct {contexts.XDP.user_struct} ", "struct xdp_md ")
          for line in cabi.struct_lines(contexts.XDP)],
        "#include <bpf/bpf_helpers.h>",
        "typedef unsigned long long twin_u64;",
        "static inline void *twin_map(const void *map);",
    ]
    for text in _helper_defs().read_text().splitlines():
        m = _DEF.match(text.strip())
        if not m:
            continue
        ret, name, params, hid = m.group(1).strip(), m.group(2), m.group(3).strip(), int(m.group(4))
        params = [] if params in ("", "void") else [p.strip() for p in params.split(",")]
        if len(params) > 5 or any("(" in p or "..." in p for p in params):
            continue
        symbol = helper_symbol(hid)
        args = []
        for i, p in enumerate(params):
            pname = re.findall(r"\w+", p)[-1]
            value = f"twin_map(a{i})" if pname == "map" or pname.endswith("_map") else f"(a{i})"
            args.append(f"(twin_u64){value}")
        args += ["0"] * (5 - len(args))
        formals = ", ".join(f"a{i}" for i in range(len(params)))
        call = f"{symbol}({', '.join(args)})"
        body = f"((void){call})" if ret == "void" else f"(({ret}){call})"
        lines.append(f"twin_u64 {symbol}(twin_u64, twin_u64, twin_u64, twin_u64, twin_u64);")
        lines.append(f"#define {name}({formals}) {body}")
    return "\n".join(lines) + "\n"


def twin_source(obj: EbpfObject, source: Path, entries: dict[str, str], ncpus: int) -> str:
    """The twin's one translation unit: the shim, the program's C, then its maps and entries.

    `entries` maps an exported symbol to the program function it calls.
    Map descriptors follow the link step's (lift.py): same geometry, same
    order, a zeroed 128-byte state each.
    """
    out = ['#include "twin_shim.h"', f'#include "{source}"', '#include "abi.h"', ""]
    names = list(obj.maps)
    for index, (name, m) in enumerate(obj.maps.items()):
        fields = m.descriptor(ncpus, index, names.index(m.inner) if m.inner else maps.NO_INNER)
        fields.update(state=f"twin_state_{name}", name=f'"{name}"')
        init = ", ".join(f".{field} = {fields[field]}" for _, field in maps.DESCRIPTOR_FIELDS)
        out += [f"static _Alignas(64) unsigned char twin_state_{name}[BPF_MAP_STATE_SIZE];",
                f"static const struct bpf_map twin_desc_{name} = {{{init}}};"]
    out.append("static inline void *twin_map(const void *map)\n{")
    for name in names:
        out.append(f"\tif (map == (const void *)&{name})\n\t\treturn (void *)&twin_desc_{name};")
    out += ["\treturn (void *)map;", "}", ""]
    for symbol, func in entries.items():
        out += [f"twin_u64 {symbol}(void *ctx, twin_u64 len)",
                "{", "\t(void)len;", f"\treturn (twin_u64){func}(ctx);", "}"]
    return "\n".join(out) + "\n"


# --- building the modes ---------------------------------------------------------------

@dataclass
class Built:
    """What the driver needs to run one mode: a `mode ...` config line, or why not."""
    line: str | None = None
    status: str = "ok"
    reason: str = ""


def _version_script(path: Path, symbols: list[str]) -> Path:
    path.write_text("{ global: " + " ".join(f"{s};" for s in symbols) + " local: *; };\n")
    return path


def called_helpers(obj: EbpfObject) -> set[int]:
    ids = set()
    for slots in obj.code.values():
        for insn in slots:
            if insn is not None and insn.opcode == isa.JMP | isa.CALL \
                    and insn.src == isa.CALL_HELPER:
                ids.add(insn.imm)
    return ids


def _has_local_calls(obj: EbpfObject) -> bool:
    return any(ref.kind == "call" for ref in obj.refs.values())


class Builder:
    """Builds every mode of every benchmark program in one work folder."""

    def __init__(self, work: Path, tools: Toolchain, cpu: str = "native"):
        self.work = work
        self.tools = tools
        self.cpu = cpu
        self.options = pipeline.LinkOptions(opt_level=OPT_LEVEL, cpu=cpu, helpers="default")
        self.hset = pipeline.helper_set(self.options)
        self.target = codegen.make_target(self.options.arch, cpu)
        self._helpers_o: Path | None = None
        self._helpers_so: Path | None = None
        self._twin_helpers: list[Path] | None = None
        self._built: dict[tuple[str, str], Built] = {}
        self._ops = None
        self.driver = self._build_driver()

    # shared pieces
    def _build_driver(self) -> Path:
        exe = self.work / "driver"
        _run([self.tools.cc, "-O2", "-Wall", f"-I{helpers.bitcode_dir() / 'src'}", "-o", str(exe),
              str(bench_dir() / "driver.c"), "-ldl"], "building the timing driver")
        return exe

    def helpers_object(self) -> Path:
        """The helper set compiled alone: what --inline none calls out to."""
        if self._helpers_o is None:
            path = self.work / "helpers.o"
            path.write_bytes(pipeline.helper_object(self.hset, self.target, OPT_LEVEL))
            self._helpers_o = path
        return self._helpers_o

    def helpers_shared(self) -> Path:
        """The same helper object as a shared library: the helpers DPDK calls."""
        if self._helpers_so is None:
            path = self.work / "helpers.so"
            _run([self.tools.cc, "-shared", "-o", str(path), str(self.helpers_object())],
                 "linking the helper library")
            self._helpers_so = path
        return self._helpers_so

    def twin_helpers(self) -> list[Path]:
        """The default helper set's C, compiled for LTO (clang -O3 -flto)."""
        if self._twin_helpers is None:
            src = helpers.bitcode_dir() / "src"
            out = []
            for stem in helpers.NAMED_SETS["default"][0]:
                obj = self.work / f"twin_helper_{stem}.o"
                _run([self.tools.clang, "-O3", "-flto", "-fPIC", self._march(), "-nostdlibinc",
                      "-fno-stack-protector", f"-I{src}", "-c", str(src / f"{stem}.c"),
                      "-o", str(obj)], f"compiling helper {stem}.c for the native twin")
                out.append(obj)
            self._twin_helpers = out
        return self._twin_helpers

    def _march(self) -> str:
        return "-march=native" if self.cpu == "native" else f"-march={self.cpu}" \
            if self.cpu != "generic" else "-march=x86-64"

    def supported_map_types(self) -> set[str]:
        """Map types whose operations the helper set defines (maps.h: TYPE_ops)."""
        if self._ops is None:
            import llvmlite.binding as llvm
            found = set()
            for mod in self.hset.modules():
                for gv in mod.global_variables:
                    if gv.name.endswith("_ops") and not gv.is_declaration \
                            and gv.linkage != llvm.Linkage.external_weak:
                        found.add(gv.name[:-4])
            self._ops = found
        return self._ops

    # per program
    def missing(self, obj: EbpfObject) -> str | None:
        """Why the helper set cannot run this program yet, or None."""
        absent = sorted(called_helpers(obj) - self.hset.ids)
        types = {maps.type_name(m.type) for m in obj.maps.values()}
        unsupported = sorted(t for t in types if t not in self.supported_map_types())
        if obj.maps and not {1, 2} <= self.hset.ids:
            return "needs the map runtime"
        if unsupported:
            return f"needs the map runtime ({', '.join(unsupported)} maps)"
        if absent:
            return "needs helpers " + ", ".join(f"{h} ({helper_name(h)})" for h in absent)
        return None

    def build(self, mode: str, bench: Benchmark, obj: EbpfObject) -> Built:
        # A pgo build is trained on its benchmark's input, so each size of a
        # program gets its own; every other mode is built once per program.
        stem = bench.name.replace("/", "_") if mode == "pgo" else bench.source
        key = (mode, stem)
        if key not in self._built:
            try:
                self._built[key] = self._build(mode, bench, obj, stem)
            except EbpfLtoError as err:
                self._built[key] = Built(status="failed", reason=str(err).splitlines()[0])
        return self._built[key]

    def train(self, bench: Benchmark, obj: EbpfObject, options: pipeline.LinkOptions,
              path: Path) -> Path:
        """Write the profile of TRAINING_RUNS calls on the benchmark's input to `path`.

        The calls are the driver's: the setup program once, then the program
        on a fresh XDP context around the packet, or on the same memory each
        time (copied back first if the program changes it).
        """
        loaded, _ = pipeline.load(obj, dataclasses.replace(options, instrument=True))
        if bench.setup:
            loaded.call(bench.setup, None)
        data = bench.input
        memory = bytearray(data)
        is_xdp = obj.program(bench.program).prog_type == "xdp"
        for _ in range(TRAINING_RUNS):
            if is_xdp:
                loaded.call_packet(bench.program, contexts.XDP, data)
                continue
            if bench.restore:
                memory[:] = data
            loaded.call(bench.program, memory)
        path.write_bytes(profile.save(profile.read_counters(loaded), str(path)))
        return path

    def _build(self, mode: str, bench: Benchmark, obj: EbpfObject, stem: str) -> Built:
        if mode.startswith("dpdk"):
            return self._build_dpdk(mode, bench, obj)
        missing = self.missing(obj)
        if missing:
            return Built(status="needs", reason=missing)
        setup = bench.setup or "-"
        def out(ext: str) -> Path:
            return self.work / f"{stem}.{mode}{ext}"
        if mode in ("none", "lto", "pgo"):
            inline = "none" if mode == "none" else "auto"
            opts = dataclasses.replace(self.options, inline=inline)
            if mode == "pgo":
                trained = self.train(bench, obj, opts, out(".profdata"))
                opts = dataclasses.replace(opts, profile=str(trained))
            image, linked = pipeline.link(obj, opts, emit="obj")
            if linked.stale:  # trained on this very object: a mismatch is a bug
                raise EbpfLtoError(f"the profile does not fit {', '.join(linked.stale)}")
            out(".o").write_bytes(image)
            objects = [str(out(".o"))]
            if not linked.linked_in and linked.external_helpers:
                objects.append(str(self.helpers_object()))
            exports = [bench.program] + ([bench.setup] if bench.setup else [])
            vs = _version_script(out(".map"), exports)
            _run([self.tools.cc, "-shared", "-o", str(out(".so")), *objects,
                  f"-Wl,--version-script={vs}"], f"linking {bench.source} ({mode})")
            return Built(f"mode {mode} so {out('.so')} {bench.program} {setup}")
        if mode == "twin":
            entries = {"twin_main": bench.program}
            if bench.setup:
                entries["twin_setup"] = bench.setup
            (self.work / "twin_shim.h").write_text(twin_shim())
            src = self.work / f"{bench.source}.twin.c"
            src.write_text(twin_source(obj, bench_dir() / f"{bench.source}.c", entries,
                                       self.options.ncpus))
            twin_o = out(".o")
            _run([self.tools.clang, "-O3", "-flto", "-fPIC", self._march(), "-w",
                  *_include_dirs(), f"-I{self.work}", f"-I{helpers.bitcode_dir() / 'src'}",
                  f"-I{bench_dir()}", "-c", str(src), "-o", str(twin_o)],
                 f"compiling the native twin of {bench.source}")
            vs = _version_script(out(".map"), list(entries))
            _run([self.tools.clang, "-O3", "-flto", self._march(), "-shared", "-o",
                  str(out(".so")), str(twin_o),
                  *map(str, self.twin_helpers()), f"-Wl,--version-script={vs}"],
                 f"linking the native twin of {bench.source}")
            return Built(f"mode twin so {out('.so')} twin_main "
                         f"{'twin_setup' if bench.setup else '-'}")
        raise EbpfLtoError(f"unknown mode {mode}")

    def _build_dpdk(self, mode: str, bench: Benchmark, obj: EbpfObject) -> Built:
        prog = obj.program(bench.program)
        if contexts.for_program_type(prog.prog_type) is not None:
            return Built(status="refused", reason=f"{prog.prog_type} context: librte_bpf "
                         "passes a buffer or an mbuf, not struct xdp_md")
        if obj.maps:
            return Built(status="refused", reason="maps: librte_bpf has none")
        if _has_local_calls(obj):
            return Built(status="refused", reason="bpf-to-bpf calls: librte_bpf has none")
        if any(ref.kind == "data" for ref in obj.refs.values()):
            return Built(status="refused", reason="global data: librte_bpf has none")
        func = obj.functions[prog.entry]
        slots = obj.code[prog.entry.section][prog.entry.start:func.end]
        insns = self.work / f"{bench.source}.insns"
        insns.write_bytes(b"".join(s.encode() for s in slots if s is not None))
        return Built(f"mode {mode} {mode} {insns} {self.helpers_shared()}")


# --- running --------------------------------------------------------------------------

def _clean_reason(text: str) -> str:
    return re.sub(r"\(0x[0-9a-f]+\)", "", text).strip()


def _name_insn(reason: str, obj: EbpfObject, prog) -> str:
    """DPDK names a refused instruction by its index: add the instruction itself."""
    from .asm import format_insn
    m = re.search(r"at pc:? ?(\d+)", reason)
    if not m:
        return reason
    slots = obj.code[prog.entry.section][prog.entry.start:obj.functions[prog.entry].end]
    pc = int(m.group(1))  # an 8-byte slot, as lddw's second half counts
    while 0 < pc < len(slots) and slots[pc] is None:
        pc -= 1
    if pc < len(slots) and slots[pc] is not None:
        return f"{reason} [{format_insn(slots[pc])}]"
    return reason


def run_benchmark(builder: Builder, bench: Benchmark, modes: list[str], reps: int,
                  quick: bool, rep_ms: float = REP_MS, warmup_ms: float = WARMUP_MS) -> Result:
    path = bench_dir() / f"{bench.source}.o"
    obj = loader.load(str(path))
    prog = obj.program(bench.program)
    outcomes: dict[str, Outcome] = {}
    lines = []
    for mode in modes:
        built = builder.build(mode, bench, obj)
        if built.line:
            lines.append(built.line)
        else:
            outcomes[mode] = Outcome(built.status, built.reason)
    safe = bench.name.replace("/", "_")
    input_path = builder.work / f"{safe}.input"
    input_path.write_bytes(bench.input)
    config = [f"input {input_path}", f"type {'xdp' if prog.prog_type == 'xdp' else 'raw'}",
              f"restore {int(bench.restore)}", f"reps {reps}", f"rep_ms {rep_ms}",
              f"warmup_ms {warmup_ms}", f"quick {int(quick)}",
              f"dpdk_lib {os.environ.get('EBPF_LTO_BENCH_DPDK_LIB', DPDK_LIB)}", *lines]
    cfg = builder.work / f"{safe}.cfg"
    cfg.write_text("\n".join(config) + "\n")
    harness = None
    if lines:
        proc = subprocess.run([str(builder.driver), str(cfg)], capture_output=True, text=True)
        reps_by_mode: dict[str, list[float]] = {}
        for text in proc.stdout.splitlines():
            parts = text.split(" ", 3)
            if parts[0] == "refused":
                reason = _clean_reason(parts[2] + (" " + parts[3] if len(parts) > 3 else ""))
                reason = _name_insn(reason, obj, prog)
                status = "unavailable" if reason.startswith("unavailable") else "refused"
                outcomes[parts[1]] = Outcome(status, reason)
            elif parts[0] == "check":
                out = parts[3] if len(parts) > 3 else ""
                outcomes[parts[1]] = Outcome("ok", r0=int(parts[2], 16),
                                             output_sha=hashlib.sha256(out.encode()).hexdigest())
            elif parts[0] == "calls":
                outcomes[parts[1]].calls = int(parts[2])
            elif parts[0] == "rep":
                reps_by_mode.setdefault(parts[2], []).append(float(parts[3]))
            elif parts[0] == "harness":
                harness = float(parts[1])
        for mode, values in reps_by_mode.items():
            outcomes[mode].reps = values
        if proc.returncode != 0:
            detail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            for line in lines:
                mode = line.split()[1]
                if mode not in outcomes:
                    outcomes[mode] = Outcome("failed", f"driver: {detail}")
    _compare(outcomes, prog.prog_type)
    return Result(bench, prog.prog_type, {m: outcomes[m] for m in modes if m in outcomes},
                  harness)


def _compare(outcomes: dict[str, Outcome], prog_type: str) -> None:
    """Every mode must answer as the native twin does: r0 (an int for xdp) and memory."""
    ref = outcomes.get(REFERENCE)
    if ref is None or ref.status != "ok":
        return
    mask = 0xFFFFFFFF if prog_type == "xdp" else 2**64 - 1
    for mode, out in outcomes.items():
        if mode == REFERENCE or out.status != "ok":
            continue
        problems = []
        if (out.r0 & mask) != (ref.r0 & mask):
            problems.append(f"r0 {out.r0 & mask:#x}, twin {ref.r0 & mask:#x}")
        if out.output_sha != ref.output_sha:
            problems.append("memory differs from the twin's")
        if problems:
            out.status, out.reason = "wrong", "; ".join(problems)


# --- reporting ------------------------------------------------------------------------

def geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def summary(results: list[Result], modes: list[str]) -> dict[str, dict]:
    out = {}
    for mode in modes:
        to_twin = [r.ratio(mode, REFERENCE) for r in results]
        to_none = [r.ratio(mode, BASELINE) for r in results]
        heavy = [r.ratio(BASELINE, mode) for r in results if r.bench.heavy]
        out[mode] = {
            "geomean_vs_twin": geomean([v for v in to_twin if v]),
            "geomean_vs_none": geomean([v for v in to_none if v]),
            # How many times faster than --inline none, over the helper/map-heavy set.
            "geomean_speedup_heavy": geomean([v for v in heavy if v]),
            "benchmarks_timed": sum(1 for r in results
                                    if r.outcomes.get(mode) and r.outcomes[mode].median),
        }
    return out


def _fmt_ns(ns: float | None) -> str:
    if ns is None:
        return ""
    return f"{ns:,.0f}" if ns >= 100 else f"{ns:.1f}"


def _fmt_ratio(r: float | None) -> str:
    return "" if r is None else f"{r:.2f}"


def print_table(results: list[Result], modes: list[str], console=None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    console = console or Console(width=None if sys.stdout.isatty() else 150)
    labels = {m.key: m.label for m in MODES}
    if not any(o.reps for r in results for o in r.outcomes.values()):
        _print_checks(results, modes, console, labels)
        return
    table = Table(title="ebpf-lto bench: ns per run (median over repetitions)")
    for col, justify in (("benchmark", "left"), ("mode", "left"), ("median ns", "right"),
                         ("IQR", "right"), ("Mpps", "right"), ("× twin", "right"),
                         ("× none", "right"), ("note", "left")):
        table.add_column(col, justify=justify)
    for res in results:
        for i, mode in enumerate(modes):
            out = res.outcomes.get(mode)
            if out is None:
                continue
            name = res.bench.name if i == 0 else ""
            if out.status == "ok" and out.median:
                spread = f"{out.spread * 100:.1f}%" if out.spread is not None else ""
                mpps = f"{1e3 / out.median:.2f}" if res.is_packet else ""
                table.add_row(name, labels[mode], _fmt_ns(out.median), spread, mpps,
                              _fmt_ratio(res.ratio(mode, REFERENCE)),
                              _fmt_ratio(res.ratio(mode, BASELINE)), "")
            else:
                note = "same r0 and memory as the twin" if out.status == "ok" else \
                    f"[{'red' if out.status in ('wrong', 'failed') else 'yellow'}]" \
                    f"{out.status}[/]: {escape(out.reason)}"
                table.add_row(name, labels[mode], "", "", "", "", "", note)
        table.add_section()
    console.print(table)
    summ = summary(results, modes)
    if any(s["benchmarks_timed"] for s in summ.values()):
        g = Table(title="geometric means over the benchmarks each mode ran")
        for col in ("mode", "benchmarks", "× twin", "× none", "speedup over none, helper/map set"):
            g.add_column(col, justify="left" if col == "mode" else "right")
        for mode in modes:
            s = summ[mode]
            g.add_row(labels[mode], str(s["benchmarks_timed"]),
                      _fmt_ratio(s["geomean_vs_twin"]), _fmt_ratio(s["geomean_vs_none"]),
                      _fmt_ratio(s["geomean_speedup_heavy"]))
        console.print(g)
    harness = [r.harness_ns for r in results if r.harness_ns]
    if harness:
        console.print(f"driver loop overhead per call (input reset + indirect call of an empty "
                      f"function): {min(harness):.1f} ns, included in every figure above")


def _print_checks(results: list[Result], modes: list[str], console, labels) -> None:
    """--quick: what each mode answered, against the native twin."""
    from rich.markup import escape
    from rich.table import Table
    table = Table(title="ebpf-lto bench --quick: every mode against the native twin")
    for col in ("benchmark", "mode", "r0", "result"):
        table.add_column(col, justify="right" if col == "r0" else "left")
    colour = {"ok": "green", "wrong": "red", "failed": "red"}
    for res in results:
        for i, mode in enumerate(modes):
            out = res.outcomes.get(mode)
            if out is None:
                continue
            if out.status == "ok":
                text = "reference" if mode == REFERENCE else "same r0 and memory"
            else:
                text = f"{out.status}: {escape(out.reason)}"
            table.add_row(res.bench.name if i == 0 else "", labels[mode],
                          "" if out.r0 is None else f"{out.r0:#x}",
                          f"[{colour.get(out.status, 'yellow')}]{text}[/]")
        table.add_section()
    console.print(table)


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count()}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "L1d cache",
                               "L2 cache", "L3 cache", "Hypervisor vendor", "CPU max MHz"):
                info[key.strip()] = value.strip()
    except OSError:
        pass
    import llvmlite.binding as llvm
    info["llvm (ebpf-lto)"] = ".".join(map(str, llvm.llvm_version_info))
    try:
        info["clang (twin)"] = subprocess.run([Toolchain.find().clang, "--version"],
                                              capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, EbpfLtoError, IndexError):
        pass
    return info


def to_json(results: list[Result], modes: list[str], meta: dict) -> dict:
    return {
        **meta,
        "modes": {m.key: {"label": m.label, "about": m.about} for m in MODES if m.key in modes},
        "benchmarks": [{
            "name": r.bench.name, "program": r.bench.program, "source": r.bench.source,
            "type": r.prog_type, "about": r.bench.about, "harness_ns": r.harness_ns,
            "modes": {mode: {
                "status": o.status, "reason": o.reason or None, "median_ns": o.median,
                "iqr_rel": o.spread, "min_ns": o.best, "reps_ns": o.reps, "calls_per_rep": o.calls,
                "r0": o.r0, "output_sha256": o.output_sha,
                "ratio_to_twin": r.ratio(mode, REFERENCE), "ratio_to_none": r.ratio(mode, BASELINE),
                "mpps": (1e3 / o.median) if (o.median and r.is_packet) else None,
            } for mode, o in r.outcomes.items()},
        } for r in results],
        "summary": summary(results, modes),
    }


def _pyplot(directory: str):
    """matplotlib's pyplot without a display, and the output folder, made."""
    try:
        import matplotlib
    except ImportError:
        raise EbpfLtoError("--plot needs matplotlib: pip install 'ebpf-lto[bench]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    return plt, out_dir


def plot(results: list[Result], modes: list[str], directory: str, meta: dict) -> list[Path]:
    plt, out_dir = _pyplot(directory)
    written = []
    for to, fname in ((REFERENCE, "bench_vs_twin"), (BASELINE, "bench_vs_none")):
        fig = ratio_chart(plt, results, modes, to)
        if fig is not None:
            written += _save(plt, fig, out_dir, fname)
    return written


_CHART_TITLES = {REFERENCE: "time relative to the native twin",
                 BASELINE: "time relative to --inline none (bpftime AOT shape)"}


def ratio_chart(plt, results: list[Result], modes: list[str], to: str):
    """Bars of each mode's median time over mode `to`'s, per benchmark; None if none ran."""
    by_key = {m.key: m for m in MODES}
    shown = [m for m in modes if m != to and any(r.ratio(m, to) for r in results)]
    rows = [r for r in results if any(r.ratio(m, to) for m in shown)]
    if not rows or not shown:
        return None
    fig, ax = plt.subplots(figsize=(max(8, 0.75 * len(rows) + 2), 4.8))
    width = 0.8 / len(shown)
    for k, mode in enumerate(shown):
        xs = [i + (k - (len(shown) - 1) / 2) * width for i in range(len(rows))]
        ys = [r.ratio(mode, to) or math.nan for r in rows]
        ax.bar(xs, ys, width, label=by_key[mode].label, color=by_key[mode].colour)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ratios = [v for r in rows for m in shown if (v := r.ratio(m, to))]
    _ratio_axis(ax, min(ratios), max(ratios))
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r.bench.name for r in rows], rotation=40, ha="right", fontsize=8)
    ax.set_ylabel(f"median time / {by_key[to].label} (log scale; lower is faster)")
    ax.set_title(f"ebpf-lto bench: {_CHART_TITLES[to]}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # off the bars
    ax.grid(axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    return fig


def _ratio_axis(ax, low: float, high: float) -> None:
    """A log y axis read as ratios: ticks at powers of two, labelled 0.5×, 1×, 2×,
    from the one at or below `low` to the one above `high` (two at least)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    ax.set_yscale("log", base=2)
    bottom = 2.0 ** math.floor(math.log2(low))
    ax.set_ylim(bottom, max(2.0 ** math.ceil(math.log2(high)), 2 * bottom))
    ax.yaxis.set_major_locator(LogLocator(base=2))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}×"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _plain_log_axis(axis) -> None:
    """Plain numbers on a base-10 log axis (100, 200, 500; not 2×10^2), minor ticks
    labelled at 2 and 5 times a power of ten."""
    from matplotlib.ticker import FuncFormatter

    def minor(value: float, _) -> str:
        mantissa = value / 10 ** math.floor(math.log10(value))
        return f"{value:g}" if round(mantissa, 6) in (2, 5) else ""
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def _save(plt, fig, out_dir: Path, fname: str) -> list[Path]:
    written = []
    for ext in ("png", "svg"):
        path = out_dir / f"{fname}.{ext}"
        fig.savefig(path, dpi=110)
        written.append(path)
    plt.close(fig)
    return written


# --- compile cost ---------------------------------------------------------------------

def synthetic_asm(n: int, seed: int = 7) -> str:
    """A loop-free program of about `n` instructions: ALU, loads, stores, short
    forward branches and a bpf_csum_diff call every 60 instructions."""
    rng = _rng(seed)
    lines = ["mov %r6, %r1", "mov %r0, 0", "mov %r7, 1", "mov %r8, 3", "mov %r9, 5"]
    count = len(lines)
    block = 0
    while count < n - 1:
        off = 8 * rng.randrange(0, 64)
        slot = -8 * rng.randrange(1, 64)
        if block % 6 == 5:
            lines += ["mov %r1, 0", "mov %r2, 0", "mov %r3, %r6", "mov %r4, 20", "mov %r5, 0",
                      "call 28", "add %r7, %r0", "mov %r0, %r9"]
            count += 8
        else:
            reg = rng.choice(("%r7", "%r8", "%r9"))
            lines += [f"ldxdw %r2, [%r6+{off}]", f"add %r0, %r2", f"mul {reg}, 7",
                      f"xor %r0, {reg}", f"jgt %r0, {reg}, +1", "add %r0, 1",
                      f"stxdw [%r10{slot}], %r0", f"ldxdw %r3, [%r10{slot}]",
                      f"rsh {reg}, 3", "add %r9, %r3"]
            count += 10
        block += 1
    lines.append("exit")
    return "\n".join(lines) + "\n"


def elf_object(code: bytes, name: str = "bench", section: str = "raw") -> bytes:
    """A minimal eBPF ELF relocatable: one program section, one global function symbol."""
    shstr = b"\0" + section.encode() + b"\0.symtab\0.strtab\0.shstrtab\0"
    strtab = b"\0" + name.encode() + b"\0"
    symtab = bytes(24) + struct.pack("<IBBHQQ", 1, 0x12, 0, 1, 0, len(code))
    body = [code, symtab, strtab, shstr]
    offsets, pos = [], 64
    for part in body:
        pos = (pos + 7) & ~7
        offsets.append(pos)
        pos += len(part)
    shoff = (pos + 7) & ~7
    name_off = {n: shstr.index(n.encode() + b"\0")
                for n in (section, ".symtab", ".strtab", ".shstrtab")}
    headers = [bytes(64),
               struct.pack("<IIQQQQIIQQ", name_off[section], 1, 0x6, 0, offsets[0], len(code),
                           0, 0, 8, 0),
               struct.pack("<IIQQQQIIQQ", name_off[".symtab"], 2, 0, 0, offsets[1], len(symtab),
                           3, 1, 8, 24),
               struct.pack("<IIQQQQIIQQ", name_off[".strtab"], 3, 0, 0, offsets[2], len(strtab),
                           0, 0, 1, 0),
               struct.pack("<IIQQQQIIQQ", name_off[".shstrtab"], 3, 0, 0, offsets[3], len(shstr),
                           0, 0, 1, 0)]
    ehdr = (b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
            + struct.pack("<HHIQQQIHHHHHH", 1, 247, 1, 0, 0, shoff, 0, 64, 0, 0, 64,
                          len(headers), 4))
    out = bytearray(ehdr)
    for off, part in zip(offsets, body):
        out += bytes(off - len(out)) + part
    out += bytes(shoff - len(out))
    for h in headers:
        out += h
    return bytes(out)


def _timed_link(args: list[str], timeout: float | None = None) -> dict:
    """Wall and CPU seconds, peak RSS and exit status of one `ebpf-lto` run in a child.

    The child is the whole command, interpreter start-up included; its
    resource use is its own (wait4), not the sum over earlier children.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "inliner.cli", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if timeout is not None and time.perf_counter() - t0 > timeout:
            proc.kill()
            timed_out = True
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024,
            "status": "timeout" if timed_out else code,
            "error": (err.splitlines() or [""])[-1] if code and not timed_out else None}


def compile_cost(sizes: tuple[int, ...] = COMPILE_COST_SIZES, opt_level: int = 2,
                 timeout: float = COMPILE_COST_TIMEOUT, work: Path | None = None,
                 progress: Progress | None = None) -> dict:
    """Time `ebpf-lto link` on generated programs of each size, --inline auto and none."""
    from .asm import assemble_bytes
    own = work is None
    work = work or Path(tempfile.mkdtemp(prefix="ebpf-lto-cc-"))
    rows = []

    def timed(row: dict, args: list[str]) -> None:
        if progress:
            progress.working_on(row["what"])
        row.update(_timed_link(args, timeout))
        rows.append(row)
        if progress:
            progress.done(f"{row['insns']} instructions, {row['what']}: "
                          f"{row['wall_s']:.2f} s, {row['peak_rss_mib']:.0f} MiB, "
                          f"{'ok' if row['status'] == 0 else row['status']}")

    try:
        timed({"insns": 0, "what": "interpreter start-up (ebpf-lto --version)", "inline": None},
              ["--version"])
        for n in sizes:
            code = assemble_bytes(synthetic_asm(n))
            path = work / f"synthetic_{n}.o"
            path.write_bytes(elf_object(code))
            insns = len(code) // 8
            calls = sum(1 for line in synthetic_asm(n).splitlines() if line.startswith("call"))
            for inline in ("none", "auto"):
                timed({"insns": insns, "helper_calls": calls,
                       "what": f"link -O{opt_level} --inline {inline}", "inline": inline},
                      ["link", str(path), "-o", str(work / "out.o"), f"-O{opt_level}",
                       "--inline", inline])
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    return {"opt_level": opt_level, "timeout_s": timeout, "rows": rows}


def print_compile_cost(report: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table
    console = console or Console(width=None if sys.stdout.isatty() else 150)
    table = Table(title="compile cost: `ebpf-lto link` in a child process")
    for col in ("instructions", "helper calls", "command", "wall s", "CPU s", "peak RSS MiB",
                "status"):
        table.add_column(col, justify="left" if col == "command" else "right")
    for row in report["rows"]:
        status = "ok" if row["status"] == 0 else f"[red]{row['status']}[/]" \
            if row["status"] == "timeout" else f"[red]exit {row['status']}: {row['error']}[/]"
        table.add_row(str(row["insns"]), str(row.get("helper_calls", "")), row["what"],
                      f"{row['wall_s']:.2f}", f"{row['cpu_s']:.2f}",
                      f"{row['peak_rss_mib']:.0f}", status)
    console.print(table)


def plot_compile_cost(report: dict, directory: str) -> list[Path]:
    plt, out_dir = _pyplot(directory)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    by_key = {m.key: m for m in MODES}
    for inline, mode in (("none", "none"), ("auto", "lto")):  # the bench mode each link is
        colour = by_key[mode].colour
        rows = [r for r in report["rows"] if r.get("inline") == inline and r["status"] == 0]
        xs = [r["insns"] for r in rows]
        ax1.plot(xs, [r["wall_s"] for r in rows], marker="o", color=colour,
                 label=f"--inline {inline}, wall")
        ax1.plot(xs, [r["cpu_s"] for r in rows], marker="x", linestyle="--", color=colour,
                 label=f"--inline {inline}, CPU")
        ax2.plot(xs, [r["peak_rss_mib"] for r in rows], marker="o", color=colour,
                 label=f"--inline {inline}")
    base = next((r for r in report["rows"] if r["insns"] == 0), None)
    for ax, key, ylabel in ((ax1, "wall_s", "seconds"), (ax2, "peak_rss_mib",
                                                              "peak RSS, MiB")):
        if base:
            ax.axhline(base[key], color="black", linestyle=":", label="start-up only")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_axis(ax.xaxis)
        _plain_log_axis(ax.yaxis)
        ax.set_xlabel("eBPF instructions")
        ax.set_ylabel(ylabel)
        ax.grid(which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"ebpf-lto link -O{report['opt_level']}: compile cost")
    fig.tight_layout()
    return _save(plt, fig, out_dir, "compile_cost")


# --- the command ----------------------------------------------------------------------

def select(names: list[str]) -> list[Benchmark]:
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


def run_suite(benches: list[Benchmark], modes: list[str], reps: int, quick: bool,
              work: Path, cpu: str = "native", rep_ms: float = REP_MS,
              progress: Progress | None = None) -> list[Result]:
    builder = Builder(work, Toolchain.find(), cpu)
    results = []
    for bench in benches:
        if progress:
            progress.working_on(bench.name)
        results.append(run_benchmark(builder, bench, modes, reps, quick, rep_ms=rep_ms,
                                     warmup_ms=1.0 if quick else WARMUP_MS))
        if progress:
            progress.done(result_line(results[-1], modes))
    return results


def result_line(res: Result, modes: list[str]) -> str:
    """One benchmark in a line: each timed mode's time over the twin's, or how each mode answered."""
    parts = []
    twin = res.outcomes.get(REFERENCE)
    if twin is not None and twin.median:
        parts.append(f"twin {_fmt_ns(twin.median)} ns")
        timed = [f"{m} {_fmt_ratio(res.ratio(m, REFERENCE))}" for m in modes
                 if m != REFERENCE and res.ratio(m, REFERENCE)]
        if timed:
            parts.append("× twin: " + ", ".join(timed))
    by_status: dict[str, list[str]] = {}
    for mode in modes:
        out = res.outcomes.get(mode)
        if out is not None and not (out.status == "ok" and (out.median or mode == REFERENCE)):
            by_status.setdefault("same as the twin" if out.status == "ok" else out.status,
                                 []).append(mode)
    parts += [f"{status}: {', '.join(names)}" for status, names in by_status.items()]
    return f"{res.bench.name}: {'; '.join(parts)}"


def summary_line(results: list[Result], modes: list[str], seconds: float) -> str:
    """The run in a line: benchmarks, and the headline ratios (or, for --quick, the checks)."""
    labels = {m.key: m.label for m in MODES}
    head = f"{len(results)} benchmark{'' if len(results) == 1 else 's'}, {seconds:.0f} s"
    if not any(o.reps for r in results for o in r.outcomes.values()):
        statuses: dict[str, int] = {}
        for r in results:
            for mode, o in r.outcomes.items():
                if mode != REFERENCE:
                    key = "same as the twin" if o.status == "ok" else o.status
                    statuses[key] = statuses.get(key, 0) + 1
        return f"{head}; modes: " + ", ".join(f"{n} {k}" for k, n in statuses.items())
    summ = summary(results, modes)
    parts = [head]
    vs_twin = [f"{labels[m]} {_fmt_ratio(summ[m]['geomean_vs_twin'])}" for m in modes
               if m != REFERENCE and summ[m]["geomean_vs_twin"]]
    if vs_twin:
        parts.append("time × native twin (geomean): " + ", ".join(vs_twin))
    lto = summ.get("lto", {}).get("geomean_speedup_heavy")
    if lto:
        parts.append(f"{labels['lto']} {lto:.2f}× as fast as {labels[BASELINE]} "
                     "on the helper/map set")
    return "; ".join(parts)


def _command_line(args) -> str:
    words = ["ebpf-lto", "bench", *args.names]
    for flag in ("quick", "json", "compile_cost"):
        if getattr(args, flag):
            words.append("--" + flag.replace("_", "-"))
    for opt in ("plot", "modes", "keep"):
        if getattr(args, opt):
            words += [f"--{opt}", getattr(args, opt)]
    if args.reps != DEFAULT_REPS:
        words += ["--reps", str(args.reps)]
    if args.cpu != "native":
        words += ["--cpu", args.cpu]
    return " ".join(words)


def results_from_json(report: dict) -> tuple[list[Result], list[str]]:
    """The results and modes of a saved `bench --json` report."""
    by_name = {b.name: b for b in BENCHMARKS}
    results = []
    for b in report["benchmarks"]:
        # One since renamed or dropped keeps its row, without the heavy set's flag.
        known = by_name.get(b["name"]) or Benchmark(b["name"], b["source"], b["program"],
                                                     lambda: b"", about=b["about"])
        outcomes = {mode: Outcome(o["status"], o["reason"] or "", o["r0"], o["output_sha256"],
                                  o["reps_ns"], o["calls_per_rep"])
                    for mode, o in b["modes"].items()}
        results.append(Result(known, b["type"], outcomes, b["harness_ns"]))
    return results, list(report["modes"])


def _saved(args) -> int:
    """--from: print and draw a saved run again, with today's table and charts."""
    try:
        report = json.loads(Path(args.from_json).read_text())
        compile_report = "rows" in report
        results, modes = ([], []) if compile_report else results_from_json(report)
    except OSError as err:
        raise EbpfLtoError(f"cannot read: {err.strerror}", file=args.from_json) from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise EbpfLtoError("not a saved `ebpf-lto bench --json` report",
                           file=args.from_json) from None
    if args.json:
        print(json.dumps(report, indent=2))
    elif compile_report:
        print_compile_cost(report)
    else:
        print_table(results, modes)
    if args.plot:
        if compile_report:
            plot_compile_cost(report, args.plot)
        else:
            plot(results, modes, args.plot, report)
    return 0


def command(args) -> int:
    """`ebpf-lto bench`; returns the exit status."""
    if args.from_json:
        return _saved(args)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": _command_line(args), "machine": machine(),
            "load_average_before": os.getloadavg()}
    if args.compile_cost:
        with Progress("bench --compile-cost", 1 + 2 * len(COMPILE_COST_SIZES)) as progress:
            report = compile_cost(progress=progress)
        report.update(meta)
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print_compile_cost(report)
        if args.plot:
            plot_compile_cost(report, args.plot)
        return 0 if all(r["status"] in (0, "timeout") for r in report["rows"]) else 1
    benches = select(args.names)
    modes = list(MODE_KEYS) if not args.modes else args.modes.split(",")
    bad = [m for m in modes if m not in MODE_KEYS]
    if bad:
        raise EbpfLtoError(f"unknown mode {bad[0]!r} (modes: {', '.join(MODE_KEYS)})")
    if REFERENCE not in modes:
        modes.insert(0, REFERENCE)
    reps = 1 if args.quick else args.reps
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ebpf-lto-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    progress = Progress("bench --quick" if args.quick else "bench", len(benches))
    try:
        with progress:
            results = run_suite(benches, modes, reps, args.quick, work.resolve(), cpu=args.cpu,
                                progress=progress)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    meta.update({"reps": reps, "quick": args.quick, "opt_level": OPT_LEVEL, "cpu": args.cpu,
                 "rep_ms": REP_MS, "load_average_after": os.getloadavg()})
    if args.json:
        print(json.dumps(to_json(results, modes, meta), indent=2))
    else:
        print_table(results, modes)
    if args.plot and not args.quick:
        plot(results, modes, args.plot, meta)
    bad = [(r.bench.name, m, o) for r in results for m, o in r.outcomes.items()
           if o.status in ("wrong", "failed") or (m == REFERENCE and o.status != "ok")]
    for name, mode, o in bad:
        print(f"ebpf-lto: bench: {name}: {mode}: {o.status}: {o.reason}", file=sys.stderr)
    progress.summary(summary_line(results, modes, progress.seconds))
    return 1 if bad else 0


def add_arguments(p) -> None:
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="benchmarks to run (default: all); a program name selects all its sizes")
    p.add_argument("--quick", action="store_true",
                   help="one call per mode: check that every mode gives the twin's r0 and "
                        "memory (for CI; no timing)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--plot", metavar="DIR", help="write PNG and SVG bar charts of the ratios")
    p.add_argument("--reps", type=int, default=DEFAULT_REPS, metavar="N",
                   help=f"timed repetitions per mode, each about {REP_MS:g} ms "
                        f"(default {DEFAULT_REPS})")
    p.add_argument("--modes", metavar="LIST",
                   help=f"comma list of modes (default all: {','.join(MODE_KEYS)})")
    p.add_argument("--cpu", default="native",
                   help="cpu to compile for, for every mode (default native)")
    p.add_argument("--keep", metavar="DIR", help="build in DIR and keep what was built")
    p.add_argument("--compile-cost", action="store_true",
                   help="time `ebpf-lto link` on generated programs of 1k, 10k and 100k "
                        "instructions instead")
    p.add_argument("--from", dest="from_json", metavar="FILE",
                   help="run nothing: print (and with --plot, draw) the saved `bench --json` "
                        "or `bench --compile-cost --json` report FILE")
