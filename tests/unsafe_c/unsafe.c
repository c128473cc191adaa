/* XDP programs the Linux verifier refuses, each for one reason (its comment),
 * and each safe on some packets: tests/test_safety.py runs them on packets
 * that stay in bounds and on packets that do not. Arguments come in the
 * packet's first bytes. Rebuild: sh build.sh */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define DATA(ctx) ((void *)(long)(ctx)->data)
#define DATA_END(ctx) ((void *)(long)(ctx)->data_end)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} table SEC(".maps");

__u32 counts[4];

/* Reads 4 bytes at offset byte 0 after checking only the first 8:
 * "invalid access to packet". */
SEC("xdp")
int packet_read(struct xdp_md *ctx)
{
	__u8 *data = DATA(ctx);
	if (data + 8 > (__u8 *)DATA_END(ctx))
		return XDP_DROP;
	return *(volatile __u32 *)(data + data[0]);
}

/* Writes a byte at packet + byte 0 * 4096, unchecked. */
SEC("xdp")
int packet_write(struct xdp_md *ctx)
{
	__u8 *data = DATA(ctx);
	if (data + 8 > (__u8 *)DATA_END(ctx))
		return XDP_DROP;
	*(volatile __u8 *)(data + (__u32)data[0] * 4096) = 0xee;
	return XDP_PASS;
}

/* Writes the map value at byte offset byte 0: "invalid access to map value". */
SEC("xdp")
int value_write(struct xdp_md *ctx)
{
	__u8 *data = DATA(ctx);
	__u32 key = 1;
	if (data + 8 > (__u8 *)DATA_END(ctx))
		return XDP_DROP;
	__u8 *v = bpf_map_lookup_elem(&values, &key);
	if (!v)
		return XDP_ABORTED;
	*(volatile __u8 *)(v + data[0]) = 0xee;
	return XDP_PASS;
}

/* Reads the value of key byte 0 without the NULL test:
 * "invalid mem access 'map_value_or_null'". */
SEC("xdp")
int value_null(struct xdp_md *ctx)
{
	__u8 *data = DATA(ctx);
	if (data + 8 > (__u8 *)DATA_END(ctx))
		return XDP_DROP;
	__u32 key = data[0];
	__u64 *v = bpf_map_lookup_elem(&table, &key);
	return *(volatile __u64 *)v;
}

/* counts[byte 0] += 1, unchecked: past the 16 bytes of .bss. */
SEC("xdp")
int global_index(struct xdp_md *ctx)
{
	__u8 *data = DATA(ctx);
	if (data + 8 > (__u8 *)DATA_END(ctx))
		return XDP_DROP;
	__u32 i = (__u32)data[0] << 8;
	counts[i] += 1;
	return XDP_PASS;
}

/* An on-stack array at index byte 0, unchecked: "invalid variable-offset
 * stack access". */
SEC("xdp")
int stack_index(struct xdp_md *ctx)
{
	__u8 *data = DATA(ctx);
	volatile __u64 slots[8] = {};
	if (data + 8 > (__u8 *)DATA_END(ctx))
		return XDP_DROP;
	slots[data[0]] = 7;
	return slots[1];
}

/* while (*p != 0xff) {}: "infinite loop detected". */
SEC("xdp")
int spin(struct xdp_md *ctx)
{
	volatile __u8 *data = DATA(ctx);
	if ((__u8 *)data + 8 > (__u8 *)DATA_END(ctx))
		return XDP_DROP;
	while (data[0] != 0xff)
		;
	return XDP_PASS;
}

/* bpf_csum_diff over byte 0 * 4096 bytes of the packet: the size is not
 * bounded by the packet ("invalid access to packet"). */
SEC("xdp")
int csum_size(struct xdp_md *ctx)
{
	__u8 *data = DATA(ctx);
	if (data + 8 > (__u8 *)DATA_END(ctx))
		return XDP_DROP;
	return bpf_csum_diff(0, 0, (__be32 *)data, (__u32)data[0] * 4096, 0);
}

/* bpf_probe_read from the address in bytes 0-7: allowed to any address in
 * the kernel, where it never faults; here only the program's own memory
 * reads, anything else is -EFAULT and zeroes the destination. */
SEC("xdp")
int probe(struct xdp_md *ctx)
{
	__u8 *data = DATA(ctx);
	__u64 out = 0x1111111111111111;
	if (data + 16 > (__u8 *)DATA_END(ctx))
		return XDP_DROP;
	long err = bpf_probe_read(&out, 8, (void *)*(__u64 *)data);
	*(__u64 *)(data + 8) = out;
	return err;
}

/* Writes 64 bytes past an 8-byte map value: always out of bounds, so refused
 * before it runs ("invalid access to map value"). */
SEC("xdp")
int value_far(struct xdp_md *ctx)
{
	__u32 key = 1;
	__u8 *v = bpf_map_lookup_elem(&values, &key);
	if (!v)
		return XDP_ABORTED;
	*(volatile __u8 *)(v + 72) = 0xee;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

/* An offset the program set to 0, then a helper overwrote through a frame
 * pointer with the packet's first 8 bytes: the store at that offset is not the
 * in-bounds store at data + 0 the 0 alone would make it (the data flow must
 * forget the slots a helper writes). */
SEC("xdp")
int helper_wrote_slot(struct xdp_md *ctx)
{
	volatile __u64 off = 0;
	__u8 *data = DATA(ctx);
	if (data + 16 > (__u8 *)DATA_END(ctx))
		return XDP_DROP;
	bpf_probe_read_kernel((void *)&off, 8, data);
	data = DATA(ctx);
	if (data + 16 > (__u8 *)DATA_END(ctx))
		return XDP_DROP;
	data[off] = 0xee;
	return XDP_PASS;
}
