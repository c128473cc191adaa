/* XDP programs the Linux verifier accepts that ebpf-lto's data flow follows
 * less far than the verifier does (tests/test_verified.py). Written in
 * assembly, so that the compiler keeps the instructions that show it.
 * Rebuild: sh build.sh */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct value {
	__u64 hits;
	__u64 tcp_hits;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct value);
} tcp_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct value);
} any_table SEC(".maps");

/* The context spilled to r10 - 8; r6 = the packet's first byte, or XDP_DROP
 * for a packet shorter than one byte. */
#define SPILL_CTX_AND_READ_BYTE \
	"*(u64 *)(r10 - 8) = r1;" \
	"r2 = *(u32 *)(r1 + %[data]);" \
	"r3 = *(u32 *)(r1 + %[data_end]);" \
	"r4 = r2;" \
	"r4 += 1;" \
	"r0 = 1;" \
	"if r4 > r3 goto 1f;" \
	"r6 = *(u8 *)(r2 + 0);"

/* r2 = &key, key = 0 (on the stack at r10 - 16). */
#define KEY_ZERO_IN_R2 \
	"r2 = 0;" \
	"*(u32 *)(r10 - 16) = r2;" \
	"r2 = r10;" \
	"r2 += -16;"

/* The value in r0 (or NULL) bumped, then data_end - data through the context
 * read back from its slot. */
#define BUMP_AND_RETURN_LENGTH \
	"if r0 == 0 goto 4f;" \
	"r1 = *(u64 *)(r0 + 0);" \
	"r1 += 1;" \
	"*(u64 *)(r0 + 0) = r1;" \
	"4:" \
	"r1 = *(u64 *)(r10 - 8);" \
	"r2 = *(u32 *)(r1 + %[data]);" \
	"r0 = *(u32 *)(r1 + %[data_end]);" \
	"r0 -= r2;" \
	"1:" \
	"exit;"

#define OPERANDS \
	[data] "i"(__builtin_offsetof(struct xdp_md, data)), \
	[data_end] "i"(__builtin_offsetof(struct xdp_md, data_end)), \
	[tcp_table] "i"(&tcp_table), [any_table] "i"(&any_table), \
	[lookup] "i"(BPF_FUNC_map_lookup_elem)

/* Cilium's connection tracking, cut down: the context spilled to the stack,
 * a map chosen by a packet byte (tcp_table for 6, else any_table), a counter
 * in the chosen map's value bumped, then the context read back from its
 * slot for data and data_end. The verifier follows each map on its own
 * path; returns data_end - data, the packet's length. */
SEC("xdp")
__attribute__((naked)) int ctx_after_chosen_map(struct xdp_md *ctx)
{
	asm volatile(
		SPILL_CTX_AND_READ_BYTE
		"r1 = %[any_table] ll;"
		"if r6 != 6 goto 2f;"
		"r1 = %[tcp_table] ll;"
		"2:"
		KEY_ZERO_IN_R2
		"call %[lookup];"
		BUMP_AND_RETURN_LENGTH
		: : OPERANDS : "memory");
}

/* The same with a lookup on each path, the two values joined where the paths
 * meet. */
SEC("xdp")
__attribute__((naked)) int ctx_after_either_maps_value(struct xdp_md *ctx)
{
	asm volatile(
		SPILL_CTX_AND_READ_BYTE
		KEY_ZERO_IN_R2
		"if r6 != 6 goto 2f;"
		"r1 = %[tcp_table] ll;"
		"call %[lookup];"
		"goto 3f;"
		"2:"
		"r1 = %[any_table] ll;"
		"call %[lookup];"
		"3:"
		BUMP_AND_RETURN_LENGTH
		: : OPERANDS : "memory");
}

/* One map, and the field bumped picked by a variable offset (tcp_hits for 6,
 * else hits) that the verifier keeps as the map value pointer's var_off. */
SEC("xdp")
__attribute__((naked)) int ctx_after_value_field_by_offset(struct xdp_md *ctx)
{
	asm volatile(
		SPILL_CTX_AND_READ_BYTE
		KEY_ZERO_IN_R2
		"r1 = %[any_table] ll;"
		"call %[lookup];"
		"r2 = 0;"
		"if r6 != 6 goto 2f;"
		"r2 = 8;"
		"2:"
		"if r0 == 0 goto 4f;"
		"r0 += r2;"
		BUMP_AND_RETURN_LENGTH
		: : OPERANDS : "memory");
}

char _license[] SEC("license") = "GPL";
