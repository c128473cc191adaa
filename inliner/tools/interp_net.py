"""The reference interpreter's packet world: a program on a packet in its kernel
context, the redirect maps, and the forwarding helpers, written from the
kernel's documentation (include/uapi/linux/bpf.h) and net/core/filter.c, not
from the helper library.

- The context is the kernel's own struct (`struct xdp_md`, `struct
  __sk_buff`), not the userspace one the lifter rewrites accesses to: the
  packet's buffer is mapped below 4 GiB, so the kernel's 32-bit `data` and
  `data_end` fields hold its addresses whole, and the program reads them as
  it would in the kernel.
- Maps: `lddw` of a map gives a handle; the redirect maps (devmap,
  devmap_hash, cpumap, xskmap) hold entries set with `update`, which follows
  the kernel's update rules (a devmap's ifindex 0 and a cpumap's qsize 0
  empty the slot). A lookup maps the value read-only, as the kernel's devmap
  values are to programs.
- Helpers: map_lookup_elem (1) on those maps, get_prandom_u32 (7) from the
  generator of facts/abi.py keyed by `seed`, redirect (23), redirect_map
  (51), redirect_peer (155), fib_lookup (69: "not forwarded", there being no
  routes), sk_lookup_tcp/udp and skc_lookup_tcp (84, 85, 99: no socket) and
  sk_release (86), get_route_realm (24: 0, no route), get_hash_recalc (34:
  `flow_hash`, the kernel's flow dissector's keys under SipHash-2-4),
  skb_load_bytes (26),
  skb_store_bytes (9), skb_vlan_push (18), skb_vlan_pop (19),
  skb_change_proto (31), skb_change_tail (38) and skb_change_head (43).
  `Net.redirect` is the target the last run left, as facts.abi.Redirect, for
  comparison with the native code's.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..facts import abi, contexts
from ..facts.maps import MAP_TYPE_IDS, REDIRECT_TYPES
from . import interp

PACKET_BASE = 0x4000_0000             # below 4 GiB: kernel context fields hold it whole
MAP_HANDLE_BASE = 0x0000_5000_0000_0000  # + map index << 32
MAP_VALUE_BASE = 0x0000_6000_0000_0000   # + map index << 32 + key * 16
KERNEL_CTX_SIZE = {"xdp_md": 24, "__sk_buff": 192}  # sizeof the kernel's structs

XDP_ABORTED, XDP_REDIRECT = 0, 4
TC_ACT_SHOT, TC_ACT_REDIRECT = 2, 7
DEVMAP, DEVMAP_HASH, CPUMAP = (MAP_TYPE_IDS[n] for n in ("devmap", "devmap_hash", "cpumap"))
ENOMEM, EFAULT, EINVAL, EAFNOSUPPORT = 12, 14, 22, 97
INT_MAX = 0x7FFFFFFF
BPF_F_RECOMPUTE_CSUM, BPF_F_INVALIDATE_HASH = 1, 2
AF_INET, AF_INET6 = 2, 10
FIB_PARAMS_SIZE, FIB_FLAGS, FIB_NOT_FWDED = 64, 0x3F, 4
SKB_LEN, SKB_HASH, SKB_DATA, SKB_DATA_END, SKB_DATA_META = 0, 68, 76, 80, 140  # __sk_buff's
SKB_PROTOCOL, SKB_VLAN_PRESENT, SKB_VLAN_TCI, SKB_VLAN_PROTO = 16, 20, 24, 28
VLAN_HLEN, MACS_LEN, ETH_P_802_3_MIN = 4, 12, 0x600
VLAN_PROTOS_BE = (0x0081, 0xA888)   # 802.1Q, 802.1ad, as __sk_buff holds them
ETH_P_802_3_BE, ETH_P_802_2_BE = 0x0100, 0x0400
ETH_HLEN, IPV6_GROWTH = 14, 20   # an IPv6 header is 20 bytes longer than IPv4's
ETH_P_IP_BE, ETH_P_IPV6_BE = 0x0008, 0xDD86   # as __sk_buff.protocol holds them
ENOTSUPP = 524   # the kernel's own errno for "not supported"


def kernel_context(layout: contexts.Layout, buffer: int, packet: bytes) -> bytearray:
    """The kernel struct for a packet at buffer + HEADROOM: each field the value the
    userspace context (contexts.build) gives it, a pointer as its low 32 bits."""
    user = contexts.build(layout, buffer, len(packet), contexts.ethertype_be(packet))
    ctx = bytearray(KERNEL_CTX_SIZE[layout.name])
    for f in layout.fields:
        fmt = "<Q" if f.kind != contexts.SCALAR else "<" + "I" * (f.kernel_size // 4)
        values = struct.unpack_from(fmt, user, f.user_off)
        if f.kind == contexts.META_POINTER:  # the userspace field is the metadata's length
            values = (struct.unpack_from("<Q", user, layout.data)[0] - values[0] % 2**32,)
        struct.pack_into("<" + "I" * len(values), ctx, f.kernel_off,
                         *(v & 0xFFFFFFFF for v in values))
    return ctx


@dataclass
class NetMap:
    name: str
    type: int
    index: int
    key_size: int
    value_size: int
    max_entries: int
    entries: dict[int, bytes] = field(default_factory=dict)


class Net:
    """Maps, helpers and the redirect record of interpreted packet runs."""

    def __init__(self, obj, seed: int | None = None):
        self.maps = {name: NetMap(name, m.type, i, m.key_size, m.value_size, m.max_entries)
                     for i, (name, m) in enumerate(obj.maps.items())}
        self.handles = {name: MAP_HANDLE_BASE + (m.index << 32) for name, m in self.maps.items()}
        self.by_handle = {self.handles[name]: m for name, m in self.maps.items()}
        self.key = abi.prandom_key(seed) if seed is not None else None
        self.draws = 0
        self.xdp = False
        self.redirect: abi.Redirect | None = None
        self.buffer = (0, 0)

    def update(self, name: str, key: bytes, value: bytes) -> None:
        """Set an entry as BPF_MAP_UPDATE_ELEM does for a redirect map."""
        m = self.maps[name]
        index, = struct.unpack("<I", key)
        first = int.from_bytes(value[:4], "little")
        if m.type not in REDIRECT_TYPES:
            raise ValueError(f"map {name}: only redirect maps are modelled")
        if m.type != DEVMAP_HASH and index >= m.max_entries:
            raise ValueError(f"map {name}: index {index} past max_entries")
        if first == 0 and m.type in (DEVMAP, CPUMAP):  # no device / no queue: empty
            m.entries.pop(index, None)
        else:
            m.entries[index] = bytes(value)

    def helpers(self) -> dict[int, object]:
        return {1: self._lookup, 7: self._prandom, 23: self._redirect, 51: self._redirect_map,
                155: self._redirect_peer, 69: self._fib_lookup, 84: _no_socket,
                85: _no_socket, 99: _no_socket, 86: _no_socket,
                34: self._get_hash_recalc, 26: _skb_load_bytes, 9: _skb_store_bytes,
                38: self._skb_change_tail, 43: self._skb_change_head,
                31: self._skb_change_proto, 18: self._skb_vlan_push, 19: _skb_vlan_pop,
                24: _no_route}

    def run(self, obj, packet: bytes, program: str | None = None,
            max_steps: int = interp.DEFAULT_MAX_STEPS) -> tuple[int, bytes]:
        """r0 and the packet after one run (data..data_end); `redirect` is then set."""
        prog = obj.program(program)
        layout = contexts.for_program_type(prog.prog_type)
        if layout is None:
            raise ValueError(f"program {prog.name} of type {prog.prog_type} takes no packet")
        self.xdp, self.redirect = layout is contexts.XDP, None
        buf = bytearray(contexts.HEADROOM) + bytearray(packet) + bytearray(contexts.TAILROOM)
        self.buffer = (PACKET_BASE, PACKET_BASE + len(buf))   # the room a packet may grow into
        mem = interp.Memory()
        mem.map(PACKET_BASE, buf, True, "packet")
        ctx = kernel_context(layout, PACKET_BASE, packet)
        r0 = interp.run_object(obj, ctx, self.helpers(), program=program, max_steps=max_steps,
                               mem=mem, maps=self.handles)
        data, data_end = (int.from_bytes(ctx[f.kernel_off:f.kernel_off + 4], "little")
                          for f in layout.fields if f.name in ("data", "data_end"))
        return r0, bytes(buf[data - PACKET_BASE:data_end - PACKET_BASE])

    # -- helpers: fn(memory, r1, ..., r5) -> r0

    def _map(self, handle: int) -> NetMap | None:
        return self.by_handle.get(handle)

    def _lookup(self, mem, r1, r2, r3, r4, r5) -> int:
        m = self._map(r1)
        if m is None:
            raise interp.InterpError(f"map_lookup_elem on {r1:#x}: not a modelled map")
        key, = struct.unpack("<I", mem.read(r2, 4))
        value = m.entries.get(key)
        if value is None:
            return 0
        addr = MAP_VALUE_BASE + (m.index << 32) + key * 16
        if not any(r.base == addr for r in mem.regions):
            mem.map(addr, bytearray(value), False, f"map {m.name} value")
        return addr

    def _prandom(self, mem, r1, r2, r3, r4, r5) -> int:
        if self.key is None:
            raise interp.InterpError("get_prandom_u32 needs a seed")
        self.draws += 1
        return abi.prandom_u32(self.key, self.draws - 1)

    def _redirect_map(self, mem, r1, r2, r3, r4, r5) -> int:
        # __bpf_xdp_redirect_map (net/core/filter.c): the low two flag bits are the
        # action on a missing key; devmaps also take BROADCAST and EXCLUDE_INGRESS.
        m = self._map(r1)
        if m is None or m.type not in REDIRECT_TYPES:
            return XDP_ABORTED
        allowed = 3 | ((abi.BPF_F_BROADCAST | abi.BPF_F_EXCLUDE_INGRESS)
                       if m.type in (DEVMAP, DEVMAP_HASH) else 0)
        if r3 & ~allowed:
            return XDP_ABORTED
        key = r2 & 0xFFFFFFFF
        value = m.entries.get(key)
        if value is None and not r3 & abi.BPF_F_BROADCAST:
            self.redirect = None
            return r3 & 3
        target = key if m.type == CPUMAP else int.from_bytes(value[:4], "little") if value else 0
        self.redirect = abi.Redirect(51, m.type, m.index, key, target, r3 & ~3)
        return XDP_REDIRECT

    def _device(self, helper: int, ifindex: int, flags: int) -> int:
        self.redirect = abi.Redirect(helper, 0, abi.NO_MAP, 0, ifindex & 0xFFFFFFFF, flags)
        return XDP_REDIRECT if self.xdp else TC_ACT_REDIRECT

    def _redirect(self, mem, r1, r2, r3, r4, r5) -> int:
        # bpf_xdp_redirect: no flags; tc's bpf_redirect: BPF_F_INGRESS only
        if self.xdp:
            return XDP_ABORTED if r2 else self._device(23, r1, 0)
        return TC_ACT_SHOT if r2 & ~abi.BPF_F_INGRESS else self._device(23, r1, r2)

    def _redirect_peer(self, mem, r1, r2, r3, r4, r5) -> int:
        if self.xdp:  # tc only
            return XDP_ABORTED
        return TC_ACT_SHOT if r2 else self._device(155, r1, 0)

    def _get_hash_recalc(self, mem, r1, r2, r3, r4, r5) -> int:
        data, data_end = mem.load(r1 + SKB_DATA, 4), mem.load(r1 + SKB_DATA_END, 4)
        hash_ = hash_recalc(mem.load(r1 + SKB_HASH, 4), mem.read(data, data_end - data))
        mem.store(r1 + SKB_HASH, 4, hash_)   # skb->hash, which the program may then read
        return hash_

    def _skb_change_tail(self, mem, r1, r2, r3, r4, r5) -> int:
        # __bpf_skb_change_tail: flags 0, at least the network header's offset (14), at
        # most the buffer's room (for the device's MTU); grown bytes zeroed
        data, data_end = mem.load(r1 + SKB_DATA, 4), mem.load(r1 + SKB_DATA_END, 4)
        new_len = r2 & 0xFFFFFFFF
        if r3 or new_len < ETH_HLEN or new_len > self.buffer[1] - data:
            return -EINVAL & interp.U64
        if data + new_len > data_end:
            mem.write(data_end, bytes(data + new_len - data_end))
        mem.store(r1 + SKB_DATA_END, 4, data + new_len)
        mem.store(r1 + SKB_LEN, 4, new_len)
        return 0

    def _skb_change_head(self, mem, r1, r2, r3, r4, r5) -> int:
        # __bpf_skb_change_head: flags 0 and no u32 wrap; the room from the headroom
        # (skb_cow could reallocate in the kernel: -ENOMEM here), zeroed
        data, data_end = mem.load(r1 + SKB_DATA, 4), mem.load(r1 + SKB_DATA_END, 4)
        room = r2 & 0xFFFFFFFF
        if r3 or data_end - data + room > 0xFFFFFFFF:
            return -EINVAL & interp.U64
        if room > data - self.buffer[0]:
            return -ENOMEM & interp.U64
        mem.write(data - room, bytes(room))
        mem.store(r1 + SKB_DATA, 4, data - room)
        mem.store(r1 + SKB_DATA_META, 4, mem.load(r1 + SKB_DATA_META, 4) - room)
        mem.store(r1 + SKB_LEN, 4, data_end - data + room)
        return 0

    def _skb_change_proto(self, mem, r1, r2, r3, r4, r5) -> int:
        # bpf_skb_proto_xlat: IPv4 <-> IPv6 makes or takes 20 bytes after the Ethernet
        # header (zeroed when made), clears the hash; any other pair -ENOTSUPP
        data, data_end = mem.load(r1 + SKB_DATA, 4), mem.load(r1 + SKB_DATA_END, 4)
        now, to = mem.load(r1 + SKB_PROTOCOL, 4), r2 & 0xFFFF
        if r3:
            return -EINVAL & interp.U64
        if (now, to) == (ETH_P_IP_BE, ETH_P_IPV6_BE):
            if data - self.buffer[0] < IPV6_GROWTH:
                return -ENOMEM & interp.U64
            delta = -IPV6_GROWTH
            mem.write(data + delta, mem.read(data, ETH_HLEN) + bytes(IPV6_GROWTH))
        elif (now, to) == (ETH_P_IPV6_BE, ETH_P_IP_BE):
            if data_end - data < ETH_HLEN + IPV6_GROWTH:
                return -ENOMEM & interp.U64
            delta = IPV6_GROWTH
            mem.write(data + delta, mem.read(data, ETH_HLEN))
        else:
            return -ENOTSUPP & interp.U64
        _move_data(mem, r1, delta)
        mem.store(r1 + SKB_PROTOCOL, 4, to)
        mem.store(r1 + SKB_HASH, 4, 0)
        return 0

    def _skb_vlan_push(self, mem, r1, r2, r3, r4, r5) -> int:
        # bpf_skb_vlan_push/skb_vlan_push: a present accelerated tag goes into the
        # data after the MACs (protocol = its proto); the new tag is the accelerated one
        proto = r2 & 0xFFFF
        proto = proto if proto in VLAN_PROTOS_BE else VLAN_PROTOS_BE[0]
        if mem.load(r1 + SKB_VLAN_PRESENT, 4):
            data = mem.load(r1 + SKB_DATA, 4)
            if data - self.buffer[0] < VLAN_HLEN:
                return -ENOMEM & interp.U64
            tag = mem.read(r1 + SKB_VLAN_PROTO, 2) + mem.load(r1 + SKB_VLAN_TCI, 2).to_bytes(
                2, "big")
            mem.write(data - VLAN_HLEN, mem.read(data, MACS_LEN) + tag)
            _move_data(mem, r1, -VLAN_HLEN)
            mem.store(r1 + SKB_PROTOCOL, 4, mem.load(r1 + SKB_VLAN_PROTO, 4))
        _vlan_accel(mem, r1, proto, r3 & 0xFFFF)
        return 0

    def _fib_lookup(self, mem, r1, r2, r3, r4, r5) -> int:
        # bpf_xdp_fib_lookup/bpf_skb_fib_lookup's checks, then no route: NOT_FWDED
        plen = r3 & 0xFFFFFFFF
        if plen >= 2**31 or plen < FIB_PARAMS_SIZE or r4 & 0xFFFFFFFF & ~FIB_FLAGS:
            return -EINVAL & interp.U64
        family = mem.read(r2, FIB_PARAMS_SIZE)[0]
        if family not in (AF_INET, AF_INET6):
            return -EAFNOSUPPORT & interp.U64
        return FIB_NOT_FWDED


def _skb_range(mem, skb: int, offset: int, size: int) -> int | None:
    """The address of packet bytes [offset, offset + size), or None when they
    are not all in data..data_end (pskb_may_pull fails) or offset > INT_MAX."""
    data, data_end = mem.load(skb + SKB_DATA, 4), mem.load(skb + SKB_DATA_END, 4)
    if offset > INT_MAX or offset + size > data_end - data:
        return None
    return data + offset


def _skb_load_bytes(mem, r1, r2, r3, r4, r5) -> int:
    # bpf_skb_load_bytes: -EFAULT with `to` zeroed when the range is not in the packet
    size = r4 & 0xFFFFFFFF
    at = _skb_range(mem, r1, r2 & 0xFFFFFFFF, size)
    mem.write(r3, bytes(size) if at is None else mem.read(at, size))
    return -EFAULT & interp.U64 if at is None else 0


def _skb_store_bytes(mem, r1, r2, r3, r4, r5) -> int:
    # bpf_skb_store_bytes: RECOMPUTE_CSUM has no skb->csum to keep here;
    # INVALIDATE_HASH clears skb->hash
    if r5 & ~(BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH):
        return -EINVAL & interp.U64
    size = r4 & 0xFFFFFFFF
    at = _skb_range(mem, r1, r2 & 0xFFFFFFFF, size)
    if at is None:
        return -EFAULT & interp.U64
    mem.write(at, mem.read(r3, size))
    if r5 & BPF_F_INVALIDATE_HASH:
        mem.store(r1 + SKB_HASH, 4, 0)
    return 0


def _move_data(mem, skb: int, delta: int) -> None:
    """data and data_meta moved by delta bytes, len the other way."""
    for field in (SKB_DATA, SKB_DATA_META):
        mem.store(skb + field, 4, mem.load(skb + field, 4) + delta)
    mem.store(skb + SKB_LEN, 4, mem.load(skb + SKB_LEN, 4) - delta)


def _vlan_accel(mem, skb: int, proto: int, tci: int) -> None:
    for field, value in ((SKB_VLAN_PRESENT, 1), (SKB_VLAN_PROTO, proto), (SKB_VLAN_TCI, tci)):
        mem.store(skb + field, 4, value)


def _vlan_pop_data(mem, skb: int) -> int:
    """__skb_vlan_pop: the first tag in the data taken out, skb->protocol what it
    held (vlan_set_encap_proto); its TCI, or -ENOMEM for a packet too short."""
    data, data_end = mem.load(skb + SKB_DATA, 4), mem.load(skb + SKB_DATA_END, 4)
    if data_end - data < ETH_HLEN + VLAN_HLEN:
        return -ENOMEM
    head = mem.read(data, min(data_end - data, ETH_HLEN + VLAN_HLEN + 2))
    tci, inner = int.from_bytes(head[14:16], "big"), int.from_bytes(head[16:18], "big")
    if inner >= ETH_P_802_3_MIN:
        proto = int.from_bytes(head[16:18], "little")
    else:   # a length: 802.3 when the payload starts 0xffff, else 802.2
        proto = ETH_P_802_3_BE if head[18:20] == b"\xff\xff" else ETH_P_802_2_BE
    mem.store(skb + SKB_PROTOCOL, 4, proto)
    mem.write(data + VLAN_HLEN, head[:MACS_LEN])
    _move_data(mem, skb, VLAN_HLEN)
    return tci


def _skb_vlan_pop(mem, r1, r2, r3, r4, r5) -> int:
    # skb_vlan_pop: the accelerated tag dropped, else the first in the data; then the
    # next tag in the data, if any, becomes the accelerated one
    if mem.load(r1 + SKB_VLAN_PRESENT, 4):
        for field in (SKB_VLAN_PRESENT, SKB_VLAN_PROTO, SKB_VLAN_TCI):
            mem.store(r1 + field, 4, 0)
    elif mem.load(r1 + SKB_PROTOCOL, 4) not in VLAN_PROTOS_BE:
        return 0
    elif (err := _vlan_pop_data(mem, r1)) < 0:
        return err & interp.U64
    proto = mem.load(r1 + SKB_PROTOCOL, 4)
    if proto not in VLAN_PROTOS_BE:
        return 0
    tci = _vlan_pop_data(mem, r1)
    if tci < 0:
        return tci & interp.U64
    _vlan_accel(mem, r1, proto, tci)
    return 0


def _no_socket(mem, r1, r2, r3, r4, r5) -> int:
    """No socket table: every lookup finds nothing (NULL), nothing to release."""
    return 0


def _no_route(mem, r1, r2, r3, r4, r5) -> int:
    """get_route_realm (dst_tclassid): no route was given to the packet, realm 0."""
    return 0


# --- the flow hash (get_hash_recalc), from net/core/flow_dissector.c --------------

ETH_P_IP, ETH_P_IPV6, VLAN_TAGS = 0x0800, 0x86DD, (0x8100, 0x88A8)
PORT_PROTOS = frozenset({6, 17, 33, 132, 136})   # TCP, UDP, DCCP, SCTP, UDP-Lite
M64 = (1 << 64) - 1


def flow_keys(packet: bytes) -> bytes:
    """The keys __skb_flow_dissect() finds for the hash (docs/helpers.md), made
    consistent (__flow_hash_consistentify) and laid out as one record: network
    protocol, IP protocol, the outer VLAN id, IPv6's flow label, the ports and
    the addresses, in network byte order."""
    vlan = label = proto_ip = 0
    ports = addrs = b""
    proto = int.from_bytes(packet[12:14], "big") if len(packet) >= 14 else 0
    off, tags = 14, 0
    while proto in VLAN_TAGS and tags < 2 and len(packet) >= off + 4:
        if tags == 0:
            vlan = int.from_bytes(packet[off:off + 2], "big") & 0xFFF
        proto, off, tags = int.from_bytes(packet[off + 2:off + 4], "big"), off + 4, tags + 1
    if proto in VLAN_TAGS and tags < 2:   # a tag cut short: no network protocol
        proto = 0
    l4 = None
    if proto == ETH_P_IP and len(packet) >= off + 20 and packet[off] & 0xF >= 5:
        proto_ip, addrs = packet[off + 9], packet[off + 12:off + 20]
        if not int.from_bytes(packet[off + 6:off + 8], "big") & 0x3FFF:  # not a fragment
            l4 = off + (packet[off] & 0xF) * 4
    elif proto == ETH_P_IPV6 and len(packet) >= off + 40:
        proto_ip, addrs = packet[off + 6], packet[off + 8:off + 40]
        label = int.from_bytes(packet[off + 1:off + 4], "big") & 0xFFFFF
        l4 = None if label else off + 40   # FLOW_DISSECTOR_F_STOP_AT_FLOW_LABEL
    if l4 is not None and proto_ip in PORT_PROTOS and len(packet) >= l4 + 4:
        ports = packet[l4:l4 + 4]
    ports = ports or bytes(4)
    half = len(addrs) // 2
    if addrs:   # the kernel compares IPv4 addresses as loaded (little-endian), IPv6 by memcmp
        src, dst = addrs[:half], addrs[half:]
        if (int.from_bytes(dst, "little") < int.from_bytes(src, "little") if half == 4
                else dst < src):
            addrs = dst + src
    if int.from_bytes(ports[2:], "little") < int.from_bytes(ports[:2], "little"):
        ports = ports[2:] + ports[:2]
    return struct.pack("!HBxHxxI", proto, proto_ip, vlan, label) + ports + addrs


def siphash24(data: bytes, k0: int, k1: int) -> int:
    """SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF")."""
    def rotl(x, b):
        return ((x << b) | (x >> (64 - b))) & M64

    v = [0x736F6D6570736575 ^ k0, 0x646F72616E646F6D ^ k1,
         0x6C7967656E657261 ^ k0, 0x7465646279746573 ^ k1]

    def rounds(n):
        v0, v1, v2, v3 = v
        for _ in range(n):
            v0 = (v0 + v1) & M64
            v1 = rotl(v1, 13) ^ v0
            v0 = rotl(v0, 32)
            v2 = (v2 + v3) & M64
            v3 = rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & M64
            v3 = rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & M64
            v1 = rotl(v1, 17) ^ v2
            v2 = rotl(v2, 32)
        v[:] = v0, v1, v2, v3

    tail = len(data) - len(data) % 8
    words = [int.from_bytes(data[i:i + 8], "little") for i in range(0, tail, 8)]
    words.append(int.from_bytes(data[tail:], "little") | (len(data) & 0xFF) << 56)
    for m in words:
        v[3] ^= m
        rounds(2)
        v[0] ^= m
    v[2] ^= 0xFF
    rounds(4)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def flow_hash(packet: bytes) -> int:
    """__flow_hash_from_keys(): the low 32 bits of the keys' SipHash under
    facts.abi.FLOW_HASH_KEY, 0 made 1."""
    return siphash24(flow_keys(packet), *abi.FLOW_HASH_KEY) & 0xFFFFFFFF or 1


def hash_recalc(current: int, packet: bytes) -> int:
    """bpf_get_hash_recalc (skb_get_hash): the hash set (`current`, the
    __sk_buff's; 0: none), else the packet's flow hash, which the caller stores."""
    return current or flow_hash(packet)
