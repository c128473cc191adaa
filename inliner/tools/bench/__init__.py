"""`ebpf-lto bench`: the benchmark suite, timed natively, every mode in one process.

Each benchmark is an eBPF C program in benchmarks/ (committed with its
object) and one input. Every mode of a benchmark is built into a shared
object (or, for DPDK, handed to librte_bpf), and benchmarks/driver.c, a small
C program compiled here, loads them all into one process, checks that they
agree, and times them round-robin. Python never runs between calls.

Modes:

- `none`: `ebpf-lto link --inline none`, the shape of bpftime's AOT: helpers
  stay calls to `_bpf_helper_ext_NNNN`, defined by the helper set compiled as
  an object of its own (pipeline.helper_object), linked beside the program.
- `lto`: `ebpf-lto link` with the plan's inlining (`--inline auto`): helpers
  linked in as bitcode and optimized with the program.
- `pgo`: `lto` linked with a profile (docs/pgo.md): the program is first
  linked with `--instrument` and run over the benchmark's own input (training
  on representative traffic), its counters are written as an LLVM indexed
  profile, and the program is linked again with `--profile`.
- `twin`: the same C compiled natively, fairly: clang's front end alone makes
  its LLVM IR, which `lto`'s own stages link with the same helper bitcode,
  optimize at the same level for the same target and emit: what the program
  would cost written as native code. The sources'
  hints reach the eBPF build alone (benchmarks/bench.h), as the bytecode
  carries none to ebpf-lto's optimizer.
- `twin-clang19`: the twin as it was built before (issue 19): clang-19 -O3
  with the helper C, LTO over both (`-flto`), so LLVM 19's optimizer.
- `lto-generic`: `lto` for a generic x86-64, the target llvmbpf's AOT
  compiles for: the gain from inlining apart from the gain from the target.
- `bpftime-lto`: `ebpf-lto link --abi bpftime`, loaded by llvmbpf's
  `load_aot_object` as bpftime's runtime loads it.
- `llvmbpf-ir`: llvmbpf's own IR of the program (`bpftime-aot compile -e`)
  linked by `ebpf-lto link --abi bpftime`, loaded the same way.
- `raw`: the bytecode as bpftime holds it (maps relocated to fds) linked by
  `ebpf-lto link --raw --map-def --abi bpftime`, loaded the same way.
- `dpdk-interp`, `dpdk-jit`: DPDK's librte_bpf (Debian's librte-bpf23),
  interpreter and x86-64 JIT, given the helpers as C functions.
- `llvmbpf-jit`, `llvmbpf-aot`: bpftime's engine (llvmbpf, built from the
  shared data's peers/llvmbpf) compiling the bytecode, bpftime's helpers out
  of line; the driver calls its code through libllvmbpf-bench.so
  (inliner/tools/llvmbpf.py). Without llvmbpf these five are unavailable.

`--quick` is a correctness check, not a measurement: one call per mode,
every mode's r0 and memory compared with the native twin's.

The package, stage by stage: suite.py (the benchmarks, their inputs, the
modes), toolchain.py (clang, libbpf's headers, DPDK, the machine), twin.py
(the native twin's C), build.py (every mode built), driver.py (one benchmark
run by benchmarks/driver.c and checked against the twin), stats.py (outcomes,
medians, ratios, geometric means), report.py (tables, lines, JSON), plot.py
(charts), compile_cost.py (`--compile-cost`) and command.py (the options and
the command).
"""
from .command import add_arguments, command

__all__ = ["add_arguments", "command"]
