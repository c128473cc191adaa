"""The shipped sample traffic, examples/traffic.pcap: what `corpus --profile` trains on.

Real-looking Ethernet frames written with struct, so that the file is the same
byte for byte on every machine and library version: a TCP conversation and a
DNS exchange over IPv4, ICMP echo, the same over IPv6, 802.1Q-tagged frames,
a UDP datagram in three IPv4 fragments, frames from 42 bytes to a 9000-byte
jumbo, and a frame cut short by the capture's snap length. Every checksum is
right (RFC 1071; TCP, UDP and ICMPv6 over their pseudo-headers).

    python -m inliner.tools.traffic examples/traffic.pcap
"""
from __future__ import annotations

import struct
import sys
from dataclasses import dataclass

PCAP_MAGIC = 0xA1B2C3D4   # microsecond timestamps
LINKTYPE_ETHERNET = 1
SNAPLEN = 65535
START = 1_700_000_000     # the first frame's time, seconds since the epoch

ETH_IPV4, ETH_IPV6, ETH_ARP, ETH_VLAN = 0x0800, 0x86DD, 0x0806, 0x8100
TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01
MF = 0x2000               # IPv4 "more fragments" flag

CLIENT_MAC, SERVER_MAC = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
CLIENT4, SERVER4, DNS4 = (bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]),
                          bytes([192, 168, 1, 53]))
CLIENT6 = bytes.fromhex("20010db8000000000000000000000001")
SERVER6 = bytes.fromhex("20010db8000000000000000000000002")


@dataclass(frozen=True)
class Frame:
    data: bytes          # the bytes captured
    wire_len: int        # the frame's length on the wire (more when cut short)


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(payload: bytes, ethertype: int, vlan: int | None = None,
             src: bytes = CLIENT_MAC, dst: bytes = SERVER_MAC) -> bytes:
    tag = struct.pack("!HH", ETH_VLAN, vlan) if vlan is not None else b""
    return dst + src + tag + struct.pack("!H", ethertype) + payload


def ipv4(payload: bytes, proto: int, src: bytes, dst: bytes, ident: int, ttl: int = 64,
         frag: int = 0, total: int | None = None) -> bytes:
    """An IPv4 header (no options) and `payload`; `frag` holds the flags and offset field."""
    length = total if total is not None else 20 + len(payload)
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, ident, frag, ttl, proto, 0, src, dst)
    return head[:10] + struct.pack("!H", checksum(head)) + head[12:] + payload


def ipv6(payload: bytes, next_header: int, src: bytes, dst: bytes, hops: int = 64) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, hops, src, dst) + payload


def _pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length)
    return src + dst + struct.pack("!IxxxB", length, proto)


def tcp(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
        data: bytes = b"", window: int = 64240) -> bytes:
    head = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, window, 0, 0)
    csum = checksum(_pseudo(src, dst, TCP, len(head) + len(data)) + head + data)
    return head[:16] + struct.pack("!H", csum) + head[18:] + data


def udp(src: bytes, dst: bytes, sport: int, dport: int, data: bytes) -> bytes:
    length = 8 + len(data)
    csum = checksum(_pseudo(src, dst, UDP, length) + struct.pack("!HHHH", sport, dport, length, 0)
                    + data) or 0xFFFF   # 0 means "no checksum" (RFC 768)
    return struct.pack("!HHHH", sport, dport, length, csum) + data


def icmp_echo(kind: int, ident: int, seq: int, data: bytes) -> bytes:
    head = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    return head[:2] + struct.pack("!H", checksum(head + data)) + head[4:] + data


def icmpv6_echo(src: bytes, dst: bytes, kind: int, ident: int, seq: int, data: bytes) -> bytes:
    body = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + data
    csum = checksum(_pseudo(src, dst, ICMPV6, len(body)) + body)
    return body[:2] + struct.pack("!H", csum) + body[4:]


def _payload(n: int, seed: int) -> bytes:
    """n bytes that look like data rather than zeros, the same every time."""
    return bytes((seed + i * 31 + (i >> 8)) & 0xFF for i in range(n))


def _tcp4(sport, dport, seq, ack, flags, data=b"", ident=1, vlan=None, back=False):
    src, dst = (SERVER4, CLIENT4) if back else (CLIENT4, SERVER4)
    sport, dport = (dport, sport) if back else (sport, dport)
    macs = (SERVER_MAC, CLIENT_MAC) if back else (CLIENT_MAC, SERVER_MAC)
    segment = tcp(src, dst, sport, dport, seq, ack, flags, data)
    return ethernet(ipv4(segment, TCP, src, dst, ident), ETH_IPV4, vlan, *macs)


def _dns_query(name: str, ident: int, answer: bytes | None = None) -> bytes:
    """A DNS query for name's A record; with `answer` (an IPv4 address), its response."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    flags, answers = (0x0100, 0) if answer is None else (0x8180, 1)
    message = struct.pack("!HHHHHH", ident, flags, 1, answers, 0, 0) + labels
    message += struct.pack("!HH", 1, 1)
    if answer is not None:  # a pointer to the question's name, A, IN, TTL 300
        message += struct.pack("!HHHIH4s", 0xC00C, 1, 1, 300, 4, answer)
    return message


def _fragments(data: bytes, ident: int, mtu_payload: int = 1480) -> list[bytes]:
    """A UDP datagram cut into IPv4 fragments: the first holds the UDP header."""
    datagram = udp(CLIENT4, DNS4, 40001, 4789, data)
    frames = []
    for offset in range(0, len(datagram), mtu_payload):
        piece = datagram[offset:offset + mtu_payload]
        more = MF if offset + mtu_payload < len(datagram) else 0
        frames.append(ethernet(ipv4(piece, UDP, CLIENT4, DNS4, ident, frag=more | offset // 8),
                               ETH_IPV4))
    return frames


def frames() -> list[Frame]:
    """Every frame of the sample traffic, in capture order."""
    http = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5\r\n\r\n"
    isn, isn_back = 0x1000, 0x8000
    out = [
        # A TCP conversation: handshake, request, a full-size reply, close.
        _tcp4(40000, 80, isn, 0, SYN),
        _tcp4(40000, 80, isn_back, isn + 1, SYN | ACK, back=True),
        _tcp4(40000, 80, isn + 1, isn_back + 1, ACK, ident=2),
        _tcp4(40000, 80, isn + 1, isn_back + 1, PSH | ACK, http, ident=3),
        _tcp4(40000, 80, isn_back + 1, isn + 1 + len(http), ACK, _payload(1460, 1), 2,
              back=True),
        _tcp4(40000, 80, isn + 1 + len(http), isn_back + 1461, FIN | ACK, ident=4),
        # DNS over UDP and back.
        ethernet(ipv4(udp(CLIENT4, DNS4, 53001, 53, _dns_query("example.com", 0x1234)), UDP,
                      CLIENT4, DNS4, 5), ETH_IPV4),
        ethernet(ipv4(udp(DNS4, CLIENT4, 53, 53001, _dns_query("example.com", 0x1234,
                                                                SERVER4)), UDP,
                      DNS4, CLIENT4, 77), ETH_IPV4, src=SERVER_MAC, dst=CLIENT_MAC),
        # ICMP echo request and reply.
        ethernet(ipv4(icmp_echo(8, 0x4242, 1, _payload(56, 2)), ICMP, CLIENT4, SERVER4, 6),
                 ETH_IPV4),
        ethernet(ipv4(icmp_echo(0, 0x4242, 1, _payload(56, 2)), ICMP, SERVER4, CLIENT4, 78),
                 ETH_IPV4, src=SERVER_MAC, dst=CLIENT_MAC),
        # IPv6: TCP, UDP, ICMPv6 echo.
        ethernet(ipv6(tcp(CLIENT6, SERVER6, 40002, 443, 0x2000, 0, SYN), TCP, CLIENT6, SERVER6),
                 ETH_IPV6),
        ethernet(ipv6(udp(CLIENT6, SERVER6, 53002, 53, _dns_query("example.org", 0x5678)), UDP,
                      CLIENT6, SERVER6), ETH_IPV6),
        ethernet(ipv6(icmpv6_echo(CLIENT6, SERVER6, 128, 0x77, 1, _payload(32, 3)), ICMPV6,
                      CLIENT6, SERVER6), ETH_IPV6),
        # 802.1Q-tagged frames: VLAN 100 and 200.
        _tcp4(40003, 22, 0x3000, 0, SYN, ident=7, vlan=100),
        ethernet(ipv4(udp(CLIENT4, DNS4, 53003, 53, _dns_query("vlan.example", 9)), UDP, CLIENT4,
                      DNS4, 8), ETH_IPV4, vlan=100),
        ethernet(ipv6(udp(CLIENT6, SERVER6, 53004, 123, _payload(48, 4)), UDP, CLIENT6,
                      SERVER6), ETH_IPV6, vlan=200),
        # A 3000-byte UDP datagram in three fragments (offsets 0, 1480 and 2960).
        *_fragments(_payload(2992, 5), 9),
        # Sizes: the smallest UDP frame, mid-size, a full 1514-byte frame, a 9000-byte jumbo.
        ethernet(ipv4(udp(CLIENT4, SERVER4, 5000, 5001, b""), UDP, CLIENT4, SERVER4, 10),
                 ETH_IPV4),
        ethernet(ipv4(udp(CLIENT4, SERVER4, 5000, 5001, _payload(512, 6)), UDP, CLIENT4,
                      SERVER4, 11), ETH_IPV4),
        ethernet(ipv4(udp(CLIENT4, SERVER4, 5000, 5001, _payload(1472, 7)), UDP, CLIENT4,
                      SERVER4, 12), ETH_IPV4),
        _tcp4(40000, 80, isn_back + 1461, isn + 1 + len(http), ACK, _payload(8946, 8), 13,
              back=True),
        # ARP: not IP at all.
        ethernet(struct.pack("!HHBBH6s4s6s4s", 1, ETH_IPV4, 6, 4, 1, CLIENT_MAC, CLIENT4,
                             bytes(6), SERVER4), ETH_ARP, dst=b"\xff" * 6),
    ]
    captured = [Frame(f, len(f)) for f in out]
    # A TCP frame the capture cut after 20 bytes: Ethernet and 6 bytes of IPv4.
    cut = _tcp4(40005, 80, 0x5000, 0, SYN, ident=14)
    captured.append(Frame(cut[:20], len(cut)))
    return captured


def pcap(captured: list[Frame] | None = None) -> bytes:
    """The frames as a classic pcap file (little-endian, microseconds)."""
    out = [struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)]
    for n, frame in enumerate(frames() if captured is None else captured):
        usec = n * 1250
        out.append(struct.pack("<IIII", START + usec // 1_000_000, usec % 1_000_000,
                               len(frame.data), frame.wire_len) + frame.data)
    return b"".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m inliner.tools.traffic OUT.pcap", file=sys.stderr)
        return 2
    with open(argv[0], "wb") as fh:
        fh.write(pcap())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
