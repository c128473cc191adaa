"""Helper sets: which helper ids a build provides, and their bitcode.

A helper set is LLVM bitcode (or IR) defining `_bpf_helper_ext_NNNN`
functions. Named sets ship in helper_bitcode/ (built by clang, one .bc per
target triple); a user may also name files. Later sets override earlier ones.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import llvmlite.binding as llvm

from .. import codegen, inputs
from ..errors import EbpfLtoError
from ..facts.abi import HOST_API_PREFIX, helper_id, helper_symbol
from ..facts.helpers import HELPER_ARGS, READ_ONLY_HELPERS, ArgKind, HelperArg
from ..lift import LiftOptions

# Named sets: the helper_bitcode/ files they consist of, and the ids after
# which r0 == 0 ends the program (uBPF's unwind extension).
# `default` is the Linux helper library (docs/helpers.md), one file per
# family; `conformance` reuses ids 0-5 with uBPF's meanings, so the two sets
# do not mix.
NAMED_SETS: dict[str, tuple[tuple[str, ...], frozenset[int]]] = {
    "default": (("checksum", "time", "identity", "memory", "output", "loop", "packet",
                 "maps", "map_array", "map_hash", "map_queue", "map_ringbuf", "map_perf",
                 "map_lpm", "map_prog", "map_of_maps", "redirect", "flow"),
                frozenset()),
    "conformance": (("conformance",), frozenset({5})),
    "none": ((), frozenset()),
}


# The pointer arguments of each named set's helpers (facts/helpers.py); the
# conformance set's memfrob (uBPF's test helper 1) writes r2 bytes at r1.
ARG_SPECS: dict[str, dict[int, tuple[HelperArg, ...]]] = {
    "default": HELPER_ARGS,
    "conformance": {1: (HelperArg(ArgKind.MEM, 1, 2, write=True),)},
}


@dataclass(frozen=True)
class HelperSource:
    """One unit of helper code: a name for messages and its module text or bitcode."""
    name: str
    payload: bytes
    is_bitcode: bool
    unwind: frozenset[int] = frozenset()


@dataclass(frozen=True)
class HelperSet:
    sources: tuple[HelperSource, ...]
    provides: tuple[tuple[int, str], ...]  # (helper id, source that defines it), last wins
    host_api: tuple[str, ...] = ()         # ebpf_lto_* functions the sets define for hosts
    host_data: tuple[str, ...] = ()        # ebpf_lto_* variables: records a host reads and writes
    removed: frozenset[int] = frozenset()  # ids whose definitions are kept out (`without`)

    @property
    def ids(self) -> frozenset[int]:
        return frozenset(hid for hid, _ in self.provides)

    def from_files(self) -> frozenset[int]:
        """The helpers that a file the user named provides, not a named set."""
        return frozenset(hid for hid, source in self.provides
                         if source.partition(":")[0] not in NAMED_SETS)

    def without(self, ids: frozenset[int]) -> HelperSet:
        """This set minus helpers `ids` and the host API: a runtime provides those itself."""
        provides = tuple(p for p in self.provides if p[0] not in ids)
        return dataclasses.replace(self, provides=provides, host_api=(), host_data=(),
                                   removed=self.removed | ids)

    def needing_host(self, allowed) -> frozenset[int]:
        """The helpers whose code calls a function no source defines and `allowed`
        (a predicate on names) does not allow: the C library, say, that a host
        process gives and a bare loader does not."""
        graph: dict[str, frozenset[str]] = {}
        for src in self.sources:
            graph.update(_references(src))
        outside = {name for refs in graph.values() for name in refs
                   if name not in graph and not allowed(name)}
        needing = set()
        for hid, _ in self.provides:
            seen, todo = set(), [helper_symbol(hid)]
            while todo and not outside & seen:
                name = todo.pop()
                if name not in seen:
                    seen.add(name)
                    todo += graph.get(name, ())
            if outside & seen:
                needing.add(hid)
        return frozenset(needing)

    def lift_options(self) -> LiftOptions:
        unwind = frozenset().union(*(s.unwind for s in self.sources)) & self.ids
        # Each provided helper's pointer arguments, as its named set knows them; a
        # helper from the user's own file validates its arguments itself.
        args = {hid: spec for hid, source in self.provides
                if (spec := ARG_SPECS.get(source.partition(":")[0], {}).get(hid))}
        # Read-only as Linux's: a helper of the default set, or of none (the runtime's).
        other = frozenset(hid for hid, source in self.provides
                          if source.partition(":")[0] != "default")
        return LiftOptions(unwind_helpers=unwind, callx_helpers=tuple(sorted(self.ids)),
                           helper_args=args, read_only=READ_ONLY_HELPERS - other)

    def modules(self) -> list[llvm.ModuleRef]:
        """Fresh LLVM modules, later sources' definitions overriding earlier ones.

        A removed helper's definition is renamed and internal, so the
        program's calls to it stay external and global DCE drops the body.
        """
        owner = dict(self.provides)
        mods = [_parse(src) for src in self.sources]
        for src, mod in zip(self.sources, mods):
            for fn in mod.functions:
                hid = helper_id(fn.name)
                if hid is None or fn.is_declaration:
                    continue
                if hid in self.removed:
                    fn.name = f"ebpf_lto.removed.{fn.name}"
                    fn.linkage = llvm.Linkage.internal
                elif owner[hid] != src.name:
                    fn.linkage = llvm.Linkage.available_externally
        return mods


def bitcode_dir() -> Path:
    return Path(str(resources.files("inliner.helper_bitcode")))


def resolve(spec: str, arch: str) -> HelperSet:
    """`default`, `conformance`, or a comma list of set names and .bc/.ll files."""
    sources: list[HelperSource] = []
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            raise EbpfLtoError(f"empty entry in helper list {spec!r}")
        if item in NAMED_SETS:
            files, unwind = NAMED_SETS[item]
            for f in files:
                path = bitcode_dir() / arch / f"{f}.bc"
                if not path.is_file():
                    raise EbpfLtoError(f"helper set {item!r} has no bitcode for {arch} ({path})")
                sources.append(HelperSource(f"{item}:{f}", path.read_bytes(), True, unwind))
        elif item.endswith((".bc", ".ll")):
            kind, payload = inputs.read(item, "helper file", (inputs.BITCODE, inputs.LLVM_IR))
            sources.append(HelperSource(inputs.display_name(item), payload,
                                        kind == inputs.BITCODE))
        else:
            known = ", ".join(NAMED_SETS)
            raise EbpfLtoError(f"unknown helper set {item!r} (named sets: {known}; "
                               "or a .bc/.ll file)")
    provides: dict[int, str] = {}
    host_api: set[str] = set()
    host_data: set[str] = set()
    for src in sources:
        ids, api, data = _definitions(src)
        provides.update((hid, src.name) for hid in ids)
        host_api.update(api)
        host_data.update(data)
    return HelperSet(tuple(sources), tuple(sorted(provides.items())), tuple(sorted(host_api)),
                     tuple(sorted(host_data)))


@lru_cache(maxsize=64)
def _definitions(src: HelperSource) -> tuple[tuple[int, ...], tuple[str, ...], tuple[str, ...]]:
    """The helper ids a source defines, its host API functions and its host variables."""
    mod = _parse(src)
    defined = [fn.name for fn in mod.functions
               if not fn.is_declaration and fn.linkage == llvm.Linkage.external]
    data = tuple(gv.name for gv in mod.global_variables if not gv.is_declaration
                 and gv.linkage == llvm.Linkage.external and gv.name.startswith(HOST_API_PREFIX))
    return (tuple(hid for name in defined if (hid := helper_id(name)) is not None),
            tuple(name for name in defined if name.startswith(HOST_API_PREFIX)), data)


@lru_cache(maxsize=64)
def _references(src: HelperSource) -> dict[str, frozenset[str]]:
    """Each function the source defines, and the functions its instructions name."""
    mod = _parse(src)
    names = {fn.name for fn in mod.functions}
    return {fn.name: frozenset(op.name for block in fn.blocks for ins in block.instructions
                               for op in ins.operands if op.name in names)
            for fn in mod.functions if not fn.is_declaration}


def _parse(src: HelperSource) -> llvm.ModuleRef:
    if src.is_bitcode:
        return codegen.parse_bitcode(src.payload, src.name)
    try:
        text = src.payload.decode()
    except UnicodeDecodeError:
        raise EbpfLtoError("helper IR file is not text", file=src.name) from None
    return codegen.parse_ir(text, src.name)
