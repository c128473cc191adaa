/* The soak program: tests/test_soak.py runs it on every core for a bounded
 * time (EBPF_LTO_SOAK_SECONDS) and checks the maps' invariants afterwards.
 * One call does ROUND_OPS operations, so the threads spend their time in
 * native code, not in the Python that calls them. Rebuild: sh build.sh */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define SLOTS 16
#define KEYS 64         /* each thread's keys in `owned` */
#define ROUND_OPS 256
#define LRU_ENTRIES 512

struct call { __u32 thread, round; __u64 hits; };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Keys thread << 32 | k; the value names its writer, round and key, so a torn
 * or misplaced value shows. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64 * KEYS);
	__type(key, __u64);
	__type(value, __u64);
} owned SEC(".maps");

/* More keys than entries, shared by all threads: eviction all the time. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LRU_ENTRIES);
	__type(key, __u64);
	__type(value, __u64);
} churn SEC(".maps");

static __always_inline __u64 tag(__u64 thread, __u64 round, __u64 k)
{
	return thread << 48 | round << 8 | k;
}

static __always_inline __u64 check(__u64 key)
{
	return key * 0x9e3779b97f4a7c15ull;
}

SEC("raw") long soak(struct call *c)
{
	__u64 thread = c->thread, round = c->round;
	for (__u32 i = 0; i < ROUND_OPS; i++) {
		__u32 slot = i % SLOTS;
		__u64 *n = bpf_map_lookup_elem(&counters, &slot);
		if (!n)
			return 1;
		__sync_fetch_and_add(n, 1);

		__u64 k = i % KEYS, key = thread << 32 | k, value = tag(thread, round, k);
		if (bpf_map_update_elem(&owned, &key, &value, BPF_ANY))
			return 2;
		__u64 *got = bpf_map_lookup_elem(&owned, &key);
		if (!got || *got != value)
			return 3;  /* only this thread writes this key */
		__u64 other = (thread + 1) << 32 | k;
		__u64 *seen = bpf_map_lookup_elem(&owned, &other);
		if (seen && (*seen >> 48 != thread + 1 || (*seen & 0xff) != k))
			return 4;  /* another thread's value, torn or misplaced */

		__u64 ckey = (thread << 32 | round) * ROUND_OPS + i, cval = check(ckey);
		if (bpf_map_update_elem(&churn, &ckey, &cval, BPF_ANY))
			return 5;
		/* The kernel may recycle an LRU element under a reader, so what a
		 * lookup finds is not checked here, only at the end. */
		__u64 probe = ckey - 7 * ROUND_OPS;
		if (bpf_map_lookup_elem(&churn, &probe))
			c->hits++;
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
