/* Shared declarations for the helper library.
 *
 * Every helper is `uint64_t _bpf_helper_ext_NNNN(u64, u64, u64, u64, u64)`,
 * the name bpftime's AOT contract gives an external helper (docs/abi.md), so
 * one symbol serves both an inlined and an out-of-line helper.
 */
#ifndef EBPF_LTO_HELPERS_H
#define EBPF_LTO_HELPERS_H

#include <stdint.h>

typedef uint64_t u64;
typedef uint32_t u32;
typedef uint16_t u16;
typedef uint8_t u8;

#define BPF_HELPER(id) u64 _bpf_helper_ext_##id(u64 r1, u64 r2, u64 r3, u64 r4, u64 r5)
#define UNUSED_ARGS(...) (void)r1, (void)r2, (void)r3, (void)r4, (void)r5

/* Before a loop of a few iterations that must not be vectorized: the helpers
 * build with clang, the map tests with the host's compiler. */
#ifdef __clang__
#define NO_VECTORIZE _Pragma("clang loop vectorize(disable)")
#else
#define NO_VECTORIZE
#endif

#endif
