/* Ringbuf stress test (tests/test_maps_more.py builds it natively with the
 * map runtime): PRODUCERS threads each write N numbered records into one
 * ringbuf through the helpers (reserve/submit, some through output, some
 * reserved and discarded) while one consumer thread reads them with
 * ebpf_lto_ringbuf_consume(). At the end every submitted record must have
 * arrived exactly once, whole (checksum), and each producer's in order.
 *
 *   rb_stress N RING_BYTES     prints "ok <records>" or a failure, exit 0/1
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"

#define PRODUCERS 8

uint64_t _bpf_helper_ext_0130(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
uint64_t _bpf_helper_ext_0131(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
uint64_t _bpf_helper_ext_0132(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
uint64_t _bpf_helper_ext_0133(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
long ebpf_lto_ringbuf_consume(const struct bpf_map *m, void *buf, uint64_t size);

struct rec {
    uint32_t producer;
    uint32_t seq;
    uint32_t words; /* payload words after the header */
    uint32_t sum;   /* checksum of the header fields above and the payload */
    uint32_t payload[];
};

static _Alignas(64) unsigned char state[BPF_MAP_STATE_SIZE];
static struct bpf_map ring;
static uint32_t n_records;
static int producers_done;

static uint32_t mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352d;
    x ^= x >> 15;
    x *= 0x846ca68b;
    return x ^ (x >> 16);
}

static uint32_t checksum(const struct rec *r)
{
    uint32_t s = mix(r->producer * 0x9e3779b9u + r->seq) ^ r->words;
    for (uint32_t i = 0; i < r->words; i++)
        s = mix(s + r->payload[i]);
    return s;
}

static void fill(struct rec *r, uint32_t producer, uint32_t seq, uint32_t words)
{
    r->producer = producer;
    r->seq = seq;
    r->words = words;
    for (uint32_t i = 0; i < words; i++)
        r->payload[i] = mix(producer << 24 ^ seq ^ i << 8);
    r->sum = checksum(r);
}

static void *producer(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    uint32_t buf[1 + 4 + 128];
    uint64_t m = (uint64_t)(uintptr_t)&ring;
    uint32_t attempt = 0;
    for (uint32_t seq = 0; seq < n_records;) {
        uint32_t words = mix(id * 7919u + seq) % 97;
        uint64_t size = sizeof(struct rec) + 4ull * words;
        int how = (int)(mix(attempt++ ^ id << 24) % 8);
        if (how == 0) {
            /* through ringbuf_output */
            fill((struct rec *)buf, id, seq, words);
            if ((int64_t)_bpf_helper_ext_0130(m, (uint64_t)(uintptr_t)buf, size, 0, 0) != 0) {
                sched_yield();
                continue;
            }
            seq++;
            continue;
        }
        uint64_t p = _bpf_helper_ext_0131(m, size, 0, 0, 0);
        if (!p) {
            sched_yield();
            continue;
        }
        if (how == 1) {
            /* reserved, scribbled on, discarded: must never arrive */
            memset((void *)(uintptr_t)p, 0xee, size);
            _bpf_helper_ext_0133(p, 0, 0, 0, 0);
            continue;
        }
        fill((struct rec *)(uintptr_t)p, id, seq, words);
        _bpf_helper_ext_0132(p, 0, 0, 0, 0);
        seq++;
    }
    __atomic_add_fetch(&producers_done, 1, __ATOMIC_RELEASE);
    return 0;
}

int main(int argc, char **argv)
{
    n_records = argc > 1 ? (uint32_t)atoi(argv[1]) : 20000;
    ring.type = BPF_MAP_TYPE_RINGBUF;
    ring.max_entries = argc > 2 ? (uint32_t)atoi(argv[2]) : 65536;
    ring.inner_index = BPF_MAP_NO_INNER;
    ring.state = state;
    ring.name = "stress";

    pthread_t threads[PRODUCERS];
    for (uint32_t i = 0; i < PRODUCERS; i++)
        pthread_create(&threads[i], 0, producer, (void *)(uintptr_t)i);

    uint32_t next_seq[PRODUCERS] = {0};
    uint64_t received = 0, expected = (uint64_t)PRODUCERS * n_records;
    static uint32_t buf[4096];
    int failed = 0;
    while (received < expected && !failed) {
        /* Whether every producer has finished is read before the ring: an
         * empty read then proves the ring drained for good. Read after an
         * empty read, it would not: records submitted in between would still
         * be in the ring (and a read to check for them must keep what it
         * gets, not drop it). */
        int done = __atomic_load_n(&producers_done, __ATOMIC_ACQUIRE) == PRODUCERS;
        long n = ebpf_lto_ringbuf_consume(&ring, buf, sizeof(buf));
        if (n < 0) {
            printf("consume failed: %ld\n", n);
            failed = 1;
            break;
        }
        if (n == 0) {
            if (done) {
                printf("producers done, %llu of %llu records received\n",
                       (unsigned long long)received, (unsigned long long)expected);
                failed = 1;
            }
            sched_yield();
            continue;
        }
        struct rec *r = (struct rec *)buf;
        if ((uint64_t)n < sizeof(*r) || r->producer >= PRODUCERS ||
            (uint64_t)n != sizeof(*r) + 4ull * r->words || checksum(r) != r->sum) {
            printf("torn or foreign record after %llu: len %ld\n", (unsigned long long)received, n);
            failed = 1;
            break;
        }
        if (r->seq != next_seq[r->producer]) {
            printf("producer %u: record %u where %u was due\n", r->producer, r->seq,
                   next_seq[r->producer]);
            failed = 1;
            break;
        }
        next_seq[r->producer]++;
        received++;
    }
    if (failed)
        return 1; /* producers may be stuck on a full ring: exit without them */
    for (uint32_t i = 0; i < PRODUCERS; i++)
        pthread_join(threads[i], 0);
    if (ebpf_lto_ringbuf_consume(&ring, buf, sizeof(buf)) != 0) {
        printf("extra record after all were received\n");
        failed = 1;
    }
    if (failed)
        return 1;
    printf("ok %llu\n", (unsigned long long)received);
    return 0;
}
