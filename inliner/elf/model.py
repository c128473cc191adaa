"""What loading an eBPF object gives the later stages: plain data, no ELF.

Every function, program, map and data section of the object, and every
relocation of its code resolved to a `Ref`; later stages never look at the
ELF again.
"""
from __future__ import annotations

from dataclasses import dataclass, field

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
    bpf-to-bpf call target / of a function whose address is loaded).
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

    def program(self, name: str | None) -> Program:
        if not self.programs:
            raise EbpfLtoError("object holds no program", file=self.path)
        if name is None:
            return self.programs[0]
        for prog in self.programs:
            if prog.name == name:
                return prog
        names = ", ".join(p.name for p in self.programs)
        raise EbpfLtoError(f"no program named {name!r} (programs: {names})", file=self.path)
