/* Shared by the helper test programs: each program reads its inputs from
 * the memory at ctx (r1) and writes its results there; the tests in
 * tests/test_helpers.py lay the memory out with struct.pack. */
#ifndef HELPERS_TEST_COMMON_H
#define HELPERS_TEST_COMMON_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s64 s64;

char _license[] SEC("license") = "GPL";

#endif
