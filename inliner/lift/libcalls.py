"""Calls of the C library's memset, memcpy, memmove and memcmp, lowered in place.

Older clang (and any clang given -fno-builtin, or a size it will not expand)
leaves these as calls of external functions; the loader names them as
"libc" refs (facts.helpers.LIBC_FUNCTIONS). They follow the BPF calling
convention: r1 the destination (memcmp: the first buffer), r2 the byte
value or the source, r3 the size; r0 gets the destination (memcmp: C's
int, here the difference of the first two bytes that differ, sign-extended);
r1-r5 are clobbered as by any call.

They become LLVM's memset, memcpy and memmove intrinsics, which LLVM expands
into loads and stores for small known sizes; memcpy becomes memmove unless
the facts show the two buffers apart, since an overlapping llvm.memcpy is
undefined behaviour. memcmp is a byte loop of the module's own, which LLVM
inlines and unrolls for small known sizes, so the object needs no memcmp
from a C library (none under --abi bpftime). In a checked build every memory
argument is checked first as a helper's is (guard.py), and a bad one is a
fault: the call is the program's own access.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from llvmlite import ir

from ..facts import isa
from ..facts.helpers import LIBC_FUNCTIONS
from .values import Kind

if TYPE_CHECKING:
    from .emit import FunctionEmitter

I1, I8, I32, I64 = (ir.IntType(n) for n in (1, 8, 32, 64))
PTR = ir.PointerType()
MEMCMP = "ebpf_lto.memcmp"
# Pointers that cannot point into the running function's own frame.
NOT_THE_FRAME = (Kind.CTX, Kind.PACKET, Kind.MAP_VALUE, Kind.ARG)


def lower(em: FunctionEmitter, idx: int, name: str) -> None:
    """The call at idx of C library function `name`, with its arguments checked."""
    b, guard, specs = em.b, em.guard, LIBC_FUNCTIONS[name]
    for spec in specs:
        if em.reg(spec.reg).kind is Kind.CTX:
            # The host's context is laid out otherwise (facts/contexts.py): only
            # its fields, one by one, mean what the program expects.
            raise em.error(idx, f"{name} of the program's context (r{spec.reg}): its fields "
                                "are read and written one by one, not as bytes")
    if guard is not None:
        guard.libc_args(idx, name, specs)
        if name != "memcmp":    # r0 is the destination, and has its region
            guard.give(0, guard.region(1))
    r1, r2, _, _, _ = em.call_args()
    dst, src, size = b.inttoptr(r1, PTR), b.inttoptr(r2, PTR), em.rd(3)
    module = em.ml.module
    if name == "memset":
        fill = module.declare_intrinsic("llvm.memset", [PTR, I64])
        b.call(fill, [dst, b.trunc(em.rd(2), I8), size, ir.Constant(I1, 0)])
    elif name in ("memcpy", "memmove"):
        kind = "memcpy" if name == "memcpy" and _apart(em) else "memmove"
        copy = module.declare_intrinsic(f"llvm.{kind}", [PTR, PTR, I64])
        b.call(copy, [dst, src, size, ir.Constant(I1, 0)])
    else:
        em.wr(idx, 0, b.sext(b.call(_memcmp(module), [dst, src, size]), I64))
        return
    em.wr(idx, 0, r1)


def _apart(em: FunctionEmitter) -> bool:
    """Whether the facts show memcpy's two buffers cannot overlap: one in the frame
    and the other not, or both in the frame at offsets a known size keeps apart."""
    dst, src, size = em.reg(1), em.reg(2), em.reg(3)
    if Kind.FRAME not in (dst.kind, src.kind):
        return False
    if dst.kind is not src.kind:
        return dst.kind in NOT_THE_FRAME or src.kind in NOT_THE_FRAME
    n = size.range.umax if size.kind is Kind.SCALAR else None
    return n is not None and n <= isa.STACK_SIZE and abs(dst.off - src.off) >= n


def _memcmp(module: ir.Module) -> ir.Function:
    """`i32 memcmp(a, b, n)`: the difference of the first bytes that differ, else 0."""
    fn = module.globals.get(MEMCMP)
    if fn is not None:
        return fn
    fn = ir.Function(module, ir.FunctionType(I32, [PTR, PTR, I64]), MEMCMP)
    fn.linkage = "internal"
    a, bp, n = fn.args
    entry, head, body, differ, step, same = (
        fn.append_basic_block(s) for s in ("entry", "head", "body", "differ", "step", "same"))
    b = ir.IRBuilder(entry)
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64)
    i.add_incoming(ir.Constant(I64, 0), entry)
    b.cbranch(b.icmp_unsigned("<", i, n), body, same)
    b.position_at_end(body)
    x = b.zext(b.load(b.gep(a, [i], source_etype=I8), typ=I8), I32)
    y = b.zext(b.load(b.gep(bp, [i], source_etype=I8), typ=I8), I32)
    b.cbranch(b.icmp_unsigned("!=", x, y), differ, step)
    b.position_at_end(differ)
    b.ret(b.sub(x, y))
    b.position_at_end(step)
    i.add_incoming(b.add(i, ir.Constant(I64, 1)), step)
    b.branch(head)
    b.position_at_end(same)
    b.ret(ir.Constant(I32, 0))
    return fn
