"""Stores forwarded into the wider loads that overlap them (inliner/codegen/storefwd.py).

Each rewritten function is run natively on known bytes and must give what
the bytes say in Python: the loaded value with the stored bytes in it, and
memory holding the store afterwards. test_storefwd_random.py runs random
store and load sequences the same way.
"""
import ctypes
import struct

import pytest

from test_inlining import CSUM, HEADER, ir_of, rfc1071
from inliner import codegen, pipeline
from inliner.elf import loader
from inliner.run import runner

HEAD = "; the host's triple and layout are set when the module is emitted\n"
OUT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


def forward(ir: str) -> tuple[str, int]:
    """ebpf-lto's own passes over `ir`: the module's text after them, and the
    loads forwarded."""
    mod, done, _ = codegen.own_passes(codegen.parse_ir(ir, "test"))
    return str(mod), done


def run(ir: str, symbol: str, memory: bytes, out_len: int) -> tuple[bytes, bytes]:
    tm = codegen.target_machine(codegen.make_target(codegen.host_arch()), 0)
    image = codegen.emit(codegen.parse_ir(ir, "test"), tm)
    loaded = runner.LoadedObjects([image], [symbol])
    mem = (ctypes.c_char * len(memory)).from_buffer(bytearray(memory))
    out = (ctypes.c_char * out_len)()
    OUT(loaded.address(symbol))(ctypes.addressof(mem), ctypes.addressof(out))
    return bytes(mem), bytes(out)


MEMORY = bytes(range(0x40, 0x80))

CASES = [
    # A 2-byte store inside a 16-byte vector load: the IPv4 header's check field.
    ("""define void @f(ptr %p, ptr %out) {
  %q = getelementptr i8, ptr %p, i64 10
  store i16 4660, ptr %q, align 1
  %v = load <4 x i32>, ptr %p, align 1
  store <4 x i32> %v, ptr %out, align 1
  ret void
}""", 1, 16, lambda m: (m[:10] + b"\x34\x12" + m[12:16])),
    # A store reaching past the end of the load; the load's pointer defined after the store.
    ("""define void @f(ptr %p, ptr %out) {
  %q = getelementptr inbounds nuw i8, ptr %p, i64 6
  store i32 -559038737, ptr %q, align 1
  %r = getelementptr i8, ptr %p, i64 2
  %x = add i64 1, 2
  %v = load i64, ptr %r, align 1
  store i64 %v, ptr %out, align 1
  ret void
}""", 1, 8, lambda m: (m[2:6] + b"\xef\xbe\xad\xde")),
    # Two loads overlapping one store, a disjoint load between them.
    ("""define void @f(ptr %p, ptr %out) {
  %q = getelementptr i8, ptr %p, i64 4
  store i8 127, ptr %q, align 1
  %a = getelementptr i8, ptr %p, i64 2
  %v = load i32, ptr %a, align 1
  %c = getelementptr i8, ptr %p, i64 40
  %z = load i64, ptr %c, align 1
  %b = getelementptr i8, ptr %a, i64 1
  %w = load <2 x i16>, ptr %b, align 1
  store i32 %v, ptr %out, align 1
  %o2 = getelementptr i8, ptr %out, i64 4
  store <2 x i16> %w, ptr %o2, align 1
  %o3 = getelementptr i8, ptr %out, i64 8
  store i64 %z, ptr %o3, align 1
  ret void
}""", 2, 16, lambda m: (m[2:4] + b"\x7f" + m[5:6] + m[3:4] + b"\x7f" + m[5:7] + m[40:48])),
    # Katran's outer header: a constant byte and a value byte, then a 16-bit load over
    # both; the addresses are p + (n - 50) and p + (n - 49) with n only known at run
    # time (memory[0] = 0x40), the load's through another name for n - 50.
    ("""define void @f(ptr %p, ptr %out) {
  %k = load i8, ptr %p, align 1
  %n = zext i8 %k to i64
  %g = getelementptr i8, ptr %p, i64 1
  %v = load i8, ptr %g, align 1
  %a = add i64 %n, -50
  %pa = getelementptr i8, ptr %p, i64 %a
  store i8 69, ptr %pa, align 1
  %b = sub i64 %n, 49
  %pb = getelementptr i8, ptr %p, i64 %b
  store i8 %v, ptr %pb, align 1
  %c = add nsw i64 %n, -50
  %pc = getelementptr inbounds i8, ptr %p, i64 %c
  %w = load i16, ptr %pc, align 1
  store i16 %w, ptr %out, align 1
  ret void
}""", 1, 2, lambda m: b"\x45" + m[1:2]),
    # Value stores reaching in from the left and out past the end of the loads.
    ("""define void @f(ptr %p, ptr %out) {
  %g = getelementptr i8, ptr %p, i64 4
  %w = load i32, ptr %g, align 1
  %h = getelementptr i8, ptr %p, i64 8
  %z = load i64, ptr %h, align 1
  %s1 = getelementptr i8, ptr %p, i64 20
  store i32 %w, ptr %s1, align 1
  %s2 = getelementptr i8, ptr %p, i64 30
  store i64 %z, ptr %s2, align 1
  %l1 = getelementptr i8, ptr %p, i64 22
  %x = load i32, ptr %l1, align 1
  %l2 = getelementptr i8, ptr %p, i64 28
  %y = load i32, ptr %l2, align 1
  store i32 %x, ptr %out, align 1
  %o = getelementptr i8, ptr %out, i64 4
  store i32 %y, ptr %o, align 1
  ret void
}""", 2, 8, lambda m: m[6:8] + m[24:26] + m[28:30] + m[8:10]),
    # A later store over a forwarded one's bytes, outside the load: both move, in order.
    ("""define void @f(ptr %p, ptr %out) {
  %s1 = getelementptr i8, ptr %p, i64 10
  store i32 -1, ptr %s1, align 1
  %s2 = getelementptr i8, ptr %p, i64 12
  store i8 5, ptr %s2, align 1
  %l = getelementptr i8, ptr %p, i64 8
  %x = load i32, ptr %l, align 1
  store i32 %x, ptr %out, align 1
  ret void
}""", 1, 4, lambda m: m[8:10] + b"\xff\xff"),
]


@pytest.mark.parametrize("ir,count,out_len,expect", CASES)
def test_forwarded_loads_see_the_stored_bytes(ir, count, out_len, expect):
    text, done = forward(HEAD + ir)
    assert done == count
    assert text.count("%storefwd.") >= count
    after, out = run(text, "f", MEMORY, out_len)
    # The expected bytes come from the memory as it is after the store.
    assert out == expect(after)
    # Memory outside the store is untouched, and the store itself landed.
    before_after, _ = run(HEAD + ir, "f", MEMORY, out_len)
    assert after == before_after and after != MEMORY


def test_a_header_written_byte_by_byte_is_read_before_the_stores():
    """The point of the rewrite: no load waits for the stores it spans (here the
    stores write both bytes, so no load is left at all)."""
    text, _ = forward(HEAD + CASES[3][0])
    body = text.split("\n")
    stores = [i for i, line in enumerate(body) if line.strip().startswith("store i8")]
    loads = [i for i, line in enumerate(body) if "= load i16" in line]
    assert len(stores) == 2 and all(i < min(stores) for i in loads)


KEPT = {
    "a call between may read the stored bytes": """
  store i16 0, ptr %q, align 1
  call void @g()
  %v = load <4 x i32>, ptr %p, align 1""",
    "a load through another base may alias": """
  store i16 0, ptr %q, align 1
  %u = load i32, ptr %other, align 1
  %v = load <4 x i32>, ptr %p, align 1""",
    "a load the store covers is LLVM's own to forward": """
  store i32 0, ptr %p, align 1
  %v = load i16, ptr %p, align 1""",
    "a volatile store stays where it is": """
  store volatile i16 0, ptr %q, align 1
  %v = load <4 x i32>, ptr %p, align 1""",
    "a load through a constant expression has an unknown address": """
  store i16 0, ptr %q, align 1
  %u = load i32, ptr getelementptr (i8, ptr @g2, i64 4), align 1
  %v = load <4 x i32>, ptr %p, align 1""",
    "a store through another base may alias": """
  store i16 0, ptr %q, align 1
  store i32 7, ptr %other, align 1
  %v = load <4 x i32>, ptr %p, align 1""",
    "a value is not blended into a vector": """
  %x = load i16, ptr %other, align 1
  store i16 %x, ptr %q, align 1
  %v = load <4 x i32>, ptr %p, align 1""",
    "an atomic load is not moved across": """
  store i16 0, ptr %q, align 1
  %v = load atomic i64, ptr %p seq_cst, align 8""",
}


@pytest.mark.parametrize("why", KEPT)
def test_nothing_is_moved_where_it_could_change_what_is_read(why):
    ir = (HEAD + "@g2 = global [16 x i8] zeroinitializer\ndeclare void @g()\n"
          "define void @f(ptr %p, ptr %other) {\n"
          "  %q = getelementptr i8, ptr %p, i64 10" + KEPT[why] + "\n  ret void\n}\n")
    mod = codegen.parse_ir(ir, why)
    assert codegen.own_passes(mod) == (mod, 0, 0), why


@pytest.mark.parametrize("level", [2, 3])
def test_ipv4_checksum_over_a_stale_check_field(level):
    """`check = 0; csum_diff(header)`: the pattern the rewrite is for, end to end.
    Unchecked: the rewrite works within a block, and a checked build checks
    csum_diff's pointer argument between the store and the helper's loads
    (docs/safety.md)."""
    assert "%storefwd." in ir_of(CSUM, program="ipv4_checksum", opt_level=level,
                                 cpu="x86-64-v3", checks=False)
    stale = HEADER[:10] + b"\xde\xad" + HEADER[12:]
    options = pipeline.LinkOptions(opt_level=level, program="ipv4_checksum", cpu="x86-64-v3",
                                   checks=False)
    r0, after = pipeline.run(loader.load(str(CSUM)), bytes(stale), options)
    # r0 is the stored field read as a native (little-endian) u16.
    assert struct.unpack("!H", after[10:12])[0] == rfc1071(HEADER)
    assert r0 == struct.unpack("<H", after[10:12])[0]
