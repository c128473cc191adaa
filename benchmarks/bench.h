/* Shared by the benchmark programs (benchmarks/README in docs/benchmarks.md).
 *
 * Each program is ordinary libbpf-style eBPF C. The same file is compiled
 * twice: by clang -target bpf (the eBPF object every eBPF mode runs) and, for
 * the native twin, by clang -O3 for the host with a shim that turns the
 * helper declarations into direct calls (inliner/tools/bench/twin.py writes it).
 *
 * Raw programs (SEC("raw")) read everything from the memory r1 points at and
 * never read r2, so that DPDK's librte_bpf, which sets only r1, can run them.
 */
#ifndef EBPF_LTO_BENCH_H
#define EBPF_LTO_BENCH_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s64 s64;

/* Always inlined, or fully unrolled (#pragma clang loop unroll(full)), code
 * reaches the bytecode inlined or unrolled: both builds get the same shape. */
#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Hints for the eBPF build alone. They shape the bytecode (a call kept, a
 * branch laid out of line) and go no further: ebpf-lto optimizes bytecode,
 * which carries no attribute and no branch weight, so the native twin, built
 * from the same C, must not read them either (tests/test_bench.py checks). */
#ifdef __bpf__
#define BPF_NOINLINE __attribute__((noinline))
#define bpf_unlikely(x) __builtin_expect(!!(x), 0)
#else
#define BPF_NOINLINE
#define bpf_unlikely(x) (x)
#endif

char _license[] SEC("license") = "GPL";

/* The end-around-carry fold of a 32-bit ones'-complement sum to 16 bits. */
static ALWAYS_INLINE u16 csum_fold32(u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (u16)sum;
}

#endif
