"""Program contexts: what r1 points at, per program type, in userspace. Defined once.

A program is compiled against the kernel's context struct (`struct xdp_md`,
`struct __sk_buff`). In userspace r1 points at a userspace struct instead, and
the lifter rewrites each context access the way the kernel's verifier does
(`convert_ctx_access`): a kernel offset becomes the userspace field's offset,
and a 32-bit load of a packet pointer field becomes a 64-bit pointer load.
Program types without a layout here (kprobe's `struct pt_regs`, raw memory)
see their context as it is. docs/abi.md shows the C structs.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

SCALAR, POINTER, META_POINTER = "scalar", "pointer", "meta_pointer"


@dataclass(frozen=True)
class Field:
    name: str
    kernel_off: int
    kernel_size: int
    user_off: int
    kind: str = SCALAR   # POINTER: kernel u32 holding a pointer, userspace u64
    writable: bool = False


@dataclass(frozen=True)
class Layout:
    name: str            # the kernel struct
    user_struct: str     # the userspace struct r1 points at
    user_size: int
    fields: tuple[Field, ...]
    addresses: tuple[int, ...] = ()  # userspace offsets of the u64s holding buffer addresses
    data: int = 0        # userspace offsets of the packet's start and end pointers
    data_end: int = 8

    def field_at(self, offset: int, size: int) -> Field | None:
        """The field an access of `size` bytes at kernel `offset` falls in.

        Scalar fields may be read narrower than declared (as the kernel
        allows); pointer fields only whole.
        """
        for f in self.fields:
            if f.kind == SCALAR:
                if f.kernel_off <= offset and offset + size <= f.kernel_off + f.kernel_size:
                    return f
            elif offset == f.kernel_off and size == f.kernel_size:
                return f
        return None


# bpftime's struct xdp_md_userspace: u64 data, u64 data_end, u32 data_meta
# (here: bytes of metadata in front of data, 0 for none), u32 ingress_ifindex,
# u32 rx_queue_index, u32 egress_ifindex, u64 buffer_start, u64 buffer_end.
XDP_DATA, XDP_DATA_END, XDP_META_LEN = 0, 8, 16
XDP_BUFFER_START, XDP_BUFFER_END = 32, 40
XDP = Layout("xdp_md", "xdp_md_userspace", 48, (
    Field("data", 0, 4, XDP_DATA, POINTER),
    Field("data_end", 4, 4, XDP_DATA_END, POINTER),
    Field("data_meta", 8, 4, XDP_META_LEN, META_POINTER),
    Field("ingress_ifindex", 12, 4, 20),
    Field("rx_queue_index", 16, 4, 24),
    Field("egress_ifindex", 20, 4, 28),
), (XDP_DATA, XDP_DATA_END, XDP_BUFFER_START, XDP_BUFFER_END), XDP_DATA, XDP_DATA_END)

# Userspace __sk_buff: the kernel's 32-bit fields at their kernel offsets (0-75),
# then the packet pointers as 64-bit values.
_SKB_SCALARS = (
    ("len", 0, False), ("pkt_type", 4, False), ("mark", 8, True), ("queue_mapping", 12, True),
    ("protocol", 16, False), ("vlan_present", 20, False), ("vlan_tci", 24, False),
    ("vlan_proto", 28, False), ("priority", 32, True), ("ingress_ifindex", 36, False),
    ("ifindex", 40, False), ("tc_index", 44, True), ("cb", 48, True), ("hash", 68, False),
    ("tc_classid", 72, True),
)
SKB_LEN, SKB_PROTOCOL, SKB_DATA, SKB_DATA_END, SKB_DATA_META = 0, 16, 80, 88, 96
SKB = Layout("__sk_buff", "sk_buff_userspace", 104, tuple(
    [Field(n, off, 20 if n == "cb" else 4, off, SCALAR, w) for n, off, w in _SKB_SCALARS] + [
        Field("data", 76, 4, SKB_DATA, POINTER),
        Field("data_end", 80, 4, SKB_DATA_END, POINTER),
        Field("data_meta", 140, 4, SKB_DATA_META, POINTER),
    ]), (SKB_DATA, SKB_DATA_END, SKB_DATA_META), SKB_DATA, SKB_DATA_END)

BY_PROGRAM_TYPE: dict[str, Layout] = {
    "xdp": XDP,
    "sched_cls": SKB, "sched_act": SKB, "socket_filter": SKB, "cgroup_skb": SKB,
    "sk_skb": SKB, "lwt": SKB,
}


def for_program_type(prog_type: str) -> Layout | None:
    """The layout whose accesses need rewriting, or None: r1 is used as it is."""
    return BY_PROGRAM_TYPE.get(prog_type)


# What r0 means for each program type that runs on packets.
ACTIONS: dict[str, dict[int, str]] = {
    "xdp": {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"},
    "sched_cls": {0xFFFFFFFF: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY",
                  2: "TC_ACT_SHOT", 3: "TC_ACT_PIPE", 4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED",
                  6: "TC_ACT_REPEAT", 7: "TC_ACT_REDIRECT"},
}
ACTIONS["sched_act"] = ACTIONS["sched_cls"]


def action_name(prog_type: str, r0: int) -> str | None:
    names = ACTIONS.get(prog_type)
    if names is None:
        return None
    return names.get(r0 & 0xFFFFFFFF, f"unknown action {r0 & 0xFFFFFFFF}")


HEADROOM = 256   # XDP_PACKET_HEADROOM: room for bpf_xdp_adjust_head to grow the packet
TAILROOM = 256   # room for bpf_xdp_adjust_tail to grow it at the end


def build(layout: Layout, buffer_addr: int, packet_len: int, protocol: int = 0) -> bytes:
    """The userspace context for a packet at buffer_addr + HEADROOM.

    The buffer holds HEADROOM bytes, the packet, then TAILROOM bytes;
    `protocol` is the EtherType as the kernel stores it (network byte order).
    """
    data = buffer_addr + HEADROOM
    data_end = data + packet_len
    if layout is XDP:
        return struct.pack("<QQIIIIQQ", data, data_end, 0, 1, 0, 0,
                           buffer_addr, data_end + TAILROOM)
    ctx = bytearray(layout.user_size)
    struct.pack_into("<I", ctx, SKB_LEN, packet_len)
    # __sk_buff.protocol holds the EtherType in network byte order.
    struct.pack_into("<I", ctx, SKB_PROTOCOL, protocol)
    struct.pack_into("<QQQ", ctx, SKB_DATA, data, data_end, data)
    return bytes(ctx)


def ethertype_be(packet: bytes) -> int:
    return int.from_bytes(packet[12:14], "little") if len(packet) >= 14 else 0
