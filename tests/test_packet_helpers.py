"""The packet helpers of the default set (helper_bitcode/src/packet.c,
docs/helpers.md): xdp_adjust_head/meta/tail on XDP contexts, skb_load_bytes,
skb_store_bytes and l3/l4_csum_replace on __sk_buff contexts.

The programs in tests/packet_c (built by build.sh, the .o files are in the
tree) run through pipeline.run_packets, which gives r0 and the packet as
data..data_end say after the run. The expectations are computed here
independently of the helper code: the packets a program should produce are
built by scapy (a NAT rewrite is checked against scapy re-serialising the
packet with the new address and its checksums recomputed from scratch), the
bounds are the kernel's (net/core/filter.c), and checksum arithmetic for
arbitrary arguments is RFC 1624's incremental update done in Python.
"""
from __future__ import annotations

import ctypes
import logging
import struct
import sys
from pathlib import Path

import pytest

from inliner import pipeline
from inliner.elf import loader
from inliner.facts import abi, contexts
from inliner.link import helpers

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402
from scapy.layers.l2 import Dot1Q, Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

PROGS = Path(__file__).parent / "packet_c"
EINVAL, EFAULT, EACCES, ENOMEM = 22, 14, 13, 12
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX = 0, 1, 2, 3
TC_ACT_OK = 0
HEADROOM, TAILROOM = contexts.HEADROOM, contexts.TAILROOM
MACS = dict(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")

pytestmark = [
    pytest.mark.skipif(pipeline.codegen.host_arch() not in ("x86_64", "aarch64"),
                       reason="the helper library is built for x86_64 and aarch64"),
    pytest.mark.skipif(sys.byteorder != "little",
                       reason="arguments are laid out in the packet little-endian"),
]

# Inlined into the program at -O2, and as out-of-line calls into the
# separately compiled helper object at -O0.
CONFIGS = {"inlined": dict(opt_level=2), "external": dict(opt_level=0, inline="none")}


def neg(errno: int) -> int:
    """-errno as r0 holds it: the unsigned 64-bit two's complement."""
    return (1 << 64) - errno


def s32(v: int) -> bytes:
    return struct.pack("<i", v)


_objects: dict[str, loader.EbpfObject] = {}
_loaded: dict[tuple, object] = {}


def obj(name: str) -> loader.EbpfObject:
    if name not in _objects:
        _objects[name] = loader.load(str(PROGS / f"{name}.o"))
    return _objects[name]


def options(program: str, config: str) -> pipeline.LinkOptions:
    return pipeline.LinkOptions(program=program, helpers="default", **CONFIGS[config])


def loaded(name: str, program: str, config: str):
    key = (name, program, config)
    if key not in _loaded:
        _loaded[key], _ = pipeline.load(obj(name), options(program, config))
    return _loaded[key]


def run(name: str, program: str, packets, config: str = "inlined") -> list[tuple[int, bytes]]:
    packets = [bytes(p) for p in packets]
    return list(pipeline.run_packets(obj(name), packets, options(program, config),
                                     loaded(name, program, config)))


def run1(name: str, program: str, packet, config: str = "inlined") -> tuple[int, bytes]:
    return run(name, program, [packet], config)[0]


@pytest.fixture(params=sorted(CONFIGS))
def config(request) -> str:
    return request.param


# -- xdp_adjust_head (44) ------------------------------------------------------

def test_pop_vlan_tag(config):
    inner = [IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dport=443) / b"payload",
             IP() / UDP(dport=53) / (b"q" * 30)]
    tagged = [Ether(**MACS) / Dot1Q(vlan=vid, prio=3) / p for vid, p in zip((5, 4094), inner)]
    results = run("xdp", "xdp_pop_vlan", tagged, config)
    for (r0, after), pkt, payload in zip(results, tagged, inner):
        assert r0 == XDP_TX
        expected = Ether(**MACS, type=pkt[Dot1Q].type) / payload
        assert after == bytes(expected)
        assert len(after) == len(pkt) - 4
    untagged = Ether(**MACS) / IP() / TCP()
    assert run1("xdp", "xdp_pop_vlan", untagged, config) == (XDP_PASS, bytes(untagged))


@pytest.mark.parametrize("options_bytes", (b"", b"\x01\x01\x01\x01", b"\x01" * 20))
def test_ipip_decapsulation_pops_the_outer_header(config, options_bytes):
    inner = IP(src="172.16.0.1", dst="172.16.0.2") / TCP(sport=1234, dport=80) / b"inner"
    pkt = Ether(**MACS) / IP(src="1.1.1.1", dst="2.2.2.2", proto=4,
                             options=options_bytes) / inner
    r0, after = run1("xdp", "xdp_decap_ipip", pkt, config)
    assert r0 == XDP_TX
    assert after == bytes(Ether(**MACS) / inner)
    plain = Ether(**MACS) / IP() / UDP()
    assert run1("xdp", "xdp_decap_ipip", plain, config) == (XDP_PASS, bytes(plain))


def test_ipip_encapsulation_pushes_an_outer_header(config):
    inners = [IP(src="10.1.1.1", dst="10.2.2.2") / TCP(dport=22) / b"ssh",
              IP(src="10.3.3.3", dst="10.4.4.4", ihl=6, options=b"\x01\x01\x01\x01") / UDP()]
    for inner in inners:
        r0, after = run1("xdp", "xdp_encap_ipip", Ether(**MACS) / inner, config)
        assert r0 == XDP_TX
        # scapy fills in the outer length and checksum.
        outer = IP(src="192.168.0.1", dst="192.168.0.2", proto=4, id=0, ttl=64, flags=0)
        assert after == bytes(Ether(**MACS) / outer / inner)


def payload_packet(length: int, args: bytes = b"") -> bytes:
    body = bytes((i * 7 + 3) & 0xFF for i in range(length))
    return args + body[len(args):]


@pytest.mark.parametrize("delta,ok", [
    (0, True), (1, True), (-1, True), (-HEADROOM, True),  # down to the buffer's start
    (-HEADROOM - 1, False),
    (64 - 14, True), (64 - 13, False),      # at least ETH_HLEN bytes stay
    (100000, False), (-(1 << 31), False), ((1 << 31) - 1, False),
])
def test_adjust_head_bounds(config, delta, ok):
    pkt = payload_packet(64, s32(delta))
    r0, after = run1("xdp", "xdp_head_delta", pkt, config)
    if not ok:
        assert (r0, after) == (neg(EINVAL), pkt)
        return
    assert r0 == 0
    assert len(after) == len(pkt) - delta
    if delta >= 0:
        assert after == pkt[delta:]
    else:
        assert after[-delta:] == pkt


# -- xdp_adjust_meta (54) ------------------------------------------------------

@pytest.mark.parametrize("d1,d2,expected", [
    (-4, 0, 4), (-8, 4, 4), (-8, 8, 0), (-32, 0, 32),
    # Linux 6.6+: a multiple of 4, at most 255 (skb_shared_info.meta_len is a u8).
    (-36, 0, 36), (-252, 0, 252), (-256, 0, neg(EACCES)),
    (-2, 0, neg(EACCES)), (-6, 2, neg(EACCES)), (-8, 2, neg(EACCES)),
    (-HEADROOM - 4, 0, neg(EINVAL)),        # below the buffer's start
    (4, 0, neg(EINVAL)), (-8, 12, neg(EINVAL)),  # past data
])
def test_adjust_meta_bounds_and_lengths(config, d1, d2, expected):
    pkt = payload_packet(40, s32(d1) + s32(d2))
    r0, after = run1("xdp", "xdp_meta_delta", pkt, config)
    assert r0 == expected
    assert after == pkt       # the packet itself never moves


def test_metadata_written_through_data_meta_reads_back(config):
    for length in (14, 60, 300):
        r0, _ = run1("xdp", "xdp_meta_write", payload_packet(length), config)
        assert r0 == (0xCAFE << 32) | length


META_VALUE = 0x1122334455667788


@pytest.mark.parametrize("delta", (0, 10, 32, -4, -100, -(HEADROOM - 8)))
def test_metadata_moves_with_adjust_head(config, delta):
    pkt = payload_packet(64, s32(delta))
    r0, after = run1("xdp", "xdp_meta_head", pkt, config)
    assert r0 == META_VALUE
    assert len(after) == len(pkt) - delta
    assert after[max(-delta, 0):] == pkt[max(delta, 0):]


def test_adjust_head_keeps_room_for_the_metadata(config):
    # 8 bytes of metadata: data can come down to buffer_start + 8, no further.
    pkt = payload_packet(64, s32(-(HEADROOM - 7)))
    assert run1("xdp", "xdp_meta_head", pkt, config) == (neg(EINVAL), pkt)


# -- xdp_adjust_tail (65) ------------------------------------------------------

@pytest.mark.parametrize("delta,ok", [
    (0, True), (10, True), (TAILROOM, True), (TAILROOM + 1, False),
    (-10, True), (14 - 64, True), (13 - 64, False),
    (-(1 << 31), False), ((1 << 31) - 1, False),
])
def test_adjust_tail_bounds(config, delta, ok):
    pkt = payload_packet(64, s32(delta))
    r0, after = run1("xdp", "xdp_tail_delta", pkt, config)
    if not ok:
        assert (r0, after) == (neg(EINVAL), pkt)
        return
    assert r0 == 0
    if delta <= 0:
        assert after == pkt[:len(pkt) + delta]
    else:
        assert after == pkt + bytes(delta)


@pytest.mark.parametrize("n", (1, 20, 50))
def test_adjust_tail_zeroes_the_bytes_it_grows(config, n):
    # Shrink, then grow back: the old bytes are still in the buffer, but the
    # helper clears what it grows, as the kernel does.
    pkt = payload_packet(64, s32(n))
    assert run1("xdp", "xdp_tail_regrow", pkt, config) == (0, pkt[:-n] + bytes(n))


# -- l3_csum_replace (10), l4_csum_replace (11): NAT --------------------------

NEW_DST = "10.9.8.7"


def udp_with_new_checksum_zero(sport: int = 4000, dport: int = 53) -> Ether:
    """A UDP packet whose checksum becomes 0 once its destination is NEW_DST:
    two payload bytes cancel the rest of the sum (scapy then sends 0xffff)."""
    probe = IP(src="192.0.2.1", dst=NEW_DST) / UDP(sport=sport, dport=dport) / b"\0\0"
    c0 = IP(bytes(probe))[UDP].chksum
    pkt = Ether(**MACS) / IP(src="192.0.2.1", dst="198.51.100.7") / \
        UDP(sport=sport, dport=dport) / c0.to_bytes(2, "big")
    rebuilt = Ether(bytes(pkt))
    rebuilt[IP].dst = NEW_DST
    del rebuilt[IP].chksum, rebuilt[UDP].chksum
    assert Ether(bytes(rebuilt))[UDP].chksum == 0xFFFF  # the case this packet is for
    return pkt


def nat_packets() -> list[Ether]:
    return [
        Ether(**MACS) / IP(src="192.0.2.10", dst="203.0.113.5") / TCP(sport=40000, dport=80,
                                                                      flags="S") / b"GET /",
        Ether(**MACS) / IP(src="192.0.2.11", dst="203.0.113.6", ttl=3) / TCP(dport=443),
        Ether(**MACS) / IP(src="192.0.2.12", dst="198.51.100.200") / UDP(sport=5000, dport=80) /
        (b"u" * 33),
        Ether(**MACS) / IP(src="192.0.2.13", dst="198.51.100.1") / UDP(dport=53, chksum=0) /
        b"no checksum",
        udp_with_new_checksum_zero(),
        Ether(**MACS) / IP(src="192.0.2.14", dst="203.0.113.9", ihl=7, options=b"\x01" * 8) /
        TCP(dport=80) / b"with options",
    ]


def nat_expected(pkt: Ether, new_port: int | None = None) -> bytes:
    """scapy's own packet after the rewrite, every checksum computed afresh
    (a UDP checksum of 0, "none", stays 0)."""
    out = Ether(bytes(pkt))
    out[IP].dst = NEW_DST
    del out[IP].chksum
    l4 = out[TCP] if TCP in out else out[UDP]
    if new_port is not None and l4.dport == 80:
        l4.dport = new_port
    if not (UDP in out and Ether(bytes(pkt))[UDP].chksum == 0):
        del l4.chksum
    return bytes(out)


@pytest.mark.parametrize("program,new_port", [
    ("tc_nat4", None),        # 4-byte fields
    ("tc_nat2", 8080),        # 2-byte fields, and the port (not in the pseudo header)
    ("tc_nat_diff", None),    # size 0: a difference from csum_diff
])
def test_nat_checksums_match_scapy(config, program, new_port):
    packets = nat_packets()
    results = run("tc", program, packets, config)
    for pkt, (r0, after) in zip(packets, results):
        assert r0 == 0
        expected = nat_expected(pkt, new_port)
        assert after == expected, Ether(after).show2(dump=True)
        # And the checksums verify from scratch.
        check = Ether(after)
        assert IP(bytes(check[IP])).chksum == check[IP].chksum
    udp_zero = Ether(results[3][1])[UDP]
    assert udp_zero.chksum == 0                   # "no checksum" left alone
    assert Ether(results[4][1])[UDP].chksum == 0xFFFF  # CSUM_MANGLED_0


def test_nat_leaves_other_protocols_alone(config):
    pkt = Ether(**MACS) / IP(dst="203.0.113.5") / ICMP()
    assert run1("tc", "tc_nat4", pkt, config) == (TC_ACT_OK, bytes(pkt))


# -- l3/l4_csum_replace: arguments ---------------------------------------------

CSUM_OFF = 40     # where tc_csum_call's packets keep the checksum field
PKT_LEN = 64


def csum_call(which: int, offset: int, frm: int, to: int, flags: int, field: int = 0x1234,
              config: str = "inlined") -> tuple[int, int, bytes]:
    """Run tc_csum_call; returns r0, the field after (big-endian) and the packet after."""
    pkt = bytearray(payload_packet(PKT_LEN, struct.pack("<IIQQQ", which, offset, frm, to, flags)))
    pkt[CSUM_OFF:CSUM_OFF + 2] = field.to_bytes(2, "big")
    r0, after = run1("tc", "tc_csum_call", bytes(pkt), config)
    assert after[:CSUM_OFF] == bytes(pkt[:CSUM_OFF]) and after[CSUM_OFF + 2:] == pkt[CSUM_OFF + 2:]
    return r0, int.from_bytes(after[CSUM_OFF:CSUM_OFF + 2], "big"), bytes(pkt)


def ones_add(a: int, b: int) -> int:
    s = a + b
    return (s & 0xFFFF) + (s >> 16)


def rfc1624(hc: int, old: bytes, new: bytes) -> int:
    """RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), over the fields' big-endian words."""
    acc = ~hc & 0xFFFF
    for i in range(0, len(old), 2):
        acc = ones_add(acc, ~int.from_bytes(old[i:i + 2], "big") & 0xFFFF)
        acc = ones_add(acc, int.from_bytes(new[i:i + 2], "big"))
    return ~acc & 0xFFFF


def as_arg(field: bytes) -> int:
    """A packet field as a program passes it: loaded from memory as it is."""
    return int.from_bytes(field, "little")


@pytest.mark.parametrize("which", (3, 4))
@pytest.mark.parametrize("old,new,hc", [
    (b"\xc0\xa8\x01\x02", b"\x0a\x00\x00\x01", 0x1c46),
    (b"\xff\xff\x00\x00", b"\x00\x01\xfe\xdc", 0xb861),
    (b"\x12\x34", b"\xab\xcd", 0x0001),
    (b"\x00\x50", b"\x1f\x90", 0xfffe),
])
def test_csum_replace_is_rfc1624(config, which, old, new, hc):
    r0, got, _ = csum_call(which, CSUM_OFF, as_arg(old), as_arg(new), len(old), hc, config)
    assert (r0, got) == (0, rfc1624(hc, old, new))
    # The same change as a difference (size 0): the sum of ~old and new words.
    diff = b"".join((~int.from_bytes(old[i:i + 2], "big") & 0xFFFF).to_bytes(2, "big") +
                    new[i:i + 2] for i in range(0, len(old), 2))
    diff32 = 0
    for i in range(0, len(diff), 4):   # a 32-bit csum in memory order, as csum_diff gives
        diff32 += as_arg(diff[i:i + 4].ljust(4, b"\0"))
    diff32 = (diff32 & 0xFFFFFFFF) + (diff32 >> 32)
    r0, got, _ = csum_call(which, CSUM_OFF, 0, diff32, 0, hc, config)
    assert (r0, got) == (0, rfc1624(hc, old, new))


@pytest.mark.parametrize("which,offset,frm,flags,errno", [
    (3, CSUM_OFF, 0, 0x10 | 4, EINVAL),     # l3 takes no flags but the size
    (3, CSUM_OFF, 0, 1 << 40, EINVAL),
    (4, CSUM_OFF, 0, 0x100 | 4, EINVAL),
    (4, CSUM_OFF, 0, 1 << 63, EINVAL),
    (3, CSUM_OFF, 0, 1, EINVAL), (3, CSUM_OFF, 0, 3, EINVAL), (3, CSUM_OFF, 0, 8, EINVAL),
    (4, CSUM_OFF, 0, 15, EINVAL),
    (3, CSUM_OFF, 5, 0, EINVAL), (4, CSUM_OFF, 5, 0x10, EINVAL),  # size 0 needs from == 0
    (3, CSUM_OFF + 1, 0, 4, EFAULT), (4, CSUM_OFF + 1, 0, 4, EFAULT),  # odd offset
    (3, PKT_LEN, 0, 4, EFAULT), (4, PKT_LEN, 0, 4, EFAULT),  # past the packet
    (3, 0x10000, 0, 4, EFAULT), (4, 0xFFFFFFFE, 0, 4, EFAULT),
    (3, PKT_LEN + 1, 0, 0x10, EINVAL),      # flags are checked first
    (4, PKT_LEN + 1, 0, 3, EFAULT),         # then the offset, then the size
])
def test_csum_replace_errors(config, which, offset, frm, flags, errno):
    r0, got, _ = csum_call(which, offset, frm, 0x5555, flags, 0x1234, config)
    assert (r0, got) == (neg(errno), 0x1234)


def test_csum_replace_at_the_last_two_bytes():
    r0, _, _ = csum_call(4, PKT_LEN - 2, 0, 0, 0)
    assert r0 == 0


@pytest.mark.parametrize("flags", (0x10 | 4, 0x20 | 0x40 | 0x10 | 4, 0x80 | 0x10 | 4))
def test_l4_flags_leave_the_arithmetic_alone(config, flags):
    # BPF_F_PSEUDO_HDR, BPF_F_IPV6 (Linux 6.16+) and BPF_F_MARK_ENFORCE on a
    # nonzero result update the field as plain replacement does.
    old, new = b"\x01\x02\x03\x04", b"\x0a\x0b\x0c\x0d"
    r0, got, _ = csum_call(4, CSUM_OFF, as_arg(old), as_arg(new), flags, 0x4321, config)
    assert (r0, got) == (0, rfc1624(0x4321, old, new))


def test_mark_mangled_0(config):
    old, new = b"\x01\x02\x03\x04", b"\x0a\x0b\x0c\x0d"
    # A zero checksum (UDP: none) is left zero...
    assert csum_call(4, CSUM_OFF, as_arg(old), as_arg(new), 0x20 | 4, 0, config)[:2] == (0, 0)
    # ...before the size is even looked at, as in the kernel.
    assert csum_call(4, CSUM_OFF, 0, 0, 0x20 | 3, 0, config)[:2] == (0, 0)
    # unless BPF_F_MARK_ENFORCE: then it is updated like any other.
    r0, got, _ = csum_call(4, CSUM_OFF, as_arg(old), as_arg(new), 0x60 | 4, 0, config)
    assert (r0, got) == (0, rfc1624(0, old, new))
    # A result of 0 becomes CSUM_MANGLED_0 (0xffff); without the flag it stays 0.
    hc = rfc1624(0, new, old)      # so that replacing old by new gives 0
    assert rfc1624(hc, old, new) == 0
    assert csum_call(4, CSUM_OFF, as_arg(old), as_arg(new), 0x20 | 4, hc, config)[:2] == \
        (0, 0xFFFF)
    assert csum_call(4, CSUM_OFF, as_arg(old), as_arg(new), 4, hc, config)[:2] == (0, 0)
    # l3_csum_replace has no such flag.
    assert csum_call(3, CSUM_OFF, 0, 0, 0x20 | 4, 0, config)[0] == neg(EINVAL)


# -- skb_load_bytes (26), skb_store_bytes (9) ---------------------------------

@pytest.mark.parametrize("offset,ok", [
    (0, True), (17, True), (56, True),           # the last 8 bytes of 64
    (57, False), (64, False), (0x7FFFFFFF, False), (0x80000000, False), (0xFFFFFFFF, False),
])
def test_skb_load_bytes(config, offset, ok):
    pkt = payload_packet(64, struct.pack("<I", offset))
    r0, after = run1("tc", "tc_load8", pkt, config)
    assert after == pkt
    if ok:
        assert r0 == int.from_bytes(pkt[offset:offset + 8], "little")
    else:
        assert r0 == neg(EFAULT)    # and the destination was zeroed (else r0 == 1)


def test_skb_load_and_store_of_64_bytes(config):
    pkt = payload_packet(100)
    assert run1("tc", "tc_reverse64", pkt, config) == (0, pkt[:64][::-1] + pkt[64:])
    exact = payload_packet(64)
    assert run1("tc", "tc_reverse64", exact, config) == (0, exact[::-1])
    short = payload_packet(63)
    assert run1("tc", "tc_reverse64", short, config) == (neg(EFAULT), short)


TEXT = b"0123456789abcdef"


@pytest.mark.parametrize("offset,flags,result", [
    (12, 0, 0), (30, 1, 0), (48, 2, 0), (40, 3, 0),     # 48: the last 16 bytes of 64
    (49, 0, neg(EFAULT)), (64, 0, neg(EFAULT)),
    (0x7FFFFFFF, 0, neg(EFAULT)), (0x80000000, 0, neg(EFAULT)), (0xFFFFFFF8, 0, neg(EFAULT)),
    (12, 4, neg(EINVAL)), (12, 1 << 63, neg(EINVAL)),
    (0x80000000, 4, neg(EINVAL)),                         # flags are checked first
])
def test_skb_store_bytes(config, offset, flags, result):
    pkt = payload_packet(64, struct.pack("<IQ", offset, flags))
    r0, after = run1("tc", "tc_store16", pkt, config)
    assert r0 == result
    if result == 0:
        assert after == pkt[:offset] + TEXT + pkt[offset + 16:]
    else:
        assert after == pkt


@pytest.mark.parametrize("flags,hash_after", [(0, 0x9E3779B9), (1, 0x9E3779B9), (2, 0), (3, 0)])
def test_skb_store_bytes_invalidate_hash(flags, hash_after):
    """BPF_F_INVALIDATE_HASH clears skb->hash; the runner's contexts have no
    hash, so this builds one by hand."""
    loaded_obj = loaded("tc", "tc_store16", "inlined")
    pkt = bytearray(payload_packet(64, struct.pack("<IQ", 16, flags)))
    cpkt = (ctypes.c_char * len(pkt)).from_buffer(pkt)
    ctx = bytearray(contexts.build(contexts.SKB, ctypes.addressof(cpkt) - HEADROOM, len(pkt)))
    struct.pack_into("<I", ctx, 68, 0x9E3779B9)            # __sk_buff.hash
    cctx = (ctypes.c_char * len(ctx)).from_buffer(ctx)
    assert loaded_obj.entry(abi.ENTRY_SYMBOL)(ctypes.addressof(cctx), len(ctx)) == 0
    assert struct.unpack_from("<I", ctx, 68)[0] == hash_after
    assert bytes(pkt[16:32]) == TEXT
    del cpkt, cctx


# -- the set ---------------------------------------------------------------------

def test_packet_helpers_are_in_the_default_set():
    for arch in ("x86_64", "aarch64"):
        provided = dict(helpers.resolve("default", arch).provides)
        for hid in (9, 10, 11, 26, 44, 54, 65):
            assert provided[hid] == "default:packet"


# -- get_hash_recalc (34) --------------------------------------------------------
# The kernel's flow hash (net/core/flow_dissector.c, docs/helpers.md): the
# flow's keys, both ends ordered, under SipHash-2-4; the key here is fixed
# (abi.FLOW_HASH_KEY), so a record written out by hand gives the hash.

def _hashes(program: str, packets, config: str) -> list[int]:
    """r0 of each run, checked the same in the reference interpreter (interp_net)."""
    from inliner.tools import interp_net
    results = run("tc", program, packets, config)
    net = interp_net.Net(obj("tc"))
    assert [net.run(obj("tc"), bytes(p), program) for p in packets] == results
    return [r0 for r0, _ in results]


def test_siphash_reference_vectors():
    # The SipHash paper's test vectors: key 00..0f, message 00..len-1.
    from inliner.tools.interp_net import siphash24
    key = (0x0706050403020100, 0x0F0E0D0C0B0A0908)
    assert siphash24(b"", *key) == 0x726FDB47DD0E0E31
    assert siphash24(bytes(range(15)), *key) == 0xA129CA6149BE45E5
    assert siphash24(bytes(range(8)), *key) == 0x93F5F5799A932462


def test_hash_is_siphash_of_the_flow_keys(config):
    from inliner.tools.interp_net import siphash24
    pkt = Ether(**MACS) / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=80, dport=40000)
    # n_proto, ip_proto, pad, vlan id, pad, flow label; the ports and the
    # addresses each ordered as the kernel compares them (little-endian loads):
    # 40000 (40 9c) before 80 (50 00); 10.0.0.1 before 10.0.0.2
    record = bytes.fromhex("0800 06 00 0000 0000 00000000 9c40 0050 0a000001 0a000002")
    expected = siphash24(record, *abi.FLOW_HASH_KEY) & 0xFFFFFFFF
    assert _hashes("tc_hash", [pkt], config) == [expected << 32 | expected]


def test_hash_keys_are_the_flow(config):
    tcp = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80)
    variants = [
        Ether(**MACS) / tcp,
        Ether(dst="02:00:00:00:00:09", src="02:00:00:00:00:08") / IP(
            src="10.0.0.2", dst="10.0.0.1", ttl=3, id=99) / TCP(sport=80, dport=1234) / b"x",
        Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1235, dport=80),
        Ether(**MACS) / Dot1Q(vlan=7) / tcp,
        Ether(**MACS) / Dot1Q(vlan=8) / tcp,
        # fragments give no ports: the first and a later one of a datagram alike
        Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF", proto=17) / UDP(sport=1),
        Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2", frag=100, proto=17) / b"later",
    ]
    h = _hashes("tc_hash", variants, config)
    assert all(x >> 32 == x & 0xFFFFFFFF != 0 for x in h)   # stored in skb->hash, never 0
    assert h[0] == h[1]            # the reverse direction, other MACs, TTL, id, payload
    assert len({h[0], h[2], h[3], h[4]}) == 4   # a port, a VLAN id
    assert h[5] == h[6] != h[0]


def test_ipv6_flow_label_ends_the_keys(config):
    from scapy.layers.inet6 import IPv6
    pkts = [Ether(**MACS) / IPv6(src="fe80::1", dst="fe80::2", fl=fl) / UDP(sport=s, dport=53)
            for fl, s in ((5, 1000), (5, 1001), (0, 1000), (0, 1001))]
    h = _hashes("tc_hash", pkts, config)
    assert h[0] == h[1] and h[2] != h[3] and h[0] != h[2]


def test_invalidated_hash_is_recomputed(config):
    pkt = Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80)
    moved = Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=81)
    first, second = _hashes("tc_hash", [pkt, moved], config)
    invalidated, = _hashes("tc_hash_invalidated", [pkt], config)
    kept, = _hashes("tc_hash_kept", [pkt], config)
    assert invalidated == (first >> 32) << 32 | second >> 32
    assert kept == (first >> 32) << 32 | first >> 32   # skb_get_hash: the hash set stays


def test_hash_of_cut_and_tagged_frames_matches_the_interpreter(config):
    # Every frame of the shipped traffic (VLAN tags, IPv6, fragments, ARP) and
    # each cut short at the header boundaries: the helper library and the
    # reference interpreter dissect them alike.
    from inliner.tools import traffic
    frames = [f.data for f in traffic.frames()]
    frames.append(bytes(Ether(**MACS) / Dot1Q(vlan=3) / Dot1Q(vlan=4) / Dot1Q(vlan=5) / IP()
                        / UDP()))   # a third tag: the dissection stops at it
    cuts = [f[:n] for f in frames for n in (13, 14, 16, 18, 20, 22, 33, 34, 37, 38, 53, 54)
            if n < len(f)]
    _hashes("tc_hash", frames + cuts, config)


# -- skb_change_tail (38), skb_change_head (43) -----------------------------------
# net/core/filter.c: flags must be 0; the tail may go from the network header's
# offset (14) up to the buffer's room, grown bytes zeroed (bpf_skb_grow_rcsum);
# the head grows into the headroom, zeroed; skb->len follows. Checked natively
# and in the reference interpreter (interp_net).

def _sizes(program: str, packet: bytes, config: str) -> tuple[int, bytes]:
    from inliner.tools import interp_net
    result = run1("tc", program, packet, config)
    assert interp_net.Net(obj("tc")).run(obj("tc"), packet, program) == result
    return result


def _size_args(first: int, second: int, flags: int = 0, length: int = 64) -> bytes:
    return struct.pack("<IIQ", first, second, flags) + bytes(range(16, length))


def _u32s(a: int, b: int) -> int:
    return (a & 0xFFFFFFFF) << 32 | b & 0xFFFFFFFF


def test_change_tail_trims_and_grows_with_zeros(config):
    pkt = _size_args(40, 64)
    r0, after = _sizes("tc_change_tail", pkt, config)
    assert r0 == _u32s(0, 0)
    assert after == pkt[:40] + bytes(24)      # the trimmed bytes come back zeroed
    r0, after = _sizes("tc_change_tail", _size_args(64, 64 + TAILROOM), config)
    assert (r0, len(after)) == (0, 64 + TAILROOM)   # all the tailroom


def test_change_tail_refuses(config):
    pkt = _size_args(13, 64 + TAILROOM + 1)
    assert _sizes("tc_change_tail", pkt, config) == (_u32s(-EINVAL, -EINVAL), pkt)
    pkt = _size_args(20, 30, flags=1)
    assert _sizes("tc_change_tail", pkt, config) == (_u32s(-EINVAL, -EINVAL), pkt)
    r0, after = _sizes("tc_change_tail", _size_args(14, 0), config)
    assert (r0, after) == (_u32s(0, -EINVAL), _size_args(14, 0)[:14])


def test_change_head_grows_into_the_headroom(config):
    pkt = _size_args(8, HEADROOM - 8)
    r0, after = _sizes("tc_change_head", pkt, config)
    assert r0 == _u32s(0, 0)
    assert after == bytes(HEADROOM) + pkt
    pkt = _size_args(HEADROOM, 1)
    r0, after = _sizes("tc_change_head", pkt, config)
    assert (r0, after) == (_u32s(0, -ENOMEM), bytes(HEADROOM) + pkt)


def test_change_head_refuses(config):
    pkt = _size_args(HEADROOM + 1, 0xFFFFFFFF)
    assert _sizes("tc_change_head", pkt, config) == (_u32s(-ENOMEM, -EINVAL), pkt)
    pkt = _size_args(4, 4, flags=2)
    assert _sizes("tc_change_head", pkt, config) == (_u32s(-EINVAL, -EINVAL), pkt)


# -- skb_change_proto (31) ------------------------------------------------------
# bpf_skb_proto_xlat (net/core/filter.c): IPv4 to IPv6 inserts 20 zero bytes
# after the Ethernet header, IPv6 to IPv4 removes the 20 there; skb->protocol
# becomes the new EtherType (network byte order); any other pair -ENOTSUPP
# (524), flags -EINVAL.

ENOTSUPP = 524
IPV4_BE, IPV6_BE = 0x0008, 0xDD86   # __sk_buff.protocol as a little-endian u32 holds them


def test_change_proto_makes_and_takes_room(config):
    from scapy.layers.inet6 import IPv6
    v4 = bytes(Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(dport=53))
    r0, after = _sizes("tc_to_ipv6", v4, config)
    assert r0 == _u32s(0, IPV6_BE)
    assert after == v4[:14] + bytes(20) + v4[14:]
    v6 = bytes(Ether(**MACS) / IPv6() / UDP(dport=53))
    r0, after = _sizes("tc_to_ipv4", v6, config)
    assert r0 == _u32s(0, IPV4_BE)
    assert after == v6[:14] + v6[34:]


def test_change_proto_refuses(config):
    from scapy.layers.inet6 import IPv6
    v4 = bytes(Ether(**MACS) / IP() / UDP())
    assert _sizes("tc_to_ipv4", v4, config) == (_u32s(-ENOTSUPP, IPV4_BE), v4)
    assert _sizes("tc_to_ipv6_flagged", v4, config) == (_u32s(-EINVAL, IPV4_BE), v4)
    tagged = bytes(Ether(**MACS) / Dot1Q(vlan=3) / IP() / UDP())
    assert _sizes("tc_to_ipv6", tagged, config) == (_u32s(-ENOTSUPP, 0x0081), tagged)
    short = bytes(Ether(**MACS, type=0x86DD)) + bytes(10)   # no room for an IPv6 header
    assert _sizes("tc_to_ipv4", short, config) == (_u32s(-ENOMEM, IPV6_BE), short)


# -- skb_vlan_push (18), skb_vlan_pop (19) --------------------------------------
# net/core/skbuff.c: the outer tag is kept out of the data (__sk_buff.vlan_*)
# while it can be; pushing onto a kept tag moves that one into the data after
# the MACs; popping drops the kept tag or the first in the data, then keeps
# the next tag in the data. skb->protocol is what follows the tags in the data.

def _vlan(r: int, present: int, tci: int, protocol_be: int) -> int:
    return (r & 0xFFFF) << 48 | present << 32 | tci << 16 | protocol_be


def test_vlan_push_keeps_then_moves_the_tag_into_the_data(config):
    pkt = bytes(Ether(**MACS) / IP() / UDP())
    r0, after = _sizes("tc_vlan_push", pkt, config)
    assert r0 == _vlan(0, 1, 0x456, 0xA888)   # protocol: the moved tag's, 802.1ad
    assert after == pkt[:12] + bytes.fromhex("88a8 0123") + pkt[12:]


def test_vlan_pop(config):
    from scapy.layers.l2 import Dot1AD
    tagged = bytes(Ether(**MACS) / Dot1Q(vlan=5) / IP() / UDP())
    untagged = bytes(Ether(**MACS) / IP() / UDP())
    assert _sizes("tc_vlan_pop", tagged, config) == (_vlan(0, 0, 0, 0x0008), untagged)
    assert _sizes("tc_vlan_pop", untagged, config) == (_vlan(0, 0, 0, 0x0008), untagged)
    qinq = bytes(Ether(**MACS) / Dot1AD(vlan=10) / Dot1Q(vlan=20) / IP() / UDP())
    # the outer tag popped, the inner one kept out of the data
    assert _sizes("tc_vlan_pop", qinq, config) == (_vlan(0, 1, 20, 0x0008), untagged)
    odd = dict(MACS, dst="03:00:00:00:00:02")    # popped twice: the kept tag dropped too
    assert _sizes("tc_vlan_pop", bytes(Ether(**odd) / Dot1AD(vlan=10) / Dot1Q(vlan=20) / IP()),
                  config) == (_vlan(0, 0, 0, 0x0008), bytes(Ether(**odd) / IP()))
    short = bytes(Ether(**MACS, type=0x8100)) + b"\x00\x05"
    assert _sizes("tc_vlan_pop", short, config) == (_vlan(-ENOMEM, 0, 0, 0x0081), short)
    llc = bytes(Ether(**MACS) / Dot1Q(vlan=5, type=60)) + bytes(60)   # a length: 802.2
    assert _sizes("tc_vlan_pop", llc, config)[0] == _vlan(0, 0, 0, 0x0400)


def test_route_realm_is_zero_without_a_route(config):
    # get_route_realm is dst_tclassid(): 0 for a packet given no route (no dst_entry),
    # as every userspace packet is
    pkt = bytes(Ether(**MACS) / IP() / UDP())
    assert _sizes("tc_realm", pkt, config) == (1000, pkt)
