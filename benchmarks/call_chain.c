/* A chain of seven bpf-to-bpf calls, made 256 times: with the program's own,
 * the eight frames the kernel allows. The calls are kept in the bytecode
 * alone (BPF_NOINLINE, bench.h): the twin's compiler, like ebpf-lto's, may
 * inline them. */
#include "bench.h"

static BPF_NOINLINE u64 f7(u64 x) { return x * 3 + 1; }
static BPF_NOINLINE u64 f6(u64 x) { return f7(x ^ 0x55) + 2; }
static BPF_NOINLINE u64 f5(u64 x) { return f6(x + 7) ^ 3; }
static BPF_NOINLINE u64 f4(u64 x) { return f5(x >> 1) + x; }
static BPF_NOINLINE u64 f3(u64 x) { return f4(x * 5) - 9; }
static BPF_NOINLINE u64 f2(u64 x) { return f3(x ^ (x >> 13)) + 1; }
static BPF_NOINLINE u64 f1(u64 x) { return f2(x + 0x1234); }

struct seed {
	u64 v;
};

SEC("raw")
u64 call_chain(struct seed *s)
{
	u64 acc = s->v;
	for (u32 i = 0; i < 256; i++)
		acc = f1(acc + i) ^ ((acc + i) << 1);
	return acc;
}
