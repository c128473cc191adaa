"""Legacy packet loads, ld_abs and ld_ind (RFC 9669 5.5), with the kernel's semantics.

The programs in tests/legacy_c (built by build.sh, the .o files are in the
tree) read the packet through LLVM's llvm.bpf.load.* intrinsics, as the
kernel's samples/bpf socket filters do. The expectation is computed here
from the packet bytes, as the kernel's bpf_skb_load_helper_{8,16,32}
(net/core/filter.c) read them: big-endian, and the program ends with r0 = 0
when the bytes are not all in the packet. The native code runs through
pipeline.run_packets, checked and unchecked, at -O0 and -O2; the reference
interpreter runs the same programs on the same userspace __sk_buff.
"""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

from inliner import pipeline
from inliner.elf import loader
from inliner.facts import contexts
from inliner.tools import interp

OBJ = Path(__file__).parent / "legacy_c" / "ldabs.o"
BUILDS = {"-O0": dict(opt_level=0), "-O2": dict(opt_level=2),
          "-O2 --no-checks": dict(opt_level=2, checks=False)}


def be(packet: bytes, at: int, size: int) -> int | None:
    """The kernel's read: the bytes at `at`, big-endian, or None outside the packet."""
    if at < 0 or at + size > len(packet):
        return None
    return int.from_bytes(packet[at:at + size], "big")


def expect_headers(p: bytes) -> int:
    parts = be(p, 23, 1), be(p, 12, 2), be(p, 26, 4)   # in the program's order
    if None in parts:
        return 0
    l4, proto, saddr = parts
    return (proto << 16) ^ (l4 << 8) ^ saddr


def expect_indirect(p: bytes) -> int:
    at = be(p, 0, 1)
    word = None if at is None else be(p, at, 4)
    return 0 if word is None else (word + 1) & 0xFFFFFFFF


def expect_nested(p: bytes) -> int:
    at = be(p, 0, 1)
    word = None if at is None else be(p, at, 4)
    return 0 if word is None else word | 1


EXPECT = {
    "headers": expect_headers,
    "indirect": expect_indirect,
    "nested": expect_nested,
    "link_layer": lambda p: be(p, 12, 2) or 0,
    "network": lambda p: 0,
}


def ipv4(length: int, first: int = 0x02) -> bytes:
    """An Ethernet/IPv4 frame of `length` bytes (cut short if fewer than a header)."""
    eth = bytes([first]) + bytes(range(1, 12)) + b"\x08\x00"
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 100, 0, 2]))
    whole = eth + ip + bytes(range(0x30, 0x30 + 64))
    return whole[:length]


# Whole frames and frames cut inside each read, and first bytes that point
# the indirect read inside, at the edge of and past the packet.
PACKETS = [ipv4(n) for n in (0, 1, 13, 14, 23, 24, 29, 30, 60)] + \
          [ipv4(60, first) for first in (0, 5, 56, 57, 200)]


def run_native(name: str, build: dict) -> list[int]:
    obj = loader.load(str(OBJ))
    opts = pipeline.LinkOptions(program=name, **build)
    return [r0 & 0xFFFFFFFF for r0, _ in pipeline.run_packets(obj, PACKETS, opts)]


@pytest.mark.parametrize("build", sorted(BUILDS))
@pytest.mark.parametrize("name", sorted(EXPECT))
def test_native_code_reads_the_packet_as_the_kernel_does(name, build):
    assert run_native(name, BUILDS[build]) == [EXPECT[name](p) for p in PACKETS]


def run_interpreter(name: str, packet: bytes) -> int:
    """The program on a userspace __sk_buff at the start of the interpreter's input
    memory, the packet after it (contexts.build lays out both)."""
    obj = loader.load(str(OBJ))
    skb = contexts.SKB
    buffer = interp.INPUT_BASE + skb.user_size
    ctx = contexts.build(skb, buffer, len(packet))
    memory = bytearray(ctx) + bytes(contexts.HEADROOM) + packet + bytes(contexts.TAILROOM)
    return interp.run_object(obj, memory, {}, program=name) & 0xFFFFFFFF


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_the_interpreter_reads_the_packet_as_the_kernel_does(name):
    assert [run_interpreter(name, p) for p in PACKETS] == [EXPECT[name](p) for p in PACKETS]


def test_a_legacy_load_needs_the_context_in_r6(tmp_path: Path):
    # Each program's `r6 = r1` made `r6 = 0`: the kernel refuses ld_abs then
    # (check_ld_abs: r6 must point to the context).
    data = OBJ.read_bytes().replace(bytes.fromhex("bf16000000000000"),
                                    bytes.fromhex("b706000000000000"))
    damaged = tmp_path / "ldabs.o"
    damaged.write_bytes(data)
    obj = loader.load(str(damaged))
    with pytest.raises(pipeline.EbpfLtoError, match="context in r6"):
        pipeline.link(obj, pipeline.LinkOptions(program="headers"))


def test_a_legacy_load_outside_an_skb_program_is_refused_and_left_out_as_a_target():
    obj = loader.load(str(OBJ.parent / "tail.o"))
    with pytest.raises(pipeline.EbpfLtoError, match="legacy packet load .* of type raw"):
        pipeline.link(obj, pipeline.LinkOptions(program="untyped"))
    # The socket filter links without it; its tail call finds an empty slot.
    opts = pipeline.LinkOptions(program="entry")
    _, linked = pipeline.link(obj, opts)
    assert [t.split(":")[0] for t in linked.skipped_targets] == ["untyped"]
    assert [r0 for r0, _ in pipeline.run_packets(obj, [ipv4(60)], opts)] == [7]
