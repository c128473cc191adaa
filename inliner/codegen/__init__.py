"""Stage 5, optimize and emit: LLVM's pipeline for the target, then the native object.

target.py holds the targets, their machines and the emitter; optimize.py
reads and verifies IR, simplifies the program's own functions before the
helpers are linked in (prelink) and runs LLVM's -O<n> pipeline, followed at -O2 by
storefwd.py and splitblocks.py (over irtext.py; irview.py for what llvmlite reads).
"""
from .optimize import OPT_LEVELS, optimize, own_passes, parse_bitcode, parse_ir, prelink
from .target import (EMIT_KINDS, SCHEDULE_LIMIT, TRIPLES, Target, emit, host_arch, init,
                     make_target, set_target, target_machine)

__all__ = ["EMIT_KINDS", "OPT_LEVELS", "SCHEDULE_LIMIT", "TRIPLES", "Target", "emit", "host_arch", "init",
           "make_target", "optimize", "own_passes", "parse_bitcode", "parse_ir", "prelink",
           "set_target", "target_machine"]
