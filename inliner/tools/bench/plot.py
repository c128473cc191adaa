"""The charts (matplotlib, PNG and SVG): each mode's time over the twin's, over
--inline none and over llvmbpf AOT, and compile cost against program size. Each mode keeps its colour."""
from __future__ import annotations

import math
from pathlib import Path

from ...errors import EbpfLtoError
from .stats import Result
from .suite import BASELINE, BY_KEY, PEER, REFERENCE

_CHART_TITLES = {REFERENCE: "time relative to the native twin",
                 BASELINE: "time relative to --inline none (bpftime AOT shape)",
                 PEER: "time relative to llvmbpf AOT (bpftime's engine)"}


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


def _save(plt, fig, out_dir: Path, fname: str) -> list[Path]:
    written = []
    for ext in ("png", "svg"):
        path = out_dir / f"{fname}.{ext}"
        fig.savefig(path, dpi=110)
        written.append(path)
    plt.close(fig)
    return written


def plot(results: list[Result], modes: list[str], directory: str) -> list[Path]:
    plt, out_dir = _pyplot(directory)
    written = []
    for to, fname in ((REFERENCE, "bench_vs_twin"), (BASELINE, "bench_vs_none"),
                      (PEER, "bench_vs_llvmbpf_aot")):
        fig = ratio_chart(plt, results, modes, to)
        if fig is not None:
            written += _save(plt, fig, out_dir, fname)
    return written


def ratio_chart(plt, results: list[Result], modes: list[str], to: str):
    """Bars of each mode's median time over mode `to`'s, per benchmark; None if none ran."""
    shown = [m for m in modes if m != to and any(r.ratio(m, to) for r in results)]
    rows = [r for r in results if any(r.ratio(m, to) for m in shown)]
    if not rows or not shown:
        return None
    fig, ax = plt.subplots(figsize=(max(8, 0.75 * len(rows) + 2), 4.8))
    width = 0.8 / len(shown)
    for k, mode in enumerate(shown):
        xs = [i + (k - (len(shown) - 1) / 2) * width for i in range(len(rows))]
        ys = [r.ratio(mode, to) or math.nan for r in rows]
        ax.bar(xs, ys, width, label=BY_KEY[mode].label, color=BY_KEY[mode].colour)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ratios = [v for r in rows for m in shown if (v := r.ratio(m, to))]
    _ratio_axis(ax, min(ratios), max(ratios))
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r.bench.name for r in rows], rotation=40, ha="right", fontsize=8)
    ax.set_ylabel(f"median time / {BY_KEY[to].label} (log scale; lower is faster)")
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


def plot_compile_cost(report: dict, directory: str) -> list[Path]:
    plt, out_dir = _pyplot(directory)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for inline, mode in (("none", "none"), ("auto", "lto")):  # the bench mode each link is
        colour = BY_KEY[mode].colour
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
