"""codegen/memfuncs.py: memcpy, memmove and memset defined in the object.

A module whose llvm.mem* intrinsics have sizes known only at run time makes
the code generator call the C functions; with memfuncs the object defines
them itself (no undefined symbol), and they agree with Python's slices on
every overlap and size.
"""
import ctypes
import io

import pytest
from elftools.elf.elffile import ELFFile

from inliner import codegen
from inliner.codegen import memfuncs
from inliner.run.runner import LoadedObjects

IR = """
declare void @llvm.memmove.p0.p0.i64(ptr, ptr, i64, i1)
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)
define void @move(ptr %d, ptr %s, i64 %n) {
  call void @llvm.memmove.p0.p0.i64(ptr %d, ptr %s, i64 %n, i1 false)
  ret void
}
define void @copy(ptr %d, ptr %s, i64 %n) {
  call void @llvm.memcpy.p0.p0.i64(ptr %d, ptr %s, i64 %n, i1 false)
  ret void
}
define void @fill(ptr %d, i64 %c, i64 %n) {
  %b = trunc i64 %c to i8
  call void @llvm.memset.p0.i64(ptr %d, i8 %b, i64 %n, i1 false)
  ret void
}
"""
FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64)
SIZE = 64


@pytest.fixture(scope="module")
def built():
    target = codegen.make_target("x86_64" if codegen.host_arch() == "x86_64" else "aarch64",
                                 "generic")
    tm = codegen.target_machine(target, 2)
    mod = codegen.optimize(codegen.parse_ir(IR), tm, 2)
    assert memfuncs.provide(mod, tm) == ["memcpy", "memmove", "memset"]
    image = codegen.emit(mod, tm, "obj")
    symtab = ELFFile(io.BytesIO(image)).get_section_by_name(".symtab")
    undefined = {s.name for s in symtab.iter_symbols() if s.name and s["st_shndx"] == "SHN_UNDEF"}
    exported = {s.name for s in symtab.iter_symbols() if s["st_info"]["bind"] == "STB_GLOBAL"}
    return LoadedObjects([image], ["move", "copy", "fill"]), undefined, exported


def test_the_object_calls_nothing_outside_and_exports_nothing_more(built):
    _, undefined, exported = built
    assert undefined == set()
    assert exported == {"move", "copy", "fill"}


def run(loaded, name, buf: bytearray, a: int, b: int, n: int) -> None:
    raw = (ctypes.c_char * len(buf)).from_buffer(buf)
    base = ctypes.addressof(raw)
    FN(loaded.address(name))(base + a, base + b if name != "fill" else b, n)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 17, 31])
@pytest.mark.parametrize("dst,src", [(0, 0), (0, 3), (3, 0), (1, 9), (9, 1), (0, 32), (32, 0)])
def test_memmove_is_a_slice_assignment(built, dst, src, n):
    loaded = built[0]
    buf = bytearray(range(SIZE))
    expect = bytearray(buf)
    expect[dst:dst + n] = expect[src:src + n]
    run(loaded, "move", buf, dst, src, n)
    assert buf == expect


@pytest.mark.parametrize("n", [0, 5, 8, 13, 24])
def test_memcpy_of_disjoint_memory(built, n):
    buf = bytearray(range(SIZE))
    expect = bytearray(buf)
    expect[1:1 + n] = expect[32:32 + n]
    run(built[0], "copy", buf, 1, 32, n)
    assert buf == expect


@pytest.mark.parametrize("n", [0, 1, 7, 8, 19])
def test_memset_fills_n_bytes_with_the_low_byte(built, n):
    buf = bytearray(SIZE)
    run(built[0], "fill", buf, 3, 0x1A5, n)
    assert buf == bytes(3) + b"\xa5" * n + bytes(SIZE - 3 - n)
