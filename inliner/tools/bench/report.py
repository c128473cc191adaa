"""What a run says: the tables (rich), the progress and summary lines, the JSON report
and reading one back."""
from __future__ import annotations

import sys

from .stats import Outcome, Result, summary, timed
from .suite import (AGAINST_PEER, BASELINE, BENCHMARKS, BY_KEY, MODES, PEER, REFERENCE,
                    Benchmark)


def _fmt_ns(ns: float | None) -> str:
    if ns is None:
        return ""
    return f"{ns:,.0f}" if ns >= 100 else f"{ns:.1f}"


def _fmt_ratio(r: float | None) -> str:
    return "" if r is None else f"{r:.2f}"


def _answer(out: Outcome) -> str:
    """How an untimed mode answered, in a line: a check passed, or its status."""
    return "same as the twin" if out.status == "ok" else out.status


def _console(console):
    from rich.console import Console
    return console or Console(width=None if sys.stdout.isatty() else 150)


# --- lines ----------------------------------------------------------------------------

def result_line(res: Result, modes: list[str]) -> str:
    """One benchmark in a line: each timed mode's time over the twin's, or how each mode answered."""
    parts = []
    twin = res.outcomes.get(REFERENCE)
    if twin is not None and twin.median:
        parts.append(f"twin {_fmt_ns(twin.median)} ns")
        timed_modes = [f"{m} {_fmt_ratio(res.ratio(m, REFERENCE))}" for m in modes
                       if m != REFERENCE and res.ratio(m, REFERENCE)]
        if timed_modes:
            parts.append("× twin: " + ", ".join(timed_modes))
    by_status: dict[str, list[str]] = {}
    for mode in modes:
        out = res.outcomes.get(mode)
        if out is not None and not (out.status == "ok" and (out.median or mode == REFERENCE)):
            by_status.setdefault(_answer(out), []).append(mode)
    parts += [f"{status}: {', '.join(names)}" for status, names in by_status.items()]
    return f"{res.bench.name}: {'; '.join(parts)}"


def summary_line(results: list[Result], modes: list[str], seconds: float) -> str:
    """The run in a line: benchmarks, and the headline ratios (or, for --quick, the checks)."""
    head = f"{len(results)} benchmark{'' if len(results) == 1 else 's'}, {seconds:.0f} s"
    if not timed(results):
        statuses: dict[str, int] = {}
        for r in results:
            for mode, o in r.outcomes.items():
                if mode != REFERENCE:
                    statuses[_answer(o)] = statuses.get(_answer(o), 0) + 1
        return f"{head}; modes: " + ", ".join(f"{n} {k}" for k, n in statuses.items())
    summ = summary(results, modes)
    parts = [head]
    vs_twin = [f"{BY_KEY[m].label} {_fmt_ratio(summ[m]['geomean_vs_twin'])}" for m in modes
               if m != REFERENCE and summ[m]["geomean_vs_twin"]]
    if vs_twin:
        parts.append("time × native twin (geomean): " + ", ".join(vs_twin))
    lto = summ.get("lto", {}).get("geomean_speedup_heavy")
    if lto:
        parts.append(f"{BY_KEY['lto'].label} {lto:.2f}× as fast as {BY_KEY[BASELINE].label} "
                     "on the helper/map set")
    parts += peer_lines(summ, modes)
    return "; ".join(parts)


def peer_lines(summ: dict, modes: list[str]) -> list[str]:
    """Each of ebpf-lto's modes against llvmbpf AOT: overall, the helper/map set, the slower."""
    out = []
    for mode in (m for m in AGAINST_PEER if m in modes):
        s = summ.get(mode, {})
        if not s.get("geomean_vs_peer"):
            continue
        text = f"{BY_KEY[mode].label} {1 / s['geomean_vs_peer']:.2f}× as fast as " \
               f"{BY_KEY[PEER].label}"
        if s["geomean_speedup_vs_peer_heavy"]:
            text += f" ({s['geomean_speedup_vs_peer_heavy']:.2f}× on the helper/map set)"
        if s["slower_than_peer"]:
            text += f", slower on {', '.join(s['slower_than_peer'])}"
        if s.get("level_with_peer"):
            text += (f", level (a higher median inside overlapping interquartile ranges) on "
                     f"{', '.join(s['level_with_peer'])}")
        out.append(text)
    return out


# --- tables ---------------------------------------------------------------------------

def print_table(results: list[Result], modes: list[str], console=None) -> None:
    from rich.markup import escape
    from rich.table import Table
    console = _console(console)
    if not timed(results):
        _print_checks(results, modes, console)
        return
    table = Table(title="ebpf-lto bench: ns per run (median over repetitions)")
    for col, justify in (("benchmark", "left"), ("mode", "left"), ("median ns", "right"),
                         ("IQR", "right"), ("Mpps", "right"), ("× twin", "right"),
                         ("× none", "right"), ("× llvmbpf AOT", "right"), ("note", "left")):
        table.add_column(col, justify=justify)
    for res in results:
        for i, mode in enumerate(modes):
            out = res.outcomes.get(mode)
            if out is None:
                continue
            name = res.bench.name if i == 0 else ""
            label = BY_KEY[mode].label
            if out.status == "ok" and out.median:
                spread = f"{out.spread * 100:.1f}%" if out.spread is not None else ""
                mpps = res.mpps(mode)
                table.add_row(name, label, _fmt_ns(out.median), spread,
                              "" if mpps is None else f"{mpps:.2f}",
                              _fmt_ratio(res.ratio(mode, REFERENCE)),
                              _fmt_ratio(res.ratio(mode, BASELINE)),
                              _fmt_ratio(res.ratio(mode, PEER)), "")
            else:
                note = "same r0 and memory as the twin" if out.status == "ok" else \
                    f"[{'red' if out.status in ('wrong', 'failed') else 'yellow'}]" \
                    f"{out.status}[/]: {escape(out.reason)}"
                table.add_row(name, label, "", "", "", "", "", "", note)
        table.add_section()
    console.print(table)
    summ = summary(results, modes)
    if any(s["benchmarks_timed"] for s in summ.values()):
        g = Table(title="geometric means over the benchmarks each mode ran")
        for col in ("mode", "benchmarks", "× twin", "× none", "speedup over none, helper/map set",
                    "× llvmbpf AOT", "speedup over llvmbpf AOT, helper/map set"):
            g.add_column(col, justify="left" if col == "mode" else "right")
        for mode in modes:
            s = summ[mode]
            g.add_row(BY_KEY[mode].label, str(s["benchmarks_timed"]),
                      _fmt_ratio(s["geomean_vs_twin"]), _fmt_ratio(s["geomean_vs_none"]),
                      _fmt_ratio(s["geomean_speedup_heavy"]), _fmt_ratio(s["geomean_vs_peer"]),
                      _fmt_ratio(s["geomean_speedup_vs_peer_heavy"]))
        console.print(g)
        for line in peer_lines(summ, modes):
            console.print(line)
    harness = [r.harness_ns for r in results if r.harness_ns]
    if harness:
        console.print(f"driver loop overhead per call (input reset + indirect call of an empty "
                      f"function): {min(harness):.1f} ns, included in every figure above")


def _print_checks(results: list[Result], modes: list[str], console) -> None:
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
            table.add_row(res.bench.name if i == 0 else "", BY_KEY[mode].label,
                          "" if out.r0 is None else f"{out.r0:#x}",
                          f"[{colour.get(out.status, 'yellow')}]{text}[/]")
        table.add_section()
    console.print(table)


def print_compile_cost(report: dict, console=None) -> None:
    from rich.table import Table
    console = _console(console)
    table = Table(title="compile cost: `ebpf-lto link` in a child process")
    for col in ("instructions", "helper calls", "command", "wall s", "CPU s", "peak RSS MiB",
                "status", "by stage, wall s"):
        table.add_column(col, justify="left" if col in ("command", "by stage, wall s")
                         else "right")
    for row in report["rows"]:
        status = "ok" if row["status"] == 0 else f"[red]{row['status']}[/]" \
            if row["status"] == "timeout" else f"[red]exit {row['status']}: {row['error']}[/]"
        stages = " ".join(f"{name} {secs:.2f}" for name, secs in row.get("stages_s", {}).items())
        table.add_row(str(row["insns"]), str(row.get("helper_calls", "")), row["what"],
                      f"{row['wall_s']:.2f}", f"{row['cpu_s']:.2f}",
                      f"{row['peak_rss_mib']:.0f}", status, stages)
    console.print(table)


# --- JSON -----------------------------------------------------------------------------

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
                "ratio_to_llvmbpf_aot": r.ratio(mode, PEER),
                "mpps": r.mpps(mode),
            } for mode, o in r.outcomes.items()},
        } for r in results],
        "summary": summary(results, modes),
    }


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
