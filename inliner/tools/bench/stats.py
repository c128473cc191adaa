"""What a run measured: each mode's outcome, its median and spread, ratios and geometric means."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from .suite import BASELINE, PEER, REFERENCE, UNCHECKED, Benchmark


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
    def quartiles(self) -> tuple[float, float] | None:
        """The first and third quartiles of the repetitions."""
        if len(self.reps) < 2:
            return None
        q = statistics.quantiles(self.reps, n=4, method="inclusive")
        return q[0], q[2]

    @property
    def spread(self) -> float | None:
        """The interquartile range relative to the median."""
        q = self.quartiles
        return (q[1] - q[0]) / statistics.median(self.reps) if q else None


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

    def slower(self, mode: str, than: str) -> bool | None:
        """Whether `mode` is slower than `than` beyond the run's noise: its first
        quartile above the other's third (None: not both timed). A higher median
        inside overlapping interquartile ranges is a tie, not a loss."""
        if self.ratio(mode, than) is None:
            return None
        a, b = self.outcomes[mode].quartiles, self.outcomes[than].quartiles
        return a[0] > b[1] if a and b else None

    def mpps(self, mode: str) -> float | None:
        """Millions of packets a second, for a packet program whose mode was timed."""
        out = self.outcomes.get(mode)
        return 1e3 / out.median if out and out.median and self.is_packet else None


def timed(results: list[Result]) -> bool:
    """Whether the run timed anything (--quick times nothing: it checks)."""
    return any(o.reps for r in results for o in r.outcomes.values())


def geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def summary(results: list[Result], modes: list[str]) -> dict[str, dict]:
    out = {}
    for mode in modes:
        to_twin = [r.ratio(mode, REFERENCE) for r in results]
        to_none = [r.ratio(mode, BASELINE) for r in results]
        heavy = [r.ratio(BASELINE, mode) for r in results if r.bench.heavy]
        to_peer = [(r, v) for r in results if (v := r.ratio(mode, PEER))]
        checked = [v for r in results if (v := r.ratio(mode, UNCHECKED))]
        out[mode] = {
            "geomean_vs_twin": geomean([v for v in to_twin if v]),
            "geomean_vs_none": geomean([v for v in to_none if v]),
            # How many times faster than --inline none, over the helper/map-heavy set.
            "geomean_speedup_heavy": geomean([v for v in heavy if v]),
            # Against bpftime's engine: time over llvmbpf AOT's, and how many times
            # faster than it on the helper/map set; the benchmarks where it is slower
            # beyond the noise, and where its median is higher inside it (a tie).
            "geomean_vs_peer": geomean([v for _, v in to_peer]),
            "geomean_speedup_vs_peer_heavy": geomean([1 / v for r, v in to_peer
                                                      if r.bench.heavy]),
            "slower_than_peer": [r.bench.name for r, v in to_peer if v > 1
                                 and r.slower(mode, PEER) is not False],
            "level_with_peer": [r.bench.name for r, v in to_peer if v > 1
                                and r.slower(mode, PEER) is False],
            "benchmarks_timed": sum(1 for r in results
                                    if r.outcomes.get(mode) and r.outcomes[mode].median),
        }
        if checked:  # the cost of the run-time checks: time over the --no-checks build's
            out[mode].update(geomean_vs_unchecked=geomean(checked), max_vs_unchecked=max(checked))
    return out
