"""Tests for inliner.elf.btf.

Expected values come from the C sources in tests/fixtures/btf (whose
_Static_asserts pin the layouts), from the ELF symbol table, or from BTF
blobs packed by hand below; never from the parser itself.
"""
import struct
import time
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, given, settings, strategies as st

from inliner.elf.btf import (BtfError, INT_SIGNED, LINKAGE_EXTERN, LINKAGE_GLOBAL,
                         LINKAGE_STATIC, BtfMapDef, parse_btf)

FIXTURES = Path(__file__).parent / "fixtures" / "btf"

# The kernel's enum bpf_map_type, from include/uapi/linux/bpf.h.
HASH, ARRAY, PROG_ARRAY, PERF_EVENT_ARRAY = 1, 2, 3, 4
LRU_HASH, ARRAY_OF_MAPS, RINGBUF, BLOOM_FILTER = 9, 12, 27, 30


def elf_section(obj: str, name: str) -> bytes:
    with open(FIXTURES / obj, "rb") as f:
        return ELFFile(f).get_section_by_name(name).data()


def section_layout(obj: str, name: str) -> tuple[int, dict[str, int]]:
    """A section's size and {symbol: st_value} for symbols defined in it."""
    with open(FIXTURES / obj, "rb") as f:
        elf = ELFFile(f)
        index = next(i for i, s in enumerate(elf.iter_sections())
                     if s.name == name)
        symbols = {s.name: s["st_value"]
                   for s in elf.get_section_by_name(".symtab").iter_symbols()
                   if s["st_shndx"] == index}
        return elf.get_section(index)["sh_size"], symbols


MAPS_BTF = elf_section("maps.o", ".BTF")
TYPES_BTF = elf_section("types.o", ".BTF")


@pytest.fixture(scope="module")
def maps():
    return parse_btf(MAPS_BTF)


@pytest.fixture(scope="module")
def types():
    return parse_btf(TYPES_BTF)


def only(btf, name, kind):
    (t,) = btf.by_name(name, kind)
    return t


def var_type(btf, name):
    return btf.types[only(btf, name, "var").type]


# --- hand-built BTF ----------------------------------------------------------

KIND = {"int": 1, "ptr": 2, "array": 3, "struct": 4, "union": 5, "enum": 6,
        "fwd": 7, "typedef": 8, "volatile": 9, "const": 10, "restrict": 11,
        "func": 12, "func_proto": 13, "var": 14, "datasec": 15, "float": 16,
        "decl_tag": 17, "type_tag": 18, "enum64": 19}


class Builder:
    """Packs BTF by hand, straight from include/uapi/linux/btf.h."""

    def __init__(self):
        self.records = []
        self.strings = b"\0"

    def str(self, text: str) -> int:
        offset = len(self.strings)
        self.strings += text.encode() + b"\0"
        return offset

    def add(self, kind, name="", vlen=0, size_or_type=0, tail=b"",
            kind_flag=0) -> int:
        info = kind_flag << 31 | KIND[kind] << 24 | vlen
        name_off = self.str(name) if name else 0
        self.records.append(struct.pack("<III", name_off, info, size_or_type)
                            + tail)
        return len(self.records)   # ids start at 1

    def int(self, name="int", size=4, bits=32, signed=True) -> int:
        return self.add("int", name, 0, size,
                        struct.pack("<I", (signed << 24) | bits))

    def array(self, elem: int, index: int, nelems: int) -> int:
        return self.add("array", tail=struct.pack("<III", elem, index, nelems))

    def struct(self, name: str, size: int, members) -> int:
        tail = b"".join(struct.pack("<III", self.str(m), t, off)
                        for m, t, off in members)
        return self.add("struct", name, len(members), size, tail)

    def var(self, name: str, type_id: int, linkage=1) -> int:
        return self.add("var", name, 0, type_id, struct.pack("<I", linkage))

    def datasec(self, name: str, size: int, entries) -> int:
        tail = b"".join(struct.pack("<III", *e) for e in entries)
        return self.add("datasec", name, len(entries), size, tail)

    def build(self) -> bytes:
        types = b"".join(self.records)
        return header(type_len=len(types), str_off=len(types),
                      str_len=len(self.strings)) + types + self.strings


def header(magic=0xEB9F, version=1, flags=0, hdr_len=24, type_off=0,
           type_len=0, str_off=0, str_len=0) -> bytes:
    return struct.pack("<HBBIIIII", magic, version, flags, hdr_len, type_off,
                       type_len, str_off, str_len)


def uint_member(b: Builder, name: str, value: int, int_id: int, idx: int):
    """What libbpf's __uint(name, value) compiles to: int (*name)[value]."""
    ptr = b.add("ptr", size_or_type=b.array(int_id, int_id, value))
    return (name, ptr, idx * 64)


def map_btf(members_for, linkage=1) -> bytes:
    """A .maps DATASEC with one map `m`; members_for(builder, int_id) lists
    the definition's members."""
    b = Builder()
    i32 = b.int()
    members = members_for(b, i32)
    def_id = b.struct("", 8 * len(members), members)
    var = b.var("m", def_id, linkage)
    b.datasec(".maps", 0, [(var, 0, 8 * len(members))])
    return b.build()


def map_def(members_for, strict=True, linkage=1) -> BtfMapDef:
    (m,) = parse_btf(map_btf(members_for, linkage)).map_definitions(strict)
    return m


# --- real objects: types -----------------------------------------------------

def test_void_is_id_zero(types):
    assert types.types[0].kind == "void"
    assert all(t.id == i for i, t in enumerate(types.types))


def test_struct_member_offsets(types):
    hdr = only(types, "pkt_hdr", "struct")
    assert hdr.size == 24
    assert types.sizeof(hdr.id) == 24
    assert not hdr.kind_flag
    assert [(m.name, m.bit_offset // 8) for m in hdr.members] == [
        ("version", 0), ("length", 2), ("seq", 4), ("timestamp", 8),
        ("label", 16), ("crc", 20)]
    sizes = [types.sizeof(m.type) for m in hdr.members]
    assert sizes == [1, 2, 4, 8, 3, 4]


def test_bitfields(types):
    bits = only(types, "bits", "struct")
    assert bits.kind_flag            # offsets carry bitfield sizes
    assert bits.size == 8
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in bits.members] == [
        ("a", 0, 3), ("b", 3, 5), ("c", 16, 0), ("d", 32, 12), ("e", 44, 4)]


def test_union(types):
    value = only(types, "value", "union")
    assert value.size == 24
    assert [m.name for m in value.members] == ["u32", "u64", "hdr"]
    assert all(m.bit_offset == 0 for m in value.members)


def test_enums(types):
    color = only(types, "color", "enum")
    assert (color.size, color.kind_flag) == (4, False)
    assert [(e.name, e.value) for e in color.enumerators] == [
        ("RED", 0), ("GREEN", 5), ("BLUE", 6)]
    delta = only(types, "delta", "enum")
    assert delta.kind_flag           # signed
    assert [(e.name, e.value) for e in delta.enumerators] == [
        ("DOWN", -1), ("FLAT", 0), ("UP", 1)]
    wide = only(types, "wide", "enum64")
    assert types.sizeof(wide.id) == 8
    assert [(e.name, e.value) for e in wide.enumerators] == [
        ("WIDE_SMALL", 1), ("WIDE_BIG", 0x123456789)]


def test_ints_and_floats(types):
    assert only(types, "int", "int").encoding == INT_SIGNED
    unsigned = only(types, "unsigned int", "int")
    assert (unsigned.encoding, unsigned.bits, unsigned.size) == (0, 32, 4)
    assert types.sizeof(only(types, "unsigned short", "int").id) == 2
    assert types.sizeof(var_type(types, "g_float").id) == 4
    assert types.sizeof(var_type(types, "g_double").id) == 8
    assert var_type(types, "g_double").kind == "float"


def test_modifier_chain_resolves(types):
    alias = var_type(types, "g_alias")      # hdr_alias_t
    assert (alias.kind, alias.name) == ("typedef", "hdr_alias_t")
    kinds = []
    t = alias
    while t.kind != "struct":
        kinds.append(t.kind)
        t = types.types[t.type]
    assert sorted(kinds) == ["const", "typedef", "typedef", "volatile"]
    assert types.resolve(alias.id).name == "pkt_hdr"
    assert types.sizeof(alias.id) == 24
    restrict = var_type(types, "g_restrict")
    assert restrict.kind == "restrict"
    assert types.resolve(restrict.id).kind == "ptr"
    assert types.sizeof(restrict.id) == 8


def test_type_tag(types):
    ptr = var_type(types, "g_user_ptr")
    tag = types.types[ptr.type]
    assert (ptr.kind, tag.kind, tag.name) == ("ptr", "type_tag", "user")
    assert types.resolve(tag.id).name == "int"


def test_arrays(types):
    matrix = var_type(types, "g_matrix")
    inner = types.types[matrix.type]
    assert (matrix.kind, matrix.nelems, inner.kind, inner.nelems) == (
        "array", 3, "array", 5)
    assert types.resolve(inner.type).name == "unsigned short"
    assert types.sizeof(matrix.id) == 3 * 5 * 2


def test_forward_declarations(types):
    opaque = types.types[var_type(types, "g_opaque").type]
    opaque_u = types.types[var_type(types, "g_opaque_u").type]
    assert (opaque.kind, opaque.name, opaque.kind_flag) == (
        "fwd", "opaque", False)
    assert (opaque_u.kind, opaque_u.name, opaque_u.kind_flag) == (
        "fwd", "opaque_u", True)
    with pytest.raises(BtfError, match="no size"):
        types.sizeof(opaque.id)


def test_functions(types):
    add = only(types, "add", "func")
    assert add.linkage == LINKAGE_GLOBAL
    proto = types.types[add.type]
    assert proto.kind == "func_proto"
    assert types.types[proto.type].name == "int"
    assert [p.name for p in proto.params] == ["x", "h"]
    assert types.resolve(types.types[proto.params[1].type].type).name == "pkt_hdr"
    assert only(types, "helper", "func").linkage == LINKAGE_STATIC
    assert only(types, "bpf_kfunc_example", "func").linkage == LINKAGE_EXTERN
    varargs = types.types[var_type(types, "g_varargs").type]
    assert [p.type for p in varargs.params][-1] == 0    # the `...`
    for sizeless in (add.id, proto.id, 0):       # func, func_proto, void
        with pytest.raises(BtfError, match="no size"):
            types.sizeof(sizeless)


def test_decl_tags(types):
    tags = {t.name: (types.types[t.type].name, t.component_idx)
            for t in types.types if t.kind == "decl_tag"}
    assert tags == {"wire": ("pkt_hdr", -1), "signed nibble": ("bits", 4),
                    "param": ("add", 0), "func": ("add", -1),
                    "var tag": ("g_tagged", -1)}


def test_datasecs(types):
    data = types.datasec(".data")
    assert [(v.name, v.size) for v in data] == [
        ("g_color", 4), ("g_delta", 4), ("g_tagged", 4)]
    # clang leaves DATASECs unsized in object files: no offsets to report.
    assert all(v.offset is None for v in data)
    assert types.types[data[0].type_id].name == "color"
    (kconfig,) = types.datasec(".kconfig")
    assert types.types[kconfig.var_id].linkage == LINKAGE_EXTERN
    (kfunc,) = types.datasec(".ksyms")
    assert types.types[kfunc.var_id].kind == "func"
    static = [v for v in types.datasec(".bss") if v.name == "g_static"]
    assert types.types[static[0].var_id].linkage == LINKAGE_STATIC
    with pytest.raises(KeyError):
        types.datasec(".nope")


def test_fixup_datasec_places_variables(types):
    size, symbols = section_layout("types.o", ".data")
    placed = types.fixup_datasec(".data", size, symbols)
    assert {v.name: v.offset for v in placed.datasec(".data")} == {
        name: symbols[name] for name in ("g_color", "g_delta", "g_tagged")}
    assert placed.fixup_datasec(".data", size, {}) is placed   # already sized
    assert types.datasec(".data")[0].offset is None            # not mutated


def test_by_name_and_strings(maps):
    assert [t.kind for t in maps.by_name("five_tuple")] == ["struct"]
    assert [t.kind for t in maps.by_name("flow_key_t")] == ["typedef"]
    assert maps.by_name("five_tuple", "union") == []
    assert maps.by_name("no such type") == []
    assert maps.string(0) == ""
    name_at = maps.strings.index(b"five_tuple\0")
    assert maps.string(name_at) == "five_tuple"
    assert maps.string(name_at + 5) == "tuple"     # suffixes are strings too
    with pytest.raises(BtfError, match="outside"):
        maps.string(len(maps.strings))


# --- real objects: maps ------------------------------------------------------

def test_map_geometry(maps):
    defs = {m.name: m for m in maps.map_definitions()}
    # The pre-BTF map in section "maps" is not a BTF-defined map.
    assert set(defs) == {"flows", "flows_packed", "counters", "events",
                         "perf_events", "bloom", "bloom_wide", "inner0",
                         "inner1", "outer", "jumps"}
    got = {name: (m.type, m.key_size, m.value_size, m.max_entries,
                  m.map_flags) for name, m in defs.items()}
    assert got == {
        "flows": (HASH, 16, 24, 10240, 1),          # BPF_F_NO_PREALLOC
        "flows_packed": (LRU_HASH, 13, 8, 512, 0),
        "counters": (ARRAY, 4, 16, 256, 0),
        "events": (RINGBUF, 0, 0, 256 * 1024, 0),
        "perf_events": (PERF_EVENT_ARRAY, 4, 4, 0, 0),
        "bloom": (BLOOM_FILTER, 0, 4, 1000, 0),
        "bloom_wide": (BLOOM_FILTER, 0, 8, 16, 0),
        "inner0": (ARRAY, 4, 8, 4, 0),
        "inner1": (ARRAY, 4, 8, 4, 0),
        "outer": (ARRAY_OF_MAPS, 4, 4, 8, 0),
        "jumps": (PROG_ARRAY, 4, 4, 4, 0),
    }
    assert (defs["flows_packed"].pinning, defs["flows_packed"].numa_node) == (1, 1)
    assert defs["bloom"].map_extra == 3
    assert defs["bloom_wide"].map_extra == 0x500000003


def test_map_key_and_value_types(maps):
    defs = {m.name: m for m in maps.map_definitions()}
    flows = defs["flows"]
    assert maps.types[flows.key_type_id].name == "five_tuple"
    assert maps.types[flows.value_type_id].name == "flow_stats"
    # __type(value, const volatile flow_key_t) keeps the qualified type id.
    counters = defs["counters"]
    assert maps.types[counters.value_type_id].kind in ("const", "volatile")
    assert maps.resolve(counters.value_type_id).name == "five_tuple"
    assert maps.types[counters.key_type_id].name == "__u32"
    for name in ("events", "perf_events"):
        assert defs[name].key_type_id is None
        assert defs[name].value_type_id is None


def test_map_in_map_and_prog_array(maps):
    defs = {m.name: m for m in maps.map_definitions()}
    outer = defs["outer"]
    assert outer.has_values
    inner = outer.inner
    assert (inner.name, inner.type, inner.key_size, inner.value_size,
            inner.max_entries) == ("outer.inner", ARRAY, 4, 8, 4)
    jumps = defs["jumps"]
    assert jumps.has_values and jumps.inner is None
    assert not defs["flows"].has_values


def test_map_offsets_come_from_layout(maps):
    # Raw clang output carries no .maps offsets (they live in .rel.BTF) ...
    assert all(m.offset is None for m in maps.map_definitions())
    # ... so lay .maps out from the ELF symbols, as libbpf does.
    size, symbols = section_layout("maps.o", ".maps")
    placed = maps.fixup_datasec(".maps", size, symbols)
    offsets = {m.name: m.offset for m in placed.map_definitions()}
    assert offsets == {name: symbols[name] for name in offsets}
    assert len(set(offsets.values())) == len(offsets)


def test_fixup_datasec_errors(maps):
    size, symbols = section_layout("maps.o", ".maps")
    missing = dict(symbols)
    del missing["flows"]
    with pytest.raises(BtfError, match="no symbol for variable 'flows'"):
        maps.fixup_datasec(".maps", size, missing)
    with pytest.raises(BtfError, match="outside section"):
        maps.fixup_datasec(".maps", size - 1, symbols)


# --- hand-built maps ---------------------------------------------------------

def test_hand_built_map():
    def members(b, i32):
        key = b.add("ptr", size_or_type=b.array(i32, i32, 10))   # int[10]
        return [uint_member(b, "type", HASH, i32, 0),
                uint_member(b, "max_entries", 7, i32, 1),
                ("key", key, 128)]
    m = map_def(members)
    assert (m.name, m.type, m.max_entries, m.key_size, m.value_size) == (
        "m", HASH, 7, 40, 0)


def test_unknown_member_strict_and_relaxed():
    def members(b, i32):
        return [uint_member(b, "type", ARRAY, i32, 0),
                uint_member(b, "frobnicate", 1, i32, 1)]
    with pytest.raises(BtfError, match="unknown member 'frobnicate'"):
        map_def(members)
    assert map_def(members, strict=False).type == ARRAY


@pytest.mark.parametrize("members, reason", [
    (lambda b, i32: [uint_member(b, "max_entries", 1, i32, 0)],
     "map type isn't specified"),
    (lambda b, i32: [uint_member(b, "type", HASH, i32, 0),
                     uint_member(b, "key_size", 4, i32, 1),
                     ("key", b.add("ptr", size_or_type=b.int("long", 8, 64)),
                      128)],
     "conflicting key_size 4 != 8"),
    (lambda b, i32: [("type", i32, 0)], "expected a pointer"),
    (lambda b, i32: [("type", b.add("ptr", size_or_type=i32), 0)],
     "expected an array"),
    (lambda b, i32: [uint_member(b, "type", HASH, i32, 0), ("key", i32, 64)],
     "key spec is int"),
    (lambda b, i32: [uint_member(b, "type", HASH, i32, 0),
                     ("values", b.array(i32, i32, 0), 64)],
     "needs a map-in-map or prog-array"),
    (lambda b, i32: [uint_member(b, "type", PROG_ARRAY, i32, 0),
                     ("values", b.array(i32, i32, 0), 64),
                     uint_member(b, "max_entries", 1, i32, 2)],
     "must be the last member"),
    (lambda b, i32: [uint_member(b, "type", PROG_ARRAY, i32, 0),
                     ("values", b.array(b.add("ptr", size_or_type=i32), i32,
                                        0), 64)],
     "not a function"),
])
def test_bad_map_definitions(members, reason):
    with pytest.raises(BtfError, match=reason):
        map_def(members)


def test_any_pinning_value_is_taken_and_reported_as_kernel_only():
    """libbpf refuses pinning values but 0 and 1; cilium/ebpf takes any (Cilium's
    loader has its own, 16 among them), and pinning means nothing in userspace."""
    m = map_def(lambda b, i32: [uint_member(b, "type", HASH, i32, 0),
                                uint_member(b, "pinning", 16, i32, 1),
                                uint_member(b, "numa_node", 1, i32, 2)])
    assert (m.type, m.pinning) == (HASH, 16)
    assert m.kernel_only() == {"pinning": 16, "numa_node": 1}
    assert map_def(lambda b, i32: [uint_member(b, "type", HASH, i32, 0)]).kernel_only() == {}


def test_a_bad_map_is_refused_alone():
    """map_entries gives each map its definition or its error; map_definitions,
    libbpf's view, raises the first error."""
    def members(b, i32):
        return [uint_member(b, "type", ARRAY, i32, 0), uint_member(b, "frobnicate", 1, i32, 1)]
    ((name, _, found),) = parse_btf(map_btf(members)).map_entries()
    assert name == "m" and isinstance(found, BtfError)
    assert "unknown member 'frobnicate'" in str(found)


def test_static_map_is_rejected():
    with pytest.raises(BtfError, match="unsupported linkage static"):
        map_def(lambda b, i32: [uint_member(b, "type", HASH, i32, 0)],
                linkage=0)


def test_no_maps_section(types):
    assert types.map_definitions() == []


# --- malformed blobs ---------------------------------------------------------

def test_truncated_blob_prefixes():
    for n in range(len(TYPES_BTF)):
        with pytest.raises(BtfError):
            parse_btf(TYPES_BTF[:n])


def test_truncated_type_section():
    (type_len,) = struct.unpack_from("<I", TYPES_BTF, 12)
    for cut in range(1, type_len):
        blob = bytearray(TYPES_BTF)
        struct.pack_into("<I", blob, 12, type_len - cut)
        try:
            parse_btf(bytes(blob))
        except BtfError:
            continue
        # Records are multiples of 4 bytes: an unaligned cut must fail.
        assert cut % 4 == 0


def test_big_endian_magic_is_named():
    with pytest.raises(BtfError, match="big-endian"):
        parse_btf(b"\xeb\x9f" + TYPES_BTF[2:])


@pytest.mark.parametrize("blob, reason", [
    (b"", "too short"),
    (header(magic=0x1234) + b"\0", "bad magic 0x1234"),
    (header(version=2, str_len=1) + b"\0", "version 2"),
    (header(flags=1, str_len=1) + b"\0", "flags"),
    (header(hdr_len=20, str_len=1) + b"\0", "header length 20"),
    (header(hdr_len=4096, str_len=1) + b"\0", "exceeds"),
    (header(hdr_len=28, str_len=1) + b"\x01\0\0\0\0", "non-zero"),
    (header(type_len=12, str_off=12, str_len=1) + b"\0", "type section"),
    (header(str_off=1, str_len=1) + b"\0", "string section"),
    (header(str_len=0), "NUL"),
    (header(str_len=2) + b"\0a", "NUL"),
    (header(str_len=2) + b"a\0", "NUL"),
    (header(type_off=1, str_len=2) + b"\0\0", "not 4-aligned"),
    (header(type_len=12, str_off=8, str_len=5)
     + struct.pack("<III", 0, 2 << 24, 0) + b"\0", "overlap"),
])
def test_bad_headers(blob, reason):
    with pytest.raises(BtfError, match=reason):
        parse_btf(blob)


def test_hand_built_blob_parses():
    b = Builder()
    i32 = b.int()
    b.add("typedef", "my_int", size_or_type=i32)
    btf = parse_btf(b.build())
    assert [(t.kind, t.name) for t in btf.types] == [
        ("void", ""), ("int", "int"), ("typedef", "my_int")]
    assert btf.sizeof(2) == 4


def raw_type(name_off=0, info=2 << 24, size_or_type=0, tail=b"",
             strings=b"\0") -> bytes:
    types = struct.pack("<III", name_off, info, size_or_type) + tail
    return header(type_len=len(types), str_off=len(types),
                  str_len=len(strings)) + types + strings


@pytest.mark.parametrize("blob, reason", [
    (raw_type(name_off=1), "string offset 1"),
    (raw_type(name_off=1, strings=b"\0\xff\0"), "not UTF-8"),
    (raw_type(name_off=1, strings=b"\0" + b"x" * 600 + b"\0"), "longer than"),
    (raw_type(info=0), "unknown kind 0"),
    (raw_type(info=20 << 24), "unknown kind 20"),
    (raw_type(info=2 << 24 | 1 << 16), "reserved info bits"),
    (raw_type(info=4 << 24 | 1, size_or_type=4), "struct \\[1\\] is truncated"),
    (raw_type(info=1 << 24, size_or_type=4), "int \\[1\\] is truncated"),
    (raw_type(size_or_type=2), "refers to type \\[2\\]"),
    (raw_type(info=3 << 24, tail=struct.pack("<III", 0, 9, 1)),
     "refers to type \\[9\\]"),
    (raw_type(info=17 << 24, tail=struct.pack("<i", -2)), "component index"),
])
def test_bad_type_records(blob, reason):
    with pytest.raises(BtfError, match=reason):
        parse_btf(blob)


def test_truncated_record_header():
    b = Builder()
    b.int()
    blob = bytearray(b.build())
    struct.pack_into("<I", blob, 12, 16 + 8)   # type_len: one int + 8 bytes
    blob[24 + 16:24 + 16] = b"\0" * 8
    struct.pack_into("<I", blob, 16, 16 + 8)   # strings follow
    with pytest.raises(BtfError, match="type \\[2\\] is truncated"):
        parse_btf(bytes(blob))


def test_typedef_loop():
    b = Builder()
    a = b.add("typedef", "A", size_or_type=2)
    b.add("typedef", "B", size_or_type=a)
    btf = parse_btf(b.build())            # a loop is not a parse error ...
    for tid in (1, 2):                    # ... until something walks it
        with pytest.raises(BtfError, match=r"loop: \[\d\] -> \[\d\] -> \[\d\]"):
            btf.resolve(tid)
        with pytest.raises(BtfError, match="loop"):
            btf.sizeof(tid)


def test_const_loop_behind_pointer():
    b = Builder()
    ptr = b.add("ptr", size_or_type=2)
    b.add("const", size_or_type=3)
    b.add("typedef", "T", size_or_type=2)      # const -> typedef -> const
    btf = parse_btf(b.build())
    assert btf.sizeof(ptr) == 8                # a pointer's size needs no walk
    with pytest.raises(BtfError, match="loop"):
        btf.resolve(btf.types[ptr].type)


def test_self_containing_array():
    b = Builder()
    b.add("array", tail=struct.pack("<III", 1, 1, 2))
    btf = parse_btf(b.build())
    with pytest.raises(BtfError, match="loop"):
        btf.sizeof(1)


def test_oversized_array():
    b = Builder()
    i64 = b.int("long", 8, 64)
    arr = b.array(i64, i64, 1 << 30)
    btf = parse_btf(b.build())
    with pytest.raises(BtfError, match="4 GiB"):
        btf.sizeof(arr)


def test_bad_type_ids_to_helpers(types):
    for bad in (-1, len(types.types)):
        with pytest.raises(BtfError, match="out of range"):
            types.resolve(bad)
        with pytest.raises(BtfError, match="out of range"):
            types.sizeof(bad)


# --- hostile input -----------------------------------------------------------

# A hang guard, not a speed claim (speed lives in benchmarks): a linear parse of
# 1 MB takes well under a second even on a loaded machine; a quadratic or
# looping one takes minutes.
HANG_GUARD_SECONDS = 30


def timed_parse(blob: bytes):
    start = time.perf_counter()
    try:
        result = parse_btf(blob)
    except BtfError as e:
        result = e
    assert time.perf_counter() - start < HANG_GUARD_SECONDS
    return result


def test_megabyte_typedef_loop_ends():
    n = (1 << 20) // 12
    types = b"".join(struct.pack("<III", 0, 8 << 24, i % n + 1)
                     for i in range(1, n + 1))    # [i] -> [i+1], [n] -> [1]
    btf = timed_parse(header(type_len=len(types), str_off=len(types),
                             str_len=1) + types + b"\0")
    start = time.perf_counter()
    with pytest.raises(BtfError, match="more"):   # the message stays short
        btf.resolve(1)
    assert time.perf_counter() - start < HANG_GUARD_SECONDS


def test_megabyte_of_suffix_names_is_bounded():
    # Every enumerator names a different suffix of one long string.
    strings = b"\0" + b"a" * 400 + b"\0"
    n = ((1 << 20) - len(strings)) // 8 - 2
    tail = b"".join(struct.pack("<II", 1 + i % 400, i) for i in range(n))
    types = struct.pack("<III", 0, 6 << 24 | min(n, 0xFFFF), 4)
    types += tail[:8 * min(n, 0xFFFF)]
    result = timed_parse(header(type_len=len(types), str_off=len(types),
                                str_len=len(strings)) + types + strings)
    assert len(result.types[1].enumerators) == min(n, 0xFFFF)


def exercise(btf):
    """Every query must answer or raise BtfError, whatever the blob."""
    for t in btf.types:
        for query in (btf.resolve, btf.sizeof):
            try:
                query(t.id)
            except BtfError:
                pass
        if t.kind == "datasec":
            try:
                btf.datasec(t.name)
            except BtfError:
                pass
    for strict in (True, False):
        try:
            btf.map_definitions(strict)
        except BtfError:
            pass


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(blob=st.sampled_from([MAPS_BTF, TYPES_BTF]),
       edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)),
                      max_size=8),
       cut=st.integers(0, 1 << 16))
def test_mutated_blobs_only_raise_btf_error(blob, edits, cut):
    data = bytearray(blob)
    for pos, value in edits:
        data[pos % len(data)] = value
    data = bytes(data[:max(24, len(data) - cut % 64)])
    try:
        btf = parse_btf(data)
    except BtfError:
        return
    exercise(btf)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=512), str_len=st.integers(1, 64))
def test_random_type_sections_only_raise_btf_error(body, str_len):
    strings = b"\0" + b"a\0" * (str_len // 2)
    blob = header(type_len=len(body), str_off=len(body),
                  str_len=len(strings)) + body + strings
    try:
        btf = parse_btf(blob)
    except BtfError:
        return
    exercise(btf)
