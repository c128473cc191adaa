"""PGO glue: counters out of an instrumented object, and profiles in and out of files.

`link --instrument` makes the lifter count each basic block and each taken
conditional branch per eBPF function (docs/abi.md); `run --profile-out`
reads those counters through the object's exported table and writes them in
LLVM's instrumentation profile format (profdata.py), which `llvm-profdata`
shows and merges; `link --profile` reads them back into the lifter.
"""
from __future__ import annotations

import ctypes

from .. import inputs
from ..errors import EbpfLtoError
from ..facts.abi import COUNTERS, PROFILE_COUNT, PROFILE_TABLE
from ..run.runner import LoadedObjects

Counts = dict[str, tuple[int, list[int]]]  # function -> (CFG hash, counters)


class _Row(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("hash", ctypes.c_uint64),
                ("ncounters", ctypes.c_uint32), ("first", ctypes.c_uint32)]


def read_counters(loaded: LoadedObjects) -> Counts:
    try:
        nrows = ctypes.c_uint32.from_address(loaded.address(PROFILE_COUNT)).value
    except (KeyError, RuntimeError):
        raise EbpfLtoError("the object has no counters: link it with --instrument") from None
    rows = (_Row * nrows).from_address(loaded.address(PROFILE_TABLE))
    total = sum(r.ncounters for r in rows)
    counters = (ctypes.c_uint64 * total).from_address(loaded.address(COUNTERS))
    return {r.name.decode(): (r.hash, list(counters[r.first:r.first + r.ncounters])) for r in rows}


def load(path: str) -> Counts:
    from . import profdata  # the codec, only when a profile is read or written
    _, data = inputs.read(path, "profile")
    name = inputs.display_name(path)
    try:
        if data[:8] == profdata.INDEXED_MAGIC.to_bytes(8, "little"):
            prof = profdata.read_indexed(data)
        else:
            prof = profdata.read_text(data.decode())
    except UnicodeDecodeError:  # neither format: say what it is instead
        raise EbpfLtoError(f"not an LLVM instrumentation profile ({inputs.describe(data)})",
                           file=name) from None
    except profdata.ProfdataError as err:
        raise EbpfLtoError(f"not an LLVM instrumentation profile: {err}", file=name) from None
    return {f.name: (f.hash, list(f.counters)) for f in prof.functions.values()}


def save(counts: Counts, path: str) -> bytes:
    """The profile as bytes: indexed for a .profdata name, else the text format."""
    from . import profdata
    prof = profdata.Profile({name: profdata.FunctionProfile(name, h, c)
                             for name, (h, c) in counts.items()})
    if path.endswith(".profdata"):
        return profdata.write_indexed(prof)
    return profdata.write_text(prof).encode()
