#!/bin/sh
# Rebuilds the map test programs (Debian's clang-19 and libbpf-dev).
set -e
cd "$(dirname "$0")"
for src in *.c; do
	"${CLANG:-clang-19}" -target bpf -O2 -g -mcpu=v3 -Wall -Werror \
		-I/usr/include/x86_64-linux-gnu -c "$src" -o "${src%.c}.o"
done
