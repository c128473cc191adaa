/* A 16-way switch on 1024 opcodes: dispatch as an interpreter does it. */
#include "bench.h"

struct ops {
	u32 op[1024];
};

SEC("raw")
u64 switch_dispatch(struct ops *s)
{
	u64 acc = 1;
	for (u32 i = 0; i < 1024; i++) {
		u32 op = s->op[i];
		switch (op & 15) {
		case 0: acc += op; break;
		case 1: acc ^= acc >> 7; break;
		case 2: acc *= 31; break;
		case 3: acc -= i; break;
		case 4: acc = (acc << 5) | (acc >> 59); break;
		case 5: acc += acc >> 3; break;
		case 6: acc ^= 0x9e3779b97f4a7c15ull; break;
		case 7: acc += i * 3; break;
		case 8: acc = ~acc; break;
		case 9: acc ^= (u64)op << 9; break;
		case 10: acc += 0x1234; break;
		case 11: acc *= 5; break;
		case 12: acc -= op; break;
		case 13: acc ^= acc << 13; break;
		case 14: acc += acc >> 11; break;
		default: acc ^= i; break;
		}
	}
	return acc;
}
