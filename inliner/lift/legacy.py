"""RFC 9669 5.5's legacy packet loads (ld_abs, ld_ind), as the kernel runs them.

The verifier rewrites each into a call of bpf_skb_load_helper_{8,16,32}
(net/core/filter.c, bpf_gen_ld_abs): the offset is imm, or src + imm taken
as a 32-bit signed number; r0 gets the bytes there, big-endian, zero-extended;
an offset outside the packet ends the program with r0 = 0. r6 must hold the
context (an __sk_buff), and r1-r5 are clobbered.

A userspace packet is linear, from its link-layer header
(contexts.SKF_LL_OFF).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from llvmlite import ir

from ..facts import contexts, isa
from .values import Kind

if TYPE_CHECKING:
    from .emit import FunctionEmitter

I64 = ir.IntType(64)


def packet_load(em: FunctionEmitter, idx: int, insn: isa.Insn) -> None:
    """r0 = the packet's bytes at the instruction's offset, or the program ends with 0."""
    b = em.b
    ctx = em.reg(6)
    if ctx.kind is not Kind.CTX or ctx.off != 0 or ctx.layout is not contexts.SKB:
        raise em.error(idx, "legacy packet load (ld_abs/ld_ind) without the program's "
                            "__sk_buff context in r6 (socket filter and tc programs)")
    size = isa.SIZE_BYTES[isa.size(insn.opcode)]
    ty = ir.IntType(8 * size)

    def field(name: str) -> ir.Value:
        at = b.add(em.rd(6), ir.Constant(I64, ctx.layout.offset(name)))
        return b.load(b.inttoptr(at, I64.as_pointer()), typ=I64, align=1)
    data, end = field("data"), field("data_end")
    if isa.mode(insn.opcode) == isa.ABS:
        off = ir.Constant(I64, insn.imm)
    else:   # the helper's `int offset`: src + imm in 32 bits, signed
        at = b.trunc(b.add(em.rd(insn.src), ir.Constant(I64, insn.imm)), ir.IntType(32))
        off = b.sext(at, I64)
    link = b.and_(b.icmp_signed(">=", off, ir.Constant(I64, contexts.SKF_LL_OFF)),
                  b.icmp_signed("<", off, ir.Constant(I64, contexts.SKF_NET_OFF)))
    off = b.select(link, b.sub(off, ir.Constant(I64, contexts.SKF_LL_OFF)), off)
    inside = b.and_(b.icmp_signed(">=", off, ir.Constant(I64, 0)),
                    b.icmp_signed("<=", b.add(off, ir.Constant(I64, size)), b.sub(end, data)))
    em.stop_if(b.not_(inside), ir.Constant(I64, 0))
    value = b.load(b.inttoptr(b.add(data, off), ty.as_pointer()), typ=ty, align=1)
    if size > 1:
        value = b.call(em.ml.module.declare_intrinsic("llvm.bswap", [ty]), [value])
    em.wr(idx, 0, b.zext(value, I64))
