"""Part of stage 5: forward a constant store into a wider load that overlaps it.

eBPF programs write a field and then hand the whole header to a helper:
`iph->check = 0; csum = bpf_csum_diff(0, 0, iph, 20, 0)`. Once the helper is
spliced in and vectorized, a 2-byte store is followed by a 16-byte load of
the bytes around it. LLVM forwards a store only into a load it covers, so the
load stays, and the CPU cannot forward a narrow store into a wider load
either: the load waits until the store reaches the cache, and every later
store waits behind it. Sixteen headers in a row serialize on that stall.

The rewrite puts the store after the load and blends the stored bytes into the
loaded value with constant masks: `(load & ~M) | K`. The load then reads what
memory held before the store, which the CPU serves at once. It works on the IR
text of the optimized module: within a basic block, a store of an integer
constant, followed by nothing that writes memory and nothing that reads its
bytes, and then a load of an integer or integer vector from the same base
pointer whose bytes partly include the stored ones (GEP offsets are constant).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import irtext

_NAME = irtext.NAME
_GEP = re.compile(rf'^\s*({_NAME}) = getelementptr (?:inbounds |nuw |nusw )*i8, ptr ({_NAME}), '
                  r'i64 (-?\d+)\s*$')
_STORE = re.compile(rf'^\s*store (i\d+) (-?\d+), ptr ({_NAME}), align (\d+)(.*)$')
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


@dataclass
class _Pending:
    line: int            # index of the store in the block's lines
    base: str
    offset: int
    value: bytes         # the stored bytes, in memory order


def _int_bits(ty: str) -> int:
    return int(ty[1:])


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
    width = _int_bits(lane_ty) // 8
    parts = [int.from_bytes(data[i * width:(i + 1) * width], "little") for i in range(lanes)]
    return "<" + ", ".join(f"{lane_ty} {p}" for p in parts) + ">"


def _address(ptr: str, geps: dict[str, tuple[str, int]]) -> tuple[str, int]:
    base, offset = ptr, 0
    while base in geps:
        base, step = geps[base]
        offset += step
    return base, offset


def _writes_memory(body: str) -> bool:
    head = body.split(" = ", 1)[1] if re.match(rf'^{_NAME} = ', body) else body
    if not head.startswith(_WRITES):
        return False
    return not _PURE_CALL.search(head)


def _rewrite_block(lines: list[str], geps: dict[str, tuple[str, int]], fresh) -> int:
    pending: _Pending | None = None
    done = 0
    i = 0
    while i < len(lines):
        body = lines[i].strip()
        store = _STORE.match(lines[i])
        if store and _type_size(store[1]) is not None:
            base, offset = _address(store[3], geps)
            size = _type_size(store[1])
            value = (int(store[2]) % (1 << (8 * size))).to_bytes(size, "little")
            pending = _Pending(i, base, offset, value)
            i += 1
            continue
        if pending is None:
            i += 1
            continue
        any_load = _ANY_LOAD.match(lines[i])
        if any_load is None and _READS.search(body):
            pending = None  # a load through a constant expression: its address is unknown
        elif any_load:
            load = _LOAD.match(lines[i])
            base, offset = _address(any_load[2], geps)
            size = _type_size(any_load[1]) if load else None
            lo, hi = pending.offset, pending.offset + len(pending.value)
            if base != pending.base or size is None or "atomic" in body or "volatile" in body:
                # Another base may alias the stored bytes: the store must stay before it.
                pending = None
            elif offset + size <= lo or hi <= offset:
                pass  # disjoint: the store may move below it
            elif lo <= offset and offset + size <= hi:
                pending = None  # covered: LLVM's own forwarding handles it
            else:
                indent, name, ty, lanes, lane_ty, _, rest = load.groups()
                keep = bytearray(b"\xff" * size)
                put = bytearray(size)
                for b in range(max(lo, offset), min(hi, offset + size)):
                    keep[b - offset] = 0
                    put[b - offset] = pending.value[b - lo]
                lanes = int(lanes) if lanes else None
                raw, masked = fresh(), fresh()
                store_line = lines[pending.line]
                # The old bytes need not be in a range the new value is known to be in.
                rest = re.sub(r', !range ![0-9]+', '', rest)
                new = [f"{indent}{raw} = load {ty}, ptr {any_load[2]}{rest}",
                       store_line,
                       f"{indent}{masked} = and {ty} {raw}, "
                       f"{_constant(ty, lanes, lane_ty, bytes(keep))}"]
                if any(put):
                    new.append(f"{indent}{name} = or {ty} {masked}, "
                               f"{_constant(ty, lanes, lane_ty, bytes(put))}")
                else:
                    new[-1] = new[-1].replace(f"{masked} = ", f"{name} = ", 1)
                del lines[pending.line]
                i -= 1
                lines[i:i + 1] = new
                pending.line = i + 1
                done += 1
                i += len(new)
                continue
        elif _writes_memory(body):
            pending = None
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
        geps = {}
        for line in body:
            m = _GEP.match(line)
            if m:
                geps[m[1]] = (m[2], int(m[3]))
        out = []
        for block in irtext.blocks(body):
            total += _rewrite_block(block, geps, fresh)
            out.extend(block)
        return out

    text = irtext.rewrite_functions(text, rewrite)
    return text, total
