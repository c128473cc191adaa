/* Ones'-complement arithmetic of include/net/checksum.h, shared by
 * bpf_csum_diff (checksum.c) and the skb checksum helpers (packet.c). */
#ifndef EBPF_LTO_CSUM_H
#define EBPF_LTO_CSUM_H

#include "host.h"

static inline u32 csum_add(u32 a, u32 b)
{
    u32 s = a + b;
    return s + (s < b);
}

static inline u32 csum_sub(u32 a, u32 b)
{
    return csum_add(a, ~b);
}

/* 32 bits to 16 with end-around carry, not complemented (lib/checksum.c's
 * from32to16); csum_fold() is its complement. */
static inline u16 from32to16(u32 x)
{
    x = (x & 0xffff) + (x >> 16);
    x = (x & 0xffff) + (x >> 16);
    return (u16)x;
}

static inline u16 csum_fold(u32 s)
{
    return (u16)~from32to16(s);
}

#endif
