"""Stage 1, load: an eBPF ELF object (as `clang -target bpf` writes it) to plain data.

The result, `EbpfObject`, names every function, program, map and data
section of the object and resolves every relocation of its code to a
`Ref`; later stages never look at the ELF again.
"""
from __future__ import annotations

import io
import struct

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .. import inputs
from ..errors import EbpfLtoError
from ..facts import isa
from ..facts.maps import MapDef
from .model import DataSection, EbpfObject, FuncKey, Function, Program, Ref

EM_BPF = 247
R_BPF_64_64 = 1       # ld_imm64: map, global data or function address
R_BPF_64_ABS64 = 2    # a 64-bit address in data (a pointer in an initialized global)
R_BPF_64_ABS32 = 3
R_BPF_64_32 = 10      # call imm: bpf-to-bpf call
SHF_EXECINSTR = 0x4
SHF_WRITE = 0x1

# Section-name prefixes to program types; the type says what r1 points at
# (docs/abi.md). Section `raw` (or `raw/...`), userspace only: r1 is a memory
# buffer and r2 its length.
PROGRAM_TYPES: tuple[tuple[str, str], ...] = (
    ("xdp", "xdp"), ("tc", "sched_cls"), ("classifier", "sched_cls"),
    ("action", "sched_act"), ("tcx/", "sched_cls"), ("socket", "socket_filter"),
    ("sk_skb", "sk_skb"), ("sk_msg", "sk_msg"), ("uprobe", "kprobe"),
    ("uretprobe", "kprobe"), ("usdt", "kprobe"), ("kprobe", "kprobe"),
    ("kretprobe", "kprobe"), ("ksyscall", "kprobe"), ("tracepoint", "tracepoint"),
    ("tp/", "tracepoint"), ("raw_tracepoint", "raw_tracepoint"),
    ("raw_tp", "raw_tracepoint"), ("tp_btf", "tracing"), ("fentry", "tracing"),
    ("fexit", "tracing"), ("fmod_ret", "tracing"), ("iter", "tracing"),
    ("perf_event", "perf_event"), ("cgroup_skb", "cgroup_skb"),
    ("cgroup/skb", "cgroup_skb"), ("cgroup", "cgroup"), ("sockops", "sock_ops"),
    ("lwt_", "lwt"), ("flow_dissector", "flow_dissector"), ("lsm", "lsm"),
    ("struct_ops", "struct_ops"), ("syscall", "syscall"),
)

LEGACY_MAP_FIELDS = ("type", "key_size", "value_size", "max_entries", "map_flags")


def program_type(section: str) -> str:
    if section == "raw" or section.startswith("raw/"):
        return "raw"
    for prefix, kind in PROGRAM_TYPES:
        if section.startswith(prefix):
            return kind
    return "unspec"


def from_raw(code: bytes, name: str = "main", path: str = "<raw>") -> EbpfObject:
    """An object holding one program given as raw instruction bytes.

    Local calls are resolved pc-relative, as in any code section.
    """
    section = "raw"
    try:
        slots = isa.decode(code)
    except isa.DecodeError as err:
        raise EbpfLtoError(err.reason, file=path, section=section, insn=err.index) from None
    if not slots:
        raise EbpfLtoError("program has no instructions", file=path)
    refs: dict[tuple[str, int], Ref] = {}
    starts = {0: name}
    for idx, insn in enumerate(slots):
        if insn is not None and _is_local_call(insn):
            target = idx + insn.imm + 1
            _check_target(slots, target, path, section, idx)
            refs[(section, idx)] = Ref("call", function=FuncKey(section, target))
            starts.setdefault(target, f"func_{target}")
    functions = _split_functions(section, slots, starts)
    entry = FuncKey(section, 0)
    return EbpfObject(path, {section: slots}, refs, functions,
                      [Program(name, section, "raw", entry)])


def load(path: str, data: bytes | None = None) -> EbpfObject:
    if data is None:
        _, data = inputs.read(path, "input", (inputs.ELF,))
    try:
        return _Loader(path, data).run()
    except EbpfLtoError as err:
        raise err.located(file=path)
    except (ELFError, struct.error, ValueError, KeyError, IndexError,
            AttributeError, TypeError, UnicodeDecodeError, AssertionError) as err:
        # pyelftools reports a damaged file through many exception types.
        raise EbpfLtoError(f"malformed ELF file: {err or type(err).__name__}", file=path) from None


class _Loader:
    def __init__(self, path: str, data: bytes):
        self.path = path
        if data[:4] != b"\x7fELF":
            raise EbpfLtoError("not an ELF file", file=path)
        self.elf = ELFFile(io.BytesIO(data))
        if self.elf.elfclass != 64:
            raise EbpfLtoError("not a 64-bit ELF file", file=path)
        if not self.elf.little_endian:
            raise EbpfLtoError("big-endian eBPF (bpfeb) is not supported; build with -target bpfel")
        if self.elf["e_machine"] not in ("EM_BPF", EM_BPF):
            raise EbpfLtoError(f"not an eBPF object (machine {self.elf['e_machine']})")
        self.sections = list(self.elf.iter_sections())
        self.symtab = self.elf.get_section_by_name(".symtab")
        if self.symtab is None:
            raise EbpfLtoError("object has no symbol table")
        self.symbols = list(self.symtab.iter_symbols())
        self._check_names_and_indices()

    def _check_names_and_indices(self) -> None:
        """pyelftools reads past a table silently; a damaged file must be refused instead."""
        shstrndx = self.elf["e_shstrndx"]
        if not isinstance(shstrndx, int) or not 0 < shstrndx < len(self.sections):
            raise EbpfLtoError("the section name table does not exist")
        names = self.sections[shstrndx]["sh_size"]
        for i, sec in enumerate(self.sections):
            if sec["sh_name"] >= max(names, 1) and i:
                raise EbpfLtoError(f"the name of section {i} lies outside the section name table")
        link = self.symtab["sh_link"]
        if not 0 < link < len(self.sections):
            raise EbpfLtoError("the symbol table's string table does not exist")
        strings = self.sections[link]["sh_size"]
        for i, sym in enumerate(self.symbols):
            if sym["st_name"] >= max(strings, 1) and i:
                raise EbpfLtoError(f"the name of symbol {i} lies outside the string table")
            shndx = sym["st_shndx"]
            if isinstance(shndx, int) and shndx >= len(self.sections):
                raise EbpfLtoError(f"symbol {sym.name or i!r} is in section {shndx}, "
                                   "which does not exist")

    def run(self) -> EbpfObject:
        code = {}
        for sec in self.sections:
            if sec["sh_type"] == "SHT_PROGBITS" and sec["sh_flags"] & SHF_EXECINSTR and sec["sh_size"]:
                try:
                    code[sec.name] = isa.decode(sec.data())
                except isa.DecodeError as err:
                    raise EbpfLtoError(err.reason, section=sec.name, insn=err.index) from None
        data = self._data_sections()
        maps, map_at = self._maps()
        refs = self._relocations(code, data, map_at)
        data_refs = self._data_relocations(code, data, map_at)
        starts: dict[str, dict[int, str]] = {name: {} for name in code}
        programs = []
        for sym in self.symbols:
            sec = self._symbol_section(sym)
            if sec is None or sec.name not in code or sym["st_info"]["type"] != "STT_FUNC":
                continue
            start = self._slot(sym["st_value"], sec.name)
            starts[sec.name][start] = sym.name
            if sec.name != ".text":
                programs.append(Program(sym.name, sec.name, program_type(sec.name),
                                        FuncKey(sec.name, start)))
        # With no program section, global functions in .text are the programs, as
        # older libbpf took them.
        if not programs:
            for sym in self.symbols:
                sec = self._symbol_section(sym)
                if (sec is not None and sec.name == ".text" and sym["st_info"]["type"] == "STT_FUNC"
                        and sym["st_info"]["bind"] == "STB_GLOBAL"):
                    programs.append(Program(sym.name, ".text", "unspec",
                                            FuncKey(".text", self._slot(sym["st_value"], ".text"))))
        # A section of code with no function symbol is one program (older clang).
        for name, slots in code.items():
            if name != ".text" and not starts[name]:
                label = name.replace("/", "_").replace("-", "_")
                starts[name][0] = label
                programs.append(Program(label, name, program_type(name), FuncKey(name, 0)))
        # bpf-to-bpf call targets with no symbol of their own (static functions).
        for ref in (*refs.values(), *data_refs.values()):
            if ref.function is not None:
                fk = ref.function
                starts[fk.section].setdefault(fk.start, f"{fk.section.strip('.')}_{fk.start}")
        functions = {}
        for name, slots in code.items():
            functions.update(_split_functions(name, slots, starts[name]))
        # Unrelocated local calls are pc-relative within their section.
        for sec_name, slots in code.items():
            for idx, insn in enumerate(slots):
                if insn is not None and _is_local_call(insn) and (sec_name, idx) not in refs:
                    target = idx + insn.imm + 1
                    _check_target(slots, target, self.path, sec_name, idx)
                    fk = FuncKey(sec_name, target)
                    refs[(sec_name, idx)] = Ref("call", function=fk)
                    if fk not in functions:
                        starts[sec_name][target] = f"{sec_name.strip('.')}_{target}"
                        functions.update(_split_functions(sec_name, slots, starts[sec_name]))
        programs.sort(key=lambda p: (self._section_index(p.section), p.entry.start))
        lic = self.elf.get_section_by_name("license")
        license_text = lic.data().split(b"\0")[0].decode("latin-1") if lic is not None else ""
        return EbpfObject(self.path, code, refs, functions, programs, maps, data, license_text,
                          data_refs)

    def _section_index(self, name: str) -> int:
        for i, sec in enumerate(self.sections):
            if sec.name == name:
                return i
        return len(self.sections)

    def _symbol_section(self, sym):
        shndx = sym["st_shndx"]
        if not isinstance(shndx, int) or not 0 < shndx < len(self.sections):
            return None
        return self.sections[shndx]

    def _slot(self, byte_offset: int, section: str) -> int:
        if byte_offset % isa.INSN_SIZE:
            raise EbpfLtoError(f"symbol offset {byte_offset} is not instruction-aligned",
                               section=section)
        return byte_offset // isa.INSN_SIZE

    def _data_sections(self) -> dict[str, DataSection]:
        out = {}
        for sec in self.sections:
            name = sec.name
            if not (name in (".data", ".bss") or name.startswith((".rodata", ".data.", ".bss."))):
                continue
            if sec["sh_flags"] & SHF_EXECINSTR:
                continue
            if sec["sh_size"] > 1 << 28:
                raise EbpfLtoError(f"data section of {sec['sh_size']} bytes is too large", section=name)
            if sec["sh_type"] == "SHT_NOBITS":
                content = bytes(sec["sh_size"])
            else:
                content = sec.data()
            out[name] = DataSection(name, content, bool(sec["sh_flags"] & SHF_WRITE))
        return out

    def _maps(self) -> tuple[dict[str, MapDef], dict[tuple[str, int], str]]:
        """Maps from the legacy `maps` section and from BTF `.maps`.

        Returns the maps by name and a lookup from (section, offset) to map
        name for relocations against a section symbol.
        """
        maps: dict[str, MapDef] = {}
        at: dict[tuple[str, int], str] = {}
        for sec in self.sections:
            if sec.name == "maps" or sec.name.startswith("maps/"):
                syms = sorted((s for s in self.symbols if self._symbol_section(s) is sec),
                              key=lambda s: s["st_value"])
                if not syms:
                    continue
                content = sec.data()
                # libbpf's rule: the definition size is the section size over the map count.
                def_size = len(content) // len(syms)
                if def_size < 4 * len(LEGACY_MAP_FIELDS):
                    raise EbpfLtoError(f"map definitions of {def_size} bytes are too small",
                                       section=sec.name)
                for sym in syms:
                    off = sym["st_value"]
                    if off + 20 > len(content):
                        raise EbpfLtoError(f"map {sym.name} lies outside its section", section=sec.name)
                    fields = struct.unpack_from("<5I", content, off)
                    maps[sym.name] = MapDef(sym.name, *fields)
                    at[(sec.name, off)] = sym.name
        btf_sec = self.elf.get_section_by_name(".BTF")
        maps_sec = self.elf.get_section_by_name(".maps")
        if maps_sec is not None:
            if btf_sec is None:
                raise EbpfLtoError("BTF-defined maps need a .BTF section", section=".maps")
            from .btf import BtfError, parse_btf  # only objects with BTF maps need it
            # clang leaves .maps offsets in BTF at 0; libbpf fills them in from the symbols.
            offsets = {s.name: s["st_value"] for s in self.symbols
                       if getattr(self._symbol_section(s), "name", None) == ".maps"}
            try:
                btf = parse_btf(btf_sec.data()).fixup_datasec(".maps", maps_sec["sh_size"], offsets)
                defs = btf.map_definitions()
            except BtfError as err:
                raise EbpfLtoError(f"bad BTF: {err}", section=".BTF") from None
            for d in defs:
                if d.inner is not None:
                    maps[d.inner.name] = d.inner.geometry()
                maps[d.name] = d.geometry()
                at[(".maps", d.offset)] = d.name
        return maps, at

    def _data_relocations(self, code, data, map_at) -> dict[tuple[str, int], Ref]:
        """Pointers in initialized data: string tables, function tables, &global.

        REL relocations keep the addend in the 8 bytes they patch.
        """
        refs: dict[tuple[str, int], Ref] = {}
        for rel in self.sections:
            info = rel["sh_info"]
            if rel["sh_type"] != "SHT_REL" or not 0 < info < len(self.sections):
                continue
            target_sec = self.sections[info].name
            if target_sec not in data:
                continue
            content = data[target_sec].data
            for r in rel.iter_relocations():
                off, rtype = r["r_offset"], r["r_info_type"]
                where = {"section": target_sec}
                if rtype != R_BPF_64_ABS64:
                    raise EbpfLtoError(f"relocation type {rtype} at offset {off} of data: only "
                                       "64-bit addresses can hold a pointer", **where)
                if off + 8 > len(content):
                    raise EbpfLtoError(f"relocation at offset {off} is outside the data", **where)
                if not 0 <= r["r_info_sym"] < len(self.symbols):
                    raise EbpfLtoError(f"relocation names symbol {r['r_info_sym']}, which does "
                                       "not exist", **where)
                sym = self.symbols[r["r_info_sym"]]
                addend = struct.unpack_from("<q", content, off)[0]
                sec = self._symbol_section(sym)
                if sec is None:
                    raise EbpfLtoError(f"data points at external symbol {sym.name!r}", **where)
                target = sym["st_value"] + addend
                if sec.name in code:
                    fk = FuncKey(sec.name, self._slot(target, sec.name))
                    _check_target(code[sec.name], fk.start, self.path, target_sec, off)
                    refs[(target_sec, off)] = Ref("func", function=fk)
                elif sec.name in data and 0 <= target <= len(data[sec.name].data):
                    refs[(target_sec, off)] = Ref("data", sec.name, target)
                elif (sec.name, target) in map_at:
                    refs[(target_sec, off)] = Ref("map", map_at[(sec.name, target)])
                else:
                    raise EbpfLtoError(f"data at offset {off} points into {sec.name}, which is "
                                       "neither code, data nor a map", **where)
        return refs

    def _relocations(self, code, data, map_at) -> dict[tuple[str, int], Ref]:
        refs: dict[tuple[str, int], Ref] = {}
        for rel in self.sections:
            if rel["sh_type"] != "SHT_REL":
                continue
            info = rel["sh_info"]
            if not 0 < info < len(self.sections):
                continue
            target_sec = self.sections[info].name
            if target_sec not in code:
                continue  # debug info, BTF and map-in-map initialisers
            slots = code[target_sec]
            for r in rel.iter_relocations():
                off = r["r_offset"]
                if off % isa.INSN_SIZE or off // isa.INSN_SIZE >= len(slots):
                    raise EbpfLtoError(f"relocation at offset {off} is outside the code",
                                       section=target_sec)
                idx = off // isa.INSN_SIZE
                insn = slots[idx]
                if insn is None:
                    raise EbpfLtoError("relocation on the second slot of lddw",
                                       section=target_sec, insn=idx)
                sym_index = r["r_info_sym"]
                if not 0 <= sym_index < len(self.symbols):
                    raise EbpfLtoError(f"relocation names symbol {sym_index}, which does not exist",
                                       section=target_sec, insn=idx)
                sym = self.symbols[sym_index]
                refs[(target_sec, idx)] = self._resolve(r["r_info_type"], insn, sym, code,
                                                       data, map_at, target_sec, idx)
        return refs

    def _resolve(self, rtype, insn, sym, code, data, map_at, section, idx) -> Ref:
        where = {"section": section, "insn": idx}
        sec = self._symbol_section(sym)
        if sec is None:
            raise EbpfLtoError(f"refers to external symbol {sym.name!r} (a kernel ksym, kconfig "
                               "or kfunc), which needs a kernel", **where)
        if rtype == R_BPF_64_32 and _is_local_call(insn):
            if sec.name not in code:
                raise EbpfLtoError(f"call to {sym.name!r}, which is not code", **where)
            target = self._slot(sym["st_value"], sec.name) + insn.imm + 1
            _check_target(code[sec.name], target, self.path, section, idx)
            return Ref("call", function=FuncKey(sec.name, target))
        if rtype != R_BPF_64_64 or not insn.is_wide:
            raise EbpfLtoError(f"unsupported relocation type {rtype} on opcode {insn.opcode:#04x}",
                               **where)
        if sec.name in code:
            # The kernel's BPF_PSEUDO_FUNC: a function address, in bytes.
            target = (sym["st_value"] + insn.imm) // isa.INSN_SIZE
            _check_target(code[sec.name], target, self.path, section, idx)
            return Ref("func", function=FuncKey(sec.name, target))
        if sec.name in data:
            offset = sym["st_value"] + insn.imm
            if not 0 <= offset <= len(data[sec.name].data):
                raise EbpfLtoError(f"offset {offset} is outside {sec.name}", **where)
            return Ref("data", sec.name, offset)
        name = map_at.get((sec.name, sym["st_value"] + insn.imm))
        if name is None and sym["st_info"]["type"] == "STT_OBJECT":
            name = map_at.get((sec.name, sym["st_value"]))
        if name is not None:
            return Ref("map", name)
        raise EbpfLtoError(f"lddw refers to {sym.name or sec.name!r} in section {sec.name}, "
                           "which is neither a map, global data nor code", **where)


def _is_local_call(insn: isa.Insn) -> bool:
    return insn.opcode == (isa.JMP | isa.CALL) and insn.src == isa.CALL_LOCAL


def _check_target(slots, target: int, path, section, idx) -> None:
    if not 0 <= target < len(slots) or slots[target] is None:
        raise EbpfLtoError(f"call target {target} is not an instruction of the section",
                           file=path, section=section, insn=idx)


def _split_functions(section: str, slots, starts: dict[int, str]) -> dict[FuncKey, Function]:
    """Each function runs from its start to the next start in the section."""
    ordered = sorted(starts)
    out = {}
    for i, start in enumerate(ordered):
        end = ordered[i + 1] if i + 1 < len(ordered) else len(slots)
        key = FuncKey(section, start)
        out[key] = Function(key, starts[start], end)
    return out
