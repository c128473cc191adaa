"""`bench --compile-cost`: `ebpf-lto link` timed in a child process on generated programs
of growing size, --inline auto and none: wall and CPU seconds, peak RSS, exit status,
and the stages' times the link prints with -v."""
from __future__ import annotations

import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ...errors import EbpfLtoError
from ..asm import assemble_bytes
from ..progress import Progress

COMPILE_COST_SIZES = (1000, 10000, 100000)
# The kernel's verifier takes programs of up to a million instructions (BPF_COMPLEXITY_LIMIT_INSNS).
MAX_COMPILE_COST_SIZE = 1_000_000
MIN_COMPILE_COST_SIZE = 16   # the prologue, one block and the exit


def parse_sizes(text: str) -> tuple[int, ...]:
    """--compile-cost-sizes: a comma list of instruction counts, `k` and `M` allowed
    (1k,10k,100k,1M)."""
    sizes = []
    for word in text.split(","):
        word = word.strip()
        scale = {"k": 1000, "M": 1_000_000}.get(word[-1:], 1)
        digits = word[:-1] if scale > 1 else word
        if not digits.isdigit():
            raise EbpfLtoError(f"--compile-cost-sizes: {word!r} is not a number of instructions "
                               "(e.g. 1000,10k,1M)")
        n = int(digits) * scale
        if not MIN_COMPILE_COST_SIZE <= n <= MAX_COMPILE_COST_SIZE:
            raise EbpfLtoError(f"--compile-cost-sizes: {word} is outside "
                               f"{MIN_COMPILE_COST_SIZE}..{MAX_COMPILE_COST_SIZE} instructions")
        sizes.append(n)
    return tuple(sizes)
COMPILE_COST_TIMEOUT = 600.0  # seconds one link may take before it counts as a timeout


def synthetic_asm(n: int, seed: int = 7) -> str:
    """A loop-free program of about `n` instructions: ALU, loads, stores, short
    forward branches and a bpf_csum_diff call every 60 instructions."""
    rng = random.Random(seed)
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
            lines += [f"ldxdw %r2, [%r6+{off}]", "add %r0, %r2", f"mul {reg}, 7",
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


# The stages `ebpf-lto link -v` times, by the words its lines begin with.
STAGES = ("load", "lift", "plan", "verify", "prelink", "link helpers", "optimize", "emit")
_STAGE_LINE = re.compile(r"^ebpf-lto: (.+): (\d+) ms$")


def stage_times(log: str) -> dict[str, float]:
    """Seconds of each stage in `ebpf-lto link -v`'s log (wall clock, as it prints them)."""
    out = {}
    for line in log.splitlines():
        if (m := _STAGE_LINE.match(line)) is not None:
            stage = next((s for s in STAGES if m.group(1).startswith(s)), None)
            if stage is not None:
                out[stage] = out.get(stage, 0.0) + int(m.group(2)) / 1000
    return out


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
            "error": (err.splitlines() or [""])[-1] if code and not timed_out else None,
            "stages_s": stage_times(err)}



def compile_cost(sizes: tuple[int, ...] = COMPILE_COST_SIZES, opt_level: int = 2,
                 timeout: float = COMPILE_COST_TIMEOUT, work: Path | None = None,
                 progress: Progress | None = None) -> dict:
    """Time `ebpf-lto link` on generated programs of each size, --inline auto and none."""
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
            text = synthetic_asm(n)
            code = assemble_bytes(text)
            path = work / f"synthetic_{n}.o"
            path.write_bytes(elf_object(code))
            insns = len(code) // 8
            calls = sum(1 for line in text.splitlines() if line.startswith("call"))
            for inline in ("none", "auto"):
                timed({"insns": insns, "helper_calls": calls,
                       "what": f"link -O{opt_level} --inline {inline}", "inline": inline},
                      ["link", "-v", str(path), "-o", str(work / "out.o"), f"-O{opt_level}",
                       "--inline", inline])
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    return {"opt_level": opt_level, "timeout_s": timeout, "rows": rows}
