"""bpftime's engine, llvmbpf, built from source, and a host that runs programs through it.

llvmbpf (eunomia-bpf/llvmbpf; ../shared/peers/llvmbpf) is the LLVM JIT and AOT
compiler inside bpftime, and its `load_aot_object` is the loader an
`ebpf-lto link --abi bpftime` object meets in bpftime's runtime. `build`
compiles llvmbpf as a static library with Debian's LLVM 15 and the host in
benchmarks/llvmbpf/ against it, into a cache that a later run (a second CI
run, say) finds: `~/.cache/ebpf-lto/llvmbpf/KEY`, KEY a hash of llvmbpf's
source and of the build steps, the host named by a hash of its own sources.
`Host` runs one program and returns what the host prints (docs/testing.md,
"bpftime's loader"). `build_library` builds the same host as a shared
library, libllvmbpf-bench.so, which `ebpf-lto bench`'s driver loads to time
llvmbpf's code beside its other modes (docs/benchmarks.md).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..link.helpers import bitcode_dir
from .bench.suite import bench_dir

# What building needs on Debian, for messages and .ci/run.
PACKAGES = ("llvm-15-dev", "libspdlog-dev", "libfmt-dev", "cmake", "g++", "libbpf-dev")
LLVM_CONFIG = "llvm-config-15"
# llvmbpf fetches spdlog from GitHub unless told to take the system's; offline, it must.
# Position-independent, so that the bench's shared library (libllvmbpf-bench.so) links it.
CMAKE_ARGS = ("-DCMAKE_BUILD_TYPE=Release", "-DFETCHCONTENT_TRY_FIND_PACKAGE_MODE=ALWAYS",
              "-DFETCHCONTENT_FULLY_DISCONNECTED=ON", "-DCMAKE_POSITION_INDEPENDENT_CODE=ON")
# The macros Debian's spdlog target gives llvmbpf: the host must use the same, or it
# gets a second, header-only spdlog registry.
SPDLOG_DEFINES = ("-DSPDLOG_SHARED_LIB", "-DSPDLOG_COMPILED_LIB", "-DSPDLOG_FMT_EXTERNAL")
HOST_SOURCES = ("host.cpp", "elf_loader.cpp", "elf_loader.h")
HOST_FLAGS = ("-std=c++20", "-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers")
LIBRARY = "libllvmbpf_vm.a"


class Unavailable(Exception):
    """llvmbpf cannot be built here; the message says why, in one line."""


class HostError(Exception):
    """The host refused or failed a run; the message is its one line."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ebpf-lto" / "llvmbpf"


def host_dir() -> Path:
    return bench_dir() / "llvmbpf"


def missing() -> str | None:
    """What the build lacks here, or None."""
    for tool in (LLVM_CONFIG, "cmake", "g++", "gcc"):
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install {' '.join(PACKAGES)})"
    for header, package in (("spdlog/spdlog.h", "libspdlog-dev"), ("fmt/core.h", "libfmt-dev"),
                            ("bpf/libbpf.h", "libbpf-dev")):
        if not (Path("/usr/include") / header).is_file():
            return f"/usr/include/{header} not found (apt-get install {package})"
    return None


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()[:16]


def _tree(root: Path) -> bytes:
    """Every file's path and content under root, in a fixed order."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts)
    return b"".join(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() for p in files)


def _llvm(*args: str) -> list[str]:
    out = subprocess.run([LLVM_CONFIG, *args], capture_output=True, text=True, check=True)
    return out.stdout.split()


def _step(cmd: list, log: Path, what: str) -> None:
    with open(log, "ab") as fh:
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if done.returncode:
        raise Unavailable(f"{what} failed (see {log})")


def _library(source: Path, root: Path, jobs: int) -> Path:
    """llvmbpf's library and headers, built once per source tree and LLVM."""
    key = _digest(_tree(source), " ".join(CMAKE_ARGS).encode(), *(
        " ".join(_llvm(arg)).encode() for arg in ("--version", "--cmakedir")))
    lib = root / key
    if (lib / LIBRARY).is_file():
        return lib
    work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=root))
    try:
        shutil.copytree(source, work / "src", ignore=shutil.ignore_patterns(".git"))
        for path in (work / "src").rglob("*"):   # the shared tree is read-only
            path.chmod(path.stat().st_mode | 0o200)
        log = work / "build.log"
        _step(["cmake", "-S", work / "src", "-B", work / "build", *CMAKE_ARGS,
               f"-DLLVM_DIR={_llvm('--cmakedir')[0]}"], log, "cmake configure of llvmbpf")
        _step(["cmake", "--build", work / "build", "--target", "llvmbpf_vm", f"-j{jobs}"],
              log, "build of llvmbpf")
        # The project writes the archive beside its build folder (ARCHIVE_OUTPUT_DIRECTORY).
        if not (work / LIBRARY).is_file():
            raise Unavailable(f"llvmbpf's build made no {LIBRARY} (see {log})")
        shutil.rmtree(work / "build")
        # The archive last, the folder renamed whole: a half-built cache is never taken.
        work.rename(lib)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return lib


def build(source: Path, jobs: int | None = None) -> Path:
    """The host executable for llvmbpf's source tree at `source`, built if not cached.

    Raises Unavailable, with the reason, when this machine cannot build it.
    """
    return _build(source, jobs, shared=False)


def build_library(source: Path, jobs: int | None = None) -> Path:
    """The same host as a shared library, libllvmbpf-bench.so: what `ebpf-lto bench`'s
    driver dlopens to call llvmbpf's code itself (llvmbpf_bench_prepare in host.cpp)."""
    return _build(source, jobs, shared=True)


def _build(source: Path, jobs: int | None, shared: bool) -> Path:
    if not (source / "include" / "llvmbpf.hpp").is_file():
        raise Unavailable(f"no llvmbpf source at {source}")
    if (why := missing()) is not None:
        raise Unavailable(why)
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    here = host_dir()
    with open(root / ".lock", "w") as lock:   # one build at a time among test sessions
        fcntl.flock(lock, fcntl.LOCK_EX)
        lib = _library(source, root, jobs or os.cpu_count() or 1)
        flags = [*HOST_FLAGS, f"-I{lib / 'src' / 'include'}", f"-I{lib / 'src' / 'src'}",
                 "-isystem", *_llvm("--includedir"), *SPDLOG_DEFINES]
        # The library takes LLVM's shared library: one copy of LLVM however it is loaded.
        llvm = ["--link-shared"] if shared else []
        libs = [*_llvm(*llvm, "--ldflags", "--libs", "core", "orcjit", "mcjit", "support",
                       "nativecodegen", "--system-libs"), "-lspdlog", "-lfmt", "-lbpf"]
        if shared:
            flags += ["-fPIC", "-shared", "-DLLVMBPF_BENCH_LIBRARY"]
        # Linux's csum_diff, for --semantics kernel: the helper library's C.
        csum = bitcode_dir() / "src" / "checksum.c"
        key = _digest(*((here / name).read_bytes() for name in HOST_SOURCES),
                      *(p.read_bytes() for p in (csum, *sorted(csum.parent.glob("*.h")))),
                      " ".join(flags + libs).encode())
        stem = "libllvmbpf-bench" if shared else "llvmbpf-host"
        host = lib / (f"{stem}-{key}.so" if shared else f"{stem}-{key}")
        if not host.is_file():
            for old in lib.glob(f"{stem}-*"):   # builds of older sources
                old.unlink()
            tmp, log = lib / f"{stem}.tmp", lib / "host.log"
            _step(["gcc", "-O2", "-fPIC", "-c", f"-I{csum.parent}", "-o",
                   tmp.with_suffix(".o"), csum], log, "compile of the helper library's csum_diff")
            _step(["g++", *flags, "-o", tmp, here / "host.cpp", here / "elf_loader.cpp",
                   tmp.with_suffix(".o"), lib / LIBRARY, *libs], log, f"compile of {stem}")
            tmp.with_suffix(".o").unlink()
            tmp.rename(host)
    return host


def _shared_source() -> Path:
    """The shared data's peers/llvmbpf (EBPF_LTO_SHARED names the shared data, as for
    the tests)."""
    shared = os.environ.get("EBPF_LTO_SHARED")
    if not shared:
        raise Unavailable("EBPF_LTO_SHARED is not set (llvmbpf's source is its peers/llvmbpf)")
    return Path(shared) / "peers" / "llvmbpf"


def bench_library() -> Path:
    """libllvmbpf-bench.so from the shared data's llvmbpf, built if not cached;
    Unavailable says why not."""
    return build_library(_shared_source())


def bench_host() -> "Host":
    """The host executable from the same llvmbpf: what the bench asks for llvmbpf's IR
    of a program and its instructions as bpftime holds them."""
    return Host(build(_shared_source()))


@dataclass(frozen=True)
class Host:
    """llvmbpf-host: an ELF's maps made as bpftime's loader makes them, one program run."""
    path: Path

    def _call(self, args: list, timeout: float) -> dict:
        done = subprocess.run([self.path, *map(str, args)], capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode:
            lines = done.stderr.strip().splitlines()
            raise HostError(lines[-1] if lines else f"llvmbpf-host exit {done.returncode}")
        return json.loads(done.stdout)

    def list(self, elf: Path, fd_floor: int = 0, timeout: float = 60) -> dict:
        """The programs (each one's instructions as loaded, "code", in hex) and maps of
        an ELF, with the fds bpftime's loader gives them: the lowest free, from
        fd_floor up."""
        return self._call(["--elf", elf, "--list", "--fd-floor", fd_floor], timeout)

    def compile(self, elf: Path, program: str, emit_llvm: Path, fd_floor: int = 0,
                timeout: float = 120) -> None:
        """Write llvmbpf's IR of `program` to emit_llvm, as `bpftime-aot compile -e`
        prints it, without loading or running it. The IR holds the maps' fds, given
        as `list` says."""
        self._call(["--elf", elf, "--program", program, "--engine", "aot", "--compile-only",
                    "--emit-llvm", emit_llvm, "--fd-floor", fd_floor], timeout)

    def run(self, elf: Path, program: str, data: bytes, *, load: Path | None = None,
            engine: str = "aot", setup: str | None = None, handle: str = "fd",
            semantics: str = "bpftime", ncpus: int = 1, repeat: int = 0,
            ctx: str | None = None, emit_llvm: Path | None = None,
            emit_obj: Path | None = None, timeout: float = 120) -> dict:
        """Run `program` of `elf` once on `data` (the packet of an xdp program, else r1's
        memory), through llvmbpf's `engine` or, with `load`, a native object through
        `load_aot_object`. repeat > 0 also times it: `ns_per_call`. ctx: the host's
        --ctx (None: its default). emit_llvm, emit_obj: with engine aot, where to
        write llvmbpf's IR and object (as `bpftime-aot compile -e` prints and writes)."""
        with tempfile.NamedTemporaryFile(suffix=".bin") as mem:
            mem.write(data)
            mem.flush()
            args = ["--elf", elf, "--program", program, "--mem", mem.name, "--handle", handle,
                    "--semantics", semantics, "--ncpus", ncpus]
            args += ["--load", load] if load else ["--engine", engine]
            args += ["--setup", setup] if setup else []
            args += ["--ctx", ctx] if ctx else []
            args += ["--emit-llvm", emit_llvm] if emit_llvm else []
            args += ["--emit-obj", emit_obj] if emit_obj else []
            args += ["--repeat", repeat] if repeat else []
            return self._call(args, timeout)


def main(argv: list[str] | None = None) -> int:
    """`python -m inliner.tools.llvmbpf SOURCE`: build, print the host's path."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m inliner.tools.llvmbpf LLVMBPF_SOURCE", file=sys.stderr)
        return 2
    try:
        print(build(Path(args[0])))
    except Unavailable as err:
        print(f"llvmbpf: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
