"""Building the modes: each benchmark program as a shared object the driver loads (or, for
DPDK, its raw instructions), with the helper set, the native twin and the driver itself."""
from __future__ import annotations

import dataclasses
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ... import codegen, pipeline
from ...elf import raw
from ...elf.model import EbpfObject, Program
from ...errors import EbpfLtoError
from ...facts import abi, contexts, isa, maps
from ...facts.helpers import helper_name
from ...link import helpers, link as linker
from ...pgo import profile
from .. import llvmbpf
from .suite import LLVMBPF_MODES, Benchmark, bench_dir
from .toolchain import Toolchain, include_dirs, run_tool
from .twin import twin_shim, twin_source

OPT_LEVEL = 3
TRAINING_RUNS = 100  # calls that train the pgo mode: a first call's map inserts weigh little
# The modes whose objects llvmbpf loads get their maps' fds from here up in the driver
# (its other files, and the other modes' maps, hold lower ones); each object is made for
# them: bpftime-lto's linked with --map-fd, llvmbpf-ir's and raw's from what llvmbpf's
# host, asked for the same floor, holds.
FD_FLOORS = {"bpftime-lto": 512, "llvmbpf-ir": 640, "raw": 768}
# clang stamps its cpu on every function it emits; the fair twin's functions lose it,
# so that the target machine's cpu applies, as to the lifted module (helper_bitcode's
# Makefile strips the helpers' alike).
_CPU_ATTRIBUTE = re.compile(r' "(target-cpu|target-features|tune-cpu)"="[^"]*"')


class Refused(Exception):
    """The mode cannot express this program; the message says why, in a line."""


@dataclass
class Built:
    """What the driver needs to run one mode: a `mode ...` config line, or why not."""
    line: str | None = None
    status: str = "ok"
    reason: str = ""


def _version_script(path: Path, symbols: list[str]) -> Path:
    path.write_text("{ global: " + " ".join(f"{s};" for s in symbols) + " local: *; };\n")
    return path


def _or_why(make: Callable):
    """What make() builds of llvmbpf, or why it cannot be built here."""
    try:
        return make()
    except llvmbpf.Unavailable as err:
        return str(err)


def called_helpers(obj: EbpfObject) -> set[int]:
    return {insn.imm for slots in obj.code.values() for insn in slots
            if isa.call_kind(insn) is isa.CallKind.HELPER}


def entry_slots(obj: EbpfObject, prog: Program) -> list:
    """The slots of a program's entry function (what librte_bpf is given)."""
    return obj.code[prog.entry.section][prog.entry.start:obj.functions[prog.entry].end]


class Builder:
    """Builds every mode of every benchmark program in one work folder."""

    def __init__(self, work: Path, tools: Toolchain, cpu: str = "native"):
        self.work = work
        self.tools = tools
        self.cpu = cpu
        self.options = pipeline.LinkOptions(opt_level=OPT_LEVEL, cpu=cpu, helpers="default")
        self.hset = pipeline.helper_set(self.options)
        self.target = codegen.make_target(self.options.arch, cpu)
        self._helpers_o: Path | None = None
        self._helpers_so: Path | None = None
        self._twin_helpers: list[Path] | None = None
        self._built: dict[tuple[str, str], Built] = {}
        self._ops = None
        self._llvmbpf: Path | str | None = None   # the library, or why there is none
        self._llvmbpf_host: llvmbpf.Host | str | None = None   # the host, or why not
        self.driver = self._build_driver()

    # shared pieces
    def _build_driver(self) -> Path:
        exe = self.work / "driver"
        run_tool([self.tools.cc, "-O2", "-Wall", f"-I{helpers.bitcode_dir() / 'src'}", "-o",
                  str(exe), str(bench_dir() / "driver.c"), "-ldl"], "building the timing driver")
        return exe

    def helpers_object(self) -> Path:
        """The helper set compiled alone: what --inline none calls out to."""
        if self._helpers_o is None:
            path = self.work / "helpers.o"
            path.write_bytes(pipeline.helper_object(self.hset, self.target, OPT_LEVEL))
            self._helpers_o = path
        return self._helpers_o

    def helpers_shared(self) -> Path:
        """The same helper object as a shared library: the helpers DPDK calls."""
        if self._helpers_so is None:
            path = self.work / "helpers.so"
            run_tool([self.tools.cc, "-shared", "-o", str(path), str(self.helpers_object())],
                     "linking the helper library")
            self._helpers_so = path
        return self._helpers_so

    def twin_helpers(self) -> list[Path]:
        """The default helper set's C, compiled for LTO (clang -O3 -flto)."""
        if self._twin_helpers is None:
            src = helpers.bitcode_dir() / "src"
            out = []
            for stem in helpers.NAMED_SETS["default"][0]:
                obj = self.work / f"twin_helper_{stem}.o"
                run_tool([self.tools.clang, "-O3", "-flto", "-fPIC", self._march(),
                          "-nostdlibinc", "-fno-stack-protector", f"-I{src}", "-c",
                          str(src / f"{stem}.c"), "-o", str(obj)],
                         f"compiling helper {stem}.c for the native twin")
                out.append(obj)
            self._twin_helpers = out
        return self._twin_helpers

    def _march(self) -> str:
        return "-march=native" if self.cpu == "native" else f"-march={self.cpu}" \
            if self.cpu != "generic" else "-march=x86-64"

    def supported_map_types(self) -> set[str]:
        """Map types whose operations the helper set defines (maps.h: TYPE_ops)."""
        if self._ops is None:
            import llvmlite.binding as llvm
            found = set()
            for mod in self.hset.modules():
                for gv in mod.global_variables:
                    if gv.name.endswith("_ops") and not gv.is_declaration \
                            and gv.linkage != llvm.Linkage.external_weak:
                        found.add(gv.name[:-4])
            self._ops = found
        return self._ops

    def llvmbpf_library(self) -> Path | str:
        """libllvmbpf-bench.so (bpftime's engine for the driver), or why it cannot be built."""
        if self._llvmbpf is None:
            self._llvmbpf = _or_why(llvmbpf.bench_library)
        return self._llvmbpf

    def llvmbpf_host(self) -> llvmbpf.Host | str:
        """llvmbpf's host (llvmbpf's IR of a program, bpftime's load of an ELF), or why not."""
        if self._llvmbpf_host is None:
            self._llvmbpf_host = _or_why(llvmbpf.bench_host)
        return self._llvmbpf_host

    def driver_settings(self) -> list[str]:
        """Config lines every benchmark's driver run gets: where the peers' libraries are."""
        lib = self._llvmbpf
        return [f"llvmbpf_lib {lib}", "llvmbpf_semantics kernel"] if isinstance(lib, Path) \
            else []

    # per program
    def missing(self, obj: EbpfObject) -> str | None:
        """Why the helper set cannot run this program yet, or None."""
        absent = sorted(called_helpers(obj) - self.hset.ids)
        types = {maps.type_name(m.type) for m in obj.maps.values()}
        unsupported = sorted(t for t in types if t not in self.supported_map_types())
        if obj.maps and not {1, 2} <= self.hset.ids:
            return "needs the map runtime"
        if unsupported:
            return f"needs the map runtime ({', '.join(unsupported)} maps)"
        if absent:
            return "needs helpers " + ", ".join(f"{h} ({helper_name(h)})" for h in absent)
        return None

    def build(self, mode: str, bench: Benchmark, obj: EbpfObject) -> Built:
        # A pgo build is trained on its benchmark's input, so each size of a
        # program gets its own; every other mode is built once per program (a
        # source may hold several: accum.c's accum_4 and accum_8).
        stem = bench.stem if mode == "pgo" else bench.program
        key = (mode, stem)
        if key not in self._built:
            try:
                self._built[key] = self._build(mode, bench, obj, stem)
            except EbpfLtoError as err:
                self._built[key] = Built(status="failed", reason=str(err).splitlines()[0])
        return self._built[key]

    def train(self, bench: Benchmark, obj: EbpfObject, options: pipeline.LinkOptions,
              path: Path) -> Path:
        """Write the profile of TRAINING_RUNS calls on the benchmark's input to `path`.

        The calls are the driver's: the setup program once, then the program
        on a fresh XDP context around the packet, or on the same memory each
        time (copied back first if the program changes it).
        """
        loaded, _ = pipeline.load(obj, dataclasses.replace(options, instrument=True))
        if bench.setup:
            loaded.call(bench.setup, None)
        data = bench.input
        memory = bytearray(data)
        is_xdp = obj.program(bench.program).prog_type == "xdp"
        for _ in range(TRAINING_RUNS):
            if is_xdp:
                loaded.call_packet(bench.program, contexts.XDP, data)
                continue
            if bench.restore:
                memory[:] = data
            loaded.call(bench.program, memory)
        path.write_bytes(profile.save(profile.read_counters(loaded), str(path)))
        return path

    def _build(self, mode: str, bench: Benchmark, obj: EbpfObject, stem: str) -> Built:
        if mode.startswith("dpdk"):
            return self._build_dpdk(mode, bench, obj)
        if mode in LLVMBPF_MODES and not isinstance(self.llvmbpf_library(), Path):
            return Built(status="unavailable", reason=f"llvmbpf: {self.llvmbpf_library()}")
        if mode in ("llvmbpf-jit", "llvmbpf-aot"):  # bpftime's helpers, not the helper set
            return self._build_llvmbpf(mode, bench, obj)
        missing = self.missing(obj)
        if missing:
            return Built(status="needs", reason=missing)

        def out(ext: str) -> Path:  # every file of one build: STEM.MODE.EXT
            return self.work / f"{stem}.{mode}{ext}"
        if mode in ("none", "lto", "unchecked", "pgo", "lto-generic"):
            return self._build_linked(mode, bench, obj, out)
        if mode == "bpftime-lto":
            return self._build_bpftime(bench, obj, out)
        if mode in ("llvmbpf-ir", "raw"):
            return self._build_from_llvmbpf(mode, bench, obj, out)
        if mode == "twin":
            return self._build_twin(bench, obj, out)
        if mode == "twin-clang19":
            return self._build_twin_clang(bench, obj, out)
        raise EbpfLtoError(f"unknown mode {mode}")

    def _build_linked(self, mode: str, bench: Benchmark, obj: EbpfObject,
                      out: Callable[[str], Path]) -> Built:
        """none, lto, unchecked, pgo, lto-generic: `ebpf-lto link`'s object as a shared library."""
        inline = "none" if mode == "none" else "auto"
        opts = dataclasses.replace(self.options, inline=inline, checks=mode != "unchecked")
        if mode == "lto-generic":
            opts = dataclasses.replace(opts, cpu="generic")
        if mode == "pgo":
            trained = self.train(bench, obj, opts, out(".profdata"))
            opts = dataclasses.replace(opts, profile=str(trained))
        image, linked = pipeline.link(obj, opts, emit="obj")
        if linked.stale:  # trained on this very object: a mismatch is a bug
            raise EbpfLtoError(f"the profile does not fit {', '.join(linked.stale)}")
        exports = [bench.program] + ([bench.setup] if bench.setup else [])
        beside = [self.helpers_object()] if not linked.linked_in and linked.external_helpers \
            else []
        self._shared(image, exports, out, f"linking {bench.source} ({mode})", beside)
        return Built(f"mode {mode} so {out('.so')} {bench.program} {bench.setup or '-'}")

    def _shared(self, image: bytes, exports: list[str], out: Callable[[str], Path], what: str,
                beside: list[Path]) -> None:
        """An object ebpf-lto's LLVM emitted as the shared library the driver loads, with
        `beside` (the helper object, when helpers stayed out of line)."""
        out(".o").write_bytes(image)
        objects = [str(out(".o")), *map(str, beside)]
        vs = _version_script(out(".map"), exports)
        run_tool([self.tools.cc, "-shared", "-o", str(out(".so")), *objects,
                  f"-Wl,--version-script={vs}"], what)

    def _llvmbpf_line(self, mode: str, bench: Benchmark, obj: EbpfObject, engine: str,
                      ctx: str, fd_floor: int) -> Built:
        return Built(f"mode {mode} llvmbpf {bench_dir() / (bench.source + '.o')} "
                     f"{bench.program} {bench.setup or '-'} {engine} "
                     f"{ctx if obj.program(bench.program).prog_type == 'xdp' else 'raw'} "
                     f"{fd_floor}")

    def _build_llvmbpf(self, mode: str, bench: Benchmark, obj: EbpfObject) -> Built:
        """llvmbpf's JIT or AOT of the bytecode, as bpftime runs it: nothing to build here;
        the bytecode reads the kernel's struct xdp_md, which llvmbpf does not rewrite."""
        return self._llvmbpf_line(mode, bench, obj, mode.removeprefix("llvmbpf-"),
                                  "xdp-kernel", 0)

    def _build_bpftime(self, bench: Benchmark, obj: EbpfObject,
                       out: Callable[[str], Path]) -> Built:
        """`ebpf-lto link --abi bpftime`, inlined, for the maps the driver's llvmbpf makes."""
        floor = FD_FLOORS["bpftime-lto"]
        shift = floor - abi.FIRST_MAP_FD
        fds = {name: fd + shift for name, fd in abi.default_map_fds(obj.maps).items()}
        # load_aot_object runs the object's bpf_main: this program alone, so that it is.
        opts = dataclasses.replace(self.options, abi="bpftime", map_fds=fds,
                                   program=bench.program)
        image, _ = pipeline.link(obj, opts, emit="obj")
        out(".o").write_bytes(image)
        return self._llvmbpf_line("bpftime-lto", bench, obj, f"load:{out('.o')}", "xdp", floor)

    def _build_from_llvmbpf(self, mode: str, bench: Benchmark, obj: EbpfObject,
                            out: Callable[[str], Path]) -> Built:
        """llvmbpf-ir, raw: ebpf-lto linking what bpftime's toolchain holds of the program,
        made by llvmbpf's host for the maps the driver's llvmbpf gives this mode (the
        same ELF loaded the same way, from the same fd floor); llvmbpf's host refusing
        the program is the mode's refusal."""
        host = self.llvmbpf_host()
        if isinstance(host, str):
            return Built(status="unavailable", reason=f"llvmbpf: {host}")
        floor = FD_FLOORS[mode]
        elf = bench_dir() / f"{bench.source}.o"
        try:
            if mode == "llvmbpf-ir":
                image = self._llvmbpf_ir(host, elf, bench, floor, out)
            else:
                image = self._raw(host.list(elf, fd_floor=floor), bench, obj, out)
        except (llvmbpf.HostError, subprocess.TimeoutExpired) as err:
            return Built(status="refused", reason=f"llvmbpf: {err}")
        except Refused as err:
            return Built(status="refused", reason=str(err))
        out(".o").write_bytes(image)
        # llvmbpf's code reads the kernel's struct xdp_md; ebpf-lto's lift of the
        # bytecode reads bpftime's (docs/abi.md)
        ctx = "xdp-kernel" if mode == "llvmbpf-ir" else "xdp"
        return self._llvmbpf_line(mode, bench, obj, f"load:{out('.o')}", ctx, floor)

    def _llvmbpf_ir(self, host: llvmbpf.Host, elf: Path, bench: Benchmark, floor: int,
                    out: Callable[[str], Path]) -> bytes:
        """llvmbpf's own IR of the program, as `bpftime-aot compile -e` prints it (its
        maps' fds baked in), linked by `ebpf-lto link --abi bpftime` with the lto mode's
        options: its map and context helpers stay the runtime's (pipeline.ir_helper_set)."""
        ir = out(".ll")
        host.compile(elf, bench.program, ir, fd_floor=floor)
        image, _ = pipeline.link_ir(ir.read_bytes(), str(ir),
                                    dataclasses.replace(self.options, abi="bpftime"))
        return image

    def _raw(self, loaded: dict, bench: Benchmark, obj: EbpfObject,
             out: Callable[[str], Path]) -> bytes:
        """The program's instructions as bpftime holds them (libbpf's load: each lddw of a
        map its fd, src 1; subprograms appended) and its maps' attributes from the same
        load, linked as `ebpf-lto link --raw FILE --map-def FD=TYPE:KEY:VALUE:ENTRIES:NAME
        --type TYPE --abi bpftime`. The type is the ELF's: libbpf records a `raw`
        section as a socket filter, whose context is not the memory the driver passes."""
        prog = next((p for p in loaded["programs"] if p["name"] == bench.program), None)
        if prog is None:
            raise Refused(f"bpftime's load of {bench.source}.o holds no program {bench.program}")
        code = out(".bin")
        code.write_bytes(bytes.fromhex(prog["code"]))
        maps = dict(raw.parse_map_def(f"{m['fd']}={m['type'].removeprefix('type ')}:"
                                      f"{m['key_size']}:{m['value_size']}:{m['max_entries']}"
                                      f":{name}") for name, m in loaded["maps"].items())
        program = raw.RawProgram(code.read_bytes(), bench.program,
                                 obj.program(bench.program).prog_type, maps)
        try:  # what raw input cannot say (a map's value by lddw, say) is the mode's refusal
            loaded_raw = raw.load(program, code.name)
        except EbpfLtoError as err:
            raise Refused(f"raw input: {str(err).splitlines()[0]}") from None
        image, _ = pipeline.link(loaded_raw, dataclasses.replace(
            self.options, abi="bpftime", program=bench.program), emit="obj")
        return image

    def _twin_source(self, bench: Benchmark, obj: EbpfObject) -> tuple[Path, dict[str, str]]:
        """The twin's one translation unit (twin.py), and its entries: symbol -> program."""
        entries = {"twin_main": bench.program}
        if bench.setup:
            entries["twin_setup"] = bench.setup
        (self.work / "twin_shim.h").write_text(twin_shim())
        src = self.work / f"{bench.source}.twin.c"
        src.write_text(twin_source(obj, bench_dir() / f"{bench.source}.c", entries,
                                   self.options.ncpus))
        return src, entries

    def _twin_flags(self) -> list[str]:
        return ["-fPIC", "-w", *include_dirs(), f"-I{self.work}",
                f"-I{helpers.bitcode_dir() / 'src'}", f"-I{bench_dir()}"]

    def twin_ir(self, bench: Benchmark, obj: EbpfObject) -> tuple[str, dict[str, str]]:
        """The fair twin's C through clang's front end alone: LLVM IR no pass has run on
        (-O3 for the front end's choices, -disable-llvm-passes), without clang's cpu."""
        src, entries = self._twin_source(bench, obj)
        ll = self.work / f"{bench.source}.twin.ll"
        run_tool([self.tools.clang, f"-O{OPT_LEVEL}", "-Xclang", "-disable-llvm-passes",
                  "-S", "-emit-llvm", *self._twin_flags(), str(src), "-o", str(ll)],
                 f"compiling the native twin of {bench.source}")
        return _CPU_ATTRIBUTE.sub("", ll.read_text()), entries

    def _build_twin(self, bench: Benchmark, obj: EbpfObject,
                    out: Callable[[str], Path]) -> Built:
        """The fair twin: the program's C by clang's front end, then the lto mode's stages
        (pipeline.compile_module's): its helper set's bitcode linked in, all but the entries
        internalized, LLVM's -O3 and ebpf-lto's own passes, emitted for its target machine.
        Not pipeline.link_ir, which takes IR for another lifter's, with map handles and a
        context of its own; the twin's maps and context are ebpf-lto's (twin.py)."""
        ir, entries = self.twin_ir(bench, obj)
        tm = codegen.target_machine(self.target, OPT_LEVEL)
        mod = codegen.parse_ir(ir, f"{bench.source}.twin.ll")
        codegen.set_target(mod, tm)
        linker.link_helpers(mod, self.hset, tm)
        linker.internalize(mod, set(entries), tm)
        mod = codegen.optimize(mod, tm, OPT_LEVEL)
        self._shared(codegen.emit(mod, tm, "obj"), list(entries), out,
                     f"linking the native twin of {bench.source}", [])
        return Built(f"mode twin so {out('.so')} twin_main "
                     f"{'twin_setup' if bench.setup else '-'}")

    def _build_twin_clang(self, bench: Benchmark, obj: EbpfObject,
                          out: Callable[[str], Path]) -> Built:
        """The twin as clang-19 builds it: the program's C with the helpers' C, -O3 -flto."""
        src, entries = self._twin_source(bench, obj)
        twin_o = out(".o")
        run_tool([self.tools.clang, "-O3", "-flto", self._march(), *self._twin_flags(), "-c",
                  str(src), "-o", str(twin_o)],
                 f"compiling the clang-19 twin of {bench.source}")
        vs = _version_script(out(".map"), list(entries))
        run_tool([self.tools.clang, "-O3", "-flto", self._march(), "-shared", "-o",
                  str(out(".so")), str(twin_o),
                  *map(str, self.twin_helpers()), f"-Wl,--version-script={vs}"],
                 f"linking the clang-19 twin of {bench.source}")
        return Built(f"mode twin-clang19 so {out('.so')} twin_main "
                     f"{'twin_setup' if bench.setup else '-'}")

    def _build_dpdk(self, mode: str, bench: Benchmark, obj: EbpfObject) -> Built:
        prog = obj.program(bench.program)
        if contexts.for_program_type(prog.prog_type) is not None:
            return Built(status="refused", reason=f"{prog.prog_type} context: librte_bpf "
                         "passes a buffer or an mbuf, not struct xdp_md")
        if obj.maps:
            return Built(status="refused", reason="maps: librte_bpf has none")
        if any(ref.kind == "call" for ref in obj.refs.values()):
            return Built(status="refused", reason="bpf-to-bpf calls: librte_bpf has none")
        if any(ref.kind == "data" for ref in obj.refs.values()):
            return Built(status="refused", reason="global data: librte_bpf has none")
        insns = self.work / f"{bench.source}.insns"
        insns.write_bytes(b"".join(s.encode() for s in entry_slots(obj, prog) if s is not None))
        return Built(f"mode {mode} {mode} {insns} {self.helpers_shared()}")
