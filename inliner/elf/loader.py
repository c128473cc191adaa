"""Stage 1, load: an eBPF ELF object (as `clang -target bpf` writes it) to plain data.

The result, `EbpfObject`, names every function, program, map and data
section of the object and resolves every relocation of its code to a
`Ref`; later stages never look at the ELF again.
"""
from __future__ import annotations

import io
import struct
from dataclasses import replace

from elftools.common.exceptions import ELFError
from elftools.common.utils import struct_parse
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_E_MACHINE, ENUM_RELOC_TYPE_BPF

from .. import inputs
from ..errors import EbpfLtoError
from ..facts import isa, progtypes
from ..facts.helpers import LIBC_FUNCTIONS
from ..facts.maps import MapDef, kernel_only_flags
from .model import DataSection, EbpfObject, FuncKey, Function, Program, Ref

EM_BPF = ENUM_E_MACHINE["EM_BPF"]
BPF_RELOCATION_TYPES = frozenset(ENUM_RELOC_TYPE_BPF[n] for n in ENUM_RELOC_TYPE_BPF
                                 if n.startswith("R_BPF_") and n != "R_BPF_NONE")
# What each relocation type names: R_BPF_64_64 an lddw's map, global data or
# function address; R_BPF_64_ABS64 an address in data (a pointer in an
# initialized global); R_BPF_64_32 a bpf-to-bpf call's target.
R_BPF_64_64 = ENUM_RELOC_TYPE_BPF["R_BPF_64_64"]
R_BPF_64_ABS64 = ENUM_RELOC_TYPE_BPF["R_BPF_64_ABS64"]
R_BPF_64_32 = ENUM_RELOC_TYPE_BPF["R_BPF_64_32"]
SHF_EXECINSTR, SHF_WRITE = SH_FLAGS.SHF_EXECINSTR, SH_FLAGS.SHF_WRITE

LEGACY_MAP_FIELDS = ("type", "key_size", "value_size", "max_entries", "map_flags")
MAX_ZEROS = 1 << 28   # bytes a SHT_NOBITS section (.bss) may ask for


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
        if insn is not None and isa.call_kind(insn) is isa.CallKind.LOCAL:
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
    except ELFError as err:
        # pyelftools' own checks, and data it parses past the end of the file:
        # struct_parse turns construct's errors (StreamError...) into
        # ELFParseError. Anything else is a loader bug, or damage the loader
        # should have refused before pyelftools went near it.
        raise _malformed(str(err) or type(err).__name__).located(file=path) from None


def _malformed(reason: str) -> EbpfLtoError:
    return EbpfLtoError(f"malformed ELF file: {reason}")


class _Loader:
    def __init__(self, path: str, data: bytes):
        self.path = path
        self.data = data
        if data[:4] != b"\x7fELF":
            raise EbpfLtoError("not an ELF file", file=path)
        self.elf = ELFFile(io.BytesIO(data))
        if self.elf.elfclass != 64:
            raise EbpfLtoError("not a 64-bit ELF file", file=path)
        if not self.elf.little_endian:
            raise EbpfLtoError("big-endian eBPF (bpfeb) is not supported; build with -target bpfel")
        machine = self.elf["e_machine"]
        if machine not in ("EM_BPF", EM_BPF, "EM_NONE"):
            raise EbpfLtoError(f"not an eBPF object (machine {machine})")
        self._check_section_headers()
        self.sections = list(self.elf.iter_sections())
        if machine == "EM_NONE" and not self._looks_like_bpf():
            raise EbpfLtoError("not an eBPF object (machine EM_NONE, and its code or "
                               "relocations are not eBPF's)")
        self.symtab = self._symbol_table()
        self.symbols = list(self.symtab.iter_symbols())
        self._check_symbols()
        # What the load refuses of the object, each part alone (see _refuse_programs).
        self.bad_sections: dict[str, EbpfLtoError] = {}         # code or data
        self.bad_insns: dict[tuple[str, int], EbpfLtoError] = {}
        self.bad_maps: dict[str, EbpfLtoError] = {}
        self.refused: dict[str, EbpfLtoError] = {}              # programs
        self.bad_symbols: list[EbpfLtoError] = []               # functions of .text
        self.notes: list[str] = []
        self._btf_parsed = None

    def _looks_like_bpf(self) -> bool:
        """An EM_NONE object (old LLVM wrote them) taken as eBPF: relocatable, with
        code in 8-byte instructions and every relocation of a BPF type."""
        if self.elf["e_type"] != "ET_REL":
            return False
        code = [s for s in self.sections if _is_code(s)]
        rels = [s for s in self.sections if s["sh_type"] == "SHT_REL"]
        if not code or any(s["sh_size"] % isa.INSN_SIZE for s in code):
            return False
        if any(s["sh_type"] == "SHT_RELA" for s in self.sections):
            return False
        return all(r["r_info_type"] in BPF_RELOCATION_TYPES
                   for rel in rels for r in rel.iter_relocations())

    def _check_section_headers(self) -> None:
        """Refuse headers that point outside the file, before pyelftools follows them.

        pyelftools seeks wherever a header points and parses what it finds:
        an offset past the end reads short, and one past 2^63 fails in the
        seek itself. Section names are read as each section is made, so the
        name table is checked here too.
        """
        elf, size = self.elf, len(self.data)
        shdr = elf.structs.Elf_Shdr
        entry, shoff = shdr.sizeof(), elf["e_shoff"]
        if shoff == 0:
            raise _malformed("object has no section headers")
        if elf["e_shentsize"] != entry:
            raise _malformed(f"section headers of {elf['e_shentsize']} bytes "
                             f"(ELF64's are {entry})")

        count = elf["e_shnum"]
        if not count and shoff + entry <= size:
            # With 0xff00 sections or more, e_shnum is 0 and section 0's sh_size counts them.
            count = struct_parse(shdr, elf.stream, shoff)["sh_size"]
        if shoff + max(count, 1) * entry > size:
            raise _malformed(f"the section header table ({count} entries at offset {shoff}) "
                             f"lies outside the {size}-byte file")
        headers = [struct_parse(shdr, elf.stream, shoff + i * entry) for i in range(count)]
        chdr = elf.structs.Elf_Chdr.sizeof()
        for i, h in enumerate(headers):
            if h["sh_link"] >= count:
                # pyelftools follows links (a symbol table's names, a hash's symbols).
                raise _malformed(f"section {i} links to section {h['sh_link']}, which does "
                                 "not exist")
            if h["sh_flags"] & SH_FLAGS.SHF_COMPRESSED:
                # pyelftools reads the compression header of any section, whatever its type.
                end = h["sh_offset"] + max(h["sh_size"], chdr)
            elif h["sh_type"] in ("SHT_NULL", "SHT_NOBITS"):
                continue
            else:
                end = h["sh_offset"] + h["sh_size"]
            if end > size:
                raise _malformed(f"section {i} ({h['sh_size']} bytes at offset "
                                 f"{h['sh_offset']}) lies outside the {size}-byte file")
        shstrndx = elf.get_shstrndx()
        if not 0 < shstrndx < count:
            raise _malformed("the section name table does not exist")
        names = headers[shstrndx]
        self._check_string_table(names, "section name table")
        for i, h in enumerate(headers):
            if h["sh_name"] >= names["sh_size"] and i:
                raise _malformed(f"the name of section {i} lies outside the section name table")

    def _check_string_table(self, sec, what: str) -> None:
        """A string table ends in NUL, so every name in it ends inside it."""
        if sec["sh_type"] != "SHT_STRTAB":
            raise _malformed(f"the {what} is a section of type {sec['sh_type']}")
        end = sec["sh_offset"] + sec["sh_size"]
        if not sec["sh_size"] or self.data[end - 1] != 0:
            raise _malformed(f"the {what} does not end with a NUL byte")

    def _symbol_table(self):
        tables = [sec for sec in self.sections if sec["sh_type"] == "SHT_SYMTAB"]
        if not tables:
            raise EbpfLtoError("object has no symbol table")
        if len(tables) > 1:
            raise _malformed(f"object has {len(tables)} symbol tables")
        symtab = tables[0]
        entry = self.elf.structs.Elf_Sym.sizeof()
        if symtab["sh_entsize"] != entry:
            raise _malformed(f"symbol table entries of {symtab['sh_entsize']} bytes "
                             f"(ELF64's are {entry})")
        return symtab

    def _check_symbols(self) -> None:
        """pyelftools reads past a table silently; a damaged file must be refused instead."""
        strtab = self.sections[self.symtab["sh_link"]]   # an existing section: checked
        self._check_string_table(strtab, "symbol name table")
        strings = strtab["sh_size"]
        for i, sym in enumerate(self.symbols):
            if sym["st_name"] >= strings:
                raise EbpfLtoError(f"the name of symbol {i} lies outside the string table")
            shndx = sym["st_shndx"]
            if isinstance(shndx, int) and shndx >= len(self.sections):
                raise EbpfLtoError(f"symbol {sym.name or i!r} is in section {shndx}, "
                                   "which does not exist")

    def run(self) -> EbpfObject:
        self._check_unique_names()
        code = {}
        for sec in self.sections:
            if _is_code(sec):
                try:
                    code[sec.name] = isa.decode(self._contents(sec))
                except isa.DecodeError as err:
                    self.bad_sections[sec.name] = EbpfLtoError(err.reason, section=sec.name,
                                                               insn=err.index)
                except EbpfLtoError as err:
                    self.bad_sections[sec.name] = err.located(section=sec.name)
        data = self._data_sections()
        maps, map_at = self._maps()
        data_refs = self._data_relocations(code, data, map_at)
        refs = self._relocations(code, data, map_at)
        refs, data_refs = self._settle(code, refs, data_refs)
        starts: dict[str, dict[int, str]] = {name: {} for name in code}
        programs = []
        for sym in self.symbols:
            sec = self._symbol_section(sym)
            if sec is None or sym["st_info"]["type"] != "STT_FUNC":
                continue
            if sec.name in self.bad_sections and sec.name != ".text":
                self.refused[sym.name] = self.bad_sections[sec.name]
                continue
            if sec.name not in code:
                continue
            try:
                start = self._function_start(sym, sec.name, code[sec.name])
            except EbpfLtoError as err:  # a program refused; a function, unless called
                if sec.name != ".text":
                    self.refused[sym.name] = err.located(section=sec.name)
                else:
                    self.bad_symbols.append(err.located(section=sec.name))
                continue
            starts[sec.name][start] = sym.name
            if sec.name != ".text":
                programs.append(Program(sym.name, sec.name, progtypes.UNSPEC,
                                        FuncKey(sec.name, start)))
        # With no program section, global functions in .text are the programs, as
        # older libbpf took them.
        if not programs and not self.refused:
            for sym in self.symbols:
                sec = self._symbol_section(sym)
                if (sec is None or sec.name != ".text" or sym["st_info"]["type"] != "STT_FUNC"
                        or sym["st_info"]["bind"] != "STB_GLOBAL"):
                    continue
                if ".text" in self.bad_sections:
                    self.refused[sym.name] = self.bad_sections[".text"]
                elif ".text" in code:
                    start = self._function_start(sym, ".text", code[".text"])
                    programs.append(Program(sym.name, ".text", progtypes.UNSPEC,
                                            FuncKey(".text", start)))
        # A section of code with no function symbol is one program (older clang).
        for name in [*code, *self.bad_sections]:
            if name != ".text" and not starts.get(name) and not any(
                    getattr(self._symbol_section(s), "name", None) == name
                    and s["st_info"]["type"] == "STT_FUNC" for s in self.symbols):
                label = name.replace("/", "_").replace("-", "_")
                if name in self.bad_sections:
                    self.refused[label] = self.bad_sections[name]
                    continue
                starts[name][0] = label
                programs.append(Program(label, name, progtypes.UNSPEC, FuncKey(name, 0)))
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
                if (insn is None or isa.call_kind(insn) is not isa.CallKind.LOCAL
                        or (sec_name, idx) in refs or (sec_name, idx) in self.bad_insns):
                    continue
                target = idx + insn.imm + 1
                try:
                    _check_target(slots, target, self.path, sec_name, idx)
                except EbpfLtoError as err:
                    self.bad_insns[(sec_name, idx)] = err
                    continue
                fk = FuncKey(sec_name, target)
                refs[(sec_name, idx)] = Ref("call", function=fk)
                if fk not in functions:
                    starts[sec_name][target] = f"{sec_name.strip('.')}_{target}"
                    functions.update(_split_functions(sec_name, slots, starts[sec_name]))
        _check_program_names(programs, self.refused)
        programs = self._refuse_programs(programs, functions, refs)
        programs = _typed(programs, self._btf(), code, functions)
        programs.sort(key=lambda p: (self._section_index(p.section), p.entry.start))
        lic = self.elf.get_section_by_name("license")
        license_text = (self._contents(lic).split(b"\0")[0].decode("latin-1")
                        if lic is not None else "")
        for name in [n for n in data if n in self.bad_sections]:
            del data[name]
        refused = {name: err.located(file=self.path) for name, err in self.refused.items()}
        return EbpfObject(self.path, code, refs, functions, programs, maps, data, license_text,
                          data_refs, refused, self._warnings(), self.notes)

    def _refuse_programs(self, programs, functions, refs) -> list[Program]:
        """The programs that depend on nothing refused; the others go to self.refused.

        A program depends on every function it reaches through calls and
        loaded function addresses; a function on its own instructions, the
        maps and data they name having been checked as they were resolved.
        """
        bad_in: dict[FuncKey, EbpfLtoError] = {}
        for (section, idx), err in sorted(self.bad_insns.items()):
            for key, func in functions.items():
                if key.section == section and key.start <= idx < func.end:
                    bad_in.setdefault(key, err)
        kept = []
        for prog in programs:
            seen, todo, why = set(), [prog.entry], None
            while todo and why is None:
                key = todo.pop()
                if key in seen:
                    continue
                seen.add(key)
                err = bad_in.get(key)
                if err is not None:
                    why = err if key == prog.entry else EbpfLtoError(
                        f"calls {functions[key].name}, which was refused: {err.reason}",
                        section=err.section, insn=err.insn)
                    break
                func = functions[key]
                todo += [r.function for i in range(key.start, func.end)
                         if (r := refs.get((key.section, i))) is not None and r.function]
            if why is None:
                kept.append(prog)
            else:
                self.refused[prog.name] = why.located(file=self.path)
        return kept

    def _warnings(self) -> list[str]:
        """The parts refused that no refused program names (those are reported with it)."""
        named = {e.reason for e in self.refused.values()}
        parts = [(f"section {n}", e) for n, e in self.bad_sections.items()]
        parts += [(f"map {n!r}", e) for n, e in self.bad_maps.items()]
        return [f"{what} refused: {err.reason}" for what, err in parts
                if not any(err.reason in reason for reason in named)] + [
            f"section {e.section}: {e.reason}; no call reaches it by that symbol"
            for e in self.bad_symbols]

    def _btf(self):
        """The object's parsed BTF, or None (none, or not readable)."""
        if self._btf_parsed is None:
            from .btf import BtfError, parse_btf  # only objects with BTF need it
            sec = self.elf.get_section_by_name(".BTF")
            try:
                self._btf_parsed = parse_btf(self._contents(sec)) if sec is not None else False
            except (BtfError, EbpfLtoError):
                self._btf_parsed = False
        return self._btf_parsed or None

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

    def _function_start(self, sym, section: str, slots) -> int:
        """The slot a function symbol names; a function starts at an instruction."""
        start = self._slot(sym["st_value"], section)
        if not _is_insn(slots, start):
            raise EbpfLtoError(f"function {sym.name!r} starts at byte {sym['st_value']}, "
                               "which is not an instruction of the section", section=section)
        return start

    def _contents(self, sec) -> bytes:
        """A section's bytes; `_check_section_headers` placed them inside the file."""
        if sec.compressed:
            raise EbpfLtoError("compressed (SHF_COMPRESSED) code, data or maps are not supported",
                               section=sec.name)
        size = sec["sh_size"]
        if sec["sh_type"] == "SHT_NOBITS":
            if size > MAX_ZEROS:
                raise EbpfLtoError(f"section of {size} bytes of zeros is too large "
                                   f"(at most {MAX_ZEROS >> 20} MiB)", section=sec.name)
            return bytes(size)
        return self.data[sec["sh_offset"]:sec["sh_offset"] + size]

    def _check_unique_names(self) -> None:
        """Code, data, maps, BTF and the license are found by section name."""
        seen = set()
        for sec in self.sections:
            if (_is_code(sec) or _is_data_name(sec.name) or _is_maps_name(sec.name)
                    or sec.name in (".maps", ".BTF", "license")):
                if sec.name in seen:
                    raise EbpfLtoError(f"two sections are named {sec.name!r}")
                seen.add(sec.name)

    def _data_sections(self) -> dict[str, DataSection]:
        out = {}
        for sec in self.sections:
            if _is_data_name(sec.name) and not sec["sh_flags"] & SHF_EXECINSTR:
                out[sec.name] = DataSection(sec.name, self._contents(sec),
                                            bool(sec["sh_flags"] & SHF_WRITE))
        return out

    def _maps(self) -> tuple[dict[str, MapDef], dict[tuple[str, int], str]]:
        """Maps from the legacy `maps` section and from BTF `.maps`.

        Returns the maps by name and a lookup from (section, offset) to map
        name for relocations against a section symbol.
        """
        maps: dict[str, MapDef] = {}
        at: dict[tuple[str, int], str] = {}

        def add(m: MapDef) -> None:   # programs and the map table name maps
            if m.name in maps:
                raise EbpfLtoError(f"two maps are named {m.name!r}")
            maps[m.name] = m

        for sec in self.sections:
            if _is_maps_name(sec.name):
                syms = sorted((s for s in self.symbols if self._symbol_section(s) is sec),
                              key=lambda s: s["st_value"])
                if not syms:
                    continue
                try:
                    content = self._contents(sec)
                except EbpfLtoError as err:
                    self._refuse_maps(at, sec.name, syms, err.reason)
                    continue
                # libbpf's rule: the definition size is the section size over the map count.
                def_size = len(content) // len(syms)
                if def_size < 4 * len(LEGACY_MAP_FIELDS):
                    self._refuse_maps(at, sec.name, syms,
                                      f"map definitions of {def_size} bytes are too small")
                    continue
                for sym in syms:
                    off = sym["st_value"]
                    if off + 20 > len(content):
                        self._refuse_maps(at, sec.name, [sym], "it lies outside its section")
                        continue
                    fields = struct.unpack_from("<5I", content, off)
                    add(MapDef(sym.name, *fields))
                    at[(sec.name, off)] = sym.name
                    # iproute2's struct bpf_elf_map (Cilium's older objects) has
                    # pinning at byte 24; libbpf wants zeros past its 20 bytes.
                    pinning = (struct.unpack_from("<I", content, off + 24)[0]
                               if def_size >= 28 and off + 28 <= len(content) else 0)
                    self._note(sym.name, {"pinning": pinning,
                                          "map_flags": kernel_only_flags(fields[4])})
        maps_sec = next((sec for sec in self.sections if sec.name == ".maps"), None)
        if maps_sec is not None:
            syms = [s for s in self.symbols if self._symbol_section(s) is maps_sec]
            for name, off, found in self._btf_maps(maps_sec, syms):
                if isinstance(found, str):
                    self._refuse_maps(at, ".maps", [s for s in syms if s.name == name], found)
                    continue
                if found.inner is not None:
                    add(found.inner.geometry())
                add(found.geometry())
                at[(".maps", off)] = name
                self._note(name, found.kernel_only())
        return maps, at

    def _note(self, name: str, kernel_only: dict) -> None:
        """Map attributes only a kernel acts on: taken, ignored, and said so."""
        attrs = ", ".join(f"{k} {v}" for k, v in kernel_only.items() if v)
        if attrs:
            self.notes.append(f"map {name!r}: kernel-only attributes ignored: {attrs}")

    def _btf_maps(self, maps_sec, syms) -> list:
        """(name, offset, BtfMapDef or why the map cannot be used) for each map of .maps."""
        from .btf import BtfError  # only objects with BTF maps need it
        btf = self._btf()
        try:
            if btf is None:
                raise BtfError("BTF-defined maps need a readable .BTF section")
            if not btf.by_name(".maps", "datasec"):
                raise BtfError("no DATASEC describes section .maps")
            # clang leaves .maps offsets in BTF at 0; libbpf fills them in from the symbols.
            entries = btf.fixup_datasec(".maps", maps_sec["sh_size"],
                                        {s.name: s["st_value"] for s in syms}).map_entries()
        except BtfError as err:
            if not syms:
                self.bad_sections[".maps"] = EbpfLtoError(f"bad BTF: {err}", section=".BTF")
            return [(s.name, s["st_value"], f"bad BTF: {err}") for s in syms]
        return [(name, off, f"bad BTF: {found}" if isinstance(found, BtfError) else found)
                for name, off, found in entries]

    def _refuse_maps(self, at, section: str, syms, reason: str) -> None:
        """These maps cannot be used; what uses them is refused with them."""
        for sym in syms:
            self.bad_maps[sym.name] = EbpfLtoError(reason, section=section)
            at[(section, sym["st_value"])] = sym.name

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
            try:
                refs.update(self._data_section_refs(rel, target_sec, code, data, map_at))
            except EbpfLtoError as err:  # the section is refused, and what uses it
                self.bad_sections[target_sec] = err.located(section=target_sec)
        return refs

    def _data_section_refs(self, rel, target_sec, code, data, map_at):
        refs: dict[tuple[str, int], Ref] = {}
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
                    self.bad_sections[target_sec] = EbpfLtoError(
                        f"relocation at offset {off} is outside the code", section=target_sec)
                    break
                idx = off // isa.INSN_SIZE
                try:
                    refs[(target_sec, idx)] = self._resolve_at(r, slots, code, data, map_at,
                                                               target_sec, idx)
                except EbpfLtoError as err:  # refuses the function, and what calls it
                    if err.insn is None:
                        err.insn = idx
                    self.bad_insns[(target_sec, idx)] = err.located(section=target_sec)
        for name in [n for n in code if n in self.bad_sections]:
            del code[name]
        return {at: ref for at, ref in refs.items() if at[0] in code}

    def _settle(self, code, refs, data_refs):
        """Refuse what points into a section refused after it was resolved (data
        pointing into refused data or code, code into either), until nothing changes."""
        def refused_target(ref) -> str | None:
            if ref.function is not None and ref.function.section not in code:
                return ref.function.section
            return ref.target if ref.kind == "data" and ref.target in self.bad_sections else None

        changed = True
        while changed:
            changed = False
            for (sec, _), ref in data_refs.items():
                if sec not in self.bad_sections and (target := refused_target(ref)):
                    self.bad_sections[sec] = EbpfLtoError(
                        f"points into section {target}, which was refused", section=sec)
                    changed = True
        for (sec, idx), ref in refs.items():
            if (target := refused_target(ref)) is not None:
                self.bad_insns[(sec, idx)] = EbpfLtoError(
                    f"refers to section {target}, which was refused: "
                    f"{self.bad_sections[target].reason}", section=sec, insn=idx)
        return ({at: r for at, r in refs.items() if at not in self.bad_insns},
                {at: r for at, r in data_refs.items() if at[0] not in self.bad_sections})

    def _resolve_at(self, r, slots, code, data, map_at, section: str, idx: int) -> Ref:
        insn = slots[idx]
        if insn is None:
            raise EbpfLtoError("relocation on the second slot of lddw")
        sym_index = r["r_info_sym"]
        if not 0 <= sym_index < len(self.symbols):
            raise EbpfLtoError(f"relocation names symbol {sym_index}, which does not exist")
        return self._resolve(r["r_info_type"], insn, self.symbols[sym_index], code, data,
                             map_at, section, idx)

    def _resolve(self, rtype, insn, sym, code, data, map_at, section, idx) -> Ref:
        where = {"section": section, "insn": idx}
        sec = self._symbol_section(sym)
        if sec is None:
            if sym.name in LIBC_FUNCTIONS and isa.call_kind(insn) in (isa.CallKind.LOCAL,
                                                                       isa.CallKind.HELPER):
                return Ref("libc", sym.name)
            raise EbpfLtoError(f"refers to external symbol {sym.name!r} (a kernel ksym, kconfig "
                               "or kfunc), which needs a kernel", **where)
        if sec.name in self.bad_sections:
            raise EbpfLtoError(f"refers to section {sec.name}, which was refused: "
                               f"{self.bad_sections[sec.name].reason}", **where)
        if rtype == R_BPF_64_32 and isa.call_kind(insn) is isa.CallKind.LOCAL:
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
        if name in self.bad_maps:
            raise EbpfLtoError(f"uses map {name!r}, which was refused: "
                               f"{self.bad_maps[name].reason}", **where)
        if name is not None:
            return Ref("map", name)
        raise EbpfLtoError(f"lddw refers to {sym.name or sec.name!r} in section {sec.name}, "
                           "which is neither a map, global data nor code", **where)


def _is_code(sec) -> bool:
    return sec["sh_type"] == "SHT_PROGBITS" and sec["sh_flags"] & SHF_EXECINSTR and sec["sh_size"]


def _is_data_name(name: str) -> bool:
    return name in (".data", ".bss") or name.startswith((".rodata", ".data.", ".bss."))


def _is_maps_name(name: str) -> bool:
    """Legacy map definitions (struct bpf_map_def)."""
    return name == "maps" or name.startswith("maps/")


def _is_insn(slots, idx: int) -> bool:
    """Whether slot `idx` starts an instruction (not past the end, not lddw's second half)."""
    return 0 <= idx < len(slots) and slots[idx] is not None


def _check_program_names(programs: list[Program], refused: dict[str, EbpfLtoError]) -> None:
    """A program's name is its entry symbol in the native object: present and unique."""
    seen = set(refused)
    for prog in programs:
        if not prog.name:
            raise EbpfLtoError("a program has no name", section=prog.section)
        if prog.name in seen:
            raise EbpfLtoError(f"two programs are named {prog.name!r}", section=prog.section)
        seen.add(prog.name)


def _typed(programs: list[Program], btf, code, functions) -> list[Program]:
    """Each program with its type, by facts/progtypes.py's steps 1-5."""
    out = []
    for prog in programs:
        kind, how = progtypes.from_section(prog.section), "section"
        if kind is None and btf is not None:
            kind, how = progtypes.CONTEXT_STRUCTS.get(btf.context_struct(prog.name)), "BTF"
        if kind is None:
            kind, how = progtypes.from_loader_names(prog.section), "loader's section name"
        out.append(replace(prog, prog_type=kind or progtypes.UNSPEC,
                           type_from=how if kind else "none"))
    # iproute2's tail-call sections take the type the object's other programs share.
    shared = {p.prog_type for p in out if not progtypes.is_tail_call_section(p.section)}
    if len(shared) == 1 and progtypes.UNSPEC not in shared:
        out = [replace(p, prog_type=next(iter(shared)), type_from="tail-call section")
               if p.type_from == "none" and progtypes.is_tail_call_section(p.section) else p
               for p in out]
    # Only __sk_buff programs may use ld_abs/ld_ind (the kernel's may_access_skb).
    return [replace(p, prog_type=progtypes.PACKET_LOAD_TYPE, type_from="legacy packet loads")
            if p.type_from == "none" and any(
                insn is not None and isa.is_packet_load(insn)
                for insn in code[p.section][p.entry.start:functions[p.entry].end]) else p
            for p in out]


def _check_target(slots, target: int, path, section, idx) -> None:
    if not _is_insn(slots, target):
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
