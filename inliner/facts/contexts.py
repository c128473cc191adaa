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
class UserField:
    """One member of the userspace struct r1 points at."""
    name: str
    offset: int
    size: int            # bytes of one element: 4 (u32) or 8 (u64)
    count: int = 1       # elements, for arrays (__sk_buff.cb)
    address: bool = False  # holds an address in the packet's buffer
    note: str = ""


@dataclass(frozen=True)
class Layout:
    name: str            # the kernel struct
    user_struct: str     # the userspace struct r1 points at
    user_size: int
    fields: tuple[Field, ...]       # what the program may access, by kernel offset
    user: tuple[UserField, ...]     # the userspace struct, member by member

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

    def offset(self, name: str) -> int:
        """The userspace offset of member `name`."""
        return next(u.offset for u in self.user if u.name == name)

    @property
    def addresses(self) -> tuple[int, ...]:
        """Userspace offsets of the u64s holding addresses in the packet's buffer."""
        return tuple(u.offset for u in self.user if u.address)

    @property
    def data(self) -> int:
        return self.offset("data")

    @property
    def data_end(self) -> int:
        return self.offset("data_end")


# bpftime's struct xdp_md_userspace: the packet's bounds as pointers, then the
# kernel's u32s (data_meta here: bytes of metadata in front of data, 0 for
# none), then the buffer's bounds, for bpf_xdp_adjust_head and _tail.
XDP_USER = (
    UserField("data", 0, 8, address=True), UserField("data_end", 8, 8, address=True),
    UserField("data_meta", 16, 4, note="bytes of metadata in front of data"),
    UserField("ingress_ifindex", 20, 4), UserField("rx_queue_index", 24, 4),
    UserField("egress_ifindex", 28, 4),
    UserField("buffer_start", 32, 8, address=True), UserField("buffer_end", 40, 8, address=True),
)
XDP = Layout("xdp_md", "xdp_md_userspace", 48, (
    Field("data", 0, 4, 0, POINTER),
    Field("data_end", 4, 4, 8, POINTER),
    Field("data_meta", 8, 4, 16, META_POINTER),
    Field("ingress_ifindex", 12, 4, 20),
    Field("rx_queue_index", 16, 4, 24),
    Field("egress_ifindex", 20, 4, 28),
), XDP_USER)

# Userspace __sk_buff: the kernel's 32-bit fields at their kernel offsets (0-75),
# then the packet pointers as 64-bit values.
_SKB_SCALARS = (
    ("len", 0, False), ("pkt_type", 4, False), ("mark", 8, True), ("queue_mapping", 12, True),
    ("protocol", 16, False), ("vlan_present", 20, False), ("vlan_tci", 24, False),
    ("vlan_proto", 28, False), ("priority", 32, True), ("ingress_ifindex", 36, False),
    ("ifindex", 40, False), ("tc_index", 44, True), ("cb", 48, True), ("hash", 68, False),
    ("tc_classid", 72, True),
)
_SKB_POINTERS = (("data", 76, 80), ("data_end", 80, 88), ("data_meta", 140, 96))
# Then the buffer's bounds, which no program field shows: the room
# bpf_skb_change_head and _tail may grow the packet into, as XDP's.
SKB = Layout("__sk_buff", "sk_buff_userspace", 120, tuple(
    [Field(n, off, 20 if n == "cb" else 4, off, SCALAR, w) for n, off, w in _SKB_SCALARS]
    + [Field(n, k, 4, u, POINTER) for n, k, u in _SKB_POINTERS]), tuple(
    [UserField(n, off, 4, 5 if n == "cb" else 1) for n, off, _ in _SKB_SCALARS]
    + [UserField(n, u, 8, address=True) for n, _, u in _SKB_POINTERS]
    + [UserField("buffer_start", 104, 8, address=True),
       UserField("buffer_end", 112, 8, address=True)]))

# Legacy packet loads (ld_abs, ld_ind) read the packet of the __sk_buff in r6;
# their negative offsets name headers (linux/filter.h): from SKF_LL_OFF the
# link-layer header, which a userspace packet starts with; from SKF_NET_OFF the
# network header, which it does not record (so such offsets are outside).
SKF_LL_OFF = -0x200000
SKF_NET_OFF = -0x100000

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
# The actions after which the host forwards the packet to the redirect target.
REDIRECT_ACTIONS = frozenset({"XDP_REDIRECT", "TC_ACT_REDIRECT"})


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
        values = {"data": data, "data_end": data_end, "ingress_ifindex": 1,
                  "buffer_start": buffer_addr, "buffer_end": data_end + TAILROOM}
    else:  # __sk_buff.protocol holds the EtherType in network byte order
        values = {"len": packet_len, "protocol": protocol, "data": data, "data_end": data_end,
                  "data_meta": data, "buffer_start": buffer_addr,
                  "buffer_end": data_end + TAILROOM}
    ctx = bytearray(layout.user_size)
    for u in layout.user:
        if u.name in values:
            struct.pack_into("<Q" if u.size == 8 else "<I", ctx, u.offset, values[u.name])
    return bytes(ctx)


def ethertype_be(packet: bytes) -> int:
    return int.from_bytes(packet[12:14], "little") if len(packet) >= 14 else 0
