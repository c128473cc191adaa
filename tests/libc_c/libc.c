/* Programs that call the C library's memset, memcpy, memmove and memcmp as
 * external functions (built with -fno-builtin, as older clang left them):
 * tests/test_libcalls.py runs them natively and in the reference interpreter.
 * The "raw" programs take their arguments in the memory's first bytes (r1 the
 * memory, r2 its length); their sizes are not checked here, so some inputs
 * reach past the memory, the frame or a map value. Rebuild: sh build.sh */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

void *memset(void *s, int c, unsigned long n);
void *memcpy(void *dst, const void *src, unsigned long n);
void *memmove(void *dst, const void *src, unsigned long n);
int memcmp(const void *a, const void *b, unsigned long n);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

/* mem[0] bytes of mem[1] from mem + 4; through the pointer memset returns,
 * mem[3] = 0xee; r0: where that pointer is (4). */
SEC("raw")
long set(unsigned char *mem, unsigned long len)
{
	unsigned char *p = memset(mem + 4, mem[1], mem[0]);

	p[-1] = 0xee;
	return p - mem;
}

/* mem[2] bytes from mem + 4 + mem[1] to mem + 4 + mem[0], overlapping or not. */
SEC("raw")
long move(unsigned char *mem, unsigned long len)
{
	unsigned char *p = memmove(mem + 4 + mem[0], mem + 4 + mem[1], mem[2]);

	return p - mem;
}

/* The same with memcpy, whose overlapping copies C leaves undefined and
 * ebpf-lto makes memmove's. */
SEC("raw")
long copy_within(unsigned char *mem, unsigned long len)
{
	memcpy(mem + 4 + mem[0], mem + 4 + mem[1], mem[2]);
	return 0;
}

/* n = mem[0] & 63 bytes from mem + 1 into a frame buffer, then from the
 * buffer to mem + 1 + n: the block doubled. r0: n. */
SEC("raw")
long copy(unsigned char *mem, unsigned long len)
{
	unsigned char buf[64];
	unsigned long n = mem[0] & 63;

	memcpy(buf, mem + 1, n);
	memcpy(mem + 1 + n, buf, n);
	return n;
}

/* memcmp of mem[0] bytes at mem + 4 and at mem + 4 + mem[1]: its int. */
SEC("raw")
long compare(unsigned char *mem, unsigned long len)
{
	return memcmp(mem + 4, mem + 4 + mem[1], mem[0]);
}

/* mem[0] & 7 words from mem + 4, each copied 32 bytes on: a loop the facts
 * bound, whose copies reach at most mem + 64. r0: how many. */
SEC("raw")
long records(unsigned char *mem, unsigned long len)
{
	unsigned long n = mem[0] & 7;

	for (unsigned long i = 0; i < n; i++)
		memcpy(mem + 36 + 4 * i, mem + 4 + 4 * i, 4);
	return n;
}

/* mem[0] * 4 bytes of mem[1] into a 16-byte frame buffer: past 512 bytes
 * certainly out of the frame. */
SEC("raw")
long frame(unsigned char *mem, unsigned long len)
{
	unsigned char buf[16];

	memset(buf, mem[1], mem[0] * 4);
	return buf[0] + buf[15];
}

/* Constant sizes: a frame buffer filled (proven), then 8 of its bytes to the
 * memory (checked: its length is known only at run time). */
SEC("raw")
long fixed(unsigned char *mem, unsigned long len)
{
	unsigned long long words[4];

	memset(words, 0x11, sizeof(words));
	memcpy(mem, words, 8);
	return words[3];
}

/* mem[0] bytes of mem[1] into the map's 8-byte value. */
SEC("raw")
long value(unsigned char *mem, unsigned long len)
{
	__u32 key = 0;
	unsigned char *v = bpf_map_lookup_elem(&values, &key);

	if (!v)
		return -1;
	memset(v, mem[1], mem[0]);
	return v[0];
}

/* XDP: data[1] * 8 bytes of data[0] from data + 2. */
SEC("xdp")
int wipe(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *end = (void *)(long)ctx->data_end;

	if (data + 2 > end)
		return XDP_DROP;
	memset(data + 2, data[0], data[1] * 8);
	return XDP_PASS;
}

/* A frame word known to be 0, then overwritten by memcpy with the packet's
 * first 8 bytes: after the call it holds those, so the store at data + off
 * is checked (a fact kept across the call would prove it at offset 0). */
SEC("xdp")
int stale(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *end = (void *)(long)ctx->data_end;
	unsigned long long off = 0;

	if (data + 16 > end)
		return XDP_DROP;
	memcpy(&off, data, 8);
	data[off] = 0xee;
	return XDP_PASS;
}

/* The context as bytes: refused, since the host's context is laid out
 * otherwise and only its fields one by one mean what the kernel's do. */
SEC("xdp")
int ctx_copy(struct xdp_md *ctx)
{
	struct xdp_md copy;

	memcpy(&copy, ctx, sizeof(copy));
	return copy.data_end - copy.data;
}

char LICENSE[] SEC("license") = "GPL";
