/* bpf_csum_diff (28), with the semantics of Linux 6.13 and later.
 *
 *   long bpf_csum_diff(__be32 *from, u32 from_size, __be32 *to, u32 to_size, __wsum seed)
 *
 * Linux's net/core/filter.c since "bpf: bpf_csum_diff: optimize and
 * homogenize for all archs" (bpf-next, October 2024; first released in 6.13)
 * computes, with csum_partial() the 32-bit ones'-complement sum of the
 * buffer's 16-bit words in memory order (native byte order) added to a seed:
 *
 *   from_size && to_size:  csum_sub(csum_partial(to, to_size, seed),
 *                                   csum_partial(from, from_size, 0))
 *   to_size only:          csum_partial(to, to_size, seed)
 *   from_size only:        ~csum_partial(from, from_size, ~seed)
 *   neither:               seed
 *
 * and returns that 32-bit value folded to 16 bits with from32to16()
 * (end-around-carry fold, NO final complement), so r0 is in 0..0xffff. Before
 * that change the helper returned csum_partial()'s raw 32-bit value, which
 * differed by architecture (x86 returned it unfolded, the generic
 * lib/checksum.c folded it to 16 bits, arm returned yet another
 * representation); the fold makes every architecture agree, and this file
 * follows the folded form. A program that folds and complements the result
 * itself (csum_fold) gets the same 16 bits from every kernel version.
 *
 * Sizes: the same change removed the old "-EINVAL unless both sizes are
 * multiples of 4 and from_size + to_size <= 512" check (the per-cpu
 * scratchpad it protected is gone), and the kernel's own selftest
 * (prog_tests/test_csum_diff.c) passes sizes 15 and 7. csum_partial() adds a
 * trailing odd byte as the first (lower-address) byte of a zero-padded word.
 * So any size is accepted here; there is no error return. Programs written
 * for older kernels only use multiples of 4 and see the same results.
 */
#include "csum.h"

/* csum_partial(): 32-bit ones'-complement sum of buf's native-order 16-bit
 * words plus sum. The 32-bit representative may differ from a given kernel
 * architecture's, but every representative of one residue class folds to the
 * same 16 bits, except 0 against 0xffff, which only an all-zero input with a
 * zero seed produces here and in the kernel alike. */
static u32 csum_partial(const u8 *buf, u32 len, u32 sum)
{
    u64 acc = sum;
    u32 i = 0;
    /* Four bytes per step: a 64-bit accumulator cannot overflow for any u32
     * length (2^30 steps of at most 2^32 - 1). */
    for (; i + 4 <= len; i += 4) {
        u32 w;
        __builtin_memcpy(&w, buf + i, 4);
        acc += w;
    }
    if (i + 2 <= len) {
        u16 h;
        __builtin_memcpy(&h, buf + i, 2);
        acc += h;
        i += 2;
    }
    if (i < len) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        acc += buf[i];
#else
        acc += (u32)buf[i] << 8;
#endif
    }
    /* Fold 64 -> 32 with end-around carry (twice covers every carry). */
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    return (u32)acc;
}

BPF_HELPER(0028) /* csum_diff */
{
    const u8 *from = (const u8 *)(uintptr_t)r1, *to = (const u8 *)(uintptr_t)r3;
    u32 from_size = (u32)r2, to_size = (u32)r4, seed = (u32)r5;

    /* The four cases above, with csum_partial written out twice rather than
     * four times (the plan weighs a helper by its size): with no `to`,
     * csum_partial(to, 0, seed) is seed itself. */
    u32 to_sum = csum_partial(to, to_size, seed);
    if (!from_size)
        return from32to16(to_sum);
    u32 from_sum = csum_partial(from, from_size, to_size ? 0 : ~seed);
    return from32to16(to_size ? csum_sub(to_sum, from_sum) : ~from_sum);
}
