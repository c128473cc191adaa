"""The C entries of checked functions (docs/abi.md, docs/safety.md).

A raw program's entry makes the checks its function's entry would (guard.py
Guard._check_at_entry) before it calls the function; a checked callback,
called from C by bpf_loop or for_each_map_elem, gets its arguments' regions
from the environment its caller handed the helper.
"""
from __future__ import annotations

from llvmlite import ir

from ..facts.abi import Fault, Region
from .guard import (CALLBACK_FOR_EACH, CALLBACK_LOOP, ENV, ENV_BUDGET, ENV_CTX, ENV_KIND,
                    ENV_REGION, ENV_STOPPED, I32, I64, LIKELY, NONE, PARTS, ZERO, branch_weights,
                    holds, span, tag, write_fault)


def entry_checks(ml, b: ir.IRBuilder, func, r1: ir.Value, end: ir.Value) -> None:
    """A raw program's entry checks (func.entry_checks), made by its C entry before it
    calls the program's function: [r1, end) is the input. A failed one writes the
    fault record and returns 0, as the function's own stop would."""
    region = (r1, end, end, tag(Region.MEMORY))
    fn = b.function
    for write, first, lo, hi in func.entry_checks:
        start = b.add(r1, ir.Constant(I64, lo))
        ok = holds(b, region, start, ir.Constant(I64, hi - lo), write)
        fault, cont = fn.append_basic_block("fault"), fn.append_basic_block("checked")
        b.cbranch(ok, cont, fault).set_metadata("prof", branch_weights(ml.module, LIKELY))
        b.position_at_end(fault)
        write_fault(b, ml.fault_record(), (
            ir.Constant(I64, int(Fault.STORE if write else Fault.LOAD)), ir.Constant(I64, first),
            start, ir.Constant(I64, hi - lo), tag(Region.MEMORY), r1, end, ml.function_name(func)))
        b.ret(ZERO)
        b.position_at_end(cont)


def trampoline(ml, func, name: str) -> ir.Function:
    """The C entry of a checked callback: cb(r1, ..., r5), r5 the caller's ENV (or 0)."""
    fn = ir.Function(ml.module, ir.FunctionType(I64, [I64] * 5), name)
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    r = list(fn.args)
    own = b.alloca(ENV, name="own.env")       # no environment: nothing known, a budget of its own
    budget = b.alloca(I64, name="own.budget")
    b.store(ir.Constant(I64, ml.options.max_steps), budget)
    for n, v in enumerate([ZERO, budget, ZERO, *NONE, ZERO]):
        b.store(v, b.gep(own, [I32(0), I32(n)]))
    if ml.options.bpftime:  # bpftime's helpers call back with nothing in r5 of ours
        env = own
    else:
        given = b.icmp_unsigned("!=", r[4], ZERO)
        env = b.select(given, b.inttoptr(r[4], ENV.as_pointer()), own)

    def field(n):
        return b.load(b.gep(env, [I32(0), I32(n)]))
    kind = field(ENV_KIND)
    region = tuple(field(ENV_REGION + k) for k in range(len(PARTS)))
    is_loop = b.icmp_unsigned("==", kind, ir.Constant(I64, CALLBACK_LOOP))
    is_each = b.icmp_unsigned("==", kind, ir.Constant(I64, CALLBACK_FOR_EACH))

    def pick(cond, then, other=NONE):
        return tuple(b.select(cond, x, y) for x, y in zip(then, other))
    # for_each_map_elem's key and value: sizes from the map in r1, which only
    # the helper (so only with an environment) passes: a dummy map otherwise.
    desc = b.select(is_each, r[0], b.ptrtoint(b.alloca(ir.ArrayType(I32, 4)), I64))

    def size(index):
        ptr = b.inttoptr(b.add(desc, ir.Constant(I64, 4 * index)), I32.as_pointer())
        return b.zext(b.load(ptr, align=4), I64)
    key = span(b, r[1], size(1), Region.CALLBACK)
    value = span(b, r[2], size(2), Region.CALLBACK)
    regions = [*NONE, *pick(is_loop, region, pick(is_each, key)), *pick(is_each, value),
               *pick(is_each, region), *NONE]
    result = b.call(func.ir_func, r + regions + [field(ENV_BUDGET), field(ENV_CTX)])
    r0, stopped = b.extract_value(result, 0), b.extract_value(result, 1)
    b.store(b.zext(stopped, I64), b.gep(env, [I32(0), I32(ENV_STOPPED)]))
    # A stop ends the walk (return 1); the caller sees `stopped` and stops too.
    b.ret(b.select(stopped, ir.Constant(I64, 1), r0))
    return fn
