"""Stage 3, link helpers: the helper sets' bitcode linked into the program's module.

After linking, everything but the symbols a host needs (program entries, the
exported tables, the map runtime's host API) is internalized, so that the
optimizer may specialise, inline and delete freely, and nothing the program
does not reach stays in the object.
"""
from __future__ import annotations

import llvmlite.binding as llvm

from .. import codegen
from .helpers import HelperSet


def link_helpers(mod: llvm.ModuleRef, hset: HelperSet, tm: llvm.TargetMachine) -> None:
    """Link the helper sets in; a definition the module already has is kept, not doubled.

    IR that ebpf-lto emitted already holds the helpers it called and the map
    runtime, and exports the runtime's host API: those helper-set definitions
    become available_externally, so the linker keeps the module's own.
    """
    present = {sym.name for sym in (*mod.functions, *mod.global_variables)
               if not sym.is_declaration and sym.linkage == llvm.Linkage.external}
    for helper_mod in hset.modules():
        for sym in (*helper_mod.functions, *helper_mod.global_variables):
            if sym.name in present and not sym.is_declaration \
                    and sym.linkage == llvm.Linkage.external:
                sym.linkage = llvm.Linkage.available_externally
        codegen.set_target(helper_mod, tm)
        mod.link_in(helper_mod)


def internalize(mod: llvm.ModuleRef, keep: set[str], tm: llvm.TargetMachine) -> None:
    """Give internal linkage to every definition not in `keep`, then drop what is unused."""
    for sym in (*mod.functions, *mod.global_variables):
        if not sym.is_declaration and sym.name not in keep \
                and sym.linkage != llvm.Linkage.internal:
            sym.linkage = llvm.Linkage.internal
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=0))
    mpm = llvm.create_new_module_pass_manager()
    mpm.add_global_dead_code_eliminate_pass()
    mpm.run(mod, pb)


def export_used(mod: llvm.ModuleRef, names) -> list[str]:
    """Export again those of `names` that `internalize` left (something uses them):
    the records a host reads and writes, kept only where the program's helpers use them."""
    present = {gv.name: gv for gv in mod.global_variables if not gv.is_declaration}
    kept = [name for name in names if name in present]
    for name in kept:
        present[name].linkage = llvm.Linkage.external
    return kept
