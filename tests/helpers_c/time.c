/* ktime_get_ns (5), jiffies64 (118), ktime_get_boot_ns (125),
 * ktime_get_coarse_ns (160), ktime_get_tai_ns (208). */
#include "common.h"

struct clocks {
	u64 mono1;
	u64 boot;
	u64 coarse;
	u64 jiffies;
	u64 tai;
	u64 mono2;
};

SEC("raw") long clocks(void *ctx)
{
	struct clocks *c = ctx;
	c->mono1 = bpf_ktime_get_ns();
	c->boot = bpf_ktime_get_boot_ns();
	c->coarse = bpf_ktime_get_coarse_ns();
	c->jiffies = bpf_jiffies64();
	c->tai = bpf_ktime_get_tai_ns();
	c->mono2 = bpf_ktime_get_ns();
	return 0;
}
