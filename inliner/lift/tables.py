"""The module-level tables the lifter emits: maps, programs, counters (docs/abi.md).

Every map becomes a constant descriptor `struct bpf_map` (facts/maps.py)
pointing at its zeroed mutable state; the exported tables list the maps,
the programs (in the order prog_array values number them) and, in an
instrumented build, whose counters are where.
"""
from __future__ import annotations

import re

from llvmlite import ir

from ..errors import EbpfLtoError
from ..facts import abi, maps
from ..facts.maps import MapDef

I8, I32, I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
I8P = I8.as_pointer()


def unique(name: str, taken) -> str:
    """`name`, or `name.N` for the first N that is not taken (a set is updated)."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}.{n}"
    if isinstance(taken, set):
        taken.add(candidate)
    return candidate


def cstring(module: ir.Module, name: str, text: str) -> ir.Constant:
    data = bytearray(text.encode() + b"\0")
    ty = ir.ArrayType(I8, len(data))
    gv = ir.GlobalVariable(module, ty, unique(name, module.globals))
    gv.initializer = ir.Constant(ty, data)
    gv.global_constant = True
    gv.linkage = "internal"
    return gv.bitcast(I8P)


def _exported(module: ir.Module, name: str, ty: ir.Type, value) -> ir.GlobalVariable:
    gv = ir.GlobalVariable(module, ty, name)
    gv.initializer = value if isinstance(value, ir.Constant) else ir.Constant(ty, value)
    gv.global_constant = True
    return gv


def _count(module: ir.Module, name: str, n: int) -> None:
    _exported(module, name, I32, n)


def map_descriptors(module: ir.Module, object_maps: dict[str, MapDef], ncpus: int,
                    extern_state: bool) -> dict[str, ir.GlobalVariable]:
    """Each map's descriptor and state, and the exported map table; descriptors by name.

    The descriptor holds the geometry as constants, so code inlined from the
    map runtime folds it. With `extern_state` the host defines each map's
    state as `ebpf_lto_state_NAME` (docs/maps.md).
    """
    desc_ty = ir.LiteralStructType([I8P if ty.endswith("*") else I32
                                    for ty, _ in maps.DESCRIPTOR_FIELDS])
    state_ty = ir.ArrayType(I8, maps.STATE_SIZE)
    order = list(object_maps)
    out = {}
    for index, m in enumerate(object_maps.values()):
        if extern_state:
            symbol = "ebpf_lto_state_" + re.sub(r"\W", "_", m.name)
            if symbol in module.globals:  # names differing only in non-word bytes
                raise EbpfLtoError(f"with --maps extern, map {m.name!r} and another map both "
                                   f"need the symbol {symbol}")
            state = ir.GlobalVariable(module, state_ty, symbol)
        else:
            state = ir.GlobalVariable(module, state_ty,
                                      unique(f"bpf.map.{m.name}.state", module.globals))
            state.initializer = ir.Constant(state_ty, None)
            state.linkage = "internal"
        state.align = 64
        inner = maps.NO_INNER if m.inner is None else order.index(m.inner)
        fields = m.descriptor(ncpus, index, inner)
        fields["state"] = state.bitcast(I8P)
        fields["name"] = cstring(module, f"bpf.map.{m.name}.name", m.name)
        desc = ir.GlobalVariable(module, desc_ty, unique(f"bpf.map.{m.name}", module.globals))
        desc.initializer = ir.Constant(desc_ty, [
            fields[name] if isinstance(fields[name], ir.Value) else ir.Constant(I32, fields[name])
            for _, name in maps.DESCRIPTOR_FIELDS])
        desc.global_constant = True
        desc.linkage = "internal"
        desc.align = 8
        out[m.name] = desc
    table_ty = ir.ArrayType(I8P, len(out))
    _exported(module, abi.MAP_TABLE, table_ty, [d.bitcast(I8P) for d in out.values()])
    _count(module, abi.MAP_COUNT, len(out))
    return out


def program_table(module: ir.Module, names: list[str]) -> None:
    """Program numbers, as prog_array values name them: the object's program order."""
    strings = [cstring(module, f"bpf.prog.{name}.name", name) for name in names]
    _exported(module, abi.PROG_NAMES, ir.ArrayType(I8P, len(strings)), strings)
    _count(module, abi.PROG_COUNT, len(strings))


def counter_tables(module: ir.Module, rows: list[tuple[str, int, int, int]]) -> ir.GlobalVariable:
    """The counter array and the table of (function, CFG hash, counters, first counter)."""
    total = sum(n for _, _, n, _ in rows)
    ty = ir.ArrayType(I64, total)
    counters = ir.GlobalVariable(module, ty, abi.COUNTERS)
    counters.initializer = ir.Constant(ty, None)
    counters.align = 64
    row_ty = ir.LiteralStructType([I8P, I64, I32, I32])
    table = _exported(module, abi.PROFILE_TABLE, ir.ArrayType(row_ty, len(rows)), None)
    table.initializer = ir.Constant(table.value_type, [
        ir.Constant(row_ty, [cstring(module, f"bpf.prof.{name}", name), ir.Constant(I64, h),
                             ir.Constant(I32, n), ir.Constant(I32, at)])
        for name, h, n, at in rows])
    _count(module, abi.PROFILE_COUNT, len(rows))
    return counters
