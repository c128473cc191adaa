"""Parser for the .BTF ELF section (the BPF Type Format).

Record layouts follow include/uapi/linux/btf.h and Documentation/bpf/btf.rst
in Linux; map definitions are read the way libbpf's parse_btf_map_def does.
Only little-endian BTF is accepted, since that is what `clang -target bpf`
(bpfel) writes and what the x86-64 host we link for uses.

The input is untrusted: every malformed blob raises BtfError, loops are
walked iteratively with cycle detection, and all work is linear in the blob.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Mapping

from ..facts.maps import MAP_TYPE_IDS, MapDef, kernel_only_flags

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
HEADER_SIZE = 24          # the fields of struct btf_header
TYPE_HEADER_SIZE = 12     # struct btf_type
PTR_SIZE = 8              # BPF is a 64-bit target
U32_MAX = 0xFFFFFFFF
U64_MASK = (1 << 64) - 1
# Bits of btf_type.info that carry meaning (vlen, kind, kind_flag); the kernel
# rejects the others, and so do we.
INFO_MASK = 0x9F00FFFF
# Longest name a type record may carry. The kernel refuses identifiers of
# KSYM_NAME_LEN (512) or more; applying that bound to every string a record
# names keeps a hostile blob from making us copy O(n^2) bytes of suffixes.
MAX_NAME_LEN = 511

# Kind numbers are the indices (BTF_KIND_*); 0 (BTF_KIND_UNKN) is only void.
KINDS = ("void", "int", "ptr", "array", "struct", "union", "enum", "fwd",
         "typedef", "volatile", "const", "restrict", "func", "func_proto",
         "var", "datasec", "float", "decl_tag", "type_tag", "enum64")

# INT encoding bits.
INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4
# Linkage of VAR (btf_var.linkage) and FUNC (vlen).
LINKAGE_STATIC, LINKAGE_GLOBAL, LINKAGE_EXTERN = 0, 1, 2

# The kernel's BPF_MAP_TYPE_* numbers that change how a definition is read.
MAP_TYPE_PROG_ARRAY = MAP_TYPE_IDS["prog_array"]
MAP_TYPE_ARRAY_OF_MAPS = MAP_TYPE_IDS["array_of_maps"]
MAP_TYPE_HASH_OF_MAPS = MAP_TYPE_IDS["hash_of_maps"]
# libbpf's enum libbpf_pin_type.
PIN_NONE = 0

MODIFIERS = frozenset(("typedef", "volatile", "const", "restrict", "type_tag"))
_SIZED = frozenset(("int", "struct", "union", "enum", "enum64", "float", "datasec"))
_HDR = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")


class BtfError(ValueError):
    """Malformed BTF, or BTF that does not describe what was asked of it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Member:
    """A struct/union member (struct btf_member)."""
    name: str
    type: int
    bit_offset: int
    bitfield_size: int = 0   # 0 unless the struct's kind_flag marks a bitfield


@dataclass(frozen=True, slots=True)
class Enumerator:
    """An ENUM/ENUM64 value, signed when the enum's kind_flag says so."""
    name: str
    value: int


@dataclass(frozen=True, slots=True)
class Param:
    """A FUNC_PROTO parameter; type 0 on the last one means `...`."""
    name: str
    type: int


@dataclass(frozen=True, slots=True)
class VarSecinfo:
    """A DATASEC entry (struct btf_var_secinfo)."""
    type: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class BtfType:
    """One type record. Fields a kind does not use keep their defaults.

    `size` is used by int/struct/union/enum/enum64/float/datasec; `type` is
    the referenced type of ptr/modifiers/typedef/func/var/decl_tag, the
    element type of an array and the return type of a func_proto.
    `kind_flag` means: bitfield-encoded member offsets (struct/union),
    signed values (enum/enum64), a union (fwd), an attribute tag (tags).
    """
    id: int
    kind: str
    name: str = ""
    size: int = 0
    type: int = 0
    kind_flag: bool = False
    members: tuple[Member, ...] = ()
    enumerators: tuple[Enumerator, ...] = ()
    params: tuple[Param, ...] = ()
    vars: tuple[VarSecinfo, ...] = ()
    encoding: int = 0        # int: INT_SIGNED | INT_CHAR | INT_BOOL
    bits: int = 0            # int: value bits
    bit_offset: int = 0      # int: first value bit within `size` bytes
    index_type: int = 0      # array
    nelems: int = 0          # array
    linkage: int = 0         # func, var: LINKAGE_*
    component_idx: int = -1  # decl_tag: member/param index, -1 for the type


@dataclass(frozen=True, slots=True)
class DatasecVar:
    """A variable (or extern function) placed in a DATASEC.

    `offset` is None while the DATASEC is not laid out: clang leaves the
    size and all offsets of every DATASEC at 0 in an object file (the real
    offsets come from .rel.BTF), see Btf.fixup_datasec.
    """
    name: str
    var_id: int       # the VAR (or FUNC) record
    type_id: int      # the variable's type
    offset: int | None
    size: int


@dataclass(frozen=True, slots=True)
class BtfMapDef:
    """A BTF-defined map, as libbpf's parse_btf_map_def reads it.

    `offset` is the variable's offset in `.maps` (None until the DATASEC is
    laid out, see DatasecVar). `has_values` marks an `__array(values, ...)`
    member: the initial slots of a map-in-map or prog array are relocations
    in `.rel.maps`; `inner` is the inner map's definition (map-in-map only).
    """
    name: str
    type: int
    key_size: int = 0
    value_size: int = 0
    max_entries: int = 0
    map_flags: int = 0
    numa_node: int = 0
    pinning: int = PIN_NONE
    map_extra: int = 0
    key_type_id: int | None = None
    value_type_id: int | None = None
    offset: int | None = None
    has_values: bool = False
    inner: BtfMapDef | None = None

    def kernel_only(self) -> dict[str, int | str]:
        """The attributes set that only a kernel acts on, which userspace ignores
        (the inner map's too)."""
        found: dict[str, int | str] = {
            k: v for k, v in (("pinning", self.pinning), ("numa_node", self.numa_node),
                              ("map_extra", self.map_extra),
                              ("map_flags", kernel_only_flags(self.map_flags))) if v}
        if self.inner is not None:
            found.update({f"inner {k}": v for k, v in self.inner.kernel_only().items()})
        return found

    def geometry(self) -> MapDef:
        """The map as the later stages see it (facts/maps.py)."""
        return MapDef(self.name, self.type, self.key_size, self.value_size, self.max_entries,
                      self.map_flags, self.inner.name if self.inner is not None else None)


class Btf:
    """Parsed BTF: `types[id]` is the type with that id (0 is void)."""

    def __init__(self, types: list[BtfType], strings: bytes):
        self.types = types
        self.strings = strings   # the raw string section
        self._resolved: dict[int, BtfType] = {}
        self._sizes: dict[int, int] = {}
        self._names: dict[str, list[BtfType]] | None = None

    def string(self, offset: int) -> str:
        """The NUL-terminated string at `offset` in the string section."""
        if not 0 <= offset < len(self.strings):
            raise BtfError(f"string offset {offset} is outside the "
                           f"{len(self.strings)}-byte string section")
        end = self.strings.index(b"\0", offset)   # the section ends in NUL
        return _decode(self.strings[offset:end], offset)

    def type(self, type_id: int) -> BtfType:
        """types[type_id], with a BtfError rather than an IndexError."""
        if not 0 <= type_id < len(self.types):
            raise BtfError(f"type id {type_id} is out of range "
                           f"(the BTF has {len(self.types)} ids)")
        return self.types[type_id]

    def by_name(self, name: str, kind: str | None = None) -> list[BtfType]:
        """All types called `name` (names are not unique: a struct and a
        typedef often share one), optionally only those of one kind."""
        if self._names is None:
            self._names = {}
            for t in self.types:
                self._names.setdefault(t.name, []).append(t)
        return [t for t in self._names.get(name, ())
                if kind is None or t.kind == kind]

    def resolve(self, type_id: int) -> BtfType:
        """The type behind typedefs, cv-qualifiers, restrict and type tags."""
        t = self.type(type_id)
        path: dict[int, None] = {}   # insertion-ordered set, for the message
        while t.kind in MODIFIERS:
            done = self._resolved.get(t.id)
            if done is not None:
                t = done
                break
            if t.id in path:
                raise BtfError(f"type [{type_id}] is in a loop: "
                               f"{_chain(path, t.id)}")
            path[t.id] = None
            t = self.types[t.type]
        for tid in path:
            self._resolved[tid] = t
        return t

    def sizeof(self, type_id: int) -> int:
        """Size in bytes, as libbpf's btf__resolve_size computes it."""
        t = self.type(type_id)
        path: dict[int, BtfType] = {}
        while True:
            size = self._sizes.get(t.id)
            if size is not None:
                break
            if t.id in path:
                raise BtfError(f"type [{type_id}] is in a loop: "
                               f"{_chain(path, t.id)}")
            if t.kind in _SIZED:
                size = t.size
                break
            if t.kind == "ptr":
                size = PTR_SIZE
                break
            if t.kind not in MODIFIERS and t.kind not in ("var", "array"):
                raise BtfError(f"type [{type_id}] has no size: it is "
                               f"{_describe(t)}")
            path[t.id] = t
            t = self.types[t.type]
        # Unwind from the innermost type out, so every step is memoised.
        for t in reversed(path.values()):
            if t.kind == "array":
                size *= t.nelems
                if size > U32_MAX:
                    raise BtfError(f"type [{type_id}] is larger than 4 GiB")
            self._sizes[t.id] = size
        return size

    def _datasec(self, name: str) -> BtfType | None:
        found = self.by_name(name, "datasec")
        if len(found) > 1:
            raise BtfError(f"{len(found)} DATASECs are called {name!r}")
        return found[0] if found else None

    def datasec(self, name: str) -> list[DatasecVar]:
        """The variables of the DATASEC for ELF section `name`."""
        sec = self._datasec(name)
        if sec is None:
            raise KeyError(name)
        result = []
        for i, info in enumerate(sec.vars):
            var = self.types[info.type]
            if var.kind not in ("var", "func"):
                raise BtfError(f"entry {i} of DATASEC {name!r} is "
                               f"{_describe(var)}, not a var")
            result.append(DatasecVar(var.name, var.id, var.type,
                                     info.offset if sec.size else None,
                                     info.size))
        return result

    def fixup_datasec(self, name: str, size: int,
                      offsets: Mapping[str, int]) -> Btf:
        """Lay out DATASEC `name` the way libbpf's btf_fixup_datasec does.

        `size` is the ELF section's size and `offsets` maps the names of the
        symbols defined in that section to their st_value. A DATASEC that
        already has a size (a linked object) is left as it is.
        """
        sec = self._datasec(name)
        if sec is None:
            raise KeyError(name)
        if sec.size:
            return self
        placed = []
        for entry in self.datasec(name):
            if entry.name not in offsets:
                raise BtfError(f"no symbol for variable {entry.name!r} "
                               f"of DATASEC {name!r}")
            offset = offsets[entry.name]
            if offset < 0 or offset + entry.size > size:
                raise BtfError(f"variable {entry.name!r} at {offset} "
                               f"(+{entry.size}) is outside section {name!r} "
                               f"of {size} bytes")
            placed.append(VarSecinfo(entry.var_id, offset, entry.size))
        types = list(self.types)
        types[sec.id] = replace(sec, size=size, vars=tuple(placed))
        return Btf(types, self.strings)

    def map_definitions(self, strict: bool = True) -> list[BtfMapDef]:
        """The BTF-defined maps: each VAR of the `.maps` DATASEC; the first bad one raises.

        Unknown members of a definition are an error, as in libbpf by
        default; strict=False ignores them, as libbpf's `relaxed_maps` open
        option does. libbpf is strict because a member it does not know
        (say, from newer headers) would otherwise be silently dropped and
        the map created with a different geometry than the program expects.
        """
        maps = []
        for _, _, found in self.map_entries(strict):
            if isinstance(found, BtfError):
                raise found
            maps.append(found)
        return maps

    def map_entries(self, strict: bool = True) -> list[tuple[str, int, BtfMapDef | BtfError]]:
        """Each map of `.maps` as (name, offset, its definition or why it cannot be used).

        A bad definition concerns its map alone: the loader refuses that map
        and what uses it, and loads the rest.
        """
        sec = self._datasec(".maps")
        if sec is None:
            return []
        out: list[tuple[str, int, BtfMapDef | BtfError]] = []
        for i, entry in enumerate(self.datasec(".maps")):
            try:
                found = replace(self._map_entry(i, entry, sec, strict), offset=entry.offset)
            except BtfError as err:
                found = err
            out.append((entry.name, entry.offset, found))
        return out

    def _map_entry(self, i: int, entry: DatasecVar, sec: BtfType, strict: bool) -> BtfMapDef:
        var = self.types[entry.var_id]
        if not entry.name:
            raise BtfError(f"map #{i} in .maps has an empty name")
        if var.kind != "var":
            raise BtfError(f"map {entry.name!r}: {_describe(var)} "
                           "is not a variable")
        if var.linkage != LINKAGE_GLOBAL:
            # libbpf refuses static and extern maps (-EOPNOTSUPP).
            raise BtfError(f"map {entry.name!r}: unsupported linkage "
                           f"{_linkage(var.linkage)}")
        if sec.size and entry.offset + entry.size > sec.size:
            raise BtfError(f"map {entry.name!r} lies outside .maps")
        def_t = self.resolve(entry.type_id)
        if def_t.kind != "struct":
            raise BtfError(f"map {entry.name!r}: definition is "
                           f"{_describe(def_t)}, not a struct")
        if def_t.size > entry.size:
            raise BtfError(f"map {entry.name!r}: definition of "
                           f"{def_t.size} bytes exceeds the variable's "
                           f"{entry.size}")
        return self._map_def(entry.name, def_t, strict, inner_allowed=True)

    def context_struct(self, function: str) -> str | None:
        """The struct the first parameter of `function` points at (a program's
        context), or None when the BTF does not say."""
        try:
            funcs = self.by_name(function, "func")
            proto = self.resolve(funcs[0].type) if len(funcs) == 1 else None
            if proto is None or proto.kind != "func_proto" or not proto.params:
                return None
            ptr = self.resolve(proto.params[0].type)
            target = self.resolve(ptr.type) if ptr.kind == "ptr" else None
        except BtfError:
            return None
        return target.name if target is not None and target.kind == "struct" else None

    def _map_def(self, name: str, def_t: BtfType, strict: bool,
                 inner_allowed: bool) -> BtfMapDef:
        fields: dict = {}
        last = len(def_t.members) - 1
        for i, m in enumerate(def_t.members):
            if m.name in ("type", "max_entries", "map_flags", "numa_node"):
                fields[m.name] = self._map_int(name, m)
            elif m.name in ("key_size", "value_size"):
                _set_size(name, fields, m.name, self._map_int(name, m))
            elif m.name in ("key", "value"):
                ptr = self.types[m.type]
                if ptr.kind != "ptr":
                    raise BtfError(f"map {name!r}: {m.name} spec is "
                                   f"{_describe(ptr)}, not a pointer")
                _set_size(name, fields, m.name + "_size", self.sizeof(ptr.type))
                fields[m.name + "_type_id"] = ptr.type
            elif m.name == "values":
                if not inner_allowed:
                    raise BtfError(f"map {name!r}: multi-level inner maps "
                                   "are not supported")
                if i != last:
                    raise BtfError(f"map {name!r}: 'values' must be the "
                                   "last member")
                fields.update(self._map_values(name, fields, m, strict))
            elif m.name == "pinning":
                # Any value, as cilium/ebpf takes (Cilium's loader has its
                # own): pinning means nothing in userspace (kernel_only).
                fields["pinning"] = self._map_int(name, m)
            elif m.name == "map_extra":
                fields["map_extra"] = self._map_long(name, m)
            elif strict:
                raise BtfError(f"map {name!r}: unknown member {m.name!r}")
        if not fields.get("type"):
            raise BtfError(f"map {name!r}: map type isn't specified")
        return BtfMapDef(name, **fields)

    def _map_values(self, name: str, fields: dict, m: Member,
                    strict: bool) -> dict:
        """Read `__array(values, T)`: a zero-length array of pointers to T."""
        map_type = fields.get("type", 0)
        in_map = map_type in (MAP_TYPE_ARRAY_OF_MAPS, MAP_TYPE_HASH_OF_MAPS)
        if not in_map and map_type != MAP_TYPE_PROG_ARRAY:
            raise BtfError(f"map {name!r}: 'values' needs a map-in-map or "
                           "prog-array map")
        _set_size(name, fields, "value_size", 4)   # slots hold fds/ids
        arr = self.types[m.type]
        if arr.kind != "array" or arr.nelems:
            raise BtfError(f"map {name!r}: 'values' is not a zero-sized array")
        ptr = self.resolve(arr.type)
        if ptr.kind != "ptr":
            raise BtfError(f"map {name!r}: 'values' elements are "
                           f"{_describe(ptr)}, not pointers")
        target = self.resolve(ptr.type)
        if not in_map:
            if target.kind != "func_proto":
                raise BtfError(f"map {name!r}: prog-array values point to "
                               f"{_describe(target)}, not a function")
            return {"has_values": True}
        if target.kind != "struct":
            raise BtfError(f"map {name!r}: inner map definition is "
                           f"{_describe(target)}, not a struct")
        inner = self._map_def(name + ".inner", target, strict,
                              inner_allowed=False)
        return {"has_values": True, "inner": inner}

    def _map_int(self, name: str, m: Member) -> int:
        """Read `__uint(name, val)`, i.e. `int (*name)[val]`."""
        ptr = self.resolve(m.type)
        if ptr.kind != "ptr":
            raise BtfError(f"map {name!r}: member {m.name!r} is "
                           f"{_describe(ptr)}, expected a pointer")
        arr = self.types[ptr.type]   # libbpf does not skip modifiers here
        if arr.kind != "array":
            raise BtfError(f"map {name!r}: member {m.name!r} points to "
                           f"{_describe(arr)}, expected an array")
        return arr.nelems

    def _map_long(self, name: str, m: Member) -> int:
        """Read a 64-bit member: `__uint` or `__ulong(name, val)`, the latter
        being a one-value anonymous enum (ENUM64 when val needs it)."""
        t = self.resolve(m.type)
        if t.kind == "ptr":
            return self._map_int(name, m)
        if t.kind not in ("enum", "enum64") or len(t.enumerators) != 1:
            raise BtfError(f"map {name!r}: member {m.name!r} is "
                           f"{_describe(t)}, expected a pointer or a "
                           "one-value enum")
        value = t.enumerators[0].value
        if t.kind == "enum":
            # libbpf stores the enum's __s32 into a __u64: sign-extended.
            value = _signed(value & U32_MAX, 32)
        return value & U64_MASK


def _set_size(name: str, fields: dict, key: str, size: int) -> None:
    """Set key_size/value_size, refusing two different answers as libbpf does
    (e.g. both `key_size` and `key` given)."""
    old = fields.get(key, 0)
    if old and old != size:
        raise BtfError(f"map {name!r}: conflicting {key} {old} != {size}")
    fields[key] = size


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def _decode(raw: bytes, offset: int) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise BtfError(f"string at offset {offset} is not UTF-8") from None


def _describe(t: BtfType) -> str:
    return f"{t.kind} [{t.id}]" + (f" {t.name!r}" if t.name else "")


def _linkage(linkage: int) -> str:
    return {LINKAGE_STATIC: "static", LINKAGE_EXTERN: "extern"}.get(
        linkage, str(linkage))


def _chain(path, again: int) -> str:
    ids = [f"[{tid}]" for tid in path]
    if len(ids) > 8:   # a hostile loop can be as long as the blob
        ids[4:-2] = [f"... {len(ids) - 6} more ..."]
    return " -> ".join(ids) + f" -> [{again}]"


def parse_btf(data: bytes) -> Btf:
    """Parse a .BTF section. Raises BtfError on any malformed input."""
    data = bytes(data)
    if len(data) < HEADER_SIZE:
        raise BtfError(f"{len(data)} bytes is too short for the "
                       f"{HEADER_SIZE}-byte BTF header")
    (magic, version, flags, hdr_len,
     type_off, type_len, str_off, str_len) = _HDR.unpack_from(data)
    if magic == 0x9FEB:
        raise BtfError("big-endian BTF is not supported (only bpfel objects)")
    if magic != BTF_MAGIC:
        raise BtfError(f"bad magic 0x{magic:04x}, expected 0x{BTF_MAGIC:04x}")
    if version != BTF_VERSION:
        raise BtfError(f"unsupported BTF version {version}")
    if flags:
        raise BtfError(f"unsupported BTF header flags 0x{flags:x}")
    if hdr_len < HEADER_SIZE:
        raise BtfError(f"header length {hdr_len} is below {HEADER_SIZE}")
    if hdr_len > len(data):
        raise BtfError(f"header length {hdr_len} exceeds the "
                       f"{len(data)}-byte blob")
    # A longer header is fine only if the fields we don't know are zero, as
    # the kernel checks: non-zero ones would carry meaning we'd ignore.
    if any(data[HEADER_SIZE:hdr_len]):
        raise BtfError(f"header has unknown non-zero fields "
                       f"(length {hdr_len})")
    body = len(data) - hdr_len
    if type_off + type_len > body:
        raise BtfError(f"type section [{type_off}, +{type_len}) lies outside "
                       f"the {body} bytes after the header")
    if str_off + str_len > body:
        raise BtfError(f"string section [{str_off}, +{str_len}) lies outside "
                       f"the {body} bytes after the header")
    if type_off % 4:
        raise BtfError(f"type section offset {type_off} is not 4-aligned")
    if type_len and str_len and (type_off < str_off + str_len
                                 and str_off < type_off + type_len):
        raise BtfError("type and string sections overlap")
    strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
    if not strings or strings[0] or strings[-1]:
        raise BtfError("string section must start and end with a NUL byte")
    types = _parse_types(data, hdr_len + type_off, type_len, strings)
    _check_references(types)
    return Btf(types, strings)


# Bytes following struct btf_type: fixed, and per vlen entry.
_EXTRA_SIZE = dict.fromkeys(KINDS, 0) | {
    "int": 4, "array": 12, "var": 4, "decl_tag": 4}
_VLEN_SIZE = dict.fromkeys(KINDS, 0) | {
    "struct": 12, "union": 12, "enum": 8, "func_proto": 8, "datasec": 12,
    "enum64": 12}


def _parse_types(data: bytes, start: int, length: int,
                 strings: bytes) -> list[BtfType]:
    names: dict[int, str] = {}

    def name(offset: int, tid: int) -> str:
        cached = names.get(offset)
        if cached is not None:
            return cached
        if offset >= len(strings):
            raise BtfError(f"type [{tid}] names string offset {offset}, "
                           f"outside the {len(strings)}-byte string section")
        end = strings.find(b"\0", offset, offset + MAX_NAME_LEN + 1)
        if end < 0:
            raise BtfError(f"type [{tid}] names a string at {offset} longer "
                           f"than {MAX_NAME_LEN} bytes")
        names[offset] = text = _decode(strings[offset:end], offset)
        return text

    types = [BtfType(0, "void")]
    pos, end = start, start + length
    while pos < end:
        tid = len(types)
        if end - pos < TYPE_HEADER_SIZE:
            raise BtfError(f"type [{tid}] is truncated")
        name_off, info, size_or_type = _TYPE.unpack_from(data, pos)
        pos += TYPE_HEADER_SIZE
        if info & ~INFO_MASK:
            raise BtfError(f"type [{tid}] sets reserved info bits "
                           f"(info 0x{info:08x})")
        kind_no = (info >> 24) & 0x1F
        if not 0 < kind_no < len(KINDS):
            raise BtfError(f"type [{tid}] has unknown kind {kind_no}")
        kind = KINDS[kind_no]
        vlen = info & 0xFFFF
        common = {"id": tid, "kind": kind, "name": name(name_off, tid),
                  "kind_flag": bool(info >> 31)}
        extra = _EXTRA_SIZE[kind] + vlen * _VLEN_SIZE[kind]
        if end - pos < extra:
            raise BtfError(f"{kind} [{tid}] is truncated: needs {extra} "
                           f"more bytes, {end - pos} left")
        if kind in ("int", "float", "datasec", "struct", "union",
                    "enum", "enum64"):
            common["size"] = size_or_type
        elif kind not in ("array", "fwd"):
            common["type"] = size_or_type
        if kind == "int":
            (word,) = struct.unpack_from("<I", data, pos)
            common.update(encoding=(word >> 24) & 0x0F,
                          bit_offset=(word >> 16) & 0xFF, bits=word & 0xFF)
        elif kind == "array":
            elem, index, nelems = struct.unpack_from("<III", data, pos)
            common.update(type=elem, index_type=index, nelems=nelems)
        elif kind in ("struct", "union"):
            bitfields = common["kind_flag"]
            members = []
            for m_name, m_type, off in struct.iter_unpack(
                    "<III", data[pos:pos + extra]):
                if bitfields:
                    members.append(Member(name(m_name, tid), m_type,
                                          off & 0xFFFFFF, off >> 24))
                else:
                    members.append(Member(name(m_name, tid), m_type, off))
            common["members"] = tuple(members)
        elif kind == "enum":
            fmt = "<Ii" if common["kind_flag"] else "<II"
            common["enumerators"] = tuple(
                Enumerator(name(e_name, tid), value)
                for e_name, value in struct.iter_unpack(
                    fmt, data[pos:pos + extra]))
        elif kind == "enum64":
            signed = common["kind_flag"]
            common["enumerators"] = tuple(
                Enumerator(name(e_name, tid),
                           _signed(hi << 32 | lo, 64) if signed else hi << 32 | lo)
                for e_name, lo, hi in struct.iter_unpack(
                    "<III", data[pos:pos + extra]))
        elif kind == "func":
            common["linkage"] = vlen
        elif kind == "func_proto":
            common["params"] = tuple(
                Param(name(p_name, tid), p_type)
                for p_name, p_type in struct.iter_unpack(
                    "<II", data[pos:pos + extra]))
        elif kind == "var":
            (common["linkage"],) = struct.unpack_from("<I", data, pos)
        elif kind == "datasec":
            common["vars"] = tuple(
                VarSecinfo(*v) for v in struct.iter_unpack(
                    "<III", data[pos:pos + extra]))
        elif kind == "decl_tag":
            (idx,) = struct.unpack_from("<i", data, pos)
            if idx < -1:
                raise BtfError(f"decl_tag [{tid}] has component index {idx}")
            common["component_idx"] = idx
        types.append(BtfType(**common))
        pos += extra
    return types


def _check_references(types: list[BtfType]) -> None:
    """Every type id a record names must exist, so walks never index out."""
    count = len(types)
    for t in types:
        refs = [t.type, *(m.type for m in t.members),
                *(p.type for p in t.params), *(v.type for v in t.vars)]
        if t.kind == "array":
            refs.append(t.index_type)
        for ref in refs:
            if ref >= count:
                raise BtfError(f"{_describe(t)} refers to type [{ref}], "
                               f"but the last id is {count - 1}")
