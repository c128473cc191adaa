/* Tail calls across the programs of one object (tests/test_map_programs.py). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} jumps SEC(".maps");

__u64 runs;

/* Jumps to slot *slot; when the slot is empty it goes on and returns 111. */
SEC("raw") long dispatch(__u32 *slot)
{
	bpf_tail_call(slot, &jumps, *slot);
	return 111;
}

SEC("raw") long second(void *ctx)
{
	return 222;
}

/* Tail-calls itself through slot 3 until the kernel's limit stops it. */
SEC("raw") long chain(void *ctx)
{
	runs++;
	bpf_tail_call(ctx, &jumps, 3);
	return runs;
}

char LICENSE[] SEC("license") = "GPL";
