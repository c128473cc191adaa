"""The map runtime's core (helper_bitcode/src/maps.c, map_array.c, map_hash.c;
docs/maps.md), built natively with the system C compiler and driven through
ctypes: the map helpers (`_bpf_helper_ext_NNNN`, as a program calls them) and
the host API (`ebpf_lto_map_*`, as the bpf(2) syscall would be used).

Expectations are the kernel's documented semantics (include/uapi/linux/bpf.h,
Documentation/bpf/map_*.rst): error codes per flag, -E2BIG when a hash map is
full, LRU maps evicting untouched elements first, get_next_key visiting each
key once, per-cpu copies independent. tests/maps_c/stress.c checks the
concurrency guarantees with 8 threads.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "helper_bitcode" / "src"
TESTS_C = Path(__file__).parent / "maps_c"

HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH = 1, 2, 5, 6, 9, 10
QUEUE = 22
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
ENOENT, E2BIG, EEXIST, EINVAL = 2, 7, 17, 22
NO_INNER = 0xFFFFFFFF
STATE_SIZE = 128
U64 = ctypes.c_uint64
CALLBACK = ctypes.CFUNCTYPE(U64, U64, U64, U64, U64, U64)


def compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler")
    return cc


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("maps") / "libmaps.so"
    # buckets.c is map_hash.c plus a probe telling which bucket a key hashes to
    subprocess.run([compiler(), "-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-I", str(SRC),
                    str(SRC / "maps.c"), str(SRC / "map_array.c"), str(TESTS_C / "buckets.c"),
                    "-o", str(out)], check=True)
    so = ctypes.CDLL(str(out))
    for hid in (1, 2, 3, 87, 88, 89, 164, 195):
        fn = getattr(so, f"_bpf_helper_ext_{hid:04d}")
        fn.argtypes, fn.restype = [U64] * 5, U64
    so.ebpf_lto_map_storage_size.argtypes, so.ebpf_lto_map_storage_size.restype = [U64], U64
    for name, nargs in (("lookup", 3), ("update", 4), ("delete", 2), ("get_next_key", 3)):
        fn = getattr(so, f"ebpf_lto_map_{name}")
        fn.argtypes, fn.restype = [U64] * nargs, ctypes.c_long
    so.ebpf_lto_map_release.argtypes, so.ebpf_lto_map_release.restype = [U64], None
    so.test_htab_bucket.argtypes, so.test_htab_bucket.restype = [U64, U64], ctypes.c_uint32
    return so


class BpfMap(ctypes.Structure):
    """struct bpf_map (abi.h)."""
    _fields_ = [("type", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32),
                ("map_flags", ctypes.c_uint32), ("ncpus", ctypes.c_uint32),
                ("index", ctypes.c_uint32), ("inner_index", ctypes.c_uint32),
                ("state", ctypes.c_void_p), ("name", ctypes.c_char_p)]


assert ctypes.sizeof(BpfMap) == 48


def signed(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


def addr(buf) -> int:
    return ctypes.addressof(buf)


class Map:
    """A descriptor and its zeroed state, as the link step emits them."""

    def __init__(self, lib, mtype: int, key_size: int, value_size: int, max_entries: int,
                 ncpus: int = 1, storage=None):
        self.lib = lib
        self.state = (ctypes.c_uint64 * (STATE_SIZE // 8))()
        if storage is not None:
            self.state[0] = addr(storage)
        self.desc = BpfMap(mtype, key_size, value_size, max_entries, 0, ncpus, 0, NO_INNER,
                           addr(self.state), b"test")
        self.ptr = addr(self.desc)
        self.key_size, self.value_size, self.ncpus = key_size, value_size, ncpus
        self.stride = (value_size + 7) & ~7
        self.percpu = mtype in (PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH)

    def key(self, i: int) -> bytes:
        return i.to_bytes(self.key_size, "little")

    def helper(self, hid: int, *args: int) -> int:
        args = list(args) + [0] * (4 - len(args))
        return getattr(self.lib, f"_bpf_helper_ext_{hid:04d}")(self.ptr, *args)

    # -- the program's view (helpers) --
    def lookup(self, key: bytes) -> int:
        """map_lookup_elem: the value's address or 0."""
        kb = ctypes.create_string_buffer(key, len(key))
        return self.helper(1, addr(kb))

    def value(self, key: bytes) -> bytes | None:
        p = self.lookup(key)
        return ctypes.string_at(p, self.value_size) if p else None

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> int:
        kb = ctypes.create_string_buffer(key, len(key))
        vb = ctypes.create_string_buffer(value, len(value))
        return signed(self.helper(2, addr(kb), addr(vb), flags))

    def delete(self, key: bytes) -> int:
        kb = ctypes.create_string_buffer(key, len(key))
        return signed(self.helper(3, addr(kb)))

    def lookup_percpu(self, key: bytes, cpu: int) -> int:
        kb = ctypes.create_string_buffer(key, len(key))
        return self.helper(195, addr(kb), cpu)

    def for_each(self, fn, ctx: int = 0, flags: int = 0) -> int:
        cb = CALLBACK(fn)
        return signed(self.helper(164, ctypes.cast(cb, ctypes.c_void_p).value, ctx, flags))

    # -- the host's view (syscall semantics) --
    def sys_value_size(self) -> int:
        return self.ncpus * self.stride if self.percpu else self.value_size

    def host_lookup(self, key: bytes) -> tuple[int, bytes | None]:
        kb = ctypes.create_string_buffer(key, len(key))
        out = ctypes.create_string_buffer(self.sys_value_size())
        rc = self.lib.ebpf_lto_map_lookup(self.ptr, addr(kb), addr(out))
        return rc, (out.raw if rc == 0 else None)

    def host_update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> int:
        kb = ctypes.create_string_buffer(key, len(key))
        vb = ctypes.create_string_buffer(value, len(value))
        return self.lib.ebpf_lto_map_update(self.ptr, addr(kb), addr(vb), flags)

    def host_delete(self, key: bytes) -> int:
        kb = ctypes.create_string_buffer(key, len(key))
        return self.lib.ebpf_lto_map_delete(self.ptr, addr(kb))

    def next_key(self, key: bytes | None) -> tuple[int, bytes | None]:
        out = ctypes.create_string_buffer(self.key_size)
        if key is None:
            rc = self.lib.ebpf_lto_map_get_next_key(self.ptr, 0, addr(out))
        else:
            kb = ctypes.create_string_buffer(key, len(key))
            rc = self.lib.ebpf_lto_map_get_next_key(self.ptr, addr(kb), addr(out))
        return rc, (out.raw if rc == 0 else None)

    def keys(self) -> list[bytes]:
        """Every key by get_next_key from NULL, in iteration order."""
        found: list[bytes] = []
        rc, k = self.next_key(None)
        while rc == 0:
            found.append(k)
            assert len(found) <= self.desc.max_entries, "get_next_key does not end"
            rc, k = self.next_key(k)
        assert rc == -ENOENT
        return found

    @property
    def storage(self) -> int:
        return self.state[0]


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def u64(v: int) -> bytes:
    return struct.pack("<Q", v)


HASH_TYPES = (HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH)
ARRAY_TYPES = (ARRAY, PERCPU_ARRAY)


# -- array --------------------------------------------------------------------

@pytest.mark.parametrize("mtype", ARRAY_TYPES)
def test_array_lookup_bounds_and_layout(lib, mtype):
    m = Map(lib, mtype, 4, 12, 10, ncpus=2)
    assert m.storage == 0  # lazily allocated
    p0, p1, p9 = m.lookup(u32(0)), m.lookup(u32(1)), m.lookup(u32(9))
    assert m.storage != 0
    assert p0 and p1 and p9 and p0 % 8 == 0
    copies = 2 if mtype == PERCPU_ARRAY else 1
    assert p1 - p0 == 16 * copies  # value_size rounded up to 8
    assert m.lookup(u32(10)) == 0 and m.lookup(u32(0xFFFFFFFF)) == 0
    assert ctypes.string_at(p9, 12) == bytes(12)  # zero-initialised
    assert m.host_lookup(u32(10))[0] == -ENOENT


def test_array_update_flags(lib):
    m = Map(lib, ARRAY, 4, 8, 4)
    assert m.update(u32(1), u64(11), BPF_ANY) == 0
    assert m.value(u32(1)) == u64(11)
    assert m.update(u32(1), u64(12), BPF_EXIST) == 0
    assert m.update(u32(2), u64(13), BPF_EXIST) == 0  # every element exists
    assert m.update(u32(3), u64(14), BPF_NOEXIST) == -EEXIST
    assert m.update(u32(4), u64(15)) == -E2BIG
    assert m.update(u32(0), u64(16), 3) == -EINVAL
    assert m.update(u32(0), u64(16), 1 << 32) == -EINVAL  # no internal flags from programs
    assert [m.value(u32(i)) for i in range(4)] == [u64(0), u64(12), u64(13), u64(0)]
    assert m.host_lookup(u32(2)) == (0, u64(13))
    assert m.host_update(u32(3), u64(99), BPF_NOEXIST) == -EEXIST
    assert m.host_update(u32(3), u64(99)) == 0 and m.value(u32(3)) == u64(99)
    assert m.host_update(u32(9), u64(99)) == -E2BIG


def test_array_delete_is_einval(lib):
    m = Map(lib, ARRAY, 4, 8, 4)
    assert m.delete(u32(0)) == -EINVAL
    assert m.host_delete(u32(0)) == -EINVAL


def test_array_get_next_key(lib):
    m = Map(lib, ARRAY, 4, 8, 5)
    assert m.next_key(None) == (0, u32(0))
    assert m.next_key(u32(2)) == (0, u32(3))
    assert m.next_key(u32(4)) == (-ENOENT, None)  # the last index
    assert m.next_key(u32(77)) == (0, u32(0))  # out of range: the first
    assert m.keys() == [u32(i) for i in range(5)]


def test_array_value_bytes_beyond_value_size_untouched(lib):
    m = Map(lib, ARRAY, 4, 5, 3)
    assert m.update(u32(1), b"abcde") == 0
    p = m.lookup(u32(1))
    assert ctypes.string_at(p, 8) == b"abcde\0\0\0"
    assert m.host_lookup(u32(1)) == (0, b"abcde")


def test_percpu_array_copies_are_independent(lib):
    m = Map(lib, PERCPU_ARRAY, 4, 4, 3, ncpus=4)
    copies = b"".join(struct.pack("<II", 100 + c, 0) for c in range(4))
    assert m.host_update(u32(2), copies) == 0
    assert m.host_lookup(u32(2)) == (0, copies)
    for cpu in range(4):
        p = m.lookup_percpu(u32(2), cpu)
        assert ctypes.string_at(p, 4) == u32(100 + cpu)
    assert m.lookup_percpu(u32(2), 4) == 0  # cpu >= ncpus
    assert m.lookup_percpu(u32(3), 0) == 0  # index >= max_entries
    assert m.host_lookup(u32(1)) == (0, bytes(32))  # other elements untouched


def on_each_cpu(fn):
    """Runs fn(cpu) pinned to each cpu this process may use (at most 4)."""
    allowed = sorted(os.sched_getaffinity(0))
    try:
        for cpu in allowed[:4]:
            os.sched_setaffinity(0, {cpu})
            fn(cpu)
    finally:
        os.sched_setaffinity(0, set(allowed))


@pytest.mark.parametrize("mtype", (PERCPU_ARRAY, PERCPU_HASH, LRU_PERCPU_HASH))
def test_program_update_writes_this_cpus_copy(lib, mtype):
    ncpus = 3
    m = Map(lib, mtype, 4, 4, 4, ncpus=ncpus)
    base = b"".join(struct.pack("<II", 7, 0) for _ in range(ncpus))
    if mtype == PERCPU_ARRAY:
        assert m.host_update(u32(1), base) == 0

    def check(cpu):
        rc, before = m.host_lookup(u32(1))
        assert m.update(u32(1), u32(1000 + cpu)) == 0
        rc, after = m.host_lookup(u32(1))
        me = cpu % ncpus
        for c in range(ncpus):
            got = after[c * 8:c * 8 + 4]
            if c == me:
                assert got == u32(1000 + cpu)
            elif before is not None:
                assert got == before[c * 8:c * 8 + 4]
            else:  # a new element: the other copies are zeroed
                assert got == u32(0)
        # the program's lookup sees its own cpu's copy
        assert ctypes.string_at(m.lookup(u32(1)), 4) == u32(1000 + cpu)
    on_each_cpu(check)


def test_lookup_percpu_on_plain_maps_is_null(lib):
    for mtype in (ARRAY, HASH, LRU_HASH):
        m = Map(lib, mtype, 4, 4, 4, ncpus=4)
        assert m.update(u32(1), u32(5)) == 0
        assert m.lookup_percpu(u32(1), 0) == 0


@pytest.mark.parametrize("mtype", ARRAY_TYPES)
def test_array_for_each(lib, mtype):
    m = Map(lib, mtype, 4, 8, 6, ncpus=1)
    for i in range(6):
        assert m.update(u32(i), u64(i * 10)) == 0
    seen = []

    def cb(mp, k, v, ctx, _):
        assert mp == m.ptr and ctx == 1234
        seen.append((ctypes.string_at(k, 4), ctypes.string_at(v, 8)))
        return 0
    assert m.for_each(cb, 1234) == 6
    assert seen == [(u32(i), u64(i * 10)) for i in range(6)]
    seen.clear()
    assert m.for_each(lambda mp, k, v, c, _: int(ctypes.string_at(k, 4) == u32(2))) == 3
    assert m.for_each(cb, 0, flags=1) == -EINVAL


# -- hash family ------------------------------------------------------------------

@pytest.mark.parametrize("mtype", HASH_TYPES)
def test_hash_flags(lib, mtype):
    m = Map(lib, mtype, 4, 8, 16)
    k = u32(42)
    assert m.lookup(k) == 0
    assert m.update(k, u64(1), BPF_EXIST) == -ENOENT
    assert m.lookup(k) == 0
    assert m.update(k, u64(2), BPF_NOEXIST) == 0
    assert m.value(k) == u64(2)
    assert m.update(k, u64(3), BPF_NOEXIST) == -EEXIST
    assert m.value(k) == u64(2)
    assert m.update(k, u64(4), BPF_EXIST) == 0
    assert m.value(k) == u64(4)
    assert m.update(k, u64(5), BPF_ANY) == 0
    assert m.value(k) == u64(5)
    assert m.update(u32(43), u64(6), BPF_ANY) == 0
    assert m.value(u32(43)) == u64(6)
    assert m.update(k, u64(7), 3) == -EINVAL
    assert m.update(k, u64(7), 8) == -EINVAL
    assert m.update(k, u64(7), 4) == 0  # BPF_F_LOCK is accepted
    assert m.delete(k) == 0
    assert m.lookup(k) == 0
    assert m.delete(k) == -ENOENT
    assert m.host_delete(k) == -ENOENT
    assert m.update(k, u64(8), BPF_EXIST) == -ENOENT
    assert m.value(u32(43)) == u64(6)


@pytest.mark.parametrize("mtype", HASH_TYPES)
def test_hash_host_api(lib, mtype):
    m = Map(lib, mtype, 8, 12, 8, ncpus=2)
    size = m.sys_value_size()
    v = bytes(range(size))
    assert m.host_lookup(u64(1)) == (-ENOENT, None)
    assert m.host_update(u64(1), v, BPF_EXIST) == -ENOENT
    assert m.host_update(u64(1), v, BPF_NOEXIST) == 0
    assert m.host_update(u64(1), v, BPF_NOEXIST) == -EEXIST
    assert m.host_lookup(u64(1)) == (0, v)
    assert m.host_update(u64(1), v[::-1], BPF_EXIST) == 0
    assert m.host_lookup(u64(1)) == (0, v[::-1])
    assert m.host_update(u64(1), v, 3) == -EINVAL
    assert m.host_delete(u64(1)) == 0
    assert m.host_lookup(u64(1)) == (-ENOENT, None)


@pytest.mark.parametrize("mtype", (HASH, PERCPU_HASH))
def test_hash_full_is_e2big(lib, mtype):
    m = Map(lib, mtype, 4, 8, 5, ncpus=2)
    for i in range(5):
        assert m.update(u32(i), u64(i), BPF_NOEXIST) == 0
    assert m.update(u32(5), u64(5)) == -E2BIG
    assert m.update(u32(5), u64(5), BPF_NOEXIST) == -E2BIG
    assert m.host_update(u32(6), bytes(16)) == -E2BIG
    # existing keys can still be updated when full
    assert m.update(u32(3), u64(33), BPF_EXIST) == 0
    assert m.update(u32(3), u64(34), BPF_ANY) == 0
    assert m.update(u32(3), u64(35), BPF_NOEXIST) == -EEXIST
    assert m.value(u32(3)) == u64(34)
    assert m.delete(u32(0)) == 0
    assert m.update(u32(5), u64(5)) == 0
    assert m.update(u32(6), u64(6)) == -E2BIG
    assert sorted(m.keys()) == [u32(i) for i in (1, 2, 3, 4, 5)]
    # deleting and re-inserting many times leaks no element
    for r in range(50):
        assert m.delete(u32(5)) == 0
        assert m.update(u32(100 + r), u64(r)) == 0
        assert m.delete(u32(100 + r)) == 0
        assert m.update(u32(5), u64(5)) == 0
    assert m.update(u32(6), u64(6)) == -E2BIG


@pytest.mark.parametrize("mtype", (LRU_HASH, LRU_PERCPU_HASH))
def test_lru_evicts_the_untouched_oldest_first(lib, mtype):
    n = 8
    m = Map(lib, mtype, 4, 8, n, ncpus=2)
    for i in range(n):
        assert m.update(u32(i), u64(i)) == 0
    touched = {1, 3, 4}
    for i in touched:
        assert m.lookup(u32(i)) != 0  # a program's lookup marks the element used
    assert m.host_lookup(u32(0))[0] == 0  # the syscall's lookup does not
    # three new keys evict the three oldest untouched: 0, 2, 5
    for j in range(3):
        assert m.update(u32(100 + j), u64(j)) == 0
    present = {int.from_bytes(k, "little") for k in m.keys()}
    assert present == {1, 3, 4, 6, 7, 100, 101, 102}
    # two more: the remaining old untouched ones, 6 and 7
    for j in range(3, 5):
        assert m.update(u32(100 + j), u64(j)) == 0
    present = {int.from_bytes(k, "little") for k in m.keys()}
    assert present == {1, 3, 4, 100, 101, 102, 103, 104}
    for i in touched:
        assert m.value(u32(i)) is not None
    assert m.value(u32(104)) == u64(4)


@pytest.mark.parametrize("mtype", (LRU_HASH, LRU_PERCPU_HASH))
def test_lru_never_fails_when_full(lib, mtype):
    m = Map(lib, mtype, 4, 8, 16, ncpus=2)
    for i in range(500):
        assert m.update(u32(i), u64(i), BPF_NOEXIST) == 0
        if i % 7 == 0:
            m.lookup(u32(i))
    keys = m.keys()
    assert len(keys) == 16 and len(set(keys)) == 16
    assert u32(499) in keys  # the newest key is in
    for k in keys:
        assert m.value(k) == u64(int.from_bytes(k, "little"))
    # a delete frees an element: the next insert evicts nothing
    assert m.delete(keys[0]) == 0
    assert m.update(u32(1000), u64(1000)) == 0
    assert set(m.keys()) == (set(keys) - {keys[0]}) | {u32(1000)}
    # BPF_EXIST/NOEXIST keep their meaning in a full LRU map
    assert m.update(u32(999999), u64(0), BPF_EXIST) == -ENOENT
    assert m.update(keys[1], u64(0), BPF_NOEXIST) == -EEXIST


@pytest.mark.parametrize("mtype", HASH_TYPES)
def test_get_next_key_visits_every_key_once(lib, mtype):
    m = Map(lib, mtype, 4, 8, 64, ncpus=2)
    assert m.next_key(None) == (-ENOENT, None)
    assert m.next_key(u32(5)) == (-ENOENT, None)
    want = {u32(i * 7919 % 100003) for i in range(50)}
    for k in want:
        assert m.update(k, u64(1)) == 0
    got = m.keys()
    assert len(got) == 50 and set(got) == want
    first = m.next_key(None)
    assert m.next_key(u32(123456)) == first  # a missing key: the first key
    # deleting the current key while iterating (the usual pattern) restarts
    # from the first key and still reaches every key
    for k in list(want)[:20]:
        assert m.delete(k) == 0
    assert set(m.keys()) == set(list(want)[20:])


def colliding_keys(lib, m: Map, bucket: int, count: int) -> list[bytes]:
    keys = []
    i = 0
    while len(keys) < count:
        k = m.key(i)
        kb = ctypes.create_string_buffer(k, len(k))
        if lib.test_htab_bucket(m.ptr, addr(kb)) == bucket:
            keys.append(k)
        i += 1
    return keys


@pytest.mark.parametrize("mtype", HASH_TYPES)
def test_hash_collisions(lib, mtype):
    m = Map(lib, mtype, 4, 8, 16, ncpus=2)  # 16 buckets
    keys = colliding_keys(lib, m, 5, 12)  # one chain of 12
    others = colliding_keys(lib, m, 9, 4)
    for j, k in enumerate(keys + others):
        assert m.update(k, u64(j), BPF_NOEXIST) == 0
    for j, k in enumerate(keys + others):
        assert m.value(k) == u64(j)
        assert m.update(k, u64(j), BPF_NOEXIST) == -EEXIST
    # a colliding key that is not in the map
    absent = colliding_keys(lib, m, 5, 13)[-1]
    assert m.lookup(absent) == 0 and m.delete(absent) == -ENOENT
    # unlink the newest (chain head), the oldest (tail) and middle ones
    gone = {keys[-1], keys[0], keys[5], keys[6]}
    for k in gone:
        assert m.delete(k) == 0
    for j, k in enumerate(keys + others):
        assert m.value(k) == (None if k in gone else u64(j))
    assert sorted(m.keys()) == sorted(set(keys + others) - gone)
    for k in gone:
        assert m.update(k, u64(77)) == 0
        assert m.value(k) == u64(77)
    assert sorted(m.keys()) == sorted(keys + others)


@pytest.mark.parametrize("key_size,value_size", [(1, 1), (5, 3), (13, 17), (24, 8), (64, 100)])
def test_hash_key_and_value_sizes(lib, key_size, value_size):
    m = Map(lib, HASH, key_size, value_size, 40)
    keys = [bytes((i * 37 + j) & 0xFF for j in range(key_size)) for i in range(40)]
    keys = list(dict.fromkeys(keys))
    for i, k in enumerate(keys):
        assert m.update(k, bytes([i]) * value_size) == 0
    for i, k in enumerate(keys):
        p = m.lookup(k)
        assert p % 8 == 0
        assert ctypes.string_at(p, value_size) == bytes([i]) * value_size
    # keys differing only in the last byte are different keys
    k2 = keys[0][:-1] + bytes([keys[0][-1] ^ 0x80])
    if k2 not in keys:
        assert m.lookup(k2) == 0
    assert set(m.keys()) == set(keys)


def test_percpu_hash_copies_are_independent(lib):
    m = Map(lib, PERCPU_HASH, 4, 4, 8, ncpus=4)
    copies = b"".join(struct.pack("<II", 10 + c, 0) for c in range(4))
    assert m.host_update(u32(9), copies) == 0
    for cpu in range(4):
        assert ctypes.string_at(m.lookup_percpu(u32(9), cpu), 4) == u32(10 + cpu)
    assert m.lookup_percpu(u32(9), 4) == 0
    assert m.lookup_percpu(u32(8), 0) == 0
    # writing through one cpu's pointer leaves the others
    ctypes.memmove(m.lookup_percpu(u32(9), 2), u32(555), 4)
    rc, got = m.host_lookup(u32(9))
    assert [struct.unpack_from("<I", got, c * 8)[0] for c in range(4)] == [10, 11, 555, 13]


@pytest.mark.parametrize("mtype", HASH_TYPES)
def test_hash_for_each(lib, mtype):
    m = Map(lib, mtype, 4, 8, 32, ncpus=1)
    for i in range(20):
        assert m.update(u32(i), u64(i * 3)) == 0
    seen = {}

    def cb(mp, k, v, ctx, _):
        assert mp == m.ptr and ctx == 99
        seen[ctypes.string_at(k, 4)] = ctypes.string_at(v, 8)
        return 0
    assert m.for_each(cb, 99) == 20
    assert seen == {u32(i): u64(i * 3) for i in range(20)}
    calls = []
    assert m.for_each(lambda *a: calls.append(1) or int(len(calls) == 3)) == 3
    assert m.for_each(cb, 0, flags=2) == -EINVAL

    # the callback may delete the element it is given
    def delete_cb(mp, k, v, ctx, _):
        return int(m.delete(ctypes.string_at(k, 4)) != 0)
    assert m.for_each(delete_cb) == 20
    assert m.keys() == []
    assert m.for_each(cb) == 0


def test_value_writes_through_the_lookup_pointer_persist(lib):
    m = Map(lib, HASH, 4, 8, 4)
    assert m.update(u32(1), u64(5)) == 0
    p = m.lookup(u32(1))
    ctypes.c_uint64.from_address(p).value += 10
    assert m.host_lookup(u32(1)) == (0, u64(15))
    assert m.update(u32(1), u64(20)) == 0  # in place: the pointer stays the key's
    assert ctypes.c_uint64.from_address(p).value == 20


# -- dispatch, storage ----------------------------------------------------------------

def test_operations_a_type_lacks_are_einval(lib):
    for mtype in (HASH, ARRAY):
        m = Map(lib, mtype, 4, 8, 4)
        buf = ctypes.create_string_buffer(8)
        assert signed(m.helper(87, addr(buf), 0)) == -EINVAL  # push
        assert signed(m.helper(88, addr(buf))) == -EINVAL  # pop
        assert signed(m.helper(89, addr(buf))) == -EINVAL  # peek
    for mtype in (99, 1000, QUEUE):  # unknown; a type whose file is not linked
        m = Map(lib, mtype, 4, 8, 4)
        assert m.lookup(u32(0)) == 0
        assert m.update(u32(0), u64(0)) == -EINVAL
        assert m.delete(u32(0)) == -EINVAL
        assert m.for_each(lambda *a: 0) == -EINVAL
        assert lib.ebpf_lto_map_storage_size(m.ptr) == 0
        assert m.host_lookup(u32(0))[0] == -EINVAL
        assert m.next_key(None)[0] == -EINVAL
        assert m.storage == 0


def test_storage_size(lib):
    assert lib.ebpf_lto_map_storage_size(Map(lib, ARRAY, 4, 12, 10).ptr) == 160
    assert lib.ebpf_lto_map_storage_size(Map(lib, PERCPU_ARRAY, 4, 12, 10, ncpus=3).ptr) == 480
    assert lib.ebpf_lto_map_storage_size(Map(lib, HASH, 4, 8, 1000).ptr) > 1000 * 16
    assert lib.ebpf_lto_map_storage_size(Map(lib, HASH, 4, 8, 0).ptr) == 0


def test_lazy_storage_and_release(lib):
    m = Map(lib, HASH, 4, 8, 100)
    assert m.storage == 0
    assert m.lookup(u32(1)) == 0  # the first use allocates
    assert m.storage != 0 and m.state[1] == lib.ebpf_lto_map_storage_size(m.ptr)
    assert m.update(u32(1), u64(1)) == 0
    lib.ebpf_lto_map_release(m.ptr)
    assert m.storage == 0 and m.state[1] == 0
    assert m.lookup(u32(1)) == 0  # empty again
    lib.ebpf_lto_map_release(m.ptr)


def test_host_provided_array_storage(lib):
    probe = Map(lib, ARRAY, 4, 12, 10)
    size = lib.ebpf_lto_map_storage_size(probe.ptr)
    mem = (ctypes.c_uint64 * (size // 8))()
    m = Map(lib, ARRAY, 4, 12, 10, storage=mem)
    assert m.update(u32(3), b"x" * 12) == 0
    assert m.storage == addr(mem)
    assert m.lookup(u32(3)) == addr(mem) + 3 * 16
    assert bytes(mem)[48:60] == b"x" * 12
    lib.ebpf_lto_map_release(m.ptr)  # the host's memory is not freed
    assert bytes(mem)[48:60] == b"x" * 12


@pytest.mark.parametrize("mtype", HASH_TYPES)
def test_host_provided_hash_storage_is_position_independent(lib, mtype):
    probe = Map(lib, mtype, 8, 8, 64, ncpus=2)
    size = lib.ebpf_lto_map_storage_size(probe.ptr)
    mem = (ctypes.c_uint64 * (size // 8))()
    m = Map(lib, mtype, 8, 8, 64, ncpus=2, storage=mem)
    for i in range(40):
        assert m.update(u64(i * 1000003), u64(i)) == 0
    for i in range(0, 40, 3):
        assert m.delete(u64(i * 1000003)) == 0
    assert m.storage == addr(mem)
    # the same bytes at another address are the same map
    copy = (ctypes.c_uint64 * (size // 8))()
    ctypes.memmove(copy, mem, size)
    m2 = Map(lib, mtype, 8, 8, 64, ncpus=2, storage=copy)
    assert sorted(m2.keys()) == sorted(m.keys())
    for i in range(40):
        assert m2.value(u64(i * 1000003)) == (None if i % 3 == 0 else u64(i))
    # and it keeps working there: the free list survived the move
    for i in range(0, 40, 3):
        assert m2.update(u64(i * 1000003), u64(i)) == 0
    assert len(m2.keys()) == 40


def test_stress_threads(tmp_path):
    """tests/maps_c/stress.c: 8 threads on a hash, an LRU hash and an array."""
    exe = tmp_path / "stress"
    subprocess.run([compiler(), "-O2", "-Wall", "-Werror", "-pthread", "-I", str(SRC),
                    str(TESTS_C / "stress.c"), str(SRC / "maps.c"), str(SRC / "map_array.c"),
                    str(SRC / "map_hash.c"), "-o", str(exe)], check=True)
    for _ in range(3):
        res = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("ok")
