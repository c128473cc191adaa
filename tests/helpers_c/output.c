/* trace_printk (6), snprintf (165), trace_vprintk (177). */
#include "common.h"

/* Memory for the generic programs: the format (NUL-terminated, fmt_size
 * bytes counted), up to 12 arguments, sizes, the result and an output
 * buffer. */
struct fmt_io {
	u32 fmt_size;
	u32 str_size;
	u32 data_len;
	u32 pad;
	s64 result;
	u64 args[12];
	char fmt[128];
	char out[128];
};

SEC("raw") long snprintf_prog(void *ctx)
{
	struct fmt_io *io = ctx;
	io->result = bpf_snprintf(io->out, io->str_size & 127, io->fmt, io->args, io->data_len);
	return io->result;
}

SEC("raw") long trace_printk_prog(void *ctx)
{
	struct fmt_io *io = ctx;
	io->result = bpf_trace_printk(io->fmt, io->fmt_size, io->args[0], io->args[1],
				      io->args[2]);
	return io->result;
}

SEC("raw") long trace_vprintk_prog(void *ctx)
{
	struct fmt_io *io = ctx;
	io->result = bpf_trace_vprintk(io->fmt, io->fmt_size, io->args, io->data_len);
	return io->result;
}

/* The libbpf macros as programs use them: constant formats in .rodata. */
SEC("raw") long macros(void *ctx)
{
	struct fmt_io *io = ctx;
	/* bpf_printk with at most 3 arguments calls bpf_trace_printk, with more
	 * bpf_trace_vprintk. */
	io->args[0] = bpf_printk("printk %d %s|", -5, "abc");
	io->args[1] = bpf_printk("vprintk %d %d %d %llx|", 1, 2, 3, 0xabcdefULL);
	io->result = BPF_SNPRINTF(io->out, sizeof(io->out), "%s=%u %c%%", "x", 7, 'z');
	return io->result;
}
