"""`ebpf-lto corpus DIR`: link every program of every object under DIR.

With `--compare`, each linked packet or tracing program also runs inlined,
not inlined and in the reference interpreter (corpus_compare.py); r0, the
memory after each run and every map must agree.

Each object is handled in a child process, all its programs in one link (one
by one when that link fails, to say which program fails), so that an LLVM
abort or a hang costs one object or program and is reported as an internal
error rather than ending the run. Refusals (EbpfLtoError) are expected
outcomes; they are grouped by their reason with names and numbers masked,
so that one cause is one row however many places it shows up in.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import re
import shlex
import signal
import tempfile
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path

from .. import pipeline
from ..elf import loader
from ..errors import EbpfLtoError
from ..facts import isa
from ..facts.helpers import helper_name

ELF_MAGIC = b"\x7fELF"
EXAMPLES = 2           # examples kept per refusal reason
STDERR_TAIL = 2000     # characters of a dead worker's stderr kept in its report


def find_objects(root: Path) -> list[Path]:
    """ELF files under `root`, and `*.o` files that are not ELF (refused as such).

    The extension alone is not enough: corpora keep malformed objects under
    hash names, and keep notes (`.json`, `.md`) next to the objects.
    """
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            with path.open("rb") as fh:
                magic = fh.read(len(ELF_MAGIC))
        except OSError:
            magic = b""
        if magic == ELF_MAGIC or path.suffix == ".o":
            found.append(path)
    return found


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\b(?:0x[0-9a-fA-F]+|\d+)\b")


def normalise(reason: str) -> str:
    """The reason with names and numbers masked: one cause, one group."""
    return _NUMBER.sub("N", _QUOTED.sub("'…'", reason))


def _message(err: EbpfLtoError) -> str:
    """The located message without the file, which the report shows apart."""
    parts = [f"section {err.section}"] if err.section else []
    if err.insn is not None:
        parts.append(f"insn {err.insn}")
    return ": ".join(parts + [err.reason])


def _internal(err: Exception) -> dict:
    """A bug of ours: the exception and the innermost frame of this package."""
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if f"{os.sep}inliner{os.sep}" in f.filename] or frames
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno} in {ours[-1].name}" if ours else ""
    return {"error": f"{type(err).__name__}: {err}", "where": where}


# --- the child process --------------------------------------------------------

def object_events(path: str, opt_level: int, helpers: str, start: int, compare: bool,
                  together: bool = True):
    """What happens to each program of one object, from the `start`-th on.

    The object's programs are linked in one module, once (`together`): one
    lift, one optimization and one emission of the helpers they share, where
    a link per program repeated them for each; when that link fails, each
    program is linked on its own to say which one fails. With `compare`,
    ("compared", program, verdict) events follow (tools/corpus_compare.py).
    """
    try:
        obj = loader.load(path)
        if not obj.refused:
            obj.program(None)  # an object with no program is refused as a whole
    except EbpfLtoError as err:
        yield ("refused", None, err.reason, _message(err))
        return
    except Exception as err:  # any other exception is a bug of ours, to report
        yield ("internal", None, _internal(err))
        return
    # Programs the load refused (for a section, map or relocation they depend
    # on) count as refused at load, one by one.
    names = [p.name for p in obj.programs] + list(obj.refused)
    yield ("programs", names)
    options = pipeline.LinkOptions(opt_level=opt_level, helpers=helpers)
    whole = _link_together(obj, options) if start == 0 and together else None
    linked = []
    for name in names[start:]:
        if name in obj.refused:
            yield ("refused", name, obj.refused[name].reason, _message(obj.refused[name]), "load")
            continue
        if whole is not None:
            external = sorted(set(whole[1].external_helpers)
                              & called_helpers(obj, obj.program(name)))
            linked.append(name)
            yield ("linked", name, external)
            continue
        try:
            _, one = pipeline.link(obj, dataclasses.replace(options, program=name), emit="obj")
        except EbpfLtoError as err:
            yield ("refused", name, err.reason, _message(err))
        except Exception as err:  # as above
            yield ("internal", name, _internal(err))
        else:
            linked.append(name)
            yield ("linked", name, list(one.external_helpers))
    if compare and linked:
        from .corpus_compare import compare_object
        verdicts = compare_object(obj, linked, options,
                                  whole if len(linked) == len(obj.programs) else None)
        for name in linked:
            yield ("comparing", name)  # what a worker that dies now was on
            yield ("compared", name, next(verdicts))


def called_helpers(obj, prog) -> set[int]:
    """The helper ids the code a program reaches calls (bpf-to-bpf calls and
    function addresses followed), as written: what one link of the program
    alone could leave external."""
    seen, todo, ids = set(), [prog.entry], set()
    while todo:
        key = todo.pop()
        if key in seen or key not in obj.functions:
            continue
        seen.add(key)
        slots = obj.code[key.section]
        for pc in range(key.start, obj.functions[key].end):
            insn = slots[pc]
            ref = obj.refs.get((key.section, pc))
            if ref is not None and ref.function is not None:
                todo.append(ref.function)
            kind = isa.call_kind(insn)
            if kind is isa.CallKind.HELPER:
                ids.add(insn.imm)
            elif kind is isa.CallKind.LOCAL and ref is None:
                todo.append(dataclasses.replace(key, start=pc + insn.imm + 1))
    return ids


def _link_together(obj, options: pipeline.LinkOptions):
    """(image, Linked) of all the object's programs in one module, or None when
    that link fails (then each program is linked on its own, to say which fails)."""
    try:
        return pipeline.link(obj, options, emit="obj")
    except Exception:  # noqa: BLE001 - the programs one by one say what it was
        return None


def _worker_main(conn, stderr_path: str) -> None:
    # The parent handles ^C and ends its workers; LLVM's own messages (an
    # abort's reason) go to a file the parent reads when a worker dies.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = os.open(stderr_path, os.O_WRONLY | os.O_TRUNC)
    os.dup2(fd, 2)
    os.close(fd)
    conn.send(("ready",))
    while (job := conn.recv()) is not None:
        os.ftruncate(2, 0)
        os.lseek(2, 0, os.SEEK_SET)
        for event in object_events(*job):
            conn.send(event)
        conn.send(("done",))


# --- the parent ----------------------------------------------------------------

@dataclass
class _Job:
    path: Path
    start: int = 0  # the first program to link: past 0 when a worker died on an earlier one
    together: bool = True  # link the programs in one module first (false after it died)


@dataclass
class _Worker:
    process: multiprocessing.Process
    conn: object
    stderr_path: str
    ready: bool = False
    job: _Job | None = None
    names: list[str] | None = None
    next: int = 0          # index of the program being linked
    comparing: str | None = None  # the program --compare is running, once the links are done
    started: float = 0.0   # when the job was handed over
    deadline: float = 0.0

    def stderr_tail(self) -> str:
        try:
            text = Path(self.stderr_path).read_text(errors="replace")
        except OSError:
            return ""
        return text[-STDERR_TAIL:].strip()


@dataclass
class _ObjectResult:
    file: str
    programs: int = 0
    linked: int = 0
    refused: int = 0
    internal: int = 0
    load_refused: bool = False
    load_error: str = ""   # why the object as a whole was refused or failed
    seconds: float = 0.0

    @property
    def status(self) -> str:
        if self.internal:
            return "internal"
        if self.load_refused or self.linked == 0:
            return "refused"
        return "partial" if self.refused else "linked"


@dataclass
class _Refusals:
    stage: str
    reason: str
    count: int = 0
    examples: list[dict] = field(default_factory=list)


class Survey:
    """Runs the objects through a small pool of workers and gathers the outcome."""

    def __init__(self, root: Path, opt_level: int, jobs: int, timeout: float, helpers: str,
                 compare: bool = False):
        self.root = root
        self.opt_level = opt_level
        self.helpers_spec = helpers
        self.compare = compare
        self.compared: Counter[str] = Counter()   # "same" and each "not run" reason
        self.differences: list[dict] = []
        self.jobs = max(1, jobs)
        self.timeout = timeout
        self.objects: dict[Path, _ObjectResult] = {}
        self.refusals: dict[tuple[str, str], _Refusals] = {}
        self.helpers: Counter[int] = Counter()
        self.internal_errors: list[dict] = []
        self.ctx = multiprocessing.get_context("spawn")
        self.tmpdir = tempfile.TemporaryDirectory(prefix="ebpf-lto-corpus.")

    def run(self, paths: list[Path], on_object_done=lambda result: None) -> dict:
        """Link every object; `on_object_done` is given each _ObjectResult as it completes."""
        began = time.monotonic()
        for path in paths:
            self.objects[path] = _ObjectResult(path.relative_to(self.root).as_posix())
        pending = deque(_Job(p) for p in paths)
        workers = [self._spawn(i) for i in range(min(self.jobs, len(paths)))]
        try:
            while pending or any(w.job for w in workers):
                for w in workers:
                    if w.ready and w.job is None and pending:
                        self._assign(w, pending.popleft())
                # Wake at the first deadline, so that a step counts as hung when
                # nothing came from it by then, however busy the other workers are.
                nap = min([0.5] + [w.deadline - time.monotonic() for w in workers if w.job])
                wait([w.conn for w in workers] + [w.process.sentinel for w in workers],
                     timeout=max(0.0, nap))
                now = time.monotonic()
                for i, w in enumerate(workers):
                    finished = self._drain(w)
                    if finished is not None:
                        on_object_done(self.objects[finished])
                    hung = w.job is not None and now > w.deadline
                    if w.process.is_alive() and not hung:
                        continue
                    if not w.ready:  # not a bad object: this machine cannot run workers
                        raise RuntimeError(f"corpus worker failed to start: "
                                           f"{_death(w.process.exitcode)}: {w.stderr_tail()}")
                    why = f"timed out after {self.timeout:g} s" if hung else None
                    self._stop(w)
                    job = w.job
                    if job is not None and self._lost(w, why or _death(w.process.exitcode),
                                                      pending):
                        on_object_done(self.objects[job.path])
                    workers[i] = self._spawn(i)
        finally:
            for w in workers:
                self._stop(w)
            self.tmpdir.cleanup()
        return self._report(time.monotonic() - began)

    # workers

    def _spawn(self, slot: int) -> _Worker:
        stderr_path = os.path.join(self.tmpdir.name, f"worker{slot}.stderr")
        Path(stderr_path).touch()
        parent, child = self.ctx.Pipe()
        process = self.ctx.Process(target=_worker_main, args=(child, stderr_path), daemon=True)
        process.start()
        child.close()
        return _Worker(process, parent, stderr_path)

    def _assign(self, w: _Worker, job: _Job) -> None:
        w.job, w.names, w.next, w.comparing = job, None, job.start, None
        w.started = time.monotonic()
        w.deadline = w.started + self.timeout
        w.conn.send((str(job.path), self.opt_level, self.helpers_spec, job.start,
                     self.compare, job.together))

    @staticmethod
    def _stop(w: _Worker) -> None:
        """End a worker: an idle one when it has read its last job, a busy one now."""
        if w.process.is_alive() and w.job is None:
            try:
                w.conn.send(None)
            except OSError:
                pass
            w.process.join(timeout=2)
        if w.process.is_alive():
            w.process.kill()
        w.process.join()
        w.conn.close()

    def _drain(self, w: _Worker) -> Path | None:
        """Take every message the worker has sent; the object it finished, if it did."""
        finished = None
        while True:
            try:
                if not w.conn.poll():
                    return finished
                event = w.conn.recv()
            except (EOFError, OSError):
                return finished
            w.deadline = time.monotonic() + self.timeout  # the timeout is per step
            kind = event[0]
            if kind == "ready":
                w.ready = True
            elif kind == "done":
                self.objects[w.job.path].seconds += time.monotonic() - w.started
                finished = w.job.path
                w.job = None
            elif kind == "programs":
                w.names = event[1]
                self.objects[w.job.path].programs = len(event[1])
            elif kind == "comparing":
                w.comparing = event[1]
            elif kind == "compared":
                self._compared(self.objects[w.job.path].file, event[1], event[2])
            else:
                self._record(w.job.path, event)
                if event[1] is not None:
                    w.next += 1

    def _lost(self, w: _Worker, why: str, pending: deque) -> bool:
        """Record the step a dead or hung worker was on; requeue the rest of its object.

        Returns True when nothing of the object is left to do.
        """
        tail = w.stderr_tail()
        job = w.job
        self.objects[job.path].seconds += time.monotonic() - w.started
        w.job = None
        if job.together and w.names is not None and w.next == job.start == 0:
            # It died linking the programs together: one by one says which.
            pending.appendleft(_Job(job.path, 0, together=False))
            return False
        if w.comparing is not None:  # the programs left are not compared
            self._record(job.path, ("internal", w.comparing,
                                    {"error": f"{why} (--compare)", "where": "", "stderr": tail}))
            return True
        if w.names is None or w.next >= len(w.names):
            program = None
        else:
            program = w.names[w.next]
        self._record(job.path, ("internal", program, {"error": why, "where": "", "stderr": tail}))
        if w.names is not None and w.next + 1 < len(w.names):
            pending.appendleft(_Job(job.path, w.next + 1))
            return False
        return True

    # results

    def _record(self, path: Path, event: tuple) -> None:
        kind, program = event[0], event[1]
        result = self.objects[path]
        if kind == "linked":
            result.linked += 1
            self.helpers.update(set(event[2]))
        elif kind == "refused":
            stage = event[4] if len(event) > 4 else "link" if program is not None else "load"
            if program is None:
                result.load_refused = True
                result.load_error = event[3]
            else:
                result.refused += 1
            group = self.refusals.setdefault((stage, normalise(event[2])),
                                             _Refusals(stage, normalise(event[2])))
            group.count += 1
            if len(group.examples) < EXAMPLES:
                group.examples.append({"file": result.file, "program": program,
                                       "message": event[3]})
        elif kind == "internal":
            result.internal += 1
            info = event[2]
            if program is None:
                result.load_error = info["error"]
            self.internal_errors.append({
                "file": result.file, "program": program, "error": info["error"],
                "where": info.get("where", ""), "stderr": info.get("stderr", ""),
                "reproducer": self._reproducer(path, program)})

    def _compared(self, file: str, program: str | None, verdict: str) -> None:
        if verdict.startswith("differs"):
            self.differences.append({"file": file, "program": program,
                                     "difference": verdict.removeprefix("differs: ")})
        else:
            self.compared[normalise(verdict)] += 1

    def _reproducer(self, path: Path, program: str | None) -> str:
        cmd = ["ebpf-lto", "link", str(path)]
        if program is not None:
            cmd += ["--program", program]
        cmd += ["-O", str(self.opt_level), "--helpers", self.helpers_spec, "-o", "-"]
        return f"EBPF_LTO_DEBUG=1 {shlex.join(cmd)} > /dev/null"

    def _report(self, seconds: float) -> dict:
        results = list(self.objects.values())
        statuses = Counter(r.status for r in results)
        return {
            "dir": str(self.root),
            "opt_level": self.opt_level,
            "helpers": self.helpers_spec,
            "seconds": round(seconds, 1),
            "objects": {"total": len(results),
                        **{s: statuses[s] for s in ("linked", "partial", "refused", "internal")}},
            "programs": {"total": sum(r.programs for r in results),
                         "linked": sum(r.linked for r in results),
                         "refused": sum(r.refused for r in results),
                         "internal": sum(r.internal for r in results if r.programs)},
            "refusals": [
                {"stage": g.stage, "reason": g.reason, "count": g.count, "examples": g.examples}
                for g in sorted(self.refusals.values(), key=lambda g: (-g.count, g.stage, g.reason))
            ],
            "external_helpers": [
                {"id": hid, "name": helper_name(hid), "programs": n}
                for hid, n in sorted(self.helpers.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "internal_errors": self.internal_errors,
            "compared": None if not self.compare else {
                "same": self.compared["same"],
                "not_run": {k.removeprefix("not run: "): n for k, n in sorted(self.compared.items())
                            if k != "same"},
                "differ": self.differences},
            "files": [{"file": r.file, "status": r.status, "programs": r.programs,
                       "linked": r.linked, "refused": r.refused, "internal": r.internal}
                      for r in results],
        }


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"worker killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"worker killed by signal {-exitcode}"
    return f"worker exited with status {exitcode}"


def survey(root: str | Path, opt_level: int = 2, jobs: int | None = None,
           timeout: float = 300.0, progress: bool = False, helpers: str = "default",
           compare: bool = False) -> dict:
    """Link every program of every object under `root`; the report as plain data.

    With `progress`, each object is reported on standard error as it completes
    (inliner.progress: a live bar on a terminal, a line per object off one).
    """
    root = Path(root)
    if not root.is_dir():
        raise EbpfLtoError("not a directory", file=str(root))
    paths = find_objects(root)
    runner = Survey(root, opt_level, jobs or len(os.sched_getaffinity(0)), timeout, helpers,
                    compare)
    if not progress:
        return runner.run(paths)
    from .progress import Progress
    with Progress("corpus", len(paths)) as shown:
        return runner.run(paths, lambda result: shown.done(object_line(result)))


def object_line(result: _ObjectResult) -> str:
    """What became of one object, in a line."""
    if result.load_error:
        kind = "internal error" if result.internal else "refused"
        return f"{result.file}: {kind}: {result.load_error}"
    return (f"{result.file}: {_count(result.programs, 'program')}: {result.linked} linked, "
            f"{result.refused} refused, {_count(result.internal, 'internal error')} "
            f"({result.seconds:.1f} s)")


def summary_line(report: dict) -> str:
    """The whole run in a line: objects, programs, time."""
    objects, programs = report["objects"], report["programs"]
    return (f"{_count(objects['total'], 'object')} ({objects['linked']} linked, "
            f"{objects['partial']} partly linked, {objects['refused']} refused, "
            f"{_count(objects['internal'], 'internal error')}), "
            f"{_count(programs['total'], 'program')}: {programs['linked']} linked, "
            f"{programs['refused']} refused, {_count(programs['internal'], 'internal error')}"
            f"; {report['seconds']} s")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def print_report(report: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text  # cells as Text: messages hold '[' that markup would eat
    console = console or Console()
    objects, programs = report["objects"], report["programs"]

    summary = Table(title=f"ebpf-lto corpus {report['dir']} (-O{report['opt_level']}, "
                          f"{report['seconds']} s)")
    summary.add_column("")
    for col in ("total", "linked", "partly linked", "refused", "internal errors"):
        summary.add_column(col, justify="right")
    summary.add_row("objects", *(str(objects[k]) for k in
                                 ("total", "linked", "partial", "refused", "internal")))
    summary.add_row("programs", str(programs["total"]), str(programs["linked"]), "",
                    str(programs["refused"]), str(programs["internal"]))
    console.print(summary)

    if report["refusals"]:
        table = Table(title="refused (expected: input the tool cannot honour)")
        table.add_column("stage")
        table.add_column("reason", overflow="fold")
        table.add_column("count", justify="right")
        table.add_column("examples", overflow="fold")
        for g in report["refusals"]:
            examples = "\n".join(
                e["file"] + (f" {e['program']}" if e["program"] else "") + f": {e['message']}"
                for e in g["examples"])
            table.add_row(g["stage"], Text(g["reason"]), str(g["count"]), Text(examples))
        console.print(table)

    if report["external_helpers"]:
        table = Table(title="helpers left external")
        table.add_column("id", justify="right")
        table.add_column("name")
        table.add_column("programs", justify="right")
        for h in report["external_helpers"]:
            table.add_row(str(h["id"]), h["name"], str(h["programs"]))
        console.print(table)

    compared = report.get("compared")
    if compared is not None:
        table = Table(title="programs run inlined, not inlined and by the interpreter")
        table.add_column("outcome", overflow="fold")
        table.add_column("programs", justify="right")
        table.add_row("same r0, memory and maps", str(compared["same"]))
        for reason, n in compared["not_run"].items():
            table.add_row(Text(f"not run: {reason}"), str(n))
        for d in compared["differ"]:
            table.add_row(Text(f"DIFFERS {d['file']} {d['program']}: {d['difference']}",
                               style="bold red"), "1")
        console.print(table)

    if report["internal_errors"]:
        # Not a table: each reproducer must stay one line to copy.
        console.print(Text(f"internal errors ({len(report['internal_errors'])}): "
                           "bugs of ebpf-lto, please report", style="bold red"))
        for e in report["internal_errors"]:
            where = f" ({e['where']})" if e["where"] else ""
            lines = [f"{e['file']} {e['program'] or '(loading)'}: {e['error']}{where}",
                     f"  {e['reproducer']}"]
            lines += [f"  | {line}" for line in e["stderr"].splitlines()]
            console.print(Text("\n".join(lines)), soft_wrap=True)
