"""Each kind of damage the bad-input fuzzer found, once, on a committed object.

Every case damages one field of a fixture (with the fuzzer's ELF helpers)
and expects the refusal that the ELF and BTF rules call for, as an
EbpfLtoError from load or link. Before the fixes these raised IndexError in
the lifter, AttributeError, OverflowError from pyelftools' seeks,
DuplicatedNameError from llvmlite, RuntimeError from LLVM's linker, a
KeyError that the loader passed off as "malformed ELF file", or loaded a
different object than the file holds (a map silently replaced).
"""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

from conftest import ROOT
from inliner import pipeline
from inliner.elf import loader
from inliner.facts import isa
from inliner.errors import EbpfLtoError
from test_fuzz_inputs import (EH_FIELDS, SH_FIELDS, SHT_SYMTAB, SYM_FIELDS, SYM_SIZE,
                              elf_sections, new_string, put, table_entries)

IPV4 = "examples/ipv4_csum.o"              # program ipv4_csum in raw, static fold in .text
TWO = "tests/fixtures/corpus/two_programs.o"   # stamp in xdp, poke in socket
MAPS = "tests/fixtures/btf/maps.o"         # BTF maps, one legacy map, lddw in xdp
TAIL = "tests/maps_prog/tail.o"            # a .bss
CALLS = "tests/fixtures/load/calls_across.o"   # caller (xdp) calls bump (sub); other (tc)
SHF_COMPRESSED = 0x800
SHT_PROGBITS, SHT_NOBITS = 1, 8


def _section(buf, name: bytes) -> dict:
    return next(s for s in elf_sections(bytes(buf)) if s.get("str") == name)


def _set_section(buf, name: bytes, field: str, value: int) -> None:
    off, size = SH_FIELDS[field]
    put(buf, _section(buf, name)["at"] + off, size, value)


def _symbol(buf, name: bytes) -> int:
    """The file offset of the symbol called `name`."""
    data = bytes(buf)
    secs = elf_sections(data)
    for sec, at in table_entries(data, secs, SHT_SYMTAB, SYM_SIZE):
        strtab = secs[sec["link"]]
        st_name, = struct.unpack_from("<I", data, at)
        if data[strtab["offset"] + st_name:].split(b"\0", 1)[0] == name:
            return at
    raise KeyError(name)


def _set_symbol(buf, name: bytes, field: str, value: int) -> None:
    off, size = SYM_FIELDS[field]
    put(buf, _symbol(buf, name) + off, size, value)


def _rename_symbol(buf, name: bytes, new: bytes) -> None:
    at = _symbol(buf, name)
    secs = elf_sections(bytes(buf))
    symtab = next(s for s in secs if s["type"] == SHT_SYMTAB)
    put(buf, at, 4, new_string(buf, secs[symtab["link"]], new))


def _rename_section(buf, name: bytes, new: bytes) -> None:
    secs = elf_sections(bytes(buf))
    shstrndx, = struct.unpack_from("<H", buf, EH_FIELDS["e_shstrndx"][0])
    put(buf, _section(buf, name)["at"], 4, new_string(buf, secs[shstrndx], new))


def _same_name(buf, name: bytes, as_: bytes) -> None:
    """Section `name` takes the name of section `as_`."""
    put(buf, _section(buf, name)["at"], 4, _section(buf, as_)["name"])


def _reserved(name: str) -> tuple:
    """ipv4_csum renamed to one of ebpf-lto's own symbols, and the refusal."""
    return (IPV4, lambda b: _rename_symbol(b, b"ipv4_csum", name.encode()),
            f"program name {name!r} is reserved")


CASES = {
    # IndexError in the lifter: the function's blocks were walked past the code.
    "function starting past its section": (
        IPV4, lambda b: _set_symbol(b, b"ipv4_csum", "st_value", _section(b, b"raw")["size"]),
        "function 'ipv4_csum' starts at byte 184, which is not an instruction"),
    "static function starting past .text": (
        IPV4, lambda b: _set_symbol(b, b"fold", "st_value", 1 << 20),
        "function 'fold' starts at byte 1048576, which is not an instruction"),
    "function starting in the second half of lddw": (
        MAPS, lambda b: _set_symbol(b, b"prog", "st_value", 80),
        "function 'prog' starts at byte 80, which is not an instruction"),
    # AttributeError: the section called .symtab is not a symbol table.
    ".symtab of another type": (
        IPV4, lambda b: _set_section(b, b".symtab", "type", SHT_PROGBITS),
        "object has no symbol table"),
    # OverflowError in pyelftools' seek, reading symbols and code.
    "symbol table at 2^64-1": (
        IPV4, lambda b: _set_section(b, b".symtab", "offset", 2**64 - 1),
        "bytes at offset 18446744073709551615) lies outside the 6336-byte file"),
    "code at 2^63": (
        IPV4, lambda b: _set_section(b, b"raw", "offset", 2**63),
        "bytes at offset 9223372036854775808) lies outside the 6336-byte file"),
    "code of 2^64-1 bytes": (
        IPV4, lambda b: _set_section(b, b"raw", "size", 2**64 - 1),
        "section 3 (18446744073709551615 bytes at offset"),
    "section header table at 2^64-64": (
        IPV4, lambda b: put(b, *EH_FIELDS["e_shoff"], 2**64 - 64),
        "the section header table (27 entries at offset 18446744073709551552) lies outside"),
    "2^64-1 sections by the extended count": (
        IPV4, lambda b: (put(b, elf_sections(bytes(b))[0]["at"] + 32, 8, 2**64 - 1),
                         put(b, *EH_FIELDS["e_shnum"], 0)),
        "the section header table (18446744073709551615 entries"),
    "section headers of 128 bytes": (
        IPV4, lambda b: put(b, *EH_FIELDS["e_shentsize"], 128),
        "section headers of 128 bytes (ELF64's are 64)"),
    "a link past the section table": (
        IPV4, lambda b: _set_section(b, b".relraw", "link", 2**32 - 1),
        "section 4 links to section 4294967295, which does not exist"),
    "symbol entries of 1 byte": (
        IPV4, lambda b: _set_section(b, b".symtab", "entsize", 1),
        "symbol table entries of 1 bytes (ELF64's are 24)"),
    "section names not NUL-terminated": (
        IPV4, lambda b: _set_section(b, b".strtab", "size", _section(b, b".strtab")["size"] - 1),
        "the section name table does not end with a NUL byte"),
    "compressed code": (
        IPV4, lambda b: _set_section(b, b"raw", "flags", 0x6 | SHF_COMPRESSED),
        "compressed (SHF_COMPRESSED) code, data or maps are not supported"),
    "legacy maps of 2^63 zero bytes": (
        MAPS, lambda b: (_set_section(b, b"maps", "type", SHT_NOBITS),
                         _set_section(b, b"maps", "size", 2**63)),
        "section of 9223372036854775808 bytes of zeros is too large"),
    # Names: duplicates the loader would have let one silently replace the
    # other, or that reached llvmlite or LLVM's linker as duplicate symbols.
    "two code sections with one name": (
        TWO, lambda b: _same_name(b, b"socket", b"xdp"), "two sections are named 'xdp'"),
    "two programs with one name": (
        TWO, lambda b: put(b, _symbol(b, b"poke"), 4, struct.unpack_from(
            "<I", b, _symbol(b, b"stamp"))[0]),
        "two programs are named 'stamp'"),
    "a program without a name": (
        IPV4, lambda b: _set_symbol(b, b"ipv4_csum", "st_name", 0), "a program has no name"),
    "two maps with one name": (
        MAPS, lambda b: _rename_symbol(b, b"legacy", b"flows"), "two maps are named 'flows'"),
    # DuplicatedNameError with the program table, "symbol multiply defined"
    # from LLVM's linker with the helper library and the map runtime.
    "a program named like ebpf-lto's program table": _reserved("ebpf_lto_program_names"),
    "a program named like a helper of the library": _reserved("_bpf_helper_ext_0001"),
    "a program named like the map runtime's lookup": _reserved("ebpf_lto_map_lookup"),
}


def _damaged(tmp_path: Path, fixture: str, damage) -> Path:
    buf = bytearray((ROOT / fixture).read_bytes())
    damage(buf)
    path = tmp_path / "damaged.o"
    path.write_bytes(buf)
    return path


def _load_and_link(path: Path, **options) -> None:
    obj = loader.load(str(path))
    for prog in obj.programs:
        pipeline.link(obj, pipeline.LinkOptions(opt_level=0, program=prog.name, **options))


@pytest.mark.parametrize("case", CASES)
def test_damage_is_refused_cleanly(tmp_path, case):
    fixture, damage, reason = CASES[case]
    path = _damaged(tmp_path, fixture, damage)
    found = _refusals(path)
    assert any(reason in message for message in found), found
    assert not any("\n" in message for message in found)


def _refusals(path: Path) -> list[str]:
    """Every refusal damage causes: the object's, or the parts of it the load refused
    (a program, or a part no program needs) and the programs the link refuses."""
    try:
        obj = loader.load(str(path))
    except EbpfLtoError as err:
        return [str(err)]
    found = list(obj.warnings) + [str(err) for err in obj.refused.values()]
    for prog in obj.programs:
        try:
            pipeline.link(obj, pipeline.LinkOptions(opt_level=0, program=prog.name))
        except EbpfLtoError as err:
            found.append(str(err))
    return found


def test_extern_map_state_symbols_that_clash_are_refused(tmp_path):
    """With --maps extern each map's state is ebpf_lto_state_ + its name with
    non-word bytes made '_': two names that differ only there need one symbol
    (a DuplicatedNameError from llvmlite before)."""
    path = _damaged(tmp_path, MAPS, lambda b: _rename_symbol(b, b"legacy", b"flows.packed"))
    _load_and_link(path)   # each map has its own state when the object holds them
    with pytest.raises(EbpfLtoError, match="both need the symbol ebpf_lto_state_flows_packed"):
        _load_and_link(path, maps_extern=True)


def test_a_program_named_bpf_main_is_the_entry(tmp_path):
    """uBPF's convention names the program bpf_main, the entry's own name: one
    symbol serves as both (it was refused as a name used twice)."""
    path = _damaged(tmp_path, IPV4, lambda b: _rename_symbol(b, b"ipv4_csum", b"bpf_main"))
    obj = loader.load(str(path))
    _, linked = pipeline.link(obj, pipeline.LinkOptions(opt_level=0))
    assert "bpf_main" in linked.entries


def test_elf_library_parse_errors_are_a_malformed_file(tmp_path):
    path = tmp_path / "short.o"
    path.write_bytes((ROOT / IPV4).read_bytes()[:40])   # inside the ELF header
    with pytest.raises(EbpfLtoError, match="malformed ELF file"):
        loader.load(str(path))


def test_a_loader_bug_is_not_called_a_malformed_file(monkeypatch):
    """Only pyelftools' own errors mean a damaged file; anything else raised
    while loading is a bug, and must reach the fuzzer as such."""
    def broken(code):
        raise KeyError("a bug")
    monkeypatch.setattr(isa, "decode", broken)
    with pytest.raises(KeyError, match="a bug"):
        loader.load(str(ROOT / IPV4))


def test_a_global_function_in_an_empty_text_is_no_program(tmp_path):
    """Without a program section, global functions in .text are the programs;
    one whose .text holds no code is none (a KeyError before). Each section
    of code without a function symbol is then a program of its own."""
    def damage(b):
        _set_symbol(b, b"stamp", "st_shndx", _section(b, b".text")["index"])
        _set_symbol(b, b"poke", "st_info", 0x10)   # global, no type
    obj = loader.load(str(_damaged(tmp_path, TWO, damage)))
    assert [(p.name, p.section) for p in obj.programs] == [("xdp", "xdp"), ("socket", "socket")]


def test_a_maps_section_that_btf_does_not_describe_is_refused_alone(tmp_path):
    """A KeyError in btf.py before, which the loader called a malformed file. The
    section's one symbol (the license, renamed with it) is a map no program uses,
    so the program still loads."""
    path = _damaged(tmp_path, IPV4, lambda b: _rename_section(b, b"license", b".maps"))
    obj = loader.load(str(path))
    assert [p.name for p in obj.programs] == ["ipv4_csum"]
    assert obj.warnings == ["map 'LICENSE' refused: bad BTF: no DATASEC describes section .maps"]


def test_a_code_section_that_does_not_decode_refuses_its_programs_alone(tmp_path):
    """`other`'s section cut to half an instruction: `caller` and `bump`, in other
    sections, still load and link (the object was refused whole before)."""
    path = _damaged(tmp_path, CALLS, lambda b: _set_section(
        b, b"tc", "size", _section(b, b"tc")["size"] - 4))
    obj = loader.load(str(path))
    assert [p.name for p in obj.programs] == ["bump", "caller"]
    with pytest.raises(EbpfLtoError, match="section tc: .*not a multiple of 8"):
        obj.program("other")
    pipeline.link(obj, pipeline.LinkOptions(opt_level=0))


def _swap_headers(buf, a: bytes, b: bytes) -> None:
    """Swap two relocation sections' headers: the loader then meets them in the
    other order (nothing refers to a relocation section by its index)."""
    at_a, at_b = _section(buf, a)["at"], _section(buf, b)["at"]
    buf[at_a:at_a + 64], buf[at_b:at_b + 64] = buf[at_b:at_b + 64], buf[at_a:at_a + 64]


@pytest.mark.parametrize("caller_first", (False, True))
def test_a_call_into_a_refused_section_refuses_the_caller_alone(tmp_path, caller_first):
    """`bump`'s section has a relocation outside its code: `bump` and `caller`,
    which calls it, are refused with the reason, whether the caller's call was
    resolved before `bump`'s section was refused or after; `other` loads."""
    def damage(b):
        rel = _section(b, b".relsub")
        put(b, rel["offset"], 8, 0x1000)   # r_offset of its one entry
        if caller_first:
            _swap_headers(b, b".relsub", b".relxdp")
    obj = loader.load(str(_damaged(tmp_path, CALLS, damage)))
    assert [p.name for p in obj.programs] == ["other"]
    with pytest.raises(EbpfLtoError, match="relocation at offset 4096 is outside the code"):
        obj.program("bump")
    with pytest.raises(EbpfLtoError, match="section xdp: insn 1: refers to section sub, which "
                                           "was refused: relocation at offset 4096"):
        obj.program("caller")


def test_a_lift_leaves_the_cycle_collector_as_it_found_it():
    """The lift pauses Python's cycle collector (collector.cycles_uncollected): a refused
    program must not leave it off for the rest of the process, nor a lift turn it on
    for a caller that keeps it off."""
    import gc
    from inliner import lift
    from inliner.tools.asm import assemble_bytes
    unwritten = loader.from_raw(assemble_bytes("mov %r0, %r7\nexit\n"))   # r7 never written
    ok = loader.from_raw(assemble_bytes("mov %r0, 1\nexit\n"))
    assert gc.isenabled()
    with pytest.raises(EbpfLtoError, match="not written"):
        lift.lift(unwritten)
    assert gc.isenabled()
    gc.disable()
    try:
        lift.lift(ok)
        assert not gc.isenabled()
    finally:
        gc.enable()
