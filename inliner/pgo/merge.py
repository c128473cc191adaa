"""Merging instrumentation profiles as `llvm-profdata merge` does (profdata.py's model)."""
from __future__ import annotations

from dataclasses import dataclass

from .profdata import MAX_COUNT, PSEUDO_HOT, PSEUDO_WARM, FunctionProfile, ProfdataError, Profile



@dataclass(frozen=True)
class Mismatch:
    """Two records of one function that LLVM would not add together."""
    name: str
    kind: str       # "hash", "counters" (different lengths) or "pseudo"
    first: FunctionProfile
    second: FunctionProfile

    def __str__(self) -> str:
        a, b = self.first, self.second
        if self.kind == "hash":
            return f"{self.name}: hash mismatch ({a.hash:#x} vs {b.hash:#x})"
        if self.kind == "counters":
            return (f"{self.name}: counter count mismatch ({len(a.counters)} vs "
                    f"{len(b.counters)}) under hash {a.hash:#x}")
        return f"{self.name}: a pseudo-count record cannot merge with a counted one"


@dataclass
class MergeReport:
    """A merge's result with what LLVM would have warned about."""
    profile: Profile
    mismatches: list[Mismatch]
    saturated: list[str]    # functions whose sums were clamped at MAX_COUNT


def _pseudo(counters: list[int]) -> int | None:
    return counters[0] if counters[0] in (PSEUDO_HOT, PSEUDO_WARM) else None


def merge_report(a: Profile, b: Profile) -> MergeReport:
    """Merge `b` into `a` with InstrProfRecord::merge's semantics (weight 1).

    Records with equal name and hash add counter by counter, saturating at
    MAX_COUNT (2^64-3). Two pseudo-count records give PseudoHot if either is
    hot, else PseudoWarm, keeping `a`'s other counters. A record of `a` is
    kept unchanged, and the conflict reported, when `b`'s record of the same
    name has another hash (LLVM would keep both; a Profile holds one per
    name), another number of counters, or only one of them is pseudo.
    """
    for p in (a, b):
        if not isinstance(p, Profile):
            raise ProfdataError(f"expected a Profile, not {type(p).__name__}")
        p.validate()
    out = {name: FunctionProfile(fp.name, fp.hash, fp.counters)
           for name, fp in a.functions.items()}
    mismatches: list[Mismatch] = []
    saturated: list[str] = []
    for name, other in b.functions.items():
        mine = out.get(name)
        if mine is None:
            out[name] = FunctionProfile(other.name, other.hash, other.counters)
            continue
        pa, pb = _pseudo(mine.counters), _pseudo(other.counters)
        if mine.hash != other.hash:
            kind = "hash"
        elif len(mine.counters) != len(other.counters):
            kind = "counters"
        elif (pa is None) != (pb is None):
            kind = "pseudo"
        else:
            kind = None
        if kind is not None:
            mismatches.append(Mismatch(name, kind, a.functions[name], other))
            continue
        if pa is not None:
            mine.counters[0] = PSEUDO_HOT if PSEUDO_HOT in (pa, pb) else PSEUDO_WARM
            continue
        clamped = False
        for i, c in enumerate(other.counters):
            total = mine.counters[i] + c
            if total > MAX_COUNT:
                total, clamped = MAX_COUNT, True
            mine.counters[i] = total
        if clamped:
            saturated.append(name)
    return MergeReport(Profile(out), mismatches, saturated)


def merge(a: Profile, b: Profile) -> Profile:
    """Merge two profiles (see merge_report); any mismatch is a ProfdataError.

    Saturated sums are not errors (llvm-profdata only warns about them).
    """
    report = merge_report(a, b)
    if report.mismatches:
        shown = "; ".join(str(m) for m in report.mismatches[:5])
        more = len(report.mismatches) - 5
        raise ProfdataError(f"cannot merge: {shown}" + (f"; and {more} more" if more > 0 else ""))
    return report.profile
