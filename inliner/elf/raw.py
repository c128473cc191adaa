"""Stage 1 for bpftime's input: raw bytecode whose map references are relocated already.

bpftime hands its compiler (llvmbpf) a program's instructions as its shared
memory holds them: libbpf has rewritten each `lddw` of a map to src =
BPF_PSEUDO_MAP_FD with imm = the map's fd, and the maps' attributes (type,
key and value size, max entries) sit beside it; `bpftimetool export` writes
both as JSON. Here the fds become the `Ref`s and `MapDef`s an ELF's map
relocations give, so later stages see no difference; the object records the
fds, which `--abi bpftime` bakes as the maps' handles.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace

from .. import inputs
from ..errors import EbpfLtoError
from ..facts import isa, progtypes
from ..facts.maps import MAP_TYPE_IDS, MapDef
from .loader import from_raw
from .model import EbpfObject, Ref

U32 = 2**32


@dataclass(frozen=True)
class RawProgram:
    """A program as bpftime holds it: instructions, its type, and the maps by fd."""
    code: bytes
    name: str
    prog_type: str
    maps: dict[int, MapDef]


def parse_map_def(spec: str) -> tuple[int, MapDef]:
    """`FD=TYPE:KEY_SIZE:VALUE_SIZE:MAX_ENTRIES[:NAME]` (--map-def); TYPE a name
    (hash, array, ...) or the kernel's number; NAME by default map_FD."""
    usage = f"--map-def wants FD=TYPE:KEY_SIZE:VALUE_SIZE:MAX_ENTRIES[:NAME], not {spec!r}"
    fd_text, sep, attrs = spec.partition("=")
    fields = attrs.split(":", 4)
    if not sep or len(fields) < 4:
        raise EbpfLtoError(usage)
    try:
        fd, key_size, value_size, max_entries = (int(t, 0) for t in (fd_text, *fields[1:4]))
    except ValueError:
        raise EbpfLtoError(usage) from None
    kind = fields[0]
    map_type = MAP_TYPE_IDS.get(kind)
    if map_type is None:
        try:
            map_type = int(kind, 0)
        except ValueError:
            raise EbpfLtoError(f"--map-def {spec!r}: unknown map type {kind!r} (known: "
                               f"{', '.join(MAP_TYPE_IDS)}, or a number)") from None
    name = fields[4] if len(fields) > 4 and fields[4] else f"map_{fd}"
    return fd, _map_def(name, fd, map_type, key_size, value_size, max_entries, 0,
                        f"--map-def {spec!r}")


def _map_def(name: str, fd: int, map_type: int, key_size: int, value_size: int,
             max_entries: int, flags: int, where: str) -> MapDef:
    if not 0 <= fd < 2**31:
        raise EbpfLtoError(f"{where}: a file descriptor is 0 to {2**31 - 1}, not {fd}")
    for what, value in (("map type", map_type), ("key size", key_size),
                        ("value size", value_size), ("max entries", max_entries),
                        ("flags", flags)):
        if not 0 <= value < U32:
            raise EbpfLtoError(f"{where}: {what} {value} is not a 32-bit unsigned number")
    return MapDef(name, map_type, key_size, value_size, max_entries, flags)


def from_bpftime(path: str, program: str | None) -> RawProgram:
    """The program `program` (its name or fd; None: the only one) of a
    `bpftimetool export` file, with every map of the file by fd.

    The file is one JSON object by fd (bpftime's runtime/src/bpftime_shm_json.cpp):
    a "bpf_prog_handler" has "name" and "attr" {"type", "insns" (hex), "cnt"};
    a "bpf_map_handler" has "name" and "attr" {"map_type", "key_size",
    "value_size", "max_entries", "flags", ...}.
    """
    name = inputs.display_name(path)
    text = inputs.read(path, "bpftime export")[1]
    try:
        state = json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise EbpfLtoError(f"not a bpftimetool export: {err}", file=name) from None
    if not isinstance(state, dict):
        raise EbpfLtoError("not a bpftimetool export: not a JSON object by fd", file=name)
    try:
        handlers = [(int(fd), h) for fd, h in state.items() if isinstance(h, dict)]
        progs = [(fd, h) for fd, h in handlers if h.get("type") == "bpf_prog_handler"]
        chosen = [(fd, h) for fd, h in progs
                  if program is None or program in (str(fd), h.get("name"))]
        if not chosen or (program is None and len(chosen) > 1):
            names = ", ".join(f"{h.get('name')} (fd {fd})" for fd, h in progs) or "none"
            which = f"no program {program!r}" if program else "more than one program"
            raise EbpfLtoError(f"{which} in the export (programs: {names}); "
                               "name one with --program NAME_OR_FD", file=name)
        fd, prog = chosen[0]
        attr = prog["attr"]
        code = bytes.fromhex(attr["insns"])
        if len(code) != int(attr["cnt"]) * isa.INSN_SIZE:
            raise EbpfLtoError(f"program {prog['name']!r}: {len(code)} bytes of insns for "
                               f"cnt {attr['cnt']}", file=name)
        maps = {}
        for map_fd, h in handlers:
            if h.get("type") == "bpf_map_handler":
                a = h["attr"]
                maps[map_fd] = _map_def(
                    str(h.get("name") or f"map_{map_fd}"), map_fd, int(a["map_type"]),
                    int(a["key_size"]), int(a["value_size"]), int(a["max_entries"]),
                    int(a.get("flags", 0)), f"{name}: map fd {map_fd}")
        prog_type = progtypes.by_id(int(attr["type"]))
        if prog_type is None:
            raise EbpfLtoError(f"program {prog['name']!r}: unknown program type "
                               f"{attr['type']} (give it with --type)", file=name)
        return RawProgram(code, str(prog["name"]), prog_type, maps)
    except (KeyError, TypeError, ValueError) as err:
        raise EbpfLtoError(f"not a bpftimetool export: bad or missing field {err}",
                           file=name) from None


def load(raw: RawProgram, path: str) -> EbpfObject:
    """The object holding `raw`: each `lddw` of a map fd a `Ref` to its `MapDef`."""
    obj = from_raw(raw.code, raw.name, path)
    section = obj.programs[0].section
    used: dict[int, MapDef] = {}
    for idx, insn in enumerate(obj.code[section]):
        if insn is None or insn.opcode != isa.LD_IMM64 or insn.src == 0:
            continue
        if insn.src == isa.PSEUDO_MAP_VALUE:
            raise EbpfLtoError("lddw of a map's value (BPF_PSEUDO_MAP_VALUE) is not supported "
                               "in raw input", file=path, section=section, insn=idx)
        if insn.src != isa.PSEUDO_MAP_FD:
            continue  # the lifter refuses other pseudo loads with their reason
        fd = insn.imm
        if fd not in raw.maps:
            raise EbpfLtoError(f"lddw names map fd {fd}, and no map is given for it "
                               "(--map-def FD=..., or the export's maps)", file=path,
                               section=section, insn=idx)
        used[fd] = raw.maps[fd]
    # Names must be unique; bpftime's are cut to 15 bytes and need not be.
    names: dict[str, int] = {}
    for fd, m in sorted(used.items()):
        if m.name in names:
            used[fd] = m = replace(m, name=f"{m.name}_{fd}")
        names[m.name] = fd
    for idx, insn in enumerate(obj.code[section]):
        if insn is not None and insn.opcode == isa.LD_IMM64 and insn.src == isa.PSEUDO_MAP_FD:
            obj.refs[(section, idx)] = Ref("map", used[insn.imm].name)
    obj.maps = {m.name: m for _, m in sorted(used.items())}
    obj.map_fds = {m.name: fd for fd, m in used.items()}
    obj.programs = [replace(p, prog_type=raw.prog_type, type_from="raw")
                    for p in obj.programs]
    return obj
