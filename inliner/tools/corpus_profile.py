"""`ebpf-lto corpus DIR --profile OUTDIR`: PGO for every runnable packet program of a corpus.

Each packet program (xdp, tc, socket filter: a type with a packet context) that
links is linked with `--instrument` and run on every frame of the shipped
traffic (examples/traffic.pcap, made by tools/traffic.py); its counters are
written to OUTDIR/<object>/<program>.profdata in LLVM's indexed format, and
the program is linked again with that profile. The plain -O build and the PGO
build then run the same frames from fresh maps: r0, the packet after each run
and every map must agree with each other and with the instrumented run, so a
PGO bug shows as a difference. Last, both builds are timed on the frames in
interleaved rounds by a native loop (the medians, less the loop's own cost).

An object whose programs tail-call each other is linked whole, once for each
of the three builds (any one program's link would lift them all): each program
runs in a fresh load of it, and one profile, trained on all of them, serves
the object (OUTDIR/<object>/object.profdata).

Each object is handled in a child process pinned to one cpu, so that an LLVM
abort costs one object and per-cpu maps fill one copy.
"""
from __future__ import annotations

import ctypes
import dataclasses
import multiprocessing
import os
import signal
import statistics
import tempfile
import time
from collections import Counter, deque
from multiprocessing.connection import wait
from pathlib import Path

from .. import codegen, pipeline
from ..elf import loader
from ..errors import EbpfLtoError
from ..facts import contexts, isa
from ..facts.abi import ENTRY_SYMBOL
from ..facts.helpers import TAIL_CALL, helper_name
from ..pgo import profile
from ..run.hostmaps import MapAccess
from ..run.runner import LoadedObjects, ProgramFault
from . import traffic
from .corpus import called_helpers, find_objects
from .corpus_compare import CLOCK_NS, SEED, Build

ROUNDS = 9             # timed rounds of each build, interleaved
ROUND_SECONDS = 0.02   # one build's share of a round
RESOLUTION_NS = 5.0    # per frame: a build faster than this is not told apart from the loop
TOP = 10               # the largest speedups listed
STDERR_TAIL = 2000     # characters of a dead worker's stderr kept
WHOLE_PROFILE = "object.profdata"  # the profile of an object linked whole

# The timing loop: before each run the frame and the context are copied back
# from pristine copies (a program may rewrite or move the packet; what it
# wrote around the frame is left, as a kernel leaves its headroom), the same
# cost for both builds; the loop is also timed around a program that returns
# at once, and that cost is taken off.

# A job: the context, its pristine copy, the frame in its buffer, its pristine copy, sizes.
_JOB_FIELDS = ("ctx", "ctx0", "buf", "buf0", "ctxlen", "buflen")
_LOADS = "\n".join(f"  %{name}.p = getelementptr %job, ptr %job, i64 0, i32 {i}\n"
                   f"  %{name} = load {'i64' if name.endswith('len') else 'ptr'}, ptr %{name}.p"
                   for i, name in enumerate(_JOB_FIELDS))
_LOOP = "ebpf_lto_time_loop"
_NOTHING = "ebpf_lto_time_nothing"
_LOOP_IR = f"""
%job = type {{ ptr, ptr, ptr, ptr, i64, i64 }}
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
define i64 @{_NOTHING}(ptr %ctx, i64 %len) {{
  ret i64 0
}}
define void @{_LOOP}(ptr %fn, ptr %jobs, i64 %n, i64 %reps) {{
entry:
  br label %rep
rep:
  %r = phi i64 [0, %entry], [%r.next, %rep.end]
  br label %body
body:
  %i = phi i64 [0, %rep], [%i.next, %body]
  %job = getelementptr %job, ptr %jobs, i64 %i
{_LOADS}
  call void @llvm.memcpy.p0.p0.i64(ptr %buf, ptr %buf0, i64 %buflen, i1 false)
  call void @llvm.memcpy.p0.p0.i64(ptr %ctx, ptr %ctx0, i64 %ctxlen, i1 false)
  %r0 = call i64 %fn(ptr %ctx, i64 %ctxlen)
  %i.next = add i64 %i, 1
  %more = icmp ult i64 %i.next, %n
  br i1 %more, label %body, label %rep.end
rep.end:
  %r.next = add i64 %r, 1
  %again = icmp ult i64 %r.next, %reps
  br i1 %again, label %rep, label %done
done:
  ret void
}}
"""


class _Job(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64 if name.endswith("len") else ctypes.c_void_p)
                for name in _JOB_FIELDS]


class Timer:
    """The native timing loop over one set of frames, each with its own buffers."""

    def __init__(self, layout: contexts.Layout, frames: list[bytes]):
        tm = codegen.target_machine(codegen.make_target(codegen.host_arch(), "generic"), 2)
        image = codegen.emit(codegen.parse_ir(_LOOP_IR, "time_loop"), tm, "obj")
        self.loaded = LoadedObjects([image], [_LOOP, _NOTHING])
        self.loop = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64,
                                     ctypes.c_uint64)(self.loaded.address(_LOOP))
        self.keep = []  # every buffer the jobs point at, alive as long as the timer
        self.jobs = (_Job * len(frames))()
        for job, frame in zip(self.jobs, frames):
            buf = (ctypes.c_char * (contexts.HEADROOM + len(frame) + contexts.TAILROOM))()
            buf0 = ctypes.create_string_buffer(frame, len(frame))
            ctx = contexts.build(layout, ctypes.addressof(buf), len(frame),
                                 contexts.ethertype_be(frame))
            cbuf, cbuf0 = ctypes.create_string_buffer(ctx, len(ctx)), \
                ctypes.create_string_buffer(ctx, len(ctx))
            job.ctx, job.ctx0 = ctypes.addressof(cbuf), ctypes.addressof(cbuf0)
            job.buf = ctypes.addressof(buf) + contexts.HEADROOM
            job.buf0 = ctypes.addressof(buf0)
            job.ctxlen, job.buflen = len(ctx), len(frame)
            self.keep += [buf, buf0, cbuf, cbuf0]

    def seconds(self, entry: int, reps: int) -> float:
        """The cpu time of `reps` passes: not the time another process had the cpu, which
        on a shared machine made whole rounds slow."""
        began = time.thread_time()
        self.loop(entry, ctypes.addressof(self.jobs), len(self.jobs), reps)
        return time.thread_time() - began

    def compare(self, plain: LoadedObjects, pgo: LoadedObjects,
                entry: str = ENTRY_SYMBOL) -> tuple[float, float, float]:
        """Nanoseconds per frame of each build, the median of interleaved rounds less
        the loop's own, and the loop's own."""
        entries = {"loop": self.loaded.address(_NOTHING), "plain": plain.address(entry),
                   "pgo": pgo.address(entry)}
        slowest = max(self.seconds(e, 1) for e in entries.values())
        reps = max(1, int(ROUND_SECONDS / max(slowest, 1e-9)))
        times: dict[str, list[float]] = {k: [] for k in entries}
        for n in range(ROUNDS):
            order = list(entries) if n % 2 == 0 else list(reversed(entries))
            for name in order:
                times[name].append(self.seconds(entries[name], reps) * 1e9 / reps / len(self.jobs))
        # Each build less the loop in the same round: a slow round (another process, a
        # cache evicted) slows all three alike.
        return (statistics.median(p - q for p, q in zip(times["plain"], times["loop"])),
                statistics.median(p - q for p, q in zip(times["pgo"], times["loop"])),
                statistics.median(times["loop"]))


# --- one program ----------------------------------------------------------------

def _outcomes(loaded: LoadedObjects, layout, frames: list[bytes],
              entry: str = ENTRY_SYMBOL) -> tuple[list, dict]:
    """Each frame's r0 (or fault) and packet after, then every map: a build's answer."""
    runs = []
    for frame in frames:
        try:
            runs.append(loaded.call_packet(entry, layout, frame))
        except ProgramFault as fault:
            runs.append(("fault", str(fault)))
    return runs, MapAccess(loaded).dump()


def _difference(a: tuple[list, dict], b: tuple[list, dict], what: str) -> str | None:
    for n, (x, y) in enumerate(zip(a[0], b[0]), 1):
        if x != y:
            detail = "the packet bytes differ" if x[0] == y[0] else f"r0 {x[0]!r} against {y[0]!r}"
            return f"{what}: frame {n}: {detail}"
    return f"{what}: the maps after the frames" if a[1] != b[1] else None


def _load(obj, options: pipeline.LinkOptions):
    """pipeline.load, its random numbers seeded and its clock fixed as every load of
    `--compare` (and corpus_compare.Build) has them, so every build answers alike."""
    loaded, linked = pipeline.load(obj, options)
    loaded.seed(SEED)
    loaded.fix_clock(CLOCK_NS)
    return loaded, linked


def profile_program(obj, name: str, frames: list[bytes], out: Path, opt_level: int,
                    helpers: str) -> dict:
    """Train, relink, check and time one linked packet program; its report row."""
    prog = obj.program(name)
    layout = contexts.for_program_type(prog.prog_type)
    plain = pipeline.LinkOptions(opt_level=opt_level, program=name, helpers=helpers)
    try:
        base, _ = _load(obj, plain)
    except EbpfLtoError as err:
        try:  # refused at link, or linked but not runnable here (a kernel-only helper)
            pipeline.link(obj, plain)
        except EbpfLtoError as link_err:
            return {"status": "not linked", "reason": link_err.reason}
        return {"status": "not run", "reason": err.reason}
    instrumented, _ = _load(obj, dataclasses.replace(plain, instrument=True))
    trained = _outcomes(instrumented, layout, frames)
    counts = profile.read_counters(instrumented)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    partial.write_bytes(profile.save(counts, str(out)))
    os.replace(partial, out)
    row = {"status": "trained", "profile": str(out), "functions": len(counts),
           "entry_count": counts[obj.functions[prog.entry].name][1][0]}
    pgo, relinked = _load(obj, dataclasses.replace(plain, profile=str(out)))
    if relinked.stale:
        return {**row, "status": "internal",
                "reason": "the profile does not fit the program it was trained on: "
                          + ", ".join(relinked.stale)}
    return _check_and_time(row, base, pgo, layout, frames, trained, ENTRY_SYMBOL)


def _check_and_time(row: dict, base: LoadedObjects, pgo: LoadedObjects, layout,
                   frames: list[bytes], trained, entry: str) -> dict:
    """A trained program's row finished: the PGO build checked against the plain one
    and the instrumented run (each load seeded, its clock fixed), then both timed."""
    expected = _outcomes(base, layout, frames, entry)
    differs = (_difference(expected, _outcomes(pgo, layout, frames, entry), "PGO build")
               or _difference(expected, trained, "instrumented build"))
    if differs:
        return {**row, "status": "differs", "reason": differs}
    row["agreement"] = "same"
    plain_ns, pgo_ns, loop_ns = Timer(layout, frames).compare(base, pgo, entry)
    measurable = min(plain_ns, pgo_ns) >= RESOLUTION_NS
    row.update(plain_ns=round(plain_ns, 2), pgo_ns=round(pgo_ns, 2), loop_ns=round(loop_ns, 2),
               speedup=round(plain_ns / pgo_ns, 3) if measurable else None)
    return row


def object_rows(path: Path, root: Path, outdir: Path, opt_level: int, helpers: str,
                frames: list[bytes]):
    """A row for each packet program of one object; one row with program None when
    the object does not load. ("working", program) announces each program run."""
    file = path.relative_to(root).as_posix()
    try:
        obj = loader.load(str(path))
    except EbpfLtoError as err:
        yield {"file": file, "program": None, "status": "not loaded", "reason": err.reason}
        return
    progs = [p for p in obj.programs if contexts.for_program_type(p.prog_type) is not None]
    called = _helpers_called(obj)
    if progs and TAIL_CALL in called:
        yield from whole_object_rows(obj, file, progs, outdir / file, opt_level, helpers,
                                     frames)
        return
    for prog in progs:
        row = {"file": file, "program": prog.name, "type": prog.prog_type}
        yield ("working", prog.name)
        try:
            row.update(profile_program(obj, prog.name, frames, outdir / file
                                       / f"{prog.name}.profdata", opt_level, helpers))
        except EbpfLtoError as err:
            row.update(status="not run", reason=err.reason)
        except Exception as err:  # noqa: BLE001 - a bug of ours, reported as such
            row.update(status="internal", reason=f"{type(err).__name__}: {err}")
        yield row


def _helpers_called(obj) -> set[int]:
    """The helper ids any code of the object calls: with TAIL_CALL among them, any
    program's link lifts them all."""
    return {insn.imm for slots in obj.code.values() for insn in slots
            if insn is not None and isa.call_kind(insn) is isa.CallKind.HELPER}


def whole_object_rows(obj, file: str, progs: list, outdir: Path, opt_level: int,
                      helpers: str, frames: list[bytes]):
    """The rows of an object whose programs tail-call each other, linked whole: once
    plain and once instrumented; every program trained in a fresh load of the
    instrumented build; one profile of them all; once again with it."""
    rows = {p.name: {"file": file, "program": p.name, "type": p.prog_type} for p in progs}

    def every(**outcome):
        return [{**row, **outcome} for row in rows.values()]

    # Each link holds every program; Build stands a trap in for each helper no set
    # provides, so the programs that never call one run (a tail call finds the
    # program array empty in userspace).
    hset = pipeline.helper_set(pipeline.LinkOptions(helpers=helpers))
    for prog in list(progs):
        missing = sorted(called_helpers(obj, prog) - (hset.ids if hset else set()) - {TAIL_CALL})
        if missing:
            progs.remove(prog)
            yield {**rows.pop(prog.name), "status": "not run",
                   "reason": "program calls helpers no helper set provides: "
                             + ", ".join(f"{h} ({helper_name(h)})" for h in missing)}
    if not progs:
        return
    plain = pipeline.LinkOptions(opt_level=opt_level, helpers=helpers)
    out = outdir / WHOLE_PROFILE
    try:
        yield ("working", progs[0].name)  # each message restarts the child's deadline
        base = Build(obj, plain)
        instrumented = Build(obj, dataclasses.replace(plain, instrument=True))
        trained, counts = {}, {}
        for prog in progs:
            yield ("working", prog.name)
            with instrumented.load() as loaded:
                layout = contexts.for_program_type(prog.prog_type)
                trained[prog.name] = _outcomes(loaded, layout, frames, prog.name)
                for fn, (fhash, values) in profile.read_counters(loaded).items():
                    total = counts.setdefault(fn, (fhash, [0] * len(values)))[1]
                    total[:] = [a + b for a, b in zip(total, values)]
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".part")
        partial.write_bytes(profile.save(counts, str(out)))
        os.replace(partial, out)
        pgo = Build(obj, dataclasses.replace(plain, profile=str(out)))
    except EbpfLtoError as err:
        yield from every(status="not run", reason=err.reason)
        return
    if pgo.linked.stale:
        yield from every(status="internal", reason="the profile does not fit the program it "
                         "was trained on: " + ", ".join(pgo.linked.stale))
        return
    for prog in progs:
        yield ("working", prog.name)
        row = {**rows[prog.name], "status": "trained", "profile": str(out),
               "functions": len(counts),
               "entry_count": counts[obj.functions[prog.entry].name][1][0]}
        layout = contexts.for_program_type(prog.prog_type)
        try:
            with base.load() as plain_run, pgo.load() as pgo_run:
                row = _check_and_time(row, plain_run, pgo_run, layout, frames,
                                     trained[prog.name], prog.name)
        except EbpfLtoError as err:
            row.update(status="not run", reason=err.reason)
        yield row


def _child(conn, stderr_path: str, cpu: int, args: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends its children on ^C
    fd = os.open(stderr_path, os.O_WRONLY | os.O_TRUNC)
    os.dup2(fd, 2)
    os.close(fd)
    os.sched_setaffinity(0, {cpu})
    for row in object_rows(*args):
        conn.send(row)
    conn.send(None)


# --- the parent -------------------------------------------------------------------

@dataclasses.dataclass
class _Running:
    process: multiprocessing.Process
    path: Path
    slot: int
    stderr_path: str
    deadline: float
    rows: list = dataclasses.field(default_factory=list)
    working_on: str | None = None   # the program in hand
    finished: bool = False

    def take(self, conn, timeout: float) -> None:
        """Every message the child has sent so far."""
        try:
            while conn.poll():
                row = conn.recv()
                if row is None:
                    self.finished = True
                elif isinstance(row, tuple):  # ("working", program): the timeout restarts
                    self.working_on = row[1]
                    self.deadline = time.monotonic() + timeout
                else:
                    self.rows.append(row)
        except (EOFError, OSError):
            pass

    def lost(self, root: Path, why: str) -> None:
        """A child that died or hung: the program in hand is a bug of ours."""
        tail = Path(self.stderr_path).read_text(errors="replace")[-STDERR_TAIL:].strip()
        self.rows.append({"file": self.path.relative_to(root).as_posix(),
                          "program": self.working_on, "status": "internal",
                          "reason": why + (f": {tail}" if tail else "")})


def survey(root: str | Path, outdir: str | Path, opt_level: int = 2, jobs: int | None = None,
           timeout: float = 300.0, helpers: str = "default", frames: list[bytes] | None = None,
           progress: bool = False) -> dict:
    """Train, relink and time every packet program under `root` on `frames` (the shipped
    traffic by default); the report as plain data."""
    root, outdir = Path(root), Path(outdir)
    if not root.is_dir():
        raise EbpfLtoError("not a directory", file=str(root))
    if outdir.exists() and not outdir.is_dir():
        raise EbpfLtoError("not a directory", file=str(outdir))
    frames = [f.data for f in traffic.frames()] if frames is None else frames
    paths = find_objects(root)
    cpus = sorted(os.sched_getaffinity(0))
    jobs = max(1, min(jobs or len(cpus), len(paths) or 1))
    began = time.monotonic()
    rows: list[dict] = []
    ctx = multiprocessing.get_context("spawn")
    pending = deque(paths)
    running: dict = {}   # the parent's end of each child's pipe -> _Running
    shown = None
    if progress:
        from .progress import Progress
        shown = Progress("corpus --profile", len(paths)).__enter__()
    with tempfile.TemporaryDirectory(prefix="ebpf-lto-profile.") as tmp:
        try:
            while pending or running:
                while pending and len(running) < jobs:
                    slot = min(set(range(jobs)) - {r.slot for r in running.values()})
                    path = pending.popleft()
                    stderr_path = os.path.join(tmp, f"worker{slot}.stderr")
                    Path(stderr_path).touch()
                    parent, child = ctx.Pipe()
                    process = ctx.Process(target=_child, daemon=True, args=(
                        child, stderr_path, cpus[slot % len(cpus)],
                        (path, root, outdir, opt_level, helpers, frames)))
                    process.start()
                    child.close()
                    running[parent] = _Running(process, path, slot, stderr_path,
                                               time.monotonic() + timeout)
                wait(list(running) + [r.process.sentinel for r in running.values()],
                     timeout=0.5)
                for conn, r in list(running.items()):
                    r.take(conn, timeout)
                    hung = time.monotonic() > r.deadline
                    if not r.finished and r.process.is_alive() and not hung:
                        continue
                    if not r.finished:
                        r.process.kill()
                        r.process.join()
                        r.lost(root, f"timed out after {timeout:g} s" if hung
                               else f"worker exited with status {r.process.exitcode}")
                    r.process.join()
                    conn.close()
                    del running[conn]
                    rows += r.rows
                    if shown is not None:
                        shown.done(object_line(r.path.relative_to(root).as_posix(), r.rows))
        finally:
            for r in running.values():
                r.process.kill()
                r.process.join()
            if shown is not None:
                shown.__exit__(None, None, None)
    return report(rows, root, outdir, opt_level, time.monotonic() - began, len(frames))


def object_line(file: str, rows: list[dict]) -> str:
    """What became of one object's packet programs, in a line."""
    if rows and rows[0]["program"] is None:
        return f"{file}: {rows[0]['status']}: {rows[0]['reason']}"
    statuses = Counter(r["status"] for r in rows)
    return f"{file}: {len(rows)} packet program{'' if len(rows) == 1 else 's'}" + "".join(
        f", {n} {s}" for s, n in sorted(statuses.items()))


def report(rows: list[dict], root: Path, outdir: Path, opt_level: int, seconds: float,
           frames: int) -> dict:
    programs = [r for r in rows if r["program"] is not None]
    statuses = Counter(r["status"] for r in programs)
    timed = [r for r in programs if r.get("speedup") is not None]
    speedups = [r["speedup"] for r in timed]
    return {
        "dir": str(root), "profiles": str(outdir), "opt_level": opt_level, "frames": frames,
        "seconds": round(seconds, 1),
        "objects_not_loaded": sum(1 for r in rows if r["status"] == "not loaded"),
        "internal_errors": sum(1 for r in rows if r["status"] == "internal"),
        "programs": {"total": len(programs), **{s: statuses[s] for s in
                     ("trained", "not run", "not linked", "differs", "internal")}},
        "speedup_median": round(statistics.median(speedups), 3) if speedups else None,
        "speedup_geomean": round(statistics.geometric_mean(speedups), 3) if speedups else None,
        "largest_speedups": [{k: r[k] for k in ("file", "program", "plain_ns", "pgo_ns",
                                                 "speedup")}
                             for r in sorted(timed, key=lambda r: -r["speedup"])[:TOP]],
        "rows": rows,
    }


def summary_line(rep: dict) -> str:
    p = rep["programs"]
    speed = (f"; PGO speedup median {rep['speedup_median']}x, geomean "
             f"{rep['speedup_geomean']}x" if rep["speedup_median"] else "")
    return (f"{p['total']} packet programs: {p['trained']} trained and relinked, "
            f"{p['not run']} not run, {p['not linked']} not linked, "
            f"{p['differs']} differ, {rep['internal_errors']} internal errors{speed}; "
            f"{rep['objects_not_loaded']} objects not loaded; {rep['seconds']} s")


def print_report(rep: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text
    console = console or Console()
    table = Table(title=f"ebpf-lto corpus {rep['dir']} --profile {rep['profiles']} "
                        f"(-O{rep['opt_level']}, {rep['frames']} frames, {rep['seconds']} s)")
    for col, justify in (("file", "left"), ("program", "left"), ("trained", "left"),
                         ("plain ns", "right"), ("PGO ns", "right"), ("speedup", "right")):
        table.add_column(col, justify=justify, overflow="fold")
    for r in rep["rows"]:
        if r["program"] is None and r["status"] == "not loaded":
            continue
        trained = "yes" if r["status"] == "trained" else f"{r['status']}: {r.get('reason', '')}"
        if r["status"] == "trained" and r.get("agreement", "same") != "same":
            trained += f" ({r['agreement']})"
        style = "bold red" if r["status"] in ("differs", "internal") else None
        table.add_row(r["file"], r["program"] or "(loading)", Text(trained, style=style),
                      *(f"{r[k]:.1f}" if r.get(k) is not None else "" for k in
                        ("plain_ns", "pgo_ns")),
                      f"{r['speedup']:.2f}x" if r.get("speedup") is not None
                      else "too fast to tell" if r.get("plain_ns") is not None else "")
    console.print(table)
    if rep["largest_speedups"]:
        top = Table(title="largest PGO speedups")
        for col in ("file", "program", "plain ns", "PGO ns", "speedup"):
            top.add_column(col)
        for r in rep["largest_speedups"]:
            top.add_row(r["file"], r["program"], f"{r['plain_ns']:.1f}", f"{r['pgo_ns']:.1f}",
                        f"{r['speedup']:.2f}x")
        console.print(top)


def command(args) -> int:
    """The `corpus --profile` command line: 0, or 70 when a build differs or failed."""
    import json
    import sys
    if args.compare:
        raise EbpfLtoError("--profile and --compare do not go together")
    rep = survey(args.directory, args.profile, args.opt_level, args.jobs, args.timeout,
                 args.helpers, progress=True)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print_report(rep)
    print(f"corpus --profile: {summary_line(rep)}", file=sys.stderr)
    return 70 if rep["programs"]["differs"] or rep["internal_errors"] else 0
