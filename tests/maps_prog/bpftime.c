/* Programs that tests/test_bpftime_abi.py links with --abi bpftime and runs
 * against a C host standing in for bpftime's runtime. Rebuild: sh build.sh */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define NOT_FOUND 0xdead

/* 12 bytes: bpftime keeps array values value_size apart, not 8-aligned. */
struct slot { __u32 hits, last_key, marker; };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct slot);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} per_cpu_hits SEC(".maps");

struct args { __u32 key, flow; };

/* Counts a hit in slots[key] (an ARRAY: looked up in place) and in
 * totals[flow] (a HASH: the runtime's lookup and update); returns the
 * flow's total, or NOT_FOUND when key is out of range. */
SEC("raw") long count(struct args *a)
{
	__u32 key = a->key, flow = a->flow;
	struct slot *s = bpf_map_lookup_elem(&slots, &key);
	if (!s)
		return NOT_FOUND;
	s->hits++;
	s->last_key = key;
	s->marker = 0x5a5a5a5a;
	__u64 *total = bpf_map_lookup_elem(&totals, &flow);
	if (total)
		return ++*total;
	__u64 one = 1;
	bpf_map_update_elem(&totals, &flow, &one, BPF_ANY);
	return 1;
}

/* A PERCPU_ARRAY lookup, which stays the runtime's call. */
SEC("raw") long per_cpu(struct args *a)
{
	__u32 key = a->key;
	__u64 *v = bpf_map_lookup_elem(&per_cpu_hits, &key);
	if (!v)
		return NOT_FOUND;
	return ++*v;
}

/* A helper with no map (csum_diff) follows --helpers and --inline as ever. */
SEC("raw") long checksum(struct args *a)
{
	return bpf_csum_diff(0, 0, (__be32 *)a, sizeof(*a), 0);
}

char LICENSE[] SEC("license") = "GPL";
