/* bpf_loop (181):
 *
 *   long bpf_loop(u32 nr_loops, void *callback_fn, void *callback_ctx, u64 flags)
 *
 * As kernel/bpf/bpf_iter.c: flags must be 0 (else -EINVAL) and nr_loops at
 * most BPF_MAX_LOOPS = 1 << 23 (else -E2BIG). Calls
 * callback_fn(i, callback_ctx, 0, 0, r5) for i = 0, 1, ..., nr_loops - 1; a
 * nonzero return (the verifier allows 0 "continue" and 1 "stop") stops the
 * loop. Returns the number of callback calls made. r5, which bpf_loop does not
 * take, is handed to the callback as its r5: a checked caller's environment
 * (docs/safety.md); a program's callback never reads its r5 (the kernel's
 * verifier refuses that).
 *
 * callback_fn is the address of a lifted eBPF function, which has the
 * helpers' own signature (r1-r5 in, r0 out; docs/architecture.md).
 */
#include "host.h"

#define BPF_MAX_LOOPS (8u * 1024 * 1024)

typedef u64 (*bpf_callback)(u64, u64, u64, u64, u64);

BPF_HELPER(0181) /* loop */
{
    u32 nr_loops = (u32)r1;
    bpf_callback callback = (bpf_callback)(uintptr_t)r2;
    if (r4 != 0)
        return NEG_ERRNO(EINVAL);
    if (nr_loops > BPF_MAX_LOOPS)
        return NEG_ERRNO(E2BIG);
    for (u32 i = 0; i < nr_loops; i++) {
        if (callback(i, r3, 0, 0, r5) != 0)
            return (u64)i + 1;
    }
    return nr_loops;
}
