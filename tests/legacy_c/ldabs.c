/* Socket filters and a tc program that read the packet with the legacy
 * loads ld_abs/ld_ind (RFC 9669 5.5), as the kernel's samples/bpf sockex
 * programs do through LLVM's llvm.bpf.load.* intrinsics.
 * tests/test_legacy_loads.py runs them. Rebuild: sh build.sh */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

/* The EtherType, the IPv4 protocol byte and the source address, folded into
 * r0; fixed offsets (ld_abs). */
SEC("socket")
int headers(struct __sk_buff *skb)
{
	unsigned long long proto = load_half(skb, 12);
	unsigned long long l4 = load_byte(skb, 14 + 9);
	unsigned long long saddr = load_word(skb, 14 + 12);
	return (int)((proto << 16) ^ (l4 << 8) ^ saddr);
}

/* The word at an offset the packet's first byte gives (ld_ind): a packet
 * too short for it ends the program with 0, whatever r0 held. */
SEC("socket")
int indirect(struct __sk_buff *skb)
{
	unsigned long long at = load_byte(skb, 0);
	return (int)(load_word(skb, at) + 1);
}

/* The same through a call: ld_abs in a subprogram ends the whole program. */
static __attribute__((noinline)) unsigned long long word_at(struct __sk_buff *skb,
							   unsigned long long at)
{
	return load_word(skb, at);
}

SEC("tc")
int nested(struct __sk_buff *skb)
{
	unsigned long long at = load_byte(skb, 0);
	return (int)(word_at(skb, at) | 1);
}

/* Offsets from the headers linux/filter.h names: SKF_LL_OFF (-0x200000) + 12
 * is the EtherType again; SKF_NET_OFF (-0x100000), the network header, is one
 * a userspace packet does not record, so the load ends the program with 0. */
SEC("socket")
int link_layer(struct __sk_buff *skb)
{
	return (int)load_half(skb, -0x200000 + 12);
}

SEC("socket")
int network(struct __sk_buff *skb)
{
	return (int)(load_byte(skb, -0x100000) + 7);
}

char _license[] SEC("license") = "GPL";
