/* Programs that tests/test_map_programs.py runs from 8 threads at once over
 * shared maps. Rebuild: sh build.sh */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define SLOTS 16

struct call { __u32 thread, iter; };
struct event { __u32 thread, iter; __u64 check; };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} events SEC(".maps");

/* One atomic increment of counter iter % SLOTS. */
SEC("raw") long count(struct call *c)
{
	__u32 key = c->iter % SLOTS;
	__u64 *v = bpf_map_lookup_elem(&counters, &key);
	if (!v)
		return -1;
	__sync_fetch_and_add(v, 1);
	return 0;
}

/* Insert this thread's key, read it back, look at a neighbour's key, and
 * delete the key again when iter is odd. Returns 0 when all went as it must. */
SEC("raw") long flow(struct call *c)
{
	__u64 key = (__u64)c->thread << 32 | c->iter, value = c->iter * 3ull + c->thread;
	if (bpf_map_update_elem(&flows, &key, &value, BPF_NOEXIST))
		return 1;
	__u64 *got = bpf_map_lookup_elem(&flows, &key);
	if (!got || *got != value)
		return 2;
	__u64 other = (__u64)((c->thread + 1) % 8) << 32 | c->iter;
	__u64 *seen = bpf_map_lookup_elem(&flows, &other);
	if (seen && *seen != c->iter * 3ull + (c->thread + 1) % 8)
		return 3;  /* another thread's value, torn or misplaced */
	if (c->iter & 1 && bpf_map_delete_elem(&flows, &key))
		return 4;
	return 0;
}

/* One ringbuf record carrying who sent it and a checksum of that. */
SEC("raw") long emit(struct call *c)
{
	struct event e = { c->thread, c->iter, (__u64)c->thread * 0x9e3779b97f4a7c15ull ^ c->iter };
	return bpf_ringbuf_output(&events, &e, sizeof(e), 0);
}

char LICENSE[] SEC("license") = "GPL";
