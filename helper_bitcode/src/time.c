/* Clocks: ktime_get_ns (5), ktime_get_boot_ns (125), jiffies64 (118),
 * ktime_get_coarse_ns (160), ktime_get_tai_ns (208).
 *
 * Each reads the host clock that the kernel helper reads: clock_gettime()
 * of CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_MONOTONIC_COARSE and CLOCK_TAI
 * give exactly the kernel's ktime_get_ns(), ktime_get_boot_ns(),
 * ktime_get_coarse_ns() and ktime_get_tai_ns() (libc serves them from the
 * vDSO, without a system call).
 *
 * A host that needs runs to repeat (corpus --compare runs a program natively
 * and in the reference interpreter and compares the results) fixes the time
 * in the exported ebpf_lto_clock (abi.h): while its ns is not 0, every clock
 * reads ns.
 */
#include "host.h"
#include "abi.h"

struct ebpf_lto_clock ebpf_lto_clock;

/* jiffies64: the kernel counts timer ticks at CONFIG_HZ, starting from
 * INITIAL_JIFFIES = (u32)(-300 * HZ) so that 32-bit jiffies wrap five
 * minutes after boot. Userspace has no tick counter; this helper derives one
 * from CLOCK_MONOTONIC (which, like jiffies, does not advance in suspend) at
 * HZ = 1000, keeping the kernel's starting offset:
 *   jiffies64 = INITIAL_JIFFIES + CLOCK_MONOTONIC_ns / (1e9 / HZ). */
#define HZ 1000
#define INITIAL_JIFFIES ((u64)(u32)(-300 * HZ))

static u64 clock_ns(int clock_id)
{
    struct host_timespec ts;
    u64 fixed = __atomic_load_n(&ebpf_lto_clock.ns, __ATOMIC_RELAXED);
    if (fixed)
        return fixed;
    if (clock_gettime(clock_id, &ts) != 0)
        return 0;
    return (u64)ts.tv_sec * 1000000000u + (u64)ts.tv_nsec;
}

BPF_HELPER(0005) /* ktime_get_ns */
{
    UNUSED_ARGS();
    return clock_ns(CLOCK_MONOTONIC);
}

BPF_HELPER(0118) /* jiffies64 */
{
    UNUSED_ARGS();
    return INITIAL_JIFFIES + clock_ns(CLOCK_MONOTONIC) / (1000000000u / HZ);
}

BPF_HELPER(0125) /* ktime_get_boot_ns */
{
    UNUSED_ARGS();
    return clock_ns(CLOCK_BOOTTIME);
}

BPF_HELPER(0160) /* ktime_get_coarse_ns */
{
    UNUSED_ARGS();
    return clock_ns(CLOCK_MONOTONIC_COARSE);
}

BPF_HELPER(0208) /* ktime_get_tai_ns */
{
    UNUSED_ARGS();
    return clock_ns(CLOCK_TAI);
}
