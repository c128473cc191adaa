"""Stage 2, lift: eBPF functions to LLVM IR with eBPF's exact semantics.

In four parts, the way the kernel keeps its verifier apart from its JIT:
  cfg.py       the control flow of each function, checked and built once;
  dataflow.py  facts per instruction: what each register holds (values.py);
  emit.py      the one switch over instructions, reading those facts;
  module.py    which functions, their analysis in call order, the entries,
               with tables.py (maps, programs, counters) and counts.py
               (profiles and instrumentation).
Compare trees become switches (switches.py); every slot is first checked to
be an instruction RFC 9669 defines (validity.py).
"""
from __future__ import annotations

from ..collector import cycles_uncollected
from ..elf.model import EbpfObject, Program
from ..errors import EbpfLtoError
from ..elf.model import FuncKey
from .dataflow import Facts
from .model import DEFAULT_MAX_STEPS, Check, LiftOptions, Lifted, Site
from .module import ModuleLifter

__all__ = ["DEFAULT_MAX_STEPS", "Check", "Facts", "LiftOptions", "Lifted", "Site", "analyze", "lift"]


def lift(obj: EbpfObject, programs: list[Program] | None = None,
         options: LiftOptions = LiftOptions(), module_name: str = "") -> Lifted:
    """Lift the given programs (default: all) and everything they call."""
    programs = list(obj.programs if programs is None else programs)
    if not programs:
        raise EbpfLtoError("object holds no program", file=obj.path)
    with cycles_uncollected():
        return ModuleLifter(obj, options, module_name or obj.path).run(programs)


def analyze(obj: EbpfObject, programs: list[Program] | None = None,
            options: LiftOptions = LiftOptions()) -> dict[FuncKey, Facts]:
    """The data-flow facts of every function the programs reach, without emitting IR."""
    programs = list(obj.programs if programs is None else programs)
    if not programs:
        raise EbpfLtoError("object holds no program", file=obj.path)
    ml = ModuleLifter(obj, options, obj.path)
    with cycles_uncollected():
        return ml.analyze(ml.prepare(programs))
