/* The IPv4 header checksum (RFC 1071) of the packet r1 points at.
 * Build: clang-19 -target bpf -O2 -g -c ipv4_csum.c -o ipv4_csum.o
 * For the textbook header 4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7
 * (checksum field zero) the answer is 0xb861.
 */
#define SEC(name) __attribute__((section(name), used))

struct packet {
    unsigned char bytes[60];
};

static __attribute__((noinline)) unsigned int fold(unsigned long sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (unsigned int)sum;
}

SEC("raw")
unsigned long ipv4_csum(const struct packet *pkt)
{
    unsigned int ihl = (pkt->bytes[0] & 0x0f) * 4;
    unsigned long sum = 0;

    if (ihl < 20)
        return 0;
    for (unsigned int i = 0; i < 60 && i < ihl; i += 2)
        sum += (unsigned int)pkt->bytes[i] << 8 | pkt->bytes[i + 1];
    return ~fold(sum) & 0xffff;
}

char LICENSE[] SEC("license") = "GPL";
