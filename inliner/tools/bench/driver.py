"""Running one benchmark: benchmarks/driver.c loads every mode built, checks that they agree
and times them round-robin; its lines become each mode's Outcome, checked against the twin's."""
from __future__ import annotations

import hashlib
import re
import subprocess

from ...elf import loader
from ...elf.model import EbpfObject, Program
from ..asm import format_insn
from .build import Builder, entry_slots
from .stats import Outcome, Result
from .suite import REFERENCE, Benchmark, bench_dir
from .toolchain import dpdk_lib

REP_MS = 2.0       # one repetition of one mode: short, so a preemption spoils few of them
WARMUP_MS = 20.0
# Driver processes per benchmark, the repetitions shared among them. Where a
# process places code and data moves a program's time by itself (katran_lb's
# same `.so`: 24.1, 26.8 and 34.9 ns in three processes), and sometimes one mode
# alone: each mode is timed in several placements, loaded in another position
# in each (docs/benchmarks.md).
PROCESSES = 3


def _clean_reason(text: str) -> str:
    return re.sub(r"\(0x[0-9a-f]+\)", "", text).strip()


def _name_insn(reason: str, obj: EbpfObject, prog: Program) -> str:
    """DPDK names a refused instruction by its index: add the instruction itself."""
    m = re.search(r"at pc:? ?(\d+)", reason)
    if not m:
        return reason
    slots = entry_slots(obj, prog)
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
    input_path = builder.work / f"{bench.stem}.input"
    input_path.write_bytes(bench.input)
    settings = [f"input {input_path}", f"type {'xdp' if prog.prog_type == 'xdp' else 'raw'}",
                f"restore {int(bench.restore)}", f"rep_ms {rep_ms}", f"warmup_ms {warmup_ms}",
                f"quick {int(quick)}", f"dpdk_lib {dpdk_lib()}", *builder.driver_settings()]
    harness = []
    seen: dict[str, str] = {}   # mode -> its check line in the first process
    processes = 1 if quick else min(PROCESSES, reps)
    for k in range(processes if lines else 0):
        # Process k loads the modes rotated by k and runs its share of the repetitions.
        order = lines[k % len(lines):] + lines[:k % len(lines)]
        share = reps // processes + (k < reps % processes)
        cfg = builder.work / f"{bench.stem}.{k}.cfg"
        cfg.write_text("\n".join([*settings, f"reps {share}", *order]) + "\n")
        proc = subprocess.run([str(builder.driver), str(cfg)], capture_output=True, text=True)
        for text in proc.stdout.splitlines():
            parts = text.split(" ", 3)
            if parts[0] in ("refused", "check") and parts[1] in outcomes:
                if seen.get(parts[1]) != text and outcomes[parts[1]].status == "ok":
                    outcomes[parts[1]] = Outcome("wrong", "answered otherwise in another "
                                                 "driver process: " + text)
                continue
            if parts[0] == "refused":
                reason = _clean_reason(parts[2] + (" " + parts[3] if len(parts) > 3 else ""))
                reason = _name_insn(reason, obj, prog)
                status = "unavailable" if reason.startswith("unavailable") else "refused"
                outcomes[parts[1]] = Outcome(status, reason)
                seen[parts[1]] = text
            elif parts[0] == "check":
                out = parts[3] if len(parts) > 3 else ""
                outcomes[parts[1]] = Outcome("ok", r0=int(parts[2], 16),
                                             output_sha=hashlib.sha256(out.encode()).hexdigest())
                seen[parts[1]] = text
            elif parts[0] == "calls" and parts[1] in outcomes:
                outcomes[parts[1]].calls = int(parts[2])
            elif parts[0] == "rep" and (out := outcomes.get(parts[2])) and out.status == "ok":
                out.reps.append(float(parts[3]))
            elif parts[0] == "harness":
                harness.append(float(parts[1]))
        if proc.returncode != 0:
            detail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            for line in lines:
                mode = line.split()[1]
                if mode not in outcomes or (k and outcomes[mode].status == "ok"):
                    outcomes[mode] = Outcome("failed", f"driver: {detail}")
            break
    _compare(outcomes, prog.prog_type)
    return Result(bench, prog.prog_type, {m: outcomes[m] for m in modes if m in outcomes},
                  min(harness) if harness else None)


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
