/* A socket filter that tail-calls, beside a program whose section gives no
 * type (its r1 raw memory) and which uses ld_abs: the kernel would refuse the
 * second (may_access_skb), and linking the first leaves it out as a target.
 * tests/test_legacy_loads.py links them. Rebuild: sh build.sh */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} jumps SEC(".maps");

SEC("socket")
int entry(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &jumps, 1);
	return 7;
}

SEC("raw")
int untyped(void *ctx)
{
	return (int)load_byte(ctx, 0);
}

char _license[] SEC("license") = "GPL";
