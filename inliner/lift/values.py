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
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import NamedTuple

from ..facts.contexts import Layout

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1


def to_signed(v: int, bits: int = 64) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


class Range(NamedTuple):
    """Values a 64-bit register may hold: in [umin, umax] unsigned and [smin, smax] signed,
    each a multiple of 2**tz (tz: its known trailing zero bits, as the kernel's tnum
    knows low bits; 64 for the number 0).

    (Named tuples, here and for Value: the analysis makes one per instruction.)"""
    umin: int = 0
    umax: int = M64
    smin: int = S64_MIN
    smax: int = S64_MAX
    tz: int = 0

    @staticmethod
    def const(v: int) -> Range:
        v &= M64
        s = to_signed(v)
        return Range(v, v, s, s, trailing_zeros(v))

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
                     min(self.smin, other.smin), max(self.smax, other.smax),
                     min(self.tz, other.tz))

    def meet(self, other: Range) -> Range | None:
        """The values in both, or None if there are none (a path that cannot run)."""
        return _sync(max(self.umin, other.umin), min(self.umax, other.umax),
                     max(self.smin, other.smin), min(self.smax, other.smax),
                     max(self.tz, other.tz))

    def widen(self, newer: Range, thresholds: Sequence[int] = ()) -> Range:
        """A bound that moved since the last visit goes to the next of `thresholds`
        (the constants the function compares with, sorted), else to its extreme,
        so loops end; as the kernel bounds a loop by its exit compare."""
        def up(old: int, new: int, top: int) -> int:
            if new <= old:
                return old
            i = bisect_left(thresholds, new)
            return thresholds[i] if i < len(thresholds) and thresholds[i] <= top else top

        def down(old: int, new: int, bottom: int) -> int:
            if new >= old:
                return old
            i = bisect_right(thresholds, new) - 1
            return thresholds[i] if i >= 0 and thresholds[i] >= bottom else bottom
        return _sync(down(self.umin, newer.umin, 0), up(self.umax, newer.umax, M64),
                     down(self.smin, newer.smin, S64_MIN), up(self.smax, newer.smax, S64_MAX),
                     min(self.tz, newer.tz)) or FULL

    def fits(self, bits: int) -> bool:
        return self.umax >> bits == 0


FULL = Range()
U32 = Range.unsigned(0, M32)


def trailing_zeros(v: int) -> int:
    v &= M64
    return (v & -v).bit_length() - 1 if v else 64


def _sync(umin: int, umax: int, smin: int, smax: int, tz: int = 0) -> Range | None:
    """Tighten each view by the other where it maps onto the other monotonically,
    and each bound to a multiple of 2**tz; None when no value is in all."""
    tz = min(tz, 64)
    if tz:
        step = 1 << tz
        umin, umax = -(-umin // step) * step, umax // step * step
        smin, smax = -(-smin // step) * step, smax // step * step
    if smin >= 0 or smax < 0:
        umin, umax = max(umin, smin & M64), min(umax, smax & M64)
    if umax <= S64_MAX or umin > S64_MAX:
        smin, smax = max(smin, to_signed(umin)), min(smax, to_signed(umax))
    if umin > umax or smin > smax:
        return None
    return Range(umin, umax, smin, smax, tz)


def _aligned(r: Range, tz: int) -> Range:
    """r, whose values are all multiples of 2**tz."""
    return _sync(r.umin, r.umax, r.smin, r.smax, max(r.tz, tz)) or r


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
    return _aligned(out, min(a.tz, b.tz))   # mod 2**64, multiples of 2**k stay so


def neg(a: Range) -> Range:
    if a.smin > S64_MIN:
        return _aligned(Range.signed(-a.smax, -a.smin), a.tz)
    return _aligned(FULL, a.tz)


def sub(a: Range, b: Range) -> Range:
    out = FULL
    if a.umin >= b.umax:
        out = Range.unsigned(a.umin - b.umax, a.umax - b.umin)
    s = (a.smin - b.smax, a.smax - b.smin)
    if S64_MIN <= s[0] and s[1] <= S64_MAX:
        out = out.meet(Range.signed(*s)) or out
    return _aligned(out, min(a.tz, b.tz))


def mul(a: Range, b: Range) -> Range:
    hi = a.umax * b.umax
    tz = a.tz + b.tz
    return _aligned(Range.unsigned(a.umin * b.umin, hi) if hi <= M64 else FULL, tz)


def and_(a: Range, b: Range) -> Range:
    return _aligned(Range.unsigned(0, min(a.umax, b.umax)), max(a.tz, b.tz))


def or_(a: Range, b: Range) -> Range:
    top = max(a.umax, b.umax)
    return _aligned(Range.unsigned(max(a.umin, b.umin), (1 << top.bit_length()) - 1),
                    min(a.tz, b.tz))


def udiv(a: Range, b: Range) -> Range:
    """x / 0 = 0 in eBPF, so the quotient never exceeds the dividend."""
    return Range.unsigned(0, a.umax // max(b.umin, 1))


def umod(a: Range, b: Range) -> Range:
    """x % 0 = x in eBPF; otherwise below the divisor. Never above the dividend."""
    if b.umin > 0:
        return Range.unsigned(0, min(a.umax, b.umax - 1))
    return Range.unsigned(0, a.umax)


def lsh(a: Range, k: int) -> Range:
    out = Range.unsigned(a.umin << k, a.umax << k) if a.umax << k <= M64 else FULL
    return _aligned(out, a.tz + k)


def rsh(a: Range, k: int) -> Range:
    return Range.unsigned(a.umin >> k, a.umax >> k)


def arsh(a: Range, k: int) -> Range:
    return Range.signed(a.smin >> k, a.smax >> k)


def truncate(a: Range, bits: int) -> Range:
    """The low `bits` of a value, zero-extended (32-bit ALU results, narrow stores)."""
    if a.fits(bits):
        return a
    return _aligned(unsigned_bits(bits), min(a.tz, bits))


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
    PACKET_END = "packet_end"  # the packet's end, data_end, read from the context
    MAP_VALUE = "map_value"    # a value map `map` returned from a lookup, + offsets in `range`


class Value(NamedTuple):
    """One register's abstract value.

    `off` is the constant offset into the object (FRAME, CTX, MAP). `range`
    bounds a SCALAR's value, and the offset of an ARG pointer from its root
    and of a PACKET pointer from the packet's data (FULL: not known, as for
    data_meta), as the kernel's var_off and bounds do for packet pointers.
    A PACKET pointer a variable moved has an id, as in the kernel, and `off`
    is then its constant offset from where that add left it.
    """
    kind: Kind = Kind.SCALAR
    off: int = 0
    range: Range = FULL
    root: int = 0                 # ARG: the argument register
    map: str | None = None        # MAP, MAP_VALUE: the map's name (MAP_VALUE: None, one
                                  # the facts do not name)
    layout: Layout | None = None  # CTX: the context's layout
    null: bool = False            # MAP_VALUE: not yet tested against NULL
    # SCALAR: equal to every register and frame slot with the same id, as the
    # kernel's scalar ids: the fill at instruction `id` made them so. PACKET:
    # moved by the same run of the add at instruction `id`.
    id: int | None = None

    @property
    def is_pointer(self) -> bool:
        return self.kind is not Kind.SCALAR

    def moved(self, delta: int) -> Value:
        """This value plus a constant."""
        return self.offset_by(Range.const(delta))

    def offset_by(self, delta: Range) -> Value:
        """This value plus a number in `delta`: FRAME, CTX and MAP pointers only by a
        constant (or their object is lost)."""
        if self.kind in (Kind.FRAME, Kind.CTX, Kind.MAP):
            if delta.value is None:
                return UNKNOWN
            return Value(self.kind, self.off + to_signed(delta.value), FULL, self.root,
                         self.map, self.layout)
        if self.kind is Kind.SCALAR:
            return scalar(add(self.range, delta))
        if self.kind is Kind.PACKET and self.id is not None:
            # `off` counts from where the add that numbered it left the pointer.
            if delta.value is None:
                return self._replace(range=add(self.range, delta), id=None, off=0)
            return self._replace(range=add(self.range, delta),
                                 off=self.off + to_signed(delta.value))
        if self.kind in (Kind.ARG, Kind.PACKET, Kind.MAP_VALUE) and not self.null:
            return self._replace(range=add(self.range, delta))
        return UNKNOWN

    def join(self, other: Value) -> Value:
        """Where paths meet: the same object and offset, or a number in both ranges."""
        if self == other:
            return self
        if self.kind is Kind.SCALAR and other.kind is Kind.SCALAR:
            return scalar(self.range.hull(other.range))
        if self.kind is other.kind and self.kind in (Kind.ARG, Kind.PACKET, Kind.MAP_VALUE) \
                and (self.root, self.null) == (other.root, other.null):
            # Values of two maps: a value of a map the facts do not name. Packet
            # pointers moved by different adds, or by one add and different constants,
            # share no id.
            same = (self.id, self.off) == (other.id, other.off)
            return self._replace(range=self.range.hull(other.range),
                                 map=self.map if self.map == other.map else None,
                                 id=self.id if same else None, off=self.off if same else 0)
        return UNKNOWN

    @property
    def offsets(self) -> Range | None:
        """An ARG, PACKET or MAP_VALUE pointer's offsets from its root, when bounded."""
        if self.kind in (Kind.ARG, Kind.PACKET, Kind.MAP_VALUE) and self.range.umax <= S64_MAX:
            return self.range
        return None


UNKNOWN = Value()


def scalar(r: Range) -> Value:
    return UNKNOWN if r.is_full else Value(Kind.SCALAR, 0, r)


def const(v: int) -> Value:
    return Value(Kind.SCALAR, 0, Range.const(v))


FRAME_POINTER = Value(Kind.FRAME)
PACKET_START = Value(Kind.PACKET, 0, Range.const(0))   # the packet's data
PACKET_END = Value(Kind.PACKET_END)


def map_value(name: str) -> Value:
    """What a lookup in map `name` returned: its value, or NULL."""
    return Value(Kind.MAP_VALUE, 0, Range.const(0), map=name, null=True)


def arg(root: int) -> Value:
    """Pointer argument `root` itself, at offset 0."""
    return Value(Kind.ARG, 0, Range.const(0), root)
