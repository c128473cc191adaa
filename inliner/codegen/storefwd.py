"""Part of stage 5: forward stores into the wider loads that overlap them.

eBPF programs write fields and then read the whole: `iph->check = 0;
csum = bpf_csum_diff(0, 0, iph, 20, 0)`, or a Katran-style balancer writing
an outer IPv4 header byte by byte and then summing it as 16-bit words. Once
the helper is spliced in and vectorized, narrow stores are followed by a load
spanning several of them. LLVM forwards a store only into a load it covers,
so the load stays, and the CPU cannot forward several stores, or a narrow
one, into a wider load either: the load waits until the stores reach the
cache, and every later store waits behind it.

The rewrite puts the stores after the load and blends the stored bytes into
the loaded value: `(load & ~M) | K` for a constant, `(load & ~M) | (zext(v)
<< s)` for a value. The load then reads what memory held before the stores,
which the CPU serves at once. It works on the IR text of the optimized
module, within a basic block: stores of integers to one base pointer,
followed by nothing that writes memory elsewhere and nothing that reads
their bytes through another pointer, then a load from the same base whose
bytes partly include theirs. Addresses are the base pointer plus a linear
form over SSA integers (GEP indices built by `add`, `sub` and `or
disjoint`), so `p + (x - 5)` and `p + (x - 6)` are one byte apart. Value
stores are blended into integer loads only; integer-vector loads take
constant stores.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import irtext

_NAME = irtext.NAME
_INT = r'-?\d+'
_GEP = re.compile(rf'^\s*({_NAME}) = getelementptr (?:inbounds |nuw |nusw )*i8, ptr ({_NAME}), '
                  rf'i64 ({_NAME}|{_INT})\s*$')
_ARITH = re.compile(rf'^\s*({_NAME}) = (add|sub|or disjoint) (?:nuw |nsw )*i64 '
                    rf'({_NAME}|{_INT}), ({_NAME}|{_INT})\s*$')
_STORE = re.compile(rf'^\s*store (i\d+) ({_NAME}|{_INT}), ptr ({_NAME}), align (\d+)(.*)$')
_LOAD = re.compile(rf'^(\s*)({_NAME}) = load ((?:i\d+)|<(\d+) x (i\d+)>), ptr ({_NAME})'
                   r'(, align \d+.*)$')
_ANY_LOAD = re.compile(rf'^\s*{_NAME} = load (?:atomic |volatile )*(.*?), ptr ({_NAME}),')
_READS = re.compile(r'(^|= )load ')
# Calls to these intrinsics neither read nor write memory.
_PURE_CALL = re.compile(r'call .*@llvm\.(vector\.reduce|umin|umax|smin|smax|abs|bswap|ctpop|'
                        r'ctlz|cttz|fshl|fshr|[us](add|sub|mul)\.with\.overflow|[us](add|sub)\.sat|'
                        r'assume|experimental\.noalias)')
_WRITES = ("store ", "call ", "tail call ", "musttail call ", "notail call ", "invoke ",
           "atomicrmw ", "cmpxchg ", "fence ", "va_arg ", "callbr ")
# Metadata that holds of the value in memory after the stores, not before them.
_VALUE_FACTS = re.compile(r', !(range|noundef|nonnull|align|dereferenceable\w*) ![0-9]+')
_MAX_TERMS = 8  # linear forms wider than this are left unresolved
_MAX_OFFSET = 1 << 31  # constant parts beyond this are left unresolved

# An address: (base pointer, ((SSA name, coefficient), ...) sorted, constant bytes).
Address = tuple[str, tuple[tuple[str, int], ...], int]


@dataclass(eq=False)
class _Store:
    line: int            # index of the store in the block's lines
    address: Address
    size: int
    ty: str
    value: bytes | str   # the stored bytes in memory order, or the stored SSA value


class _Addresses:
    """Byte addresses of a function's pointers, from its GEPs and i64 arithmetic."""

    def __init__(self, body: list[str]):
        self.geps: dict[str, tuple[str, str]] = {}
        self.arith: dict[str, tuple[str, str, str]] = {}
        for line in body:
            m = _GEP.match(line)
            if m:
                self.geps[m[1]] = (m[2], m[3])
                continue
            m = _ARITH.match(line)
            if m:
                self.arith[m[1]] = (m[2], m[3], m[4])
        self._linear: dict[str, tuple[dict[str, int], int] | None] = {}

    def linear(self, operand: str, depth: int = 0) -> tuple[dict[str, int], int] | None:
        """`operand` as ({name: coefficient}, constant), or None past the limits."""
        if re.fullmatch(_INT, operand):
            return {}, int(operand)
        if operand not in self.arith or depth > 16:
            return {operand: 1}, 0
        if operand not in self._linear:
            self._linear[operand] = self._combine(operand, depth)
        return self._linear[operand]

    def _combine(self, operand: str, depth: int) -> tuple[dict[str, int], int] | None:
        op, a, b = self.arith[operand]
        left, right = self.linear(a, depth + 1), self.linear(b, depth + 1)
        if left is None or right is None:
            return None
        sign = -1 if op == "sub" else 1
        terms = dict(left[0])
        for name, coef in right[0].items():
            terms[name] = terms.get(name, 0) + sign * coef
        terms = {n: c for n, c in terms.items() if c}
        if len(terms) > _MAX_TERMS:
            return None
        return terms, left[1] + sign * right[1]

    def of(self, ptr: str) -> Address:
        base, terms, offset = ptr, {}, 0
        seen = 0
        while base in self.geps and seen < 64:
            base, index = self.geps[base]
            form = self.linear(index)
            if form is None:
                return ptr, (), 0
            for name, coef in form[0].items():
                terms[name] = terms.get(name, 0) + coef
            offset += form[1]
            seen += 1
        if abs(offset) >= _MAX_OFFSET:
            return ptr, (), 0  # i64 arithmetic may have wrapped: compare nothing with it
        return base, tuple(sorted((n, c) for n, c in terms.items() if c)), offset


def _type_size(ty: str) -> int | None:
    """Bytes of an integer or integer-vector type, None for anything else."""
    m = re.fullmatch(r'i(\d+)|<(\d+) x i(\d+)>', ty.strip())
    if not m:
        return None
    bits = int(m[1]) if m[1] else int(m[2]) * int(m[3])
    lane = int(m[1] or m[3])
    return bits // 8 if bits % 8 == 0 and lane % 8 == 0 else None


def _constant(ty: str, lanes: int | None, lane_ty: str | None, data: bytes) -> str:
    """`data` (little-endian memory bytes) as an IR constant of type `ty`."""
    if lanes is None:
        return str(int.from_bytes(data, "little"))
    width = int(lane_ty[1:]) // 8
    parts = [int.from_bytes(data[i * width:(i + 1) * width], "little") for i in range(lanes)]
    return "<" + ", ".join(f"{lane_ty} {p}" for p in parts) + ">"


def _writes_memory(body: str) -> bool:
    head = body.split(" = ", 1)[1] if re.match(rf'^{_NAME} = ', body) else body
    if not head.startswith(_WRITES):
        return False
    return not _PURE_CALL.search(head)


def _blend(load: re.Match, ptr: str, size: int, start: int, overlapping: list[_Store],
           store_lines: list[str], fresh) -> tuple[list[str], int] | None:
    """The lines that replace `load` (`size` bytes at offset `start`): the load of the
    old bytes, the moved stores, and the blend of the stores it overlaps; and
    the index of the first moved store among them."""
    indent, name, ty, lanes, lane_ty, _, rest = load.groups()
    lanes = int(lanes) if lanes else None
    if lanes is not None and any(isinstance(s.value, str) for s in overlapping):
        return None
    covered = set()
    for s in overlapping:
        covered.update(range(max(s.address[2], start), min(s.address[2] + s.size, start + size)))
    if len(covered) == size:
        # The stores write every byte: no load at all.
        lines, value = [], _constant(ty, lanes, lane_ty, bytes(size))
    else:
        # Frozen: the bytes the stores replace may be poison where the result is not.
        raw, value = fresh(), fresh()
        lines = [f"{indent}{raw} = load {ty}, ptr {ptr}{_VALUE_FACTS.sub('', rest)}",
                 f"{indent}{value} = freeze {ty} {raw}"]
    first_store = len(lines)
    lines += store_lines
    # Apply the stores in program order; consecutive constant ones share one mask.
    keep, put = bytearray(b"\xff" * size), bytearray(size)

    def flush_constants() -> None:
        nonlocal value, keep, put
        if all(keep):
            return
        masked = fresh()
        lines.append(f"{indent}{masked} = and {ty} {value}, "
                     f"{_constant(ty, lanes, lane_ty, bytes(keep))}")
        value = masked
        if any(put):
            merged = fresh()
            lines.append(f"{indent}{merged} = or {ty} {value}, "
                         f"{_constant(ty, lanes, lane_ty, bytes(put))}")
            value = merged
        keep, put = bytearray(b"\xff" * size), bytearray(size)

    for s in overlapping:
        lo, hi = max(s.address[2], start), min(s.address[2] + s.size, start + size)
        if isinstance(s.value, bytes):
            for b in range(lo, hi):
                keep[b - start] = 0
                put[b - start] = s.value[b - s.address[2]]
            continue
        flush_constants()
        bits, store_bits = 8 * size, 8 * s.size
        shift = 8 * (s.address[2] - start)
        part = s.value
        if shift < 0:
            part, shift = _emit(lines, indent, fresh, f"lshr {s.ty} {part}, {-shift}"), 0
        if store_bits < bits:
            part = _emit(lines, indent, fresh, f"zext {s.ty} {part} to {ty}")
        elif store_bits > bits:
            part = _emit(lines, indent, fresh, f"trunc {s.ty} {part} to {ty}")
        if shift:
            part = _emit(lines, indent, fresh, f"shl {ty} {part}, {shift}")
        mask = sum(0xFF << (8 * (b - start)) for b in range(lo, hi))
        masked = _emit(lines, indent, fresh, f"and {ty} {value}, {((1 << bits) - 1) & ~mask}")
        value = _emit(lines, indent, fresh, f"or {ty} {masked}, {part}")
    flush_constants()
    # The blended value takes the load's name, so its users need no change.
    lines[-1] = lines[-1].replace(f"{value} = ", f"{name} = ", 1)
    return lines, first_store


def _emit(lines: list[str], indent: str, fresh, instruction: str) -> str:
    out = fresh()
    lines.append(f"{indent}{out} = {instruction}")
    return out


def _overlap(a: _Store, b: _Store) -> bool:
    return a.address[2] < b.address[2] + b.size and b.address[2] < a.address[2] + a.size


def _covers(a: _Store, b: _Store) -> bool:
    return a.address[2] <= b.address[2] and b.address[2] + b.size <= a.address[2] + a.size


def _to_move(pending: list[_Store], overlapping: list[_Store]) -> list[_Store]:
    """The stores to put below the load: those it overlaps, and any later store
    overlapping one of those, so that stores to the same bytes keep their order.
    Stores elsewhere stay where they are. `pending` is in program order, except
    that an earlier rewrite may have put one store below another that does
    not overlap it."""
    moved: list[_Store] = []
    for s in pending:
        if s in overlapping or any(_overlap(s, m) for m in moved):
            moved.append(s)
    return moved


def _rewrite_block(lines: list[str], addresses: _Addresses, fresh) -> int:
    pending: list[_Store] = []
    done = 0
    i = 0
    while i < len(lines):
        body = lines[i].strip()
        store = _STORE.match(lines[i])
        if store and "volatile" not in body and "atomic" not in body:
            size = _type_size(store[1])
            address = addresses.of(store[3])
            if size is None or (pending and address[:2] != pending[0].address[:2]):
                # Another base may alias what the pending stores write: keep the order.
                pending = []
            if size is not None:
                value: bytes | str = store[2]
                if re.fullmatch(_INT, store[2]):
                    value = (int(store[2]) % (1 << (8 * size))).to_bytes(size, "little")
                pending.append(_Store(i, address, size, store[1], value))
            i += 1
            continue
        if not pending:
            i += 1
            continue
        any_load = _ANY_LOAD.match(lines[i])
        if any_load is None and _READS.search(body):
            pending = []  # a load through a constant expression: its address is unknown
        elif any_load:
            load = _LOAD.match(lines[i])
            base, terms, offset = addresses.of(any_load[2])
            size = _type_size(any_load[1]) if load else None
            overlapping = [s for s in pending
                           if s.address[2] < offset + (size or 0) and offset < s.address[2] + s.size]
            if (base, terms) != pending[0].address[:2] or size is None or "atomic" in body \
                    or "volatile" in body:
                # Another base may alias the stored bytes: the stores must stay before it.
                pending = []
            elif not overlapping:
                pass  # disjoint: the stores may move below it
            elif len(overlapping) == 1 and overlapping[0].address[2] <= offset and \
                    offset + size <= overlapping[0].address[2] + overlapping[0].size:
                pending = []  # covered by one store: LLVM's own to forward
            else:
                moved = _to_move(pending, overlapping)
                kept = [s for s in moved if not any(_covers(t, s) for t in moved if t.line > s.line)]
                blended = _blend(load, any_load[2], size, offset, overlapping,
                                 [lines[s.line] for s in kept], fresh)
                if blended is None:
                    pending = []
                else:
                    new, first_store = blended
                    for s in sorted(moved, key=lambda s: s.line, reverse=True):
                        del lines[s.line]
                        for t in pending:
                            t.line -= t.line > s.line
                    i -= len(moved)
                    lines[i:i + 1] = new
                    for k, s in enumerate(kept):
                        s.line = i + first_store + k
                    pending = [s for s in pending if s not in moved or s in kept]
                    done += 1
                    i += len(new)
                    continue
        elif _writes_memory(body):
            pending = []
        i += 1
    return done


def forward(text: str) -> tuple[str, int]:
    """Rewrite every function of a little-endian module's IR text; returns it and the count."""
    layout = re.search(r'^target datalayout = "([^"]*)"', text, re.M)
    if layout and layout[1].startswith("E"):
        return text, 0
    total = 0
    # Fresh names, should the text be an earlier link's output.
    counter = [max(map(int, re.findall(r'%storefwd\.(\d+)\b', text)), default=0)]

    def fresh() -> str:
        counter[0] += 1
        return f"%storefwd.{counter[0]}"

    def rewrite(_name: str, body: list[str]) -> list[str]:
        nonlocal total
        addresses = _Addresses(body)
        out = []
        for block in irtext.blocks(body):
            total += _rewrite_block(block, addresses, fresh)
            out.extend(block)
        return out

    text = irtext.rewrite_functions(text, rewrite)
    return text, total
