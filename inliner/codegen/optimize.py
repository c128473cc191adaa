"""Stage 5, optimize: LLVM IR read and verified, then LLVM's -O<n> pipeline for the target.

At -O2 and above two passes of ebpf-lto's own follow LLVM's (storefwd.py,
splitblocks.py).
"""
from __future__ import annotations

import llvmlite.binding as llvm

from ..errors import EbpfLtoError
from . import irview, splitblocks, storefwd
from .target import init, set_target

OPT_LEVELS = (0, 1, 2, 3)


def parse_ir(text: str, name: str = "module") -> llvm.ModuleRef:
    init()
    try:
        mod = llvm.parse_assembly(text)
        mod.verify()
    except RuntimeError as err:
        # The lifter must never hand LLVM an invalid module; report, do not crash.
        first = str(err).strip().splitlines()[0] if str(err).strip() else "invalid IR"
        raise EbpfLtoError(f"invalid LLVM IR for {name}: {first}") from None
    return mod


def parse_bitcode(data: bytes, name: str) -> llvm.ModuleRef:
    init()
    try:
        mod = llvm.parse_bitcode(data)
        mod.verify()
    except RuntimeError as err:
        raise EbpfLtoError(f"cannot read bitcode {name}: {str(err).strip()}") from None
    return mod


def prelink(mod: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    """The program's own functions simplified before the helpers join them.

    A C compiler hands LTO bitcode its pre-link pipeline has already run over
    (the helpers' is clang -O2's); the lifter hands over eBPF's machine:
    every stack slot memory, every `?:` a branch. LLVM's pipeline run
    straight on that folds the branches into selects (SimplifyCFG) before
    InstCombine has canonicalized the arithmetic around them, and keeps a
    different instruction order into the vectorizers and the scheduler: in the
    bench suite crc32 ran 1.15x the twin's time, select_chain 1.16x (eight
    mask registers live at once, two spilled), log2 1.12x. SROA and InstCombine
    first, as a pre-link pipeline would, bring all three to or below the twin
    (docs/benchmarks.md); the cost is one InstCombine over the program.
    """
    set_target(mod, tm)
    pm = llvm.create_new_module_pass_manager()
    pm.add_sroa_pass()
    pm.add_instruction_combine_pass()
    pm.run(mod, llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=2)))


def optimize(mod: llvm.ModuleRef, tm: llvm.TargetMachine, opt_level: int) -> llvm.ModuleRef:
    """Run LLVM's standard -O<n> module pipeline with the target's cost model.

    Returns the optimized module, which may be a new one: at -O2 and above,
    stores are forwarded into the wider loads that follow them (storefwd.py),
    and blocks too large for instruction selection to take in linear time are
    split (splitblocks.py): `own_passes`.
    """
    if opt_level not in OPT_LEVELS:
        raise EbpfLtoError(f"optimization level must be 0-3, not {opt_level}")
    set_target(mod, tm)
    pto = llvm.create_pipeline_tuning_options(speed_level=opt_level)
    if opt_level >= 2:
        pto.loop_vectorization = True
        pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return own_passes(mod)[0] if opt_level >= 2 else mod


def own_passes(mod: llvm.ModuleRef) -> tuple[llvm.ModuleRef, int, int]:
    """ebpf-lto's passes after LLVM's: stores forwarded, then huge blocks split.

    Returns the module, a new one if either rewrote it, and the counts of
    loads forwarded and of splits. Both read the printed module (irtext.py),
    llvmlite deciding each store forwarded (irview.py); only a rewrite
    parses the edited text again.
    """
    view = irview.ModuleView(mod)
    blocks, forwarded = storefwd.forward(view)
    anchors, splits = splitblocks.split(view, blocks)
    if not blocks:
        return mod, 0, 0
    return parse_ir(view.rewrite(blocks, anchors), "the optimized module"), forwarded, splits
