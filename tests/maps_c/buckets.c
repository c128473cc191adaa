/* The hash map runtime plus one probe for the tests: which bucket a key
 * falls in, so that tests/test_maps_core.py can choose colliding keys.
 * Built instead of map_hash.c into the test library. */
#include "map_hash.c"

uint32_t test_htab_bucket(const struct bpf_map *m, const void *key)
{
    return htab_hash(key, m->key_size) & (htab_nbuckets(m) - 1);
}
