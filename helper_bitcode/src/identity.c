/* The current task: get_prandom_u32 (7), get_smp_processor_id (8),
 * get_current_pid_tgid (14), get_current_uid_gid (15), get_current_comm (16),
 * get_numa_node_id (42).
 *
 * "Current" is the calling thread of the host process, as it is the current
 * task for a kernel helper.
 */
#include "host.h"
#include "abi.h"

/* get_prandom_u32: the kernel draws from a per-cpu prandom state. Here:
 * splitmix64's finalizer of key + n * PRANDOM_GAMMA, n counted by one
 * process-wide counter that each call advances with an atomic add, so
 * concurrent callers never share a draw and need no lock. (Per-thread state
 * would need _Thread_local, which the in-process JIT cannot load; see
 * host.h.) The constants and the state's layout come from abi.h
 * (inliner/facts/abi.py, which the reference interpreter uses too). The state
 * is exported so that a host can seed it (`ebpf-lto run --seed N`: key =
 * prandom_key(N), counter 0); key 0 means unseeded, and the first call then
 * keys it from CLOCK_MONOTONIC, CLOCK_BOOTTIME and the pid, so runs differ;
 * racing first callers agree on one key through a compare-and-swap. Not
 * cryptographic, as in the kernel. */
struct ebpf_lto_prandom ebpf_lto_prandom;

static u64 mix64(u64 z)
{
    z = (z ^ (z >> PRANDOM_MIX0)) * PRANDOM_MIX1;
    z = (z ^ (z >> PRANDOM_MIX2)) * PRANDOM_MIX3;
    return z ^ (z >> PRANDOM_MIX4);
}

static u64 seed_key(void)
{
    struct host_timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_BOOTTIME, &b);
    u64 k = mix64((u64)a.tv_nsec ^ ((u64)a.tv_sec << 30) ^ mix64((u64)b.tv_nsec + (u64)getpid()));
    return k | 1; /* never 0: 0 means "not seeded yet" */
}

BPF_HELPER(0007) /* get_prandom_u32 */
{
    UNUSED_ARGS();
    u64 key = __atomic_load_n(&ebpf_lto_prandom.key, __ATOMIC_ACQUIRE);
    if (key == 0) {
        u64 fresh = seed_key(), expected = 0;
        if (__atomic_compare_exchange_n(&ebpf_lto_prandom.key, &expected, fresh, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            key = fresh;
        else
            key = expected;
    }
    u64 n = __atomic_fetch_add(&ebpf_lto_prandom.counter, 1, __ATOMIC_RELAXED);
    return (u32)(mix64(key + n * PRANDOM_GAMMA) >> 32);
}

BPF_HELPER(0008) /* get_smp_processor_id: the cpu the thread runs on now */
{
    UNUSED_ARGS();
    int cpu = sched_getcpu();
    return cpu < 0 ? 0 : (u32)cpu;
}

BPF_HELPER(0014) /* get_current_pid_tgid: tgid (process id) << 32 | pid (thread id) */
{
    UNUSED_ARGS();
    u64 tgid = (u32)getpid();
    u64 tid = (u32)syscall(SYS_gettid);
    return tgid << 32 | tid;
}

BPF_HELPER(0015) /* get_current_uid_gid: real gid << 32 | real uid */
{
    UNUSED_ARGS();
    return (u64)getgid() << 32 | (u64)getuid();
}

/* get_current_comm(buf, size): the thread's name (at most 15 characters),
 * copied as the kernel's strscpy_pad(): truncated to size - 1 characters,
 * NUL-terminated and the rest of buf zeroed. Returns 0. The kernel verifier
 * guarantees size > 0; size 0 writes nothing and returns 0. */
BPF_HELPER(0016) /* get_current_comm */
{
    char *buf = (char *)(uintptr_t)r1;
    u32 size = (u32)r2;
    char comm[16];
    (void)r3, (void)r4, (void)r5;
    if (size == 0)
        return 0;
    __builtin_memset(comm, 0, sizeof(comm));
    if (prctl(PR_GET_NAME, comm, 0, 0, 0) != 0)
        comm[0] = 0;
    comm[15] = 0;
    u32 i = 0;
    for (; i + 1 < size && comm[i]; i++)
        buf[i] = comm[i];
    for (; i < size; i++)
        buf[i] = 0;
    return 0;
}

BPF_HELPER(0042) /* get_numa_node_id: the node of the cpu the thread runs on */
{
    UNUSED_ARGS();
    unsigned int cpu = 0, node = 0;
    if (syscall(SYS_getcpu, &cpu, &node, (void *)0) != 0)
        return 0;
    return node;
}
