/* probe_read (4), probe_read_str (45), probe_read_user (112),
 * probe_read_kernel (113), probe_read_user_str (114),
 * probe_read_kernel_str (115), strncmp (182). */
#include "common.h"

/* Memory: size (u32), pad, src (a pointer the test fills in, or 0), three
 * results, then three 64-byte destinations, one per helper variant. */
struct reads {
	u32 size;
	u32 pad;
	u64 src;
	s64 ret[3];
	u8 dst[3][64];
};

SEC("raw") long probe_reads(void *ctx)
{
	struct reads *r = ctx;
	u32 n = r->size & 63;
	r->ret[0] = bpf_probe_read(r->dst[0], n, (void *)r->src);
	r->ret[1] = bpf_probe_read_user(r->dst[1], n, (void *)r->src);
	r->ret[2] = bpf_probe_read_kernel(r->dst[2], n, (void *)r->src);
	return 0;
}

SEC("raw") long probe_read_strs(void *ctx)
{
	struct reads *r = ctx;
	u32 n = r->size & 63;
	r->ret[0] = bpf_probe_read_str(r->dst[0], n, (void *)r->src);
	r->ret[1] = bpf_probe_read_user_str(r->dst[1], n, (void *)r->src);
	r->ret[2] = bpf_probe_read_kernel_str(r->dst[2], n, (void *)r->src);
	return 0;
}

/* Memory: s1_sz (u32), pad, result, s1[32], s2[32]. */
struct cmp {
	u32 s1_sz;
	u32 pad;
	s64 result;
	char s1[32];
	char s2[32];
};

SEC("raw") long strncmp_prog(void *ctx)
{
	struct cmp *c = ctx;
	c->result = bpf_strncmp(c->s1, c->s1_sz & 31, c->s2);
	return c->result;
}

/* A constant second string, as the kernel requires it. */
SEC("raw") long strncmp_const(void *ctx)
{
	struct cmp *c = ctx;
	c->result = bpf_strncmp(c->s1, c->s1_sz & 31, "hello");
	return c->result;
}
