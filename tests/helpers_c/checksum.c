/* bpf_csum_diff (28). */
#include "common.h"

#define MAX_BUF 1500

/* Memory: from_size, to_size, seed (u32 each), pad, result (u64), then the
 * from and to buffers of MAX_BUF bytes each. */
struct csum_io {
	u32 from_size;
	u32 to_size;
	u32 seed;
	u32 pad;
	u64 result;
	u8 from[MAX_BUF];
	u8 to[MAX_BUF];
};

SEC("raw") long csum_diff(void *ctx)
{
	struct csum_io *io = ctx;
	long r = bpf_csum_diff((void *)io->from, io->from_size, (void *)io->to, io->to_size,
			       io->seed);
	io->result = r;
	return r;
}

/* Pushing data: a NULL from with size 0. */
SEC("raw") long csum_push(void *ctx)
{
	struct csum_io *io = ctx;
	long r = bpf_csum_diff(0, 0, (void *)io->to, io->to_size, io->seed);
	io->result = r;
	return r;
}

/* The usual IPv4 use: zero the header checksum, sum the 20-byte header,
 * fold and complement, store. The memory is the header. */
SEC("raw") long ipv4_checksum(void *ctx)
{
	u8 *hdr = ctx;
	*(u16 *)(hdr + 10) = 0;
	u32 sum = bpf_csum_diff(0, 0, (void *)hdr, 20, 0);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	*(u16 *)(hdr + 10) = (u16)~sum;
	return (u16)~sum;
}
