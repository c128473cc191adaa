/* A record parser whose common records take the branches its source marks
 * unlikely, so that only a profile shows the compiler the hot path (the pgo
 * mode, docs/pgo.md). Memory: a batch of 1024 8-byte records (type, flags,
 * length, value). Most are data records with the extension flag set, yet
 * the flag is tested under unlikely() and the if/else chain on the type
 * tests the data record last, under unlikely() too. The hints reach the eBPF
 * build alone (bpf_unlikely, bench.h): the native twin, like ebpf-lto, reads
 * none. Rare checksum records are verified with bpf_csum_diff. r0 adds up
 * the counters and sums. */
#include "bench.h"

#define NREC 1024
#define F_EXT 0x01

enum {
	T_PAD = 0, T_NOP = 1, T_MARK = 2, T_ADD = 3, T_SUB = 5,
	T_SKIP = 8, T_OR = 19, T_CSUM = 30, T_AND = 34, T_DATA = 0x7f,
};

struct rec {
	u8 type, flags;
	u16 len;
	u32 value;
};

struct batch {
	struct rec r[NREC];
};

SEC("raw")
u64 tlv_parse(struct batch *b)
{
	u64 sum = 0, acc = 0, bytes = 0;
	u32 data = 0, ext = 0, pads = 0, nops = 0, marks = 0, skips = 0, bad = 0, csum_bad = 0;
	for (u32 i = 0; i < NREC; i++) {
		struct rec *r = &b->r[i];
		u32 v = r->value;
		if (bpf_unlikely(r->flags & F_EXT))
			ext++;
		if (bpf_unlikely(r->len == 0)) {
			bad++;
			continue;
		}
		u8 t = r->type;
		if (t == T_PAD) {
			pads++;
		} else if (t == T_NOP) {
			nops++;
		} else if (t == T_MARK) {
			marks++;
			acc ^= v;
		} else if (t == T_ADD) {
			acc += v;
		} else if (t == T_SUB) {
			acc -= v;
		} else if (t == T_SKIP) {
			skips++;
		} else if (t == T_OR) {
			acc |= v;
		} else if (t == T_CSUM) {
			/* The record's ones'-complement sum folds to 0xffff when it is intact. */
			if (csum_fold32(bpf_csum_diff(0, 0, (void *)r, sizeof(*r), 0)) != 0xffff)
				csum_bad++;
		} else if (t == T_AND) {
			acc &= v;
		} else if (bpf_unlikely(t == T_DATA)) {
			data++;
			bytes += r->len;
			sum += v;
		} else {
			bad++;
		}
	}
	return sum + acc + bytes + data + ext + pads + nops + marks + skips + bad + csum_bad;
}
