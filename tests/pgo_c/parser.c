/* A parser whose common packets take the branches static heuristics call
 * unlikely: tests/test_pgo.py collects a profile from it. Rebuild: sh build.sh */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define unlikely(x) __builtin_expect(!!(x), 0)

SEC("raw") long classify(unsigned char *p)
{
	long score = 0;
	for (int i = 0; i < 32; i++) {
		if (unlikely(p[i] & 0x80))   /* usually true in the profiled traffic */
			score += p[i] * 3;
		else
			score -= 1;
	}
	return score;
}

char LICENSE[] SEC("license") = "GPL";
