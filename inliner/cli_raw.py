"""`link` and `run` on bpftime's input: raw bytecode with relocated maps (elf/raw.py).

`--raw FILE` with `--map-def` for each map fd it names, or `--from-bpftime
EXPORT.json --program NAME_OR_FD`, in place of the ELF object.
"""
from __future__ import annotations

import argparse

from . import inputs
from .elf import raw
from .errors import EbpfLtoError


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--raw", metavar="FILE",
                   help="the input is raw eBPF bytecode (8-byte instructions, little-endian) "
                        "whose lddw of a map names its fd (src 1), as bpftime holds it")
    p.add_argument("--map-def", metavar="FD=TYPE:KEY:VALUE:ENTRIES[:NAME]", action="append",
                   default=[], help="with --raw, the map with this fd: its type (hash, array, "
                   "... or a number), key size, value size, max entries and name (repeatable)")
    p.add_argument("--from-bpftime", metavar="EXPORT.json",
                   help="the input is the program --program names (by name or fd) in a "
                        "'bpftimetool export' file, with its maps' attributes")


def given(args) -> bool:
    """Whether the input is raw bytecode; exactly one input is refused otherwise."""
    named = [f for f in (args.input, args.raw, args.from_bpftime) if f is not None]
    if len(named) != 1:
        raise EbpfLtoError("give one input: an ELF object, --raw FILE or --from-bpftime FILE")
    if args.map_def and not args.raw:
        raise EbpfLtoError("--map-def gives the maps of --raw input")
    return args.input is None


def input_path(args) -> str:
    return args.input or args.raw or args.from_bpftime


def load(args):
    """The raw program as an object. --program names an export's program by name
    or fd; afterwards it is the program's own name, which the object holds."""
    if args.from_bpftime:
        program = raw.from_bpftime(args.from_bpftime, args.program)
        args.program = program.name
    else:
        maps = {}
        for spec in args.map_def:
            fd, mdef = raw.parse_map_def(spec)
            if fd in maps:
                raise EbpfLtoError(f"--map-def gives map fd {fd} twice")
            maps[fd] = mdef
        code = inputs.read(args.raw, "input")[1]
        name = args.program or "main"
        program = raw.RawProgram(code, name, "raw", maps)
    return raw.load(program, inputs.display_name(input_path(args)))


def map_fds(specs: list[str]) -> dict[str, int]:
    """--map-fd NAME=FD, each name once."""
    fds: dict[str, int] = {}
    for spec in specs:
        name, _, fd = spec.rpartition("=")
        try:
            number = int(fd)
        except ValueError:
            number = None
        if not name or number is None:
            raise EbpfLtoError(f"--map-fd wants NAME=FD with FD a number, not {spec!r}")
        if name in fds:
            raise EbpfLtoError(f"--map-fd gives map {name!r} twice")
        fds[name] = number
    return fds
