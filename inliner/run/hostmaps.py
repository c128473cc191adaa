"""The host's view of a loaded object's maps, through the map runtime's host API.

The Python runner reads and writes the same maps the program uses, through
the same code a C host would call (docs/maps.md): the object's exported map
table names the descriptors; `ebpf_lto_map_*` do the work.
"""
from __future__ import annotations

import ctypes
import json
from dataclasses import dataclass

from .. import inputs
from ..errors import EbpfLtoError
from ..facts import maps
from ..facts.abi import MAP_COUNT, MAP_TABLE
from .runner import LoadedObjects

HOST_API = ("ebpf_lto_map_lookup", "ebpf_lto_map_update", "ebpf_lto_map_delete",
            "ebpf_lto_map_get_next_key", "ebpf_lto_ringbuf_consume")


class _Descriptor(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p if ctype.endswith("*") else ctypes.c_uint32)
                for ctype, name in maps.DESCRIPTOR_FIELDS]


@dataclass(frozen=True)
class HostMap:
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    ncpus: int
    address: int  # of the descriptor

    @property
    def value_bytes(self) -> int:
        """What the host API copies for a value: every cpu's copy, each padded to 8 bytes."""
        if self.ncpus > 1 or self.type in maps.PER_CPU_TYPES:
            return self.ncpus * ((self.value_size + 7) & ~7)
        return self.value_size


class MapAccess:
    def __init__(self, loaded: LoadedObjects):
        self._loaded = loaded
        count = ctypes.c_uint32.from_address(loaded.address(MAP_COUNT)).value
        table = (ctypes.c_void_p * count).from_address(loaded.address(MAP_TABLE))
        self.maps: dict[str, HostMap] = {}
        for addr in table:
            d = _Descriptor.from_address(addr)
            name = ctypes.string_at(d.name).decode()
            self.maps[name] = HostMap(name, d.type, d.key_size, d.value_size, d.max_entries,
                                      d.ncpus, addr)
        self._fn = {}

    def _api(self, name: str, *argtypes):
        fn = self._fn.get(name)
        if fn is None:
            try:
                address = self._loaded.address(name)
            except (RuntimeError, KeyError):
                raise EbpfLtoError(f"the helper sets provide no map runtime ({name})") from None
            fn = ctypes.CFUNCTYPE(ctypes.c_int64, *argtypes)(address)
            self._fn[name] = fn
        return fn

    def get(self, name: str) -> HostMap:
        m = self.maps.get(name)
        if m is None:
            raise EbpfLtoError(f"no map named {name!r} (maps: {', '.join(self.maps) or 'none'})")
        return m

    def lookup(self, name: str, key: bytes) -> bytes | None:
        m = self.get(name)
        out = ctypes.create_string_buffer(m.value_bytes)
        fn = self._api("ebpf_lto_map_lookup", ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)
        return out.raw if fn(m.address, _sized(key, m.key_size, "key"), out) == 0 else None

    def update(self, name: str, key: bytes, value: bytes, flags: int = maps.BPF_ANY) -> None:
        m = self.get(name)
        fn = self._api("ebpf_lto_map_update", ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                       ctypes.c_uint64)
        err = fn(m.address, _sized(key, m.key_size, "key"),
                 _sized(value, m.value_bytes, "value"), flags)
        if err:
            raise EbpfLtoError(f"cannot update map {name}: error {err}")

    def keys(self, name: str) -> list[bytes]:
        m = self.get(name)
        fn = self._api("ebpf_lto_map_get_next_key", ctypes.c_void_p, ctypes.c_char_p,
                       ctypes.c_void_p)
        out, key, seen = [], None, set()
        nxt = ctypes.create_string_buffer(max(m.key_size, 1))
        while fn(m.address, key, nxt) == 0:
            key = nxt.raw[:m.key_size]
            if key in seen:  # a map changing under us must not loop forever
                break
            seen.add(key)
            out.append(key)
        return out

    def records(self, name: str) -> list[bytes]:
        """Consume every submitted ringbuf record."""
        m = self.get(name)
        fn = self._api("ebpf_lto_ringbuf_consume", ctypes.c_void_p, ctypes.c_void_p,
                       ctypes.c_uint64)
        buf = ctypes.create_string_buffer(m.max_entries or 1)
        out = []
        while (n := fn(m.address, buf, len(buf))) > 0:
            out.append(buf.raw[:n])
        return out

    def dump(self) -> dict:
        """Every map's contents, for --json: entries as hex, ringbuf records as hex."""
        out = {}
        for name, m in self.maps.items():
            kind = maps.type_name(m.type)
            if kind == "ringbuf":
                out[name] = {"type": kind, "records": [r.hex() for r in self.records(name)]}
            elif kind in ("hash", "array", "percpu_hash", "percpu_array", "lru_hash",
                          "lru_percpu_hash", "lpm_trie", "devmap", "devmap_hash", "cpumap",
                          "xskmap"):
                entries = []
                for key in self.keys(name):
                    value = self.lookup(name, key)
                    if value is not None:
                        entries.append({"key": key.hex(), "value": value.hex()})
                out[name] = {"type": kind, "entries": entries}
        return out

    def fill(self, name: str, path: str) -> None:
        """Load entries from a JSON file: [[key, value], ...], each hex bytes or an integer."""
        m = self.get(name)
        _, data = inputs.read(path, "map entries")
        shown = inputs.display_name(path)
        try:
            pairs = json.loads(data)
        except UnicodeDecodeError:
            raise EbpfLtoError(f"map entries are not JSON ({inputs.describe(data)})",
                               file=shown) from None
        except (ValueError, RecursionError) as err:  # RecursionError: nested past Python's limit
            raise EbpfLtoError(f"map entries are not JSON: {err}", file=shown) from None
        if not isinstance(pairs, list):
            raise EbpfLtoError("map entries must be a JSON list of [key, value]", file=shown)
        for pair in pairs:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise EbpfLtoError(f"not a [key, value] pair: {pair!r}", file=shown)
            self.update(name, _value(pair[0], m.key_size, shown),
                        _value(pair[1], m.value_bytes, shown))


def _sized(data: bytes, size: int, what: str) -> bytes:
    if len(data) != size:
        raise EbpfLtoError(f"{what} has {len(data)} bytes, the map wants {size}")
    return data


def _value(item, size: int, path: str) -> bytes:
    if isinstance(item, int) and not isinstance(item, bool):
        try:
            return item.to_bytes(size, "little", signed=item < 0)
        except OverflowError:
            raise EbpfLtoError(f"{item} does not fit in {size} bytes", file=path) from None
    if isinstance(item, str):
        try:
            return bytes.fromhex(item)
        except ValueError:
            pass
    raise EbpfLtoError(f"map key or value {item!r} is neither an integer nor hex bytes", file=path)
