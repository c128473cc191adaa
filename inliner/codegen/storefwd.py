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
which the CPU serves at once. It works within a basic block: stores of
integers to one base pointer, followed by nothing that writes memory
elsewhere and nothing that reads their bytes through another pointer, then a
load from the same base whose bytes partly include theirs. Addresses are the
base pointer plus a linear form over SSA integers (GEP indices built by
`add`, `sub` and `or disjoint`), so `p + (x - 5)` and `p + (x - 6)` are one
byte apart. Value stores are blended into integer loads only; integer-vector
loads take constant stores.

One walk over a block (`_rewrite_block`) decides, asking a reader for the
facts of each instruction. Two readers answer. `_Printed` reads the printed
lines with patterns: cheap, it screens every block. In the few blocks it
would rewrite, `_Read` answers through llvmlite (irview.py): opcodes,
operands, types and constants, and the rewrite made is the one those facts
call for; a mistake of the screen can only cost a rewrite. `_Read` still
takes from the printed line what llvmlite does not tell: that a load or
store is neither volatile nor atomic, a GEP's element type, `or`'s
`disjoint`, and the names the new lines use.
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

import llvmlite.binding as llvm

from . import irtext
from .irtext import FunctionText
from .irview import Function, ModuleView, int_bits, int_constant, is_named

_NAME = irtext.NAME
_INT = r'-?\d+'
# Plain (neither volatile nor atomic) stores and loads of integers, as printed:
# `volatile` and `atomic` come between the opcode and the type.
_STORE = re.compile(rf'^\s*store (i\d+) ({_NAME}|{_INT}), ptr ({_NAME}), align \d+')
_LOAD = re.compile(rf'^(\s*)({_NAME}) = load ((?:i\d+)|<(\d+) x (i\d+)>), ptr ({_NAME})'
                   r'(, align \d+.*)$')
_GEP = re.compile(rf'^\s*({_NAME}) = getelementptr (?:inbounds |nuw |nusw )*i8, ptr ({_NAME}), '
                  rf'i64 ({_NAME}|{_INT})\s*$')
_ARITH = re.compile(rf'^\s*({_NAME}) = (add|sub|or disjoint) (?:nuw |nsw )*i64 '
                    rf'({_NAME}|{_INT}), ({_NAME}|{_INT})\s*$')
_DEFINES = re.compile(rf'^\s*{_NAME} = ')
_BYTE_GEP = re.compile(r'= getelementptr (?:inbounds |nuw |nusw )*i8, ptr ')
_DISJOINT = re.compile(r'= or disjoint ')
# Intrinsics that neither read nor write memory.
_PURE = (r'llvm\.(vector\.reduce|umin|umax|smin|smax|abs|bswap|ctpop|ctlz|cttz|fshl|fshr|'
         r'[us](add|sub|mul)\.with\.overflow|[us](add|sub)\.sat|assume|experimental\.noalias)')
_PURE_NAME = re.compile(_PURE)
_PURE_CALL = re.compile(r'call .*@' + _PURE)
_WRITES = frozenset({"store", "call", "invoke", "atomicrmw", "cmpxchg", "fence", "va_arg",
                     "callbr"})
# Metadata that holds of the value in memory after the stores, not before them.
_VALUE_FACTS = re.compile(r', !(range|noundef|nonnull|align|dereferenceable\w*) ![0-9]+')
_MAX_TERMS = 8  # linear forms wider than this are left unresolved
_MAX_OFFSET = 1 << 31  # constant parts beyond this are left unresolved
_MAX_DEPTH = 16  # arithmetic deeper than this is a term of its own
_MAX_GEPS = 64  # getelementptr chains longer than this end in a base of their own

# An address: (base pointer, {(SSA value, coefficient)}, constant bytes). A value
# is a ValueRef for `_Read`, its printed name for `_Printed`.
Address = tuple[object, frozenset, int]
Linear = tuple[dict, int]


@dataclass(eq=False)
class _Store:
    at: int              # position in the block's items
    address: Address
    size: int
    ty: str
    value: bytes | str   # the stored bytes in memory order, or the stored SSA value


class _Reader(ABC):
    """The facts of one function's instructions, by (block, index), and the byte
    addresses its pointers make."""

    def __init__(self, printed: FunctionText):
        self.printed = printed
        self._linear: dict = {}

    @abstractmethod
    def opcode(self, b: int, i: int) -> str: ...

    @abstractmethod
    def store(self, b: int, i: int, at: int) -> _Store | None:
        """A plain store of a whole-byte integer (SSA value or constant) to a named
        pointer; else None."""

    @abstractmethod
    def load(self, b: int, i: int) -> tuple[Address, int, re.Match] | None:
        """(address, size, printed line) of a plain load of an integer or integer
        vector through a named pointer; else None."""

    @abstractmethod
    def writes_memory(self, b: int, i: int) -> bool: ...

    @abstractmethod
    def gep(self, value) -> tuple[object, object] | None:
        """(base, i64 index) of `value = getelementptr i8, ptr base, i64 index`."""

    @abstractmethod
    def arith(self, value) -> tuple[str, object, object] | None:
        """(opcode, a, b) of `value`, an i64 `add`, `sub` or `or disjoint`."""

    @abstractmethod
    def constant(self, value) -> int | None: ...

    def linear(self, operand, depth: int = 0) -> Linear | None:
        """`operand` as ({value: coefficient}, constant), or None past the limits."""
        constant = self.constant(operand)
        if constant is not None:
            return {}, constant
        if depth > _MAX_DEPTH or self.arith(operand) is None:
            return {operand: 1}, 0
        if operand not in self._linear:
            self._linear[operand] = self._combine(operand, depth)
        return self._linear[operand]

    def _combine(self, operand, depth: int) -> Linear | None:
        op, a, b = self.arith(operand)
        left, right = self.linear(a, depth + 1), self.linear(b, depth + 1)
        if left is None or right is None:
            return None
        sign = -1 if op == "sub" else 1
        terms = dict(left[0])
        for value, coef in right[0].items():
            terms[value] = terms.get(value, 0) + sign * coef
        terms = {v: c for v, c in terms.items() if c}
        if len(terms) > _MAX_TERMS:
            return None
        return terms, left[1] + sign * right[1]

    def address(self, ptr) -> Address:
        base, terms, offset = ptr, {}, 0
        seen = 0
        while seen < _MAX_GEPS and (gep := self.gep(base)) is not None:
            base, index = gep
            form = self.linear(index)
            if form is None:
                return ptr, frozenset(), 0
            for value, coef in form[0].items():
                terms[value] = terms.get(value, 0) + coef
            offset += form[1]
            seen += 1
        if abs(offset) >= _MAX_OFFSET:
            return ptr, frozenset(), 0  # i64 arithmetic may have wrapped: compare nothing with it
        return base, frozenset((v, c) for v, c in terms.items() if c), offset


def _bytes(bits: int, lanes: int = 0) -> int | None:
    """Bytes of `lanes` (0: a scalar) lanes of `bits`, None unless whole bytes."""
    return None if bits % 8 else max(lanes, 1) * bits // 8


class _Printed(_Reader):
    """Facts read off the printed lines: no llvmlite call, for the screen."""

    def __init__(self, printed: FunctionText):
        super().__init__(printed)
        self.lines = [[block.line(i) for i in range(len(block))] for block in printed.blocks]
        self._geps: dict[str, tuple[str, str]] = {}
        self._arith: dict[str, tuple[str, str, str]] = {}
        for lines in self.lines:
            for line in lines:
                if (m := _GEP.match(line)) is not None:
                    self._geps[m[1]] = (m[2], m[3])
                elif (m := _ARITH.match(line)) is not None:
                    self._arith[m[1]] = (m[2].split()[0], m[3], m[4])

    def opcode(self, b: int, i: int) -> str:
        line = self.lines[b][i]
        defines = _DEFINES.match(line)
        word = line[defines.end() if defines else 2:].split(" ", 1)[0]
        return "call" if word in ("tail", "musttail", "notail") else word

    def store(self, b: int, i: int, at: int) -> _Store | None:
        m = _STORE.match(self.lines[b][i])
        size = _bytes(int(m[1][1:])) if m else None
        if size is None:
            return None
        stored = m[2] if not re.fullmatch(_INT, m[2]) else \
            (int(m[2]) % (1 << (8 * size))).to_bytes(size, "little")
        return _Store(at, self.address(m[3]), size, m[1], stored)

    def load(self, b: int, i: int) -> tuple[Address, int, re.Match] | None:
        m = _LOAD.match(self.lines[b][i])
        if m is None:
            return None
        size = _bytes(int(m[3][1:])) if m[4] is None else _bytes(int(m[5][1:]), int(m[4]))
        return (self.address(m[6]), size, m) if size else None

    def writes_memory(self, b: int, i: int) -> bool:
        return self.opcode(b, i) in _WRITES and not _PURE_CALL.search(self.lines[b][i])

    def gep(self, value: str) -> tuple[str, str] | None:
        return self._geps.get(value)

    def arith(self, value: str) -> tuple[str, str, str] | None:
        return self._arith.get(value)

    def constant(self, value: str) -> int | None:
        return int(value) if re.fullmatch(_INT, value) else None


class _Read(_Reader):
    """Facts read through llvmlite, but for what only the printed line says."""

    def __init__(self, fn: Function):
        super().__init__(fn.text())
        self.fn = fn
        self._geps: dict = {}
        self._arith: dict = {}

    def opcode(self, b: int, i: int) -> str:
        return self.fn.block(b).opcode(i)

    def store(self, b: int, i: int, at: int) -> _Store | None:
        value, ptr = self.fn.block(b).operands(i)
        bits = int_bits(value.type)
        if bits is None or bits[0] or bits[1] % 8 or not is_named(ptr):
            return None
        constant = int_constant(value)
        if constant is None and not is_named(value):
            return None
        printed = _STORE.match(self.printed.blocks[b].line(i))
        if printed is None:
            return None
        size = bits[1] // 8
        stored = printed[2] if constant is None else \
            (constant % (1 << (8 * size))).to_bytes(size, "little")
        return _Store(at, self.address(ptr), size, printed[1], stored)

    def load(self, b: int, i: int) -> tuple[Address, int, re.Match] | None:
        (ptr,) = self.fn.block(b).operands(i)
        bits = int_bits(self.fn.block(b).insns[i].type)
        size = _bytes(bits[1], bits[0]) if bits else None
        if size is None or not is_named(ptr):
            return None
        printed = _LOAD.match(self.printed.blocks[b].line(i))
        return None if printed is None else (self.address(ptr), size, printed)

    def writes_memory(self, b: int, i: int) -> bool:
        block = self.fn.block(b)
        if block.opcode(i) != "call":
            return block.opcode(i) in _WRITES
        callee = block.operands(i)[-1]
        return not (is_named(callee) and _PURE_NAME.match(callee.name))

    def _defined(self, value: llvm.ValueRef, opcodes: tuple[str, ...]):
        """(block, index, operands) of the instruction `value`, if one of `opcodes`."""
        where = self.fn.definition(value)
        if where is None or self.fn.block(where[0]).opcode(where[1]) not in opcodes:
            return None
        return where[0], where[1], self.fn.block(where[0]).operands(where[1])

    def gep(self, value: llvm.ValueRef) -> tuple[llvm.ValueRef, llvm.ValueRef] | None:
        if value not in self._geps:
            found = self._defined(value, ("getelementptr",))
            self._geps[value] = None
            if found and len(found[2]) == 2:
                base, index = found[2]
                if is_named(base) and self._i64(index) and \
                        _BYTE_GEP.search(self.printed.blocks[found[0]].line(found[1])):
                    self._geps[value] = base, index
        return self._geps[value]

    def arith(self, value: llvm.ValueRef) -> tuple[str, llvm.ValueRef, llvm.ValueRef] | None:
        if value not in self._arith:
            found = self._defined(value, ("add", "sub", "or"))
            self._arith[value] = None
            if found and self._i64(found[2][0]) and self._i64(found[2][1]):
                b, i, (x, y) = found
                op = self.fn.block(b).opcode(i)
                if op != "or" or _DISJOINT.search(self.printed.blocks[b].line(i)):
                    self._arith[value] = op, x, y
        return self._arith[value]

    def constant(self, value: llvm.ValueRef) -> int | None:
        return int_constant(value)

    @staticmethod
    def _i64(value: llvm.ValueRef) -> bool:
        """An i64 SSA value or constant: what a linear form is built of."""
        return int_bits(value.type) == (0, 64) and (is_named(value) or
                                                   int_constant(value) is not None)


def _constant(ty: str, lanes: int | None, lane_ty: str | None, data: bytes) -> str:
    """`data` (little-endian memory bytes) as an IR constant of type `ty`."""
    if lanes is None:
        return str(int.from_bytes(data, "little"))
    width = int(lane_ty[1:]) // 8
    parts = [int.from_bytes(data[i * width:(i + 1) * width], "little") for i in range(lanes)]
    return "<" + ", ".join(f"{lane_ty} {p}" for p in parts) + ">"


def _blend(load: re.Match, size: int, start: int, overlapping: list[_Store],
           fresh) -> tuple[list[str], list[str]] | None:
    """The lines that replace `load` (`size` bytes at offset `start`): those
    before the moved stores (the load of the old bytes) and those after them
    (the blend of the stores it overlaps)."""
    indent, name, ty, lanes, lane_ty, ptr, rest = load.groups()
    lanes = int(lanes) if lanes else None
    if lanes is not None and any(isinstance(s.value, str) for s in overlapping):
        return None
    covered = set()
    for s in overlapping:
        covered.update(range(max(s.address[2], start), min(s.address[2] + s.size, start + size)))
    if len(covered) == size:
        # The stores write every byte: no load at all.
        before, value = [], _constant(ty, lanes, lane_ty, bytes(size))
    else:
        # Frozen: the bytes the stores replace may be poison where the result is not.
        raw, value = fresh(), fresh()
        before = [f"{indent}{raw} = load {ty}, ptr {ptr}{_VALUE_FACTS.sub('', rest)}",
                  f"{indent}{value} = freeze {ty} {raw}"]
    lines: list[str] = []
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
    return before, lines


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


def _rewrite_block(reader: _Reader, b: int, fresh) -> tuple[irtext.Items, int]:
    """Block `b`'s items with the stores forwarded, and how many loads took them."""
    items: irtext.Items = list(range(len(reader.printed.blocks[b])))
    pending: list[_Store] = []
    done = 0
    i = 0
    while i < len(items):
        k = items[i]   # an instruction of the block: what the rewrites add is skipped
        op = reader.opcode(b, k)
        if op == "store":
            store = reader.store(b, k, i)
            if store is None or (pending and store.address[:2] != pending[0].address[:2]):
                # Another base may alias what the pending stores write: keep the order.
                pending = []
            if store is not None:
                pending.append(store)
        elif not pending:
            pass
        elif op == "load":
            load = reader.load(b, k)
            if load is None:
                pending = []  # an access of another kind: the stores stay before it
                i += 1
                continue
            (base, terms, offset), size, printed = load
            overlapping = [s for s in pending
                           if s.address[2] < offset + size and offset < s.address[2] + s.size]
            if (base, terms) != pending[0].address[:2]:
                # Another base may alias the stored bytes: the stores must stay before it.
                pending = []
            elif not overlapping:
                pass  # disjoint: the stores may move below it
            elif len(overlapping) == 1 and overlapping[0].address[2] <= offset and \
                    offset + size <= overlapping[0].address[2] + overlapping[0].size:
                pending = []  # covered by one store: LLVM's own to forward
            else:
                moved = _to_move(pending, overlapping)
                kept = [s for s in moved if not any(_covers(t, s) for t in moved if t.at > s.at)]
                blended = _blend(printed, size, offset, overlapping, fresh)
                if blended is None:
                    pending = []
                else:
                    before, after = blended
                    new = before + [items[s.at] for s in kept] + after
                    for s in sorted(moved, key=lambda s: s.at, reverse=True):
                        del items[s.at]
                        for t in pending:
                            t.at -= t.at > s.at
                    i -= len(moved)
                    items[i:i + 1] = new
                    for n, s in enumerate(kept):
                        s.at = i + len(before) + n
                    pending = [s for s in pending if s not in moved or s in kept]
                    done += 1
                    i += len(new)
                    continue
        elif reader.writes_memory(b, k):
            pending = []
        i += 1
    return items, done


def forward(view: ModuleView, screen: bool = True
            ) -> tuple[dict[tuple[int, int], irtext.Items], int]:
    """The blocks (function, block) of a little-endian module whose stores are
    forwarded, as items (irtext.py), and the number of loads rewritten.
    Without `screen`, llvmlite is asked about every block (for the tests: what
    it decides must be right wherever the screen lets it decide)."""
    if view.module.data_layout.startswith("E"):
        return {}, 0
    blocks = {}
    total = 0
    counter: list[int] = []

    def fresh() -> str:
        if not counter:  # fresh names, should the module be an earlier link's output
            counter.append(view.text.largest("%storefwd.", r'%storefwd\.(\d+)\b'))
        counter[0] += 1
        return f"%storefwd.{counter[0]}"

    for fn in view.functions:
        printed = _Printed(fn.text())
        read = None
        for b in range(len(printed.lines)):
            # The screen's rewrite is only counted: its lines need no names.
            if screen and not _rewrite_block(printed, b, lambda: "%screened")[1]:
                continue
            if read is None:
                read = _Read(fn)
            items, done = _rewrite_block(read, b, fresh)
            if done:
                blocks[(fn.index, b)] = items
                total += done
    return blocks, total
