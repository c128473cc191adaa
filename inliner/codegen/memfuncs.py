"""memcpy, memmove and memset inside the object, for loaders that give it no C library.

llvmbpf's `load_aot_object`, bpftime's loader, resolves only the helpers and
`__lddw_helper_map_val`: an object that calls the C library is refused.
LLVM's code generator turns an `llvm.memcpy`/`memmove`/`memset` it does not
expand (a size unknown or large) into a call of the C function of that name,
so such an object carries its own. They are added after the optimizer, whose
loop idiom pass would turn their loops back into calls of themselves, with
internal linkage: the code generator's calls bind to them inside the object.
"""
from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir

from ..facts.abi import MEMFUNCS
from .optimize import parse_ir
from .target import set_target

I8, I32, I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
PTR = ir.PointerType()
WORD = 8


def needed(mod: llvm.ModuleRef) -> list[str]:
    """The functions the module may call: declared, or the intrinsic of that name used."""
    names = {fn.name for fn in mod.functions}
    return [n for n in MEMFUNCS if n in names or any(f.startswith(f"llvm.{n}.") for f in names)]


def provide(mod: llvm.ModuleRef, tm: llvm.TargetMachine) -> list[str]:
    """Define in `mod` the functions it may call; returns their names."""
    wanted = needed(mod)
    if not wanted:
        return []
    defs = ir.Module(name="memfuncs")
    for name in wanted:
        _define(defs, name, *_BUILDERS[name])
    defs_ref = parse_ir(str(defs), "memfuncs")
    set_target(defs_ref, tm)
    mod.link_in(defs_ref)   # a declaration in mod takes the definition
    for fn in mod.functions:
        if fn.name in wanted:
            fn.linkage = llvm.Linkage.internal
    return wanted


def _copy(b: ir.IRBuilder, dst, src, i, width) -> None:
    ty = ir.IntType(8 * width)
    b.store(b.load(b.gep(src, [i], source_etype=I8), typ=ty, align=1),
            b.gep(dst, [i], source_etype=I8), align=1)


def _phase(fn: ir.Function, b: ir.IRBuilder, width: int, start, n, up: bool, step) -> ir.Value:
    """A loop of `step(b, at, width)` over whole units of `width` bytes from `start`:
    up to n, or down to 0. Leaves b after the loop; returns where it stopped."""
    head, body, out = (fn.append_basic_block(f"{'up' if up else 'down'}{width}.{s}")
                       for s in ("head", "body", "out"))
    entry, w = b.block, ir.Constant(I64, width)
    b.branch(head)
    b.position_at_end(head)
    k = b.phi(I64)
    k.add_incoming(start, entry)
    more = b.icmp_unsigned("<=", b.add(k, w), n) if up else b.icmp_unsigned(">=", k, w)
    b.cbranch(more, body, out)
    b.position_at_end(body)
    at = k if up else b.sub(k, w)
    step(b, at, width)
    k.add_incoming(b.add(k, w) if up else at, body)
    b.branch(head)
    b.position_at_end(out)
    return k


def _sweep(fn: ir.Function, b: ir.IRBuilder, n, up: bool, step, done: ir.Block) -> None:
    """Words, then the bytes left, from the start (up) or from the end."""
    k = _phase(fn, b, WORD, ir.Constant(I64, 0) if up else n, n, up, step)
    _phase(fn, b, 1, k, n, up, step)
    b.branch(done)


def _define(mod: ir.Module, name: str, second, sweeps) -> None:
    """`void *name(void *dst, second, size_t n)`: `sweeps(fn, b, dst, arg, n, done)`
    builds the body, which ends in the block `done`; it returns dst."""
    fn = ir.Function(mod, ir.FunctionType(PTR, [PTR, second, I64]), name)
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    done = fn.append_basic_block("done")
    sweeps(fn, b, *fn.args, done)
    b.position_at_end(done)
    b.ret(fn.args[0])


def _memcpy(fn, b, dst, src, n, done) -> None:
    _sweep(fn, b, n, True, lambda b, i, w: _copy(b, dst, src, i, w), done)


def _memmove(fn, b, dst, src, n, done) -> None:
    up, down = fn.append_basic_block("up"), fn.append_basic_block("down")
    # A destination at or below the source may be copied from the start: each word is
    # read before any store reaches it.
    b.cbranch(b.icmp_unsigned("<=", b.ptrtoint(dst, I64), b.ptrtoint(src, I64)), up, down)
    for block, upward in ((up, True), (down, False)):
        b.position_at_end(block)
        _sweep(fn, b, n, upward, lambda b, i, w: _copy(b, dst, src, i, w), done)


def _memset(fn, b, dst, c, n, done) -> None:
    byte = b.trunc(c, I8)
    word = b.mul(b.zext(byte, I64), ir.Constant(I64, 0x0101010101010101))

    def store(b, i, width):
        b.store(word if width == WORD else byte, b.gep(dst, [i], source_etype=I8), align=1)
    _sweep(fn, b, n, True, store, done)


_BUILDERS = {"memcpy": (PTR, _memcpy), "memmove": (PTR, _memmove), "memset": (I32, _memset)}
