/* Test-only stand-ins for the tables the link step emits (docs/abi.md):
 * the map table map-in-map lookups index, and the program count prog_array
 * updates check. Writable here so that tests/test_maps_more.py fills them. */
#include <stdint.h>

struct bpf_map;
const struct bpf_map *ebpf_lto_maps[64];
uint32_t ebpf_lto_maps_count;
uint32_t ebpf_lto_programs_count = 4;
