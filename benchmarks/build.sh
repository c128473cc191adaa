#!/bin/sh
# Rebuild the benchmark programs' eBPF objects (inliner/bench.py runs them;
# docs/benchmarks.md). The .o files are kept in the tree so that
# `ebpf-lto bench` needs clang only for the native twins and the driver.
set -eu
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
for src in *.c; do
	case "$src" in driver.c) continue ;; esac
	"$CLANG" -target bpf -O2 -g -mcpu=v3 -Wall -Werror \
		-I/usr/include/x86_64-linux-gnu -c "$src" -o "${src%.c}.o"
done
