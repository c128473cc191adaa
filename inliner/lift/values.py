"""The abstract values the data-flow analysis gives each register: a kind and a range.

Like the kernel verifier's `bpf_reg_state`, in small immutable values: what
a register points into (its `Kind`), the constant part of its offset there,
and for numbers the range of values it may hold. A `Range` keeps both an
unsigned and a signed interval over 64 bits, as the kernel's
umin/umax/smin/smax do; every operation on ranges is sound (the result
contains every value the operation can produce), and is as precise as the
cases below make it.
"""
from __future__ import annotations

import enum
from typing import NamedTuple

from ..facts.contexts import Layout

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1


def to_signed(v: int, bits: int = 64) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


class Range(NamedTuple):
    """Values a 64-bit register may hold: in [umin, umax] unsigned and [smin, smax] signed.

    (Named tuples, here and for Value: the analysis makes one per instruction.)"""
    umin: int = 0
    umax: int = M64
    smin: int = S64_MIN
    smax: int = S64_MAX

    @staticmethod
    def const(v: int) -> Range:
        v &= M64
        s = to_signed(v)
        return Range(v, v, s, s)

    @staticmethod
    def unsigned(lo: int, hi: int) -> Range:
        """[lo, hi] unsigned; the signed view follows when it does not wrap."""
        if lo > hi:
            raise ValueError("empty range")
        if hi <= S64_MAX:
            return Range(lo, hi, lo, hi)
        if lo > S64_MAX:
            return Range(lo, hi, to_signed(lo), to_signed(hi))
        return Range(lo, hi)

    @staticmethod
    def signed(lo: int, hi: int) -> Range:
        if lo >= 0:
            return Range.unsigned(lo, hi)
        if hi < 0:
            return Range(lo & M64, hi & M64, lo, hi)
        return Range(0, M64, lo, hi)

    @property
    def is_full(self) -> bool:
        return self == FULL

    @property
    def value(self) -> int | None:
        """The one value, if the range holds exactly one."""
        return self.umin if self.umin == self.umax else None

    def hull(self, other: Range) -> Range:
        """Every value of both (where paths meet)."""
        return Range(min(self.umin, other.umin), max(self.umax, other.umax),
                     min(self.smin, other.smin), max(self.smax, other.smax))

    def meet(self, other: Range) -> Range | None:
        """The values in both, or None if there are none (a path that cannot run)."""
        return _sync(max(self.umin, other.umin), min(self.umax, other.umax),
                     max(self.smin, other.smin), min(self.smax, other.smax))

    def widen(self, newer: Range) -> Range:
        """A bound that moved since the last visit goes to its extreme, so loops end."""
        return Range(self.umin if newer.umin >= self.umin else 0,
                     self.umax if newer.umax <= self.umax else M64,
                     self.smin if newer.smin >= self.smin else S64_MIN,
                     self.smax if newer.smax <= self.smax else S64_MAX)

    def fits(self, bits: int) -> bool:
        return self.umax >> bits == 0


FULL = Range()
U32 = Range.unsigned(0, M32)


def _sync(umin: int, umax: int, smin: int, smax: int) -> Range | None:
    """Tighten each view by the other where it maps onto the other monotonically;
    None when no value is in both."""
    if smin >= 0 or smax < 0:
        umin, umax = max(umin, smin & M64), min(umax, smax & M64)
    if umax <= S64_MAX or umin > S64_MAX:
        smin, smax = max(smin, to_signed(umin)), min(smax, to_signed(umax))
    if umin > umax or smin > smax:
        return None
    return Range(umin, umax, smin, smax)


def unsigned_bits(bits: int) -> Range:
    return Range.unsigned(0, (1 << bits) - 1)


def add(a: Range, b: Range) -> Range:
    u = (a.umin + b.umin, a.umax + b.umax)
    s = (a.smin + b.smin, a.smax + b.smax)
    out = FULL
    if u[1] <= M64:
        out = Range.unsigned(*u)
    if S64_MIN <= s[0] and s[1] <= S64_MAX:
        out = out.meet(Range.signed(*s)) or out
    return out


def neg(a: Range) -> Range:
    if a.smin > S64_MIN:
        return Range.signed(-a.smax, -a.smin)
    return FULL


def sub(a: Range, b: Range) -> Range:
    out = FULL
    if a.umin >= b.umax:
        out = Range.unsigned(a.umin - b.umax, a.umax - b.umin)
    s = (a.smin - b.smax, a.smax - b.smin)
    if S64_MIN <= s[0] and s[1] <= S64_MAX:
        out = out.meet(Range.signed(*s)) or out
    return out


def mul(a: Range, b: Range) -> Range:
    hi = a.umax * b.umax
    return Range.unsigned(a.umin * b.umin, hi) if hi <= M64 else FULL


def and_(a: Range, b: Range) -> Range:
    return Range.unsigned(0, min(a.umax, b.umax))


def or_(a: Range, b: Range) -> Range:
    top = max(a.umax, b.umax)
    return Range.unsigned(max(a.umin, b.umin), (1 << top.bit_length()) - 1)


def udiv(a: Range, b: Range) -> Range:
    """x / 0 = 0 in eBPF, so the quotient never exceeds the dividend."""
    return Range.unsigned(0, a.umax // max(b.umin, 1))


def umod(a: Range, b: Range) -> Range:
    """x % 0 = x in eBPF; otherwise below the divisor. Never above the dividend."""
    if b.umin > 0:
        return Range.unsigned(0, min(a.umax, b.umax - 1))
    return Range.unsigned(0, a.umax)


def lsh(a: Range, k: int) -> Range:
    return Range.unsigned(a.umin << k, a.umax << k) if a.umax << k <= M64 else FULL


def rsh(a: Range, k: int) -> Range:
    return Range.unsigned(a.umin >> k, a.umax >> k)


def arsh(a: Range, k: int) -> Range:
    return Range.signed(a.smin >> k, a.smax >> k)


def truncate(a: Range, bits: int) -> Range:
    """The low `bits` of a value, zero-extended (32-bit ALU results, narrow stores)."""
    if a.fits(bits):
        return a
    return unsigned_bits(bits)


def sign_extend(a: Range, bits: int) -> Range:
    """The low `bits` of a value, sign-extended to 64 (movsx, ldxs)."""
    if a.umax >> (bits - 1) == 0:
        return a
    return Range.signed(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


class Kind(enum.Enum):
    """What a register points into, as far as the analysis can tell."""
    SCALAR = "scalar"    # a number, or a pointer whose object the analysis lost
    FRAME = "frame"      # the current function's stack frame: r10 + off
    CTX = "ctx"          # the program's context + off
    MAP = "map"          # what lddw of a map loaded (its handle or descriptor) + off
    ARG = "arg"          # derived by arithmetic from pointer argument `root` (r1-r5)
    PACKET = "packet"    # derived by arithmetic from a packet pointer read from the context


class Value(NamedTuple):
    """One register's abstract value.

    `off` is the constant offset into the object (FRAME, CTX, MAP); ARG and
    PACKET pointers have a variable offset the analysis does not bound yet.
    `range` bounds a SCALAR's value.
    """
    kind: Kind = Kind.SCALAR
    off: int = 0
    range: Range = FULL
    root: int = 0                 # ARG: the argument register
    map: str | None = None        # MAP: the map's name
    layout: Layout | None = None  # CTX: the context's layout

    @property
    def is_pointer(self) -> bool:
        return self.kind is not Kind.SCALAR

    def moved(self, delta: int) -> Value:
        """This value plus a constant, for pointers of known offset (ARG and PACKET stay)."""
        if self.kind in (Kind.FRAME, Kind.CTX, Kind.MAP):
            return Value(self.kind, self.off + delta, FULL, self.root, self.map, self.layout)
        if self.kind is Kind.SCALAR:
            return scalar(add(self.range, Range.const(delta)))
        return self

    def join(self, other: Value) -> Value:
        """Where paths meet: the same object and offset, or a number in both ranges."""
        if self == other:
            return self
        if self.kind is Kind.SCALAR and other.kind is Kind.SCALAR:
            return scalar(self.range.hull(other.range))
        return UNKNOWN


UNKNOWN = Value()


def scalar(r: Range) -> Value:
    return UNKNOWN if r.is_full else Value(Kind.SCALAR, 0, r)


def const(v: int) -> Value:
    return Value(Kind.SCALAR, 0, Range.const(v))


FRAME_POINTER = Value(Kind.FRAME)
