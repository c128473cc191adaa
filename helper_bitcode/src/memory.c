/* Memory reads: probe_read (4), probe_read_user (112), probe_read_kernel
 * (113), probe_read_str (45), probe_read_user_str (114),
 * probe_read_kernel_str (115), strncmp (182).
 *
 * A userspace program has one address space, so the user and kernel
 * variants are the same function here. The kernel's _nofault copies catch
 * every faulting address; here only addresses in the first page (NULL and
 * small offsets from it) are detected, any other bad pointer faults as a
 * plain load would (host.h).
 */
#include "host.h"

/* probe_read*(dst, size, unsafe_ptr): copy size bytes. Returns 0; on a bad
 * source, zeroes dst and returns -EFAULT, as the kernel does. */
static u64 probe_read(u64 dst, u64 size, u64 src)
{
    u32 n = (u32)size;
    if (n == 0)
        return 0;
    if (host_bad_pointer(src)) {
        __builtin_memset((void *)(uintptr_t)dst, 0, n);
        return NEG_ERRNO(EFAULT);
    }
    __builtin_memcpy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
    return 0;
}

BPF_HELPER(0004) /* probe_read */
{
    (void)r4, (void)r5;
    return probe_read(r1, r2, r3);
}

BPF_HELPER(0112) /* probe_read_user */
{
    (void)r4, (void)r5;
    return probe_read(r1, r2, r3);
}

BPF_HELPER(0113) /* probe_read_kernel */
{
    (void)r4, (void)r5;
    return probe_read(r1, r2, r3);
}

/* probe_read*_str(dst, size, unsafe_ptr), as strncpy_from_user_nofault():
 * copies the string and its NUL, at most size bytes; a longer string is cut
 * to size - 1 bytes and NUL-terminated. Returns the bytes written including
 * the NUL (so 1..size), never pads. size 0 writes nothing and returns 0 (the
 * kernel's count <= 0 case). A bad source zeroes all size bytes of dst and
 * returns -EFAULT. */
static u64 probe_read_str(u64 dst_addr, u64 size, u64 src_addr)
{
    u32 n = (u32)size;
    u8 *dst = (u8 *)(uintptr_t)dst_addr;
    const u8 *src = (const u8 *)(uintptr_t)src_addr;
    if (n == 0)
        return 0;
    if (host_bad_pointer(src_addr)) {
        __builtin_memset(dst, 0, n);
        return NEG_ERRNO(EFAULT);
    }
    u32 i = 0;
    for (; i + 1 < n; i++) {
        u8 c = src[i];
        dst[i] = c;
        if (c == 0)
            return i + 1;
    }
    dst[i] = 0;
    return n;
}

BPF_HELPER(0045) /* probe_read_str */
{
    (void)r4, (void)r5;
    return probe_read_str(r1, r2, r3);
}

BPF_HELPER(0114) /* probe_read_user_str */
{
    (void)r4, (void)r5;
    return probe_read_str(r1, r2, r3);
}

BPF_HELPER(0115) /* probe_read_kernel_str */
{
    (void)r4, (void)r5;
    return probe_read_str(r1, r2, r3);
}

/* strncmp(s1, s1_sz, s2): the kernel calls its lib/string.c strncmp(s1, s2,
 * s1_sz), which compares unsigned chars and returns -1, 0 or 1 (not the
 * difference of the bytes). The verifier makes s2 a NUL-terminated constant
 * string. */
BPF_HELPER(0182) /* strncmp */
{
    const u8 *a = (const u8 *)(uintptr_t)r1, *b = (const u8 *)(uintptr_t)r3;
    u32 n = (u32)r2;
    (void)r4, (void)r5;
    for (u32 i = 0; i < n; i++) {
        u8 c1 = a[i], c2 = b[i];
        if (c1 != c2)
            return c1 < c2 ? (u64)-1 : 1;
        if (c1 == 0)
            break;
    }
    return 0;
}
