/* The checksum example: for each packet, bpf_csum_diff over its first 64
 * bytes, then count the packet in an array map slot chosen by the sum.
 * Build: clang-19 -target bpf -O2 -g -mcpu=v3 -I/usr/include/x86_64-linux-gnu \
 *            -c csum_count.c -o csum_count.o
 * Run:   ebpf-lto run csum_count.o --pcap trace.pcap --json   (prints the map)
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define SUM_BYTES 64

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

SEC("xdp")
int csum_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (data + SUM_BYTES > data_end)
		return XDP_PASS;
	__u32 sum = bpf_csum_diff(0, 0, data, SUM_BYTES, 0);
	__u32 key = sum & 0xff;
	__u64 *count = bpf_map_lookup_elem(&counts, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
