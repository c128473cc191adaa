/* bpf_loop (181). */
#include "common.h"

struct loop_io {
	u32 nr_loops;
	u32 pad;
	u64 flags;
	u64 stop_at;		/* the callback returns 1 at this index */
	s64 result;
	u64 sum;		/* of the indices the callback saw */
	u64 calls;
	u64 ctx_seen;		/* 1 when every call got the program's ctx */
};

struct loop_state {
	struct loop_io *io;
	u64 sum;
	u64 calls;
	u64 ok;
};

static long step(u64 index, void *data)
{
	struct loop_state *st = data;
	st->sum += index;
	st->calls++;
	if (st->io->pad != 0x5eed)
		st->ok = 0;
	return index == st->io->stop_at ? 1 : 0;
}

SEC("raw") long loop(void *ctx)
{
	struct loop_io *io = ctx;
	struct loop_state st = { io, 0, 0, 1 };
	io->result = bpf_loop(io->nr_loops, step, &st, io->flags);
	io->sum = st.sum;
	io->calls = st.calls;
	io->ctx_seen = st.ok;
	return io->result;
}
