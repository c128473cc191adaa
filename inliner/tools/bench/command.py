"""`ebpf-lto bench`'s options and command: run the suite (or --compile-cost), print,
save and draw it, or read a saved run back (--from)."""
from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ...errors import EbpfLtoError
from ..progress import Progress
from .build import OPT_LEVEL, Builder
from .compile_cost import COMPILE_COST_SIZES, compile_cost, parse_sizes
from .driver import REP_MS, WARMUP_MS, run_benchmark
from .plot import plot, plot_compile_cost
from .report import (print_compile_cost, print_table, result_line, results_from_json,
                     summary_line, to_json)
from .stats import Result
from .suite import MODE_KEYS, REFERENCE, Benchmark, select
from .toolchain import Toolchain, machine

DEFAULT_REPS = 31


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


def _command_line(args) -> str:
    words = ["ebpf-lto", "bench", *args.names]
    for flag in ("quick", "json", "compile_cost"):
        if getattr(args, flag):
            words.append("--" + flag.replace("_", "-"))
    for opt in ("plot", "modes", "keep", "compile_cost_sizes"):
        if getattr(args, opt):
            words += ["--" + opt.replace("_", "-"), getattr(args, opt)]
    if args.reps != DEFAULT_REPS:
        words += ["--reps", str(args.reps)]
    if args.cpu != "native":
        words += ["--cpu", args.cpu]
    return " ".join(words)


def _show_compile_cost(report: dict, args) -> None:
    """A compile-cost report as JSON or a table, and drawn with --plot."""
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_compile_cost(report)
    if args.plot:
        plot_compile_cost(report, args.plot)


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
    if compile_report:
        _show_compile_cost(report, args)
        return 0
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(results, modes)
    if args.plot:
        plot(results, modes, args.plot)
    return 0


def command(args) -> int:
    """`ebpf-lto bench`; returns the exit status."""
    if args.from_json:
        return _saved(args)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": _command_line(args), "machine": machine(),
            "load_average_before": os.getloadavg()}
    if args.compile_cost_sizes and not args.compile_cost:
        raise EbpfLtoError("--compile-cost-sizes goes with --compile-cost")
    if args.compile_cost:
        sizes = parse_sizes(args.compile_cost_sizes) if args.compile_cost_sizes \
            else COMPILE_COST_SIZES
        with Progress("bench --compile-cost", 1 + 2 * len(sizes)) as progress:
            report = compile_cost(sizes, progress=progress)
        report.update(meta)
        _show_compile_cost(report, args)
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
        plot(results, modes, args.plot)
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
    p.add_argument("--compile-cost-sizes", metavar="LIST",
                   help="with --compile-cost: the program sizes, a comma list of instruction "
                        "counts (default 1k,10k,100k; e.g. 10k,100k,1M; at most 1M, the "
                        "kernel's limit)")
    p.add_argument("--from", dest="from_json", metavar="FILE",
                   help="run nothing: print (and with --plot, draw) the saved `bench --json` "
                        "or `bench --compile-cost --json` report FILE")
