/* uBPF's test helpers, the ids the bpf_conformance suite calls
 * (shared/bpf_conformance/ORIGIN.md): 0 gather_bytes, 1 memfrob, 2 no_op,
 * 3 sqrti, 4 strcmp_ext, 5 unwind. Helper 5 returning 0 ends the program;
 * the lifter implements that (inliner/helpers.py marks it).
 */
#include "helpers.h"

BPF_HELPER(0000) /* gather_bytes */
{
    return ((u64)(u8)r1 << 32) | ((u64)(u8)r2 << 24) | ((u64)(u8)r3 << 16) |
           ((u64)(u8)r4 << 8) | (u64)(u8)r5;
}

BPF_HELPER(0001) /* memfrob: xor each byte with 42, as glibc's memfrob */
{
    u8 *p = (u8 *)(uintptr_t)r1;
    for (u64 i = 0; i < r2; i++)
        p[i] ^= 42;
    (void)r3, (void)r4, (void)r5;
    return 0;
}

BPF_HELPER(0002) /* no_op */
{
    UNUSED_ARGS();
    return 0;
}

BPF_HELPER(0003) /* sqrti, as uBPF's test helper: (u64)sqrt((double)r1) */
{
    /* The suite's plugin takes the square root of the whole 64-bit value
     * rounded to a double; a 32-bit integer root differs above 2^32. */
    UNUSED_ARGS();
    return (u64)__builtin_elementwise_sqrt((double)r1);
}

BPF_HELPER(0004) /* strcmp_ext: strcmp, the int result sign-extended */
{
    const u8 *a = (const u8 *)(uintptr_t)r1, *b = (const u8 *)(uintptr_t)r2;
    while (*a && *a == *b)
        a++, b++;
    (void)r3, (void)r4, (void)r5;
    return (u64)(int64_t)((int)*a - (int)*b);
}

BPF_HELPER(0005) /* unwind: returns its argument */
{
    (void)r2, (void)r3, (void)r4, (void)r5;
    return r1;
}
