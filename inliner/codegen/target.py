"""Stage 5, emit: target machines, and LLVM modules to native objects with llvmlite's LLVM.

Objects are position independent with the small code model, as bpftime's
AOT loader expects (docs/abi.md).
"""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, lru_cache

import llvmlite.binding as llvm

from ..errors import EbpfLtoError

TRIPLES = {
    "x86_64": "x86_64-unknown-linux-gnu",
    "aarch64": "aarch64-unknown-linux-gnu",
}
EMIT_KINDS = ("obj", "asm", "llvm", "bc")


@lru_cache(maxsize=None)
def init() -> None:
    """LLVM's targets and printers, once per process. Only the host's assembly
    parser can be had through llvmlite, so inline assembly in helper code
    assembles for the host alone (`emit` refuses it for other targets)."""
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    llvm.initialize_native_asmparser()


def host_arch() -> str:
    arch = llvm.get_process_triple().split("-")[0]
    return {"arm64": "aarch64"}.get(arch, arch)


@dataclass(frozen=True)
class Target:
    arch: str = "x86_64"
    cpu: str = "generic"
    features: str = ""

    @property
    def triple(self) -> str:
        return TRIPLES[self.arch]


def make_target(arch: str = "x86_64", cpu: str = "generic") -> Target:
    if arch not in TRIPLES:
        raise EbpfLtoError(f"unknown target {arch!r} (known: {', '.join(TRIPLES)})")
    features = ""
    if cpu == "native":
        if arch != host_arch():
            raise EbpfLtoError(f"--cpu native needs the host's architecture, not {arch}")
        init()
        cpu = llvm.get_host_cpu_name()
        features = llvm.get_host_cpu_features().flatten()
    return Target(arch, cpu, features)


@cache
def _tune() -> None:
    """LLVM options the pipeline tuning options do not reach, set once per process.

    SLP's horizontal reductions are costed by throughput alone: inside a loop
    whose result feeds the next iteration (crc32's eight bit steps, csum_hdrs'
    folds) the vector reduction lengthens the carried chain, 12% slower there,
    and the bench suite gains nowhere from them (docs/benchmarks.md). llvmlite
    has no per-pipeline switch, hence the command-line option; it is parsed once
    because LLVM refuses an option given twice.

    LLVM aligns a loop relative to its function's start, but places functions
    only 16 bytes apart: a 29-byte loop aligned at 32 then straddles a 64-byte
    line or not depending on where the loader puts the object, and on Zen 4
    strcmp's loop ran 560 ns straddling against 420 not. Functions start on a
    cache line (2^6), so the loops' alignment holds wherever they are loaded.
    On x86 LLVM aligns loops to 16 bytes only, so a 35-byte loop still straddles
    a line or not as the code before it grows by a few bytes (csum_counter's
    at --cpu generic: 55 ns straddling against 40): innermost loops start on a
    cache line too.
    """
    llvm.set_option("ebpf-lto", "-slp-vectorize-hor=false")
    llvm.set_option("ebpf-lto", "-align-all-functions=6")
    llvm.set_option("ebpf-lto", "-x86-experimental-pref-innermost-loop-alignment=6")


@lru_cache(maxsize=32)
def target_machine(target: Target, opt_level: int) -> llvm.TargetMachine:
    init()
    _tune()
    if target.cpu not in ("generic", "") and not target.features and not _cpu_known(target):
        raise EbpfLtoError(f"LLVM does not know cpu {target.cpu!r} for {target.arch}")
    features = target.features
    if target.arch == "x86_64" and target.cpu.startswith("znver"):
        # Zen's gathers are microcoded, slower than the scalar loads they replace,
        # which LLVM's znver cost model does not say: accum/8's loop vectorized with
        # vpgatherqq ran 1.9x its time without (docs/benchmarks.md).
        features = ",".join(filter(None, (features, "+prefer-no-gather")))
    llvm_target = llvm.Target.from_triple(target.triple)
    return llvm_target.create_target_machine(cpu="" if target.cpu == "generic" else target.cpu,
                                             features=features, opt=opt_level,
                                             reloc="pic", codemodel="small")


@lru_cache(maxsize=None)
def _cpu_known(target: Target) -> bool:
    """Ask a child process: LLVM aborts the whole process on some unknown cpus."""
    probe = (
        "import llvmlite.binding as l; l.initialize_all_targets(); l.initialize_all_asmprinters()\n"
        f"tm = l.Target.from_triple({target.triple!r}).create_target_machine(cpu={target.cpu!r})\n"
        "tm.emit_object(l.parse_assembly('define void @f() { ret void }'))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    return done.returncode == 0 and "not a recognized processor" not in done.stderr


def set_target(mod: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)


def _inline_asm(mod: llvm.ModuleRef) -> str | None:
    """The first function that calls inline assembly, if any."""
    for fn in mod.functions:
        for block in fn.blocks:
            for insn in block.instructions:
                if insn.opcode == "call" and any(op.value_kind == llvm.ValueKind.inline_asm
                                                 for op in insn.operands):
                    return fn.name
    return None


# eBPF instructions in one function past which it is emitted without the machine
# scheduler (`emit`'s `schedule`).
SCHEDULE_LIMIT = 50_000


@contextmanager
def _scheduler(on: bool) -> Iterator[None]:
    """The machine scheduler off for the block, if not `on`.

    llvmlite's LLVM is built with assertions: each instruction the scheduler
    moves has the live ranges of its registers verified whole, so in a function
    where a register (the context pointer, an accumulator) lives from end to
    end, scheduling grows with the square of its length. At a million eBPF
    instructions the scheduler's part was 15.6 of 55.1 s of emit (28%);
    llvmlite has no per-function switch, hence the command-line option, set
    back after (docs/benchmarks.md, compile cost).
    """
    if on:
        yield
        return
    llvm.set_option("ebpf-lto", "-enable-misched=false")
    try:
        yield
    finally:
        llvm.set_option("ebpf-lto", "-enable-misched=true")


def emit(mod: llvm.ModuleRef, tm: llvm.TargetMachine, kind: str = "obj",
         schedule: bool = True) -> bytes:
    """The module as `kind`; `schedule` False: without LLVM's machine scheduler
    (for functions past SCHEDULE_LIMIT, whose code it changes little)."""
    set_target(mod, tm)
    if kind == "obj":
        arch = tm.triple.split("-")[0]
        if arch != host_arch() and (fn := _inline_asm(mod)) is not None:
            # LLVM would abort the process: it has no assembly parser for the target.
            raise EbpfLtoError(f"{fn} holds inline assembly, which this LLVM assembles only "
                               f"for {host_arch()}; --emit asm writes {arch} assembly instead")
        with _scheduler(schedule):
            return tm.emit_object(mod)
    if kind == "asm":
        with _scheduler(schedule):
            return tm.emit_assembly(mod).encode()
    if kind == "llvm":
        return str(mod).encode()
    if kind == "bc":
        return mod.as_bitcode()
    raise EbpfLtoError(f"unknown output kind {kind!r} (known: {', '.join(EMIT_KINDS)})")
