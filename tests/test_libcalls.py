"""Calls of the C library's memset, memcpy, memmove and memcmp, as C defines them.

The programs in tests/libc_c (built by build.sh with -fno-builtin, so each is
a call of an undefined symbol, as older clang left them; the .o files are in
the tree) take their arguments in their memory's first bytes. The expected
bytes and r0 are computed here with Python's slices and comparisons (memset
fills, memmove and memcpy copy as a slice assignment does, memcmp orders as
bytes compare), and the expected fault from the sizes: a checked build
stops the program when a buffer reaches past its memory, frame or map value,
and writes nothing outside (a canary around the memory must survive). The
native code runs at -O0 and -O2, checked, and -O2 --no-checks on the inputs
that stay in bounds; the reference interpreter runs the same programs on the
same memory (not the XDP one, whose context it does not translate, nor the
map's, whose maps it does not model) and refuses the same out-of-bounds calls.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from inliner import pipeline
from inliner.elf import loader
from inliner.facts import contexts
from inliner.facts.abi import ENTRY_SYMBOL, Fault, Region
from inliner.run.runner import ProgramFault
from inliner.tools import interp
from test_safety import run_loaded

OBJ = Path(__file__).parent / "libc_c" / "libc.o"
BUILDS = {"-O0": dict(opt_level=0), "-O2": dict(opt_level=2),
          "-O2 --no-checks": dict(opt_level=2, checks=False)}
M64 = (1 << 64) - 1


class Out:
    """The expected fault: a store or load of `size` bytes at `offset` in the memory."""

    def __init__(self, code: Fault, size: int, offset: int):
        self.code, self.size, self.offset = code, size, offset

    def __repr__(self):
        return f"Out({self.code.name}, {self.size}, {self.offset})"


def expect_set(m: bytearray):
    n, c = m[0], m[1]
    if 4 + n > len(m):
        return Out(Fault.STORE, n, 4)
    m[4:4 + n] = bytes([c]) * n
    m[3] = 0xEE
    return 4


def _move(m: bytearray, r0_is_dst: bool):
    dst, src, n = 4 + m[0], 4 + m[1], m[2]
    if n and dst + n > len(m):
        return Out(Fault.STORE, n, dst)
    if n and src + n > len(m):
        return Out(Fault.LOAD, n, src)
    m[dst:dst + n] = m[src:src + n]
    return dst if r0_is_dst else 0


def expect_copy(m: bytearray):
    n = m[0] & 63
    if 1 + n > len(m):
        return Out(Fault.LOAD, n, 1)
    if 1 + 2 * n > len(m):
        return Out(Fault.STORE, n, 1 + n)
    m[1 + n:1 + 2 * n] = m[1:1 + n]
    return n


def expect_records(m: bytearray):
    n = m[0] & 7
    for i in range(n):
        if 40 + 4 * i > len(m):
            return Out(Fault.STORE, 4, 36 + 4 * i)
        m[36 + 4 * i:40 + 4 * i] = m[4 + 4 * i:8 + 4 * i]
    return n


def expect_compare(m: bytearray):
    """The sign of memcmp's result (C gives only its sign)."""
    n, off = m[0], m[1]
    if n and 4 + n > len(m):
        return Out(Fault.LOAD, n, 4)
    if n and 4 + off + n > len(m):
        return Out(Fault.LOAD, n, 4 + off)
    a, b = bytes(m[4:4 + n]), bytes(m[4 + off:4 + off + n])
    return (a > b) - (a < b)


def expect_fixed(m: bytearray):
    if len(m) < 8:
        return Out(Fault.STORE, 8, 0)
    m[0:8] = b"\x11" * 8
    return 0x1111111111111111


EXPECT = {
    "set": expect_set,
    "move": lambda m: _move(m, True),
    "copy_within": lambda m: _move(m, False),
    "copy": expect_copy,
    "compare": expect_compare,
    "fixed": expect_fixed,
    "records": expect_records,
}


def sign(r0: int) -> int:
    r0 = r0 - (1 << 64) if r0 >> 63 else r0
    return (r0 > 0) - (r0 < 0)


def mem(*head: int, length: int = 32) -> bytearray:
    return bytearray(head) + bytearray(range(0x40, 0x40 + length - len(head)))


# Per program: inputs in bounds (sizes 0, small and up to the end; copies that
# overlap forwards and backwards; buffers equal, less and greater) and out of
# bounds (one byte past the end, far past it).
CASES = {
    "set": [mem(0, 7), mem(5, 0x33), mem(28, 0x99), mem(29, 1), mem(255, 2)],
    "move": [mem(0, 0, 0), mem(0, 4, 10), mem(4, 0, 10), mem(2, 3, 20), mem(10, 2, 16),
             mem(20, 0, 8), mem(21, 0, 8), mem(0, 21, 8), mem(200, 0, 0), mem(0, 0, 255)],
    "copy": [mem(0), mem(5), mem(15), mem(16), mem(31), mem(40)],
    "compare": [mem(0, 0), mem(8, 0), mem(4, 4, 0, 0, 1, 2, 3, 4, 1, 2, 3, 4),
                mem(4, 4, 0, 0, 1, 2, 3, 4, 1, 2, 3, 5), mem(4, 4, 0, 0, 1, 2, 3, 9, 1, 2, 3, 5),
                mem(4, 4, 0, 0, 0x80, 2, 3, 4, 0x7F, 2, 3, 4), mem(29, 0), mem(8, 21)],
    "fixed": [bytearray(8), bytearray(range(40)), bytearray(7)],
    "records": [mem(0), mem(8), mem(3, length=48), mem(7, length=64), mem(7, length=63),
                mem(3, length=40), mem(15, length=40)],
}
CASES["copy_within"] = CASES["move"]


def in_bounds(name: str, m: bytearray) -> bool:
    return not isinstance(EXPECT[name](bytearray(m)), Out)


def run_native(loaded, m: bytearray):
    """(r0 or the ProgramFault, the memory after); the canary around it must survive."""
    result, after = run_loaded(loaded, m, 64)
    return result, bytearray(after)


def check(name: str, m: bytearray, result, after: bytearray) -> None:
    want = bytearray(m)
    expected = EXPECT[name](want)
    if isinstance(expected, Out):
        assert isinstance(result, ProgramFault), f"{bytes(m[:4]).hex()}: ran to {result}"
        assert (result.code, result.size, result.addr - result.region[0]) == \
            (expected.code, expected.size, expected.offset)
        return
    assert not isinstance(result, ProgramFault), f"{bytes(m[:4]).hex()}: {result}"
    got = sign(result) if name == "compare" else result
    assert (got, bytes(after)) == (expected, bytes(want)), bytes(m[:4]).hex()


@pytest.mark.parametrize("build", sorted(BUILDS))
@pytest.mark.parametrize("name", sorted(EXPECT))
def test_native_code_does_what_c_defines(name, build):
    obj = loader.load(str(OBJ))
    loaded, _ = pipeline.load(obj, pipeline.LinkOptions(program=name, **BUILDS[build]))
    cases = CASES[name] if BUILDS[build].get("checks", True) else \
        [m for m in CASES[name] if in_bounds(name, m)]
    for m in cases:
        check(name, m, *run_native(loaded, bytearray(m)))


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_the_interpreter_does_what_c_defines(name):
    obj = loader.load(str(OBJ))
    for m in CASES[name]:
        after = bytearray(m)
        try:
            result = interp.run_object(obj, after, {}, program=name)
        except interp.InterpError as err:
            assert not in_bounds(name, m), f"{bytes(m[:4]).hex()}: {err}"
            assert "outside every mapped region" in str(err)
            continue
        check(name, m, result, after)


@pytest.mark.parametrize("level", [0, 2])
def test_past_the_frame_faults(level):
    """memset of mem[0] * 4 bytes into a 16-byte frame buffer: 16 fill it; 512 or
    more cannot fit in the 512-byte frame wherever the buffer is."""
    obj = loader.load(str(OBJ))
    loaded, _ = pipeline.load(obj, pipeline.LinkOptions(program="frame", opt_level=level))
    result, _ = run_native(loaded, mem(4, 0x21))
    assert result == 0x42
    for n in (128, 255):
        fault, _ = run_native(loaded, mem(n, 0x21))
        assert (fault.code, fault.size, fault.what) == (Fault.STORE, 4 * n, Region.FRAME)
        assert fault.region[1] - fault.region[0] == 512
        with pytest.raises(interp.InterpError, match="outside every mapped region"):
            interp.run_object(obj, mem(n, 0x21), {}, program="frame")
    assert interp.run_object(obj, mem(4, 0x21), {}, program="frame") == 0x42


@pytest.mark.parametrize("level", [0, 2])
def test_past_a_map_value_faults(level):
    obj = loader.load(str(OBJ))
    loaded, _ = pipeline.load(obj, pipeline.LinkOptions(program="value", opt_level=level))
    assert [run_native(loaded, mem(n, 0x5C))[0] for n in (1, 8)] == [0x5C, 0x5C]
    for n in (9, 200):
        fault, _ = run_native(loaded, mem(n, 0x5C))
        assert (fault.code, fault.size, fault.what) == (Fault.STORE, n, Region.MAP_VALUE)
        assert (fault.addr - fault.region[0], fault.region[1] - fault.region[0]) == (0, 8)


def xdp_wipe(packet: bytes):
    """memset(data + 2, data[0], data[1] * 8): (r0, packet after), or the fault."""
    if len(packet) < 2:
        return 1, packet                                  # XDP_DROP
    n = packet[1] * 8
    if 2 + n > len(packet):
        return Out(Fault.STORE, n, 2)
    return 2, packet[:2] + bytes([packet[0]]) * n + packet[2 + n:]   # XDP_PASS


WIPES = [b"", b"\x07", bytes([7, 0]) + bytes(30), bytes([7, 2]) + bytes(30),
         bytes([9, 3]) + bytes(range(22)), bytes([9, 3]) + bytes(range(21)),
         bytes([1, 255]) + bytes(60)]


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_past_the_packet_faults(build):
    obj = loader.load(str(OBJ))
    options = BUILDS[build]
    loaded, _ = pipeline.load(obj, pipeline.LinkOptions(program="wipe", **options))
    for packet in WIPES:
        expected = xdp_wipe(packet)
        if isinstance(expected, Out):
            if options.get("checks", True):
                with pytest.raises(ProgramFault) as fault:
                    loaded.call_packet(ENTRY_SYMBOL, contexts.XDP, packet)
                f = fault.value
                assert (f.code, f.size, f.addr - f.region[0], f.what) == \
                    (Fault.STORE, expected.size, 2, Region.PACKET)
            continue
        assert loaded.call_packet(ENTRY_SYMBOL, contexts.XDP, packet) == expected


@pytest.mark.parametrize("level", [0, 2])
def test_a_frame_word_a_copy_overwrote_is_not_what_it_held(level):
    """`off = 0` on the stack, then memcpy(&off, data, 8): the store at data + off
    goes where the packet's first 8 bytes say, checked against the packet."""
    obj = loader.load(str(OBJ))
    loaded, _ = pipeline.load(obj, pipeline.LinkOptions(program="stale", opt_level=level))
    packet = (9).to_bytes(8, "little") + bytes(24)
    assert loaded.call_packet(ENTRY_SYMBOL, contexts.XDP, packet) == \
        (2, packet[:9] + b"\xee" + packet[10:])
    with pytest.raises(ProgramFault) as fault:
        loaded.call_packet(ENTRY_SYMBOL, contexts.XDP, (100).to_bytes(8, "little") + bytes(24))
    f = fault.value
    assert (f.code, f.size, f.addr - f.region[0], f.what) == (Fault.STORE, 1, 100, Region.PACKET)


def test_a_call_with_the_helper_source_against_the_symbol_is_the_same_call(tmp_path):
    """The call's src 0 (a helper's) rather than 1, relocated against memset all the
    same: the relocation says what is called."""
    local = bytes.fromhex("85100000ffffffff")
    data = OBJ.read_bytes()
    assert data.count(local) == 14   # every call of the C library
    path = tmp_path / "libc.o"
    path.write_bytes(data.replace(local, bytes.fromhex("85000000ffffffff")))
    obj = loader.load(str(path))
    for name in ("set", "compare"):
        loaded, _ = pipeline.load(obj, pipeline.LinkOptions(program=name))
        for m in CASES[name]:
            check(name, m, *run_native(loaded, bytearray(m)))
            if in_bounds(name, m):
                after = bytearray(m)
                check(name, m, interp.run_object(obj, after, {}, program=name), after)


def test_the_context_as_bytes_is_refused():
    obj = loader.load(str(OBJ))
    with pytest.raises(pipeline.EbpfLtoError, match="memcpy of the program's context"):
        pipeline.link(obj, pipeline.LinkOptions(program="ctx_copy"))


def test_explain_shows_the_constant_frame_fill_proven_and_the_copy_checked():
    obj = loader.load(str(OBJ))
    _, linked = pipeline.link(obj, pipeline.LinkOptions(program="fixed", opt_level=0))
    fixed = obj.program("fixed").entry
    calls = {ref.target: idx for (section, idx), ref in obj.refs.items()
             if ref.kind == "libc" and section == fixed.section
             and fixed.start <= idx < obj.functions[fixed].end}
    checks = {c.insn: c for c in linked.checks if c.function == "fixed" and c.what == "helper"}
    assert checks[calls["memset"]].proven
    assert not checks[calls["memcpy"]].proven
    assert "memcpy" in checks[calls["memcpy"]].how


@pytest.mark.parametrize("abi", ["ebpf-lto", "bpftime"])
def test_memcmp_needs_no_c_library(abi, tmp_path):
    """memcmp is the module's own; under --abi bpftime, whose loader gives no C
    library, no memory function is left undefined."""
    obj = loader.load(str(OBJ))
    for name in ("compare", "move", "set"):
        image, _ = pipeline.link(obj, pipeline.LinkOptions(program=name, abi=abi))
        path = tmp_path / f"{name}.o"
        path.write_bytes(image)
        with open(path, "rb") as fh:
            undefined = {s.name for s in ELFFile(fh).get_section_by_name(".symtab").iter_symbols()
                         if s["st_shndx"] == "SHN_UNDEF" and s.name}
        assert "memcmp" not in undefined
        if abi == "bpftime":
            assert not undefined & {"memset", "memcpy", "memmove"}
