#!/bin/sh
# Rebuilds the packet helper test programs (tests/test_packet_helpers.py) and
# the programs the verifier accepts of tests/test_verified.py;
# Debian's clang-19 and libbpf-dev. The .o files are kept in the tree so the
# tests run without clang; rerun this after editing a .c file.
set -eu
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
for src in *.c; do
	"$CLANG" -target bpf -O2 -g -mcpu=v3 -Wall -Werror \
		-I/usr/include/x86_64-linux-gnu -c "$src" -o "${src%.c}.o"
done
