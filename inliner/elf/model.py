"""What loading an eBPF object gives the later stages: plain data, no ELF.

Every function, program, map and data section of the object, and every
relocation of its code resolved to a `Ref`; later stages never look at the
ELF again.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..errors import EbpfLtoError
from ..facts.maps import MapDef


@dataclass(frozen=True)
class DataSection:
    """A global-data section: .data, .rodata, .rodata.*, .bss (zeros)."""
    name: str
    data: bytes
    writable: bool


@dataclass(frozen=True)
class FuncKey:
    section: str
    start: int  # slot index of the first instruction

    def __str__(self) -> str:
        return f"{self.section}+{self.start}"


@dataclass(frozen=True)
class Ref:
    """What a relocated instruction refers to.

    kind: "map" (target = map name), "data" (target = data section,
    offset = byte offset in it), "call" / "func" (function = FuncKey of a
    bpf-to-bpf call target / of a function whose address is loaded),
    "libc" (target = a C library function of facts.helpers.LIBC_FUNCTIONS,
    called by a call instruction against an undefined symbol).
    """
    kind: str
    target: str = ""
    offset: int = 0
    function: FuncKey | None = None


@dataclass(frozen=True)
class Function:
    key: FuncKey
    name: str
    end: int  # one past the last slot


@dataclass(frozen=True)
class Program:
    name: str
    section: str
    prog_type: str
    entry: FuncKey
    type_from: str = "section"  # what gave the type (facts/progtypes.py's steps, or --type)


@dataclass
class EbpfObject:
    path: str
    code: dict[str, list]                       # section -> slots (isa.decode)
    refs: dict[tuple[str, int], Ref]             # (section, slot) -> what it names
    functions: dict[FuncKey, Function]
    programs: list[Program]
    maps: dict[str, MapDef] = field(default_factory=dict)
    data: dict[str, DataSection] = field(default_factory=dict)
    license: str = ""
    data_refs: dict[tuple[str, int], Ref] = field(default_factory=dict)  # pointers in data
    # Programs the load refused, each for what it depends on (a section, a map,
    # a relocation); the rest of the object loaded.
    refused: dict[str, EbpfLtoError] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # refused parts no program needs
    notes: list[str] = field(default_factory=list)     # kernel-only attributes ignored
    # Raw bytecode's maps by the fd its lddw names (elf/raw.py): bpftime's handles.
    map_fds: dict[str, int] = field(default_factory=dict)

    def retype(self, prog_type: str, name: str | None = None) -> None:
        """Give program `name` (every program: None) this type, as `--type` does."""
        self.program(name)  # a name the object does not hold is refused here
        self.programs = [replace(p, prog_type=prog_type, type_from="--type")
                         if name is None or p.name == name else p for p in self.programs]

    def program(self, name: str | None) -> Program:
        if name is not None and name in self.refused:
            raise self.refused[name]
        if not self.programs:
            if self.refused:
                raise next(iter(self.refused.values()))
            raise EbpfLtoError("object holds no program", file=self.path)
        if name is None:
            return self.programs[0]
        for prog in self.programs:
            if prog.name == name:
                return prog
        names = ", ".join(p.name for p in self.programs)
        raise EbpfLtoError(f"no program named {name!r} (programs: {names})", file=self.path)
