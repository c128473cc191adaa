#!/bin/sh
# Rebuilds the programs that call the C library's memory functions
# (tests/test_libcalls.py); Debian's clang-19 and libbpf-dev. The .o files are
# kept in the tree so the tests run without clang; rerun this after editing a
# .c file. -fno-builtin keeps memset, memcpy, memmove and memcmp calls of
# external functions, as older clang emitted them (clang 19 expands the
# builtins inline for constant sizes and refuses the others for BPF).
set -eu
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
for src in *.c; do
	"$CLANG" -target bpf -O2 -g -fno-builtin -Wall -Werror \
		-I/usr/include/x86_64-linux-gnu -c "$src" -o "${src%.c}.o"
done
