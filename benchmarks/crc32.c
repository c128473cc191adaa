/* Bitwise CRC-32 (IEEE, reflected) of 256 bytes. */
#include "bench.h"

struct buf {
	u8 data[256];
};

SEC("raw")
u64 crc32_256(struct buf *b)
{
	u32 crc = 0xffffffff;
	for (u32 i = 0; i < 256; i++) {
		crc ^= b->data[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320 & -(crc & 1));
	}
	return ~crc;
}
