"""The machine's tools the suite builds and runs with: clang and cc, libbpf's helper
declarations, DPDK's librte_bpf; and the machine itself, described for a report."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ...errors import EbpfLtoError

HELPER_DEFS = "bpf/bpf_helper_defs.h"
DPDK_LIB = "librte_bpf.so.23"  # Debian's librte-bpf23; EBPF_LTO_BENCH_DPDK_LIB overrides


@dataclass(frozen=True)
class Toolchain:
    clang: str
    cc: str

    @staticmethod
    def find() -> "Toolchain":
        clang = shutil.which("clang-19") or shutil.which("clang")
        if clang is None:
            raise EbpfLtoError("bench needs clang (clang-19) for the native twins")
        cc = shutil.which("cc") or clang
        return Toolchain(clang, cc)


def run_tool(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    """Run one build step; its failure is an error naming the step and ending its stderr."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EbpfLtoError(f"{what} failed: {' '.join(cmd)}\n{proc.stderr.strip()[-2000:]}")


def include_dirs() -> list[str]:
    """The multiarch include folder (asm/types.h for linux/bpf.h), where there is one."""
    multiarch = f"/usr/include/{platform.machine()}-linux-gnu"
    return [f"-I{multiarch}"] if Path(multiarch).is_dir() else []


def helper_defs() -> Path:
    """libbpf's bpf_helper_defs.h: every helper's C declaration and id."""
    for base in ("/usr/include", "/usr/local/include"):
        path = Path(base) / HELPER_DEFS
        if path.is_file():
            return path
    raise EbpfLtoError("bench needs libbpf's headers (bpf/bpf_helper_defs.h, libbpf-dev)")


def dpdk_lib() -> str:
    """The librte_bpf the driver opens for the DPDK modes."""
    return os.environ.get("EBPF_LTO_BENCH_DPDK_LIB", DPDK_LIB)


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count()}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "L1d cache",
                               "L2 cache", "L3 cache", "Hypervisor vendor", "CPU max MHz"):
                info[key.strip()] = value.strip()
    except OSError:
        pass
    import llvmlite.binding as llvm
    info["llvm (ebpf-lto)"] = ".".join(map(str, llvm.llvm_version_info))
    try:
        info["clang (twin)"] = subprocess.run([Toolchain.find().clang, "--version"],
                                              capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, EbpfLtoError, IndexError):
        pass
    return info
