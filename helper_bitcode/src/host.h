/* What the Linux helpers need from the host: the few libc functions they
 * call and the errno values they return, declared here because the helper
 * library builds with -nostdlibinc (no libc headers; see ../Makefile).
 *
 * The declarations match glibc and musl on both LP64 targets the library is
 * built for (x86_64 and aarch64). The calls stay external in the bitcode and
 * resolve when the helper object is loaded: `ebpf-lto run` links them against
 * the current process, a bpftime-style host against its own libc.
 *
 * Never use _Thread_local in helper code: LLVM's in-process ORC JIT (what
 * `ebpf-lto run` uses) aborts the whole process with "allocation of TLS not
 * implemented" when it loads an object that defines a thread-local variable.
 */
#ifndef EBPF_LTO_HOST_H
#define EBPF_LTO_HOST_H

#include "helpers.h"

/* errno values: asm-generic, the same on x86_64 and aarch64. Helpers return
 * them negated, as the kernel does; r0 holds the 64-bit two's complement. */
#define ENOENT 2
#define E2BIG 7
#define EBADF 9
#define EAGAIN 11
#define ENOMEM 12
#define EACCES 13
#define EFAULT 14
#define EBUSY 16
#define EEXIST 17
#define EINVAL 22
#define ENOSPC 28
#define EOPNOTSUPP 95
#define NEG_ERRNO(e) ((u64)(int64_t)-(e))

/* struct timespec on LP64 Linux (both arches). */
struct host_timespec {
    long tv_sec;
    long tv_nsec;
};

#define CLOCK_MONOTONIC 1
#define CLOCK_MONOTONIC_COARSE 6
#define CLOCK_BOOTTIME 7
#define CLOCK_TAI 11

#define PR_GET_NAME 16

/* System call numbers differ between the two arches. */
#if defined(__x86_64__)
#define SYS_gettid 186
#define SYS_getcpu 309
#elif defined(__aarch64__)
#define SYS_gettid 178
#define SYS_getcpu 168
#else
#error "unsupported architecture"
#endif

int clock_gettime(int clock_id, struct host_timespec *ts);
long syscall(long number, ...);
int getpid(void);
unsigned int getuid(void);
unsigned int getgid(void);
int sched_getcpu(void);
int sched_yield(void);
int prctl(int option, ...);
long write(int fd, const void *buf, unsigned long count);

/* mmap(2): the constants are the same on x86_64 and aarch64. */
#define PROT_READ 0x1
#define PROT_WRITE 0x2
#define MAP_SHARED 0x01
#define MAP_PRIVATE 0x02
#define MAP_ANONYMOUS 0x20
#define MAP_NORESERVE 0x4000
#define MAP_FAILED ((void *)-1)
void *mmap(void *addr, unsigned long length, int prot, int flags, int fd, long offset);
int munmap(void *addr, unsigned long length);

/* Addresses in the first page are never mapped on Linux (mmap_min_addr is at
 * least 4096): the one class of bad pointer a helper can reject without a
 * system call. The kernel's _nofault accessors catch every fault; see
 * docs/helpers.md. */
static inline int host_bad_pointer(u64 addr)
{
    return addr < 4096;
}

#endif
