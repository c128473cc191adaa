/* Multithreaded stress test of the map runtime (tests/test_maps_core.py
 * builds it natively with the runtime's sources and runs it).
 *
 * 1. Hash map: 8 threads, each owning a range of keys that only it inserts
 *    and deletes (so every result on them is determined), plus a range of
 *    shared keys that all threads update, delete and look up at random, and
 *    reads of the other threads' keys. At the end the map must hold exactly
 *    every owned key once, each shared key at most once, and exactly as many
 *    free elements as max_entries minus the keys present (no lost or leaked
 *    element, no duplicate).
 * 2. LRU hash: 8 threads insert far more distinct keys than fit; every
 *    update must succeed and at the end the map is exactly full, each key
 *    once.
 * 3. Array: 8 threads increment counters through map_lookup_elem with
 *    atomic adds; the totals must be exact.
 *
 * All maps are fresh when the threads start together, so the lazy storage
 * allocation races too. Prints "ok" and exits 0, or prints the failures.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"

uint64_t _bpf_helper_ext_0001(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
uint64_t _bpf_helper_ext_0002(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
uint64_t _bpf_helper_ext_0003(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
long ebpf_lto_map_lookup(const struct bpf_map *, const void *, void *);
long ebpf_lto_map_update(const struct bpf_map *, const void *, const void *, uint64_t);
long ebpf_lto_map_get_next_key(const struct bpf_map *, const void *, void *);

#define NTHREADS 8
#define OWN 1000
#define SHARED 64
#define ROUNDS 200
#define LRU_MAX 512
#define LRU_KEYS 40000
#define ARRAY_MAX 16
#define INCREMENTS 2000000

#define ENOENT 2
#define E2BIG 7
#define EEXIST 17

static uint64_t hash_state[16], lru_state[16], array_state[16];
static const struct bpf_map hmap = {BPF_MAP_TYPE_HASH, 8, 16, NTHREADS * OWN + SHARED, 0, 1, 0,
                                    BPF_MAP_NO_INNER, hash_state, "stress_hash"};
static const struct bpf_map lmap = {BPF_MAP_TYPE_LRU_HASH, 8, 16, LRU_MAX, 0, 1, 1,
                                    BPF_MAP_NO_INNER, lru_state, "stress_lru"};
static const struct bpf_map amap = {BPF_MAP_TYPE_ARRAY, 4, 8, ARRAY_MAX, 0, 1, 2,
                                    BPF_MAP_NO_INNER, array_state, "stress_array"};

static pthread_barrier_t start;
static long failures;
static int inserted; /* threads whose first round of inserts is done */

struct value {
    uint64_t key, check; /* check == ~key */
};

#define FAIL(...)                                                                             \
    do {                                                                                      \
        if (__atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED) < 20)                          \
            fprintf(stderr, __VA_ARGS__);                                                     \
    } while (0)

static uint64_t own_key(int t, int i) { return ((uint64_t)(t + 1) << 32) | (uint64_t)i; }
static uint64_t shared_key(int j) { return (0xABCDull << 32) | (uint64_t)j; }

static long update(const struct bpf_map *m, uint64_t key, uint64_t flags)
{
    struct value v = {key, ~key};
    return (long)_bpf_helper_ext_0002((uint64_t)(uintptr_t)m, (uint64_t)(uintptr_t)&key,
                                      (uint64_t)(uintptr_t)&v, flags, 0);
}

static struct value *lookup(const struct bpf_map *m, uint64_t key)
{
    return (struct value *)(uintptr_t)_bpf_helper_ext_0001((uint64_t)(uintptr_t)m,
                                                           (uint64_t)(uintptr_t)&key, 0, 0, 0);
}

static long delete(const struct bpf_map *m, uint64_t key)
{
    return (long)_bpf_helper_ext_0003((uint64_t)(uintptr_t)m, (uint64_t)(uintptr_t)&key, 0, 0,
                                      0);
}

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *hash_worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    uint64_t seed = 0x9E3779B97F4A7C15ull * (uint64_t)(t + 1);
    pthread_barrier_wait(&start);
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < OWN; i++) {
            long want = (r > 0 && i % 2 == 0) ? -EEXIST : 0; /* odd keys were deleted */
            long rc = update(&hmap, own_key(t, i), BPF_NOEXIST);
            if (rc != want)
                FAIL("round %d: insert of own key %d/%d gave %ld, want %ld\n", r, t, i, rc, want);
        }
        if (r == 0)
            __atomic_fetch_add(&inserted, 1, __ATOMIC_RELEASE);
        for (int i = 0; i < OWN; i++) {
            uint64_t k = own_key(t, i);
            struct value *v = lookup(&hmap, k);
            if (!v || v->key != k || v->check != ~k)
                FAIL("round %d: own key %d/%d missing or wrong\n", r, t, i);
            if (i % 2 == 0 && update(&hmap, k, BPF_EXIST) != 0)
                FAIL("round %d: BPF_EXIST update of own key %d/%d failed\n", r, t, i);
        }
        for (int n = 0; n < 300; n++) {
            uint64_t x = rng(&seed);
            int j = (int)(x % SHARED);
            uint64_t k = shared_key(j);
            switch ((x >> 32) % 3) {
            case 0: {
                long rc = update(&hmap, k, BPF_ANY);
                if (rc != 0)
                    FAIL("shared update gave %ld\n", rc);
                break;
            }
            case 1: {
                long rc = delete(&hmap, k);
                if (rc != 0 && rc != -ENOENT)
                    FAIL("shared delete gave %ld\n", rc);
                break;
            }
            default:
                /* The value is not checked: a deleted element may be reused
                 * for another key while a reader holds it (documented, as in
                 * the kernel's preallocated maps). */
                (void)lookup(&hmap, k);
            }
            /* Another thread's even key is never deleted once inserted (and
             * rewritten only with the same bytes), so a lookup that finds it
             * must see exactly its value. Odd keys come and go. */
            int other = (int)((x >> 40) % NTHREADS);
            int i = (int)((x >> 8) % OWN);
            uint64_t ok = own_key(other, i);
            /* read before the lookup: a lookup that starts while the key is
             * still being inserted may miss it */
            int all_in = __atomic_load_n(&inserted, __ATOMIC_ACQUIRE) == NTHREADS;
            struct value *v = lookup(&hmap, ok);
            if (i % 2 == 0 && v && (v->key != ok || v->check != ~ok))
                FAIL("lookup of another thread's key %d/%d saw a wrong value\n", other, i);
            if (i % 2 == 0 && !v && all_in)
                FAIL("round %d: another thread's key %d/%d missing\n", r, other, i);
        }
        for (int i = 1; i < OWN; i += 2) {
            uint64_t k = own_key(t, i);
            if (delete(&hmap, k) != 0)
                FAIL("round %d: delete of own key %d/%d failed\n", r, t, i);
            if (delete(&hmap, k) != -ENOENT)
                FAIL("round %d: second delete of own key %d/%d not -ENOENT\n", r, t, i);
            if (lookup(&hmap, k))
                FAIL("round %d: deleted own key %d/%d still found\n", r, t, i);
        }
    }
    for (int i = 1; i < OWN; i += 2)
        if (update(&hmap, own_key(t, i), BPF_NOEXIST) != 0)
            FAIL("final insert of own key %d/%d failed\n", t, i);
    return 0;
}

static void *lru_worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    pthread_barrier_wait(&start);
    for (int i = 0; i < LRU_KEYS; i++) {
        uint64_t k = own_key(t, i);
        long rc = update(&lmap, k, BPF_ANY);
        if (rc != 0)
            FAIL("lru insert %d/%d gave %ld\n", t, i, rc);
        if (i >= 8) /* marks the element used; it may be evicted (and reused) any time */
            (void)lookup(&lmap, own_key(t, i - 8));
    }
    return 0;
}

static void *array_worker(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&start);
    for (uint32_t i = 0; i < INCREMENTS; i++) {
        uint32_t k = i % ARRAY_MAX;
        uint64_t *counter = (uint64_t *)(uintptr_t)_bpf_helper_ext_0001(
            (uint64_t)(uintptr_t)&amap, (uint64_t)(uintptr_t)&k, 0, 0, 0);
        if (!counter || ((uintptr_t)counter & 7)) {
            FAIL("array lookup gave %p\n", (void *)counter);
            return 0;
        }
        __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
    }
    return 0;
}

static void run(void *(*worker)(void *))
{
    pthread_t th[NTHREADS];
    pthread_barrier_init(&start, 0, NTHREADS);
    for (int t = 0; t < NTHREADS; t++)
        pthread_create(&th[t], 0, worker, (void *)(intptr_t)t);
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], 0);
    pthread_barrier_destroy(&start);
}

/* Walks the map with get_next_key; returns the keys seen (malloc'd). */
static uint64_t *all_keys(const struct bpf_map *m, long *count)
{
    uint64_t *keys = malloc(sizeof(uint64_t) * (m->max_entries + 1));
    long n = 0;
    uint64_t key, next;
    long rc = ebpf_lto_map_get_next_key(m, 0, &next);
    while (rc == 0) {
        if (n > (long)m->max_entries) {
            FAIL("%s: get_next_key does not end\n", m->name);
            break;
        }
        keys[n++] = next;
        key = next;
        rc = ebpf_lto_map_get_next_key(m, &key, &next);
    }
    if (rc != -ENOENT)
        FAIL("%s: get_next_key ended with %ld\n", m->name, rc);
    *count = n;
    return keys;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void check_keys(const struct bpf_map *m, uint64_t *keys, long n)
{
    qsort(keys, (size_t)n, sizeof *keys, cmp_u64);
    for (long i = 0; i < n; i++) {
        struct value v;
        if (i > 0 && keys[i] == keys[i - 1])
            FAIL("%s: key %llx twice\n", m->name, (unsigned long long)keys[i]);
        if (ebpf_lto_map_lookup(m, &keys[i], &v) != 0 || v.key != keys[i] || v.check != ~keys[i])
            FAIL("%s: key %llx has a wrong value\n", m->name, (unsigned long long)keys[i]);
    }
}

int main(void)
{
    /* 1. hash */
    run(hash_worker);
    long n;
    uint64_t *keys = all_keys(&hmap, &n);
    check_keys(&hmap, keys, n);
    long own = 0, shared = 0;
    for (long i = 0; i < n; i++) {
        uint32_t hi = (uint32_t)(keys[i] >> 32), lo = (uint32_t)keys[i];
        if (hi == 0xABCD && lo < SHARED)
            shared++;
        else if (hi >= 1 && hi <= NTHREADS && lo < OWN)
            own++;
        else
            FAIL("hash: unexpected key %llx\n", (unsigned long long)keys[i]);
    }
    if (own != NTHREADS * OWN)
        FAIL("hash: %ld owned keys, want %d\n", own, NTHREADS * OWN);
    for (int j = 0; j < SHARED; j++) {
        uint64_t k = shared_key(j);
        int seen = bsearch(&k, keys, (size_t)n, sizeof *keys, cmp_u64) != 0;
        struct value v;
        if ((ebpf_lto_map_lookup(&hmap, &k, &v) == 0) != seen)
            FAIL("hash: shared key %d: lookup and iteration disagree\n", j);
    }
    long free_left = 0;
    for (;; free_left++) {
        uint64_t k = (0xEEEEull << 32) | (uint64_t)free_left;
        struct value v = {k, ~k};
        long rc = ebpf_lto_map_update(&hmap, &k, &v, BPF_NOEXIST);
        if (rc == -E2BIG)
            break;
        if (rc != 0 || free_left > SHARED) {
            FAIL("hash: filling gave %ld after %ld\n", rc, free_left);
            break;
        }
    }
    if (free_left != SHARED - shared)
        FAIL("hash: %ld free elements, want %ld\n", free_left, SHARED - shared);
    free(keys);

    /* 2. LRU hash */
    run(lru_worker);
    keys = all_keys(&lmap, &n);
    check_keys(&lmap, keys, n);
    if (n != LRU_MAX)
        FAIL("lru: %ld keys, want %d (full)\n", n, LRU_MAX);
    free(keys);

    /* 3. array counters */
    run(array_worker);
    uint64_t total = 0;
    for (uint32_t k = 0; k < ARRAY_MAX; k++) {
        uint64_t c;
        ebpf_lto_map_lookup(&amap, &k, &c);
        if (c != (uint64_t)NTHREADS * INCREMENTS / ARRAY_MAX)
            FAIL("array: counter %u is %llu\n", k, (unsigned long long)c);
        total += c;
    }
    if (total != (uint64_t)NTHREADS * INCREMENTS)
        FAIL("array: total %llu\n", (unsigned long long)total);

    if (failures) {
        fprintf(stderr, "%ld failures\n", failures);
        return 1;
    }
    printf("ok: hash %ld own + %ld shared keys, lru %d, array %llu increments\n", own, shared,
           LRU_MAX, (unsigned long long)total);
    return 0;
}
