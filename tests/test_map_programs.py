"""Maps through eBPF programs: shared by threads, read back by the host.

The stress test runs one object's programs from 8 threads at once (ctypes
releases the GIL for each native call) and checks the kernel's guarantees:
no increment lost, no entry lost or torn, every ringbuf record whole and
exactly once, each producer's records in order.
"""
import ctypes
import logging
import struct
import threading

import pytest

from conftest import ROOT
from inliner import pipeline
from inliner.elf import loader
from inliner.run.hostmaps import MapAccess

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.layers.inet import IP, TCP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

STRESS = ROOT / "tests" / "maps_prog" / "stress.o"
CSUM = ROOT / "examples" / "csum_count.o"
THREADS, ITERS, SLOTS = 8, 3000, 16


def load(path, program=None, level=2):
    options = pipeline.LinkOptions(opt_level=level, program=program)
    loaded, _ = pipeline.load(loader.load(str(path)), options)
    return loaded, MapAccess(loaded)


EAGAIN = 11


def call_from_threads(loaded, symbol: str, retry_eagain: bool = False) -> list[int]:
    """Every thread calls the program ITERS times with (thread, iter); returns the failures.

    With retry_eagain a call that found the ringbuf full is made again, as a
    producer waiting for its consumer would.
    """
    entry = loaded.entry(symbol)
    failures: list[int] = []

    def worker(t: int):
        arg = (ctypes.c_uint32 * 2)()
        for i in range(ITERS):
            arg[0], arg[1] = t, i
            r0 = entry(ctypes.addressof(arg), 8)
            while retry_eagain and r0 == 2**64 - EAGAIN:
                r0 = entry(ctypes.addressof(arg), 8)
            if r0:
                failures.append(r0)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return failures


@pytest.mark.parametrize("level", [0, 2])
def test_array_counters_lose_no_increment(level):
    loaded, maps = load(STRESS, "count", level)
    assert call_from_threads(loaded, "count") == []
    for key in range(SLOTS):
        value = maps.lookup("counters", key.to_bytes(4, "little"))
        expected = THREADS * sum(1 for i in range(ITERS) if i % SLOTS == key)
        assert int.from_bytes(value, "little") == expected


def test_hash_map_loses_no_entry_under_concurrent_insert_lookup_delete():
    loaded, maps = load(STRESS, "flow")
    assert call_from_threads(loaded, "flow") == []
    keys = sorted(int.from_bytes(k, "little") for k in maps.keys("flows"))
    expected = sorted(t << 32 | i for t in range(THREADS) for i in range(ITERS) if i % 2 == 0)
    assert keys == expected
    for key in expected[::97]:
        t, i = key >> 32, key & 0xFFFFFFFF
        assert int.from_bytes(maps.lookup("flows", key.to_bytes(8, "little")), "little") \
            == i * 3 + t


def test_ringbuf_records_arrive_whole_once_and_in_order_per_producer():
    loaded, maps = load(STRESS, "emit")
    received: list[bytes] = []
    done = threading.Event()

    def consumer():
        while True:
            got = maps.records("events")
            received.extend(got)
            if done.is_set() and not got:
                return

    reader = threading.Thread(target=consumer)
    reader.start()
    failures = call_from_threads(loaded, "emit", retry_eagain=True)
    done.set()
    reader.join()
    assert failures == []
    seen = {t: [] for t in range(THREADS)}
    for record in received:
        t, i, check = struct.unpack("<IIQ", record)
        assert check == (t * 0x9E3779B97F4A7C15 & (2**64 - 1)) ^ i  # whole, not torn
        seen[t].append(i)
    assert all(seen[t] == list(range(ITERS)) for t in range(THREADS))


def csum_key(packet: bytes) -> int:
    """bpf_csum_diff of the first 64 bytes: native-order 16-bit words, folded."""
    total = sum(struct.unpack("=32H", packet[:64]))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total & 0xFF


def test_checksum_example_counts_packets_the_host_reads_back():
    packets = [bytes(Ether() / IP(dst=f"10.1.{i}.{i * 7 % 250}") / TCP(dport=1000 + i)
                     / (b"p" * (i % 30))) for i in range(40)] + [b"\x00" * 20]
    loaded, maps = load(CSUM)
    results = list(pipeline.run_packets(loader.load(str(CSUM)), packets,
                                        pipeline.LinkOptions(), loaded))
    assert {r0 for r0, _ in results} == {2}  # XDP_PASS
    expected = [0] * 256
    for p in packets:
        if len(p) >= 64:
            expected[csum_key(p)] += 1
    counts = [int.from_bytes(maps.lookup("counts", k.to_bytes(4, "little")), "little")
              for k in range(256)]
    assert counts == expected
    assert sum(counts) == sum(1 for p in packets if len(p) >= 64) > 10


def test_tail_calls_across_programs_with_the_kernels_limit():
    obj = loader.load(str(ROOT / "tests" / "maps_prog" / "tail.o"))
    loaded, _ = pipeline.load(obj, pipeline.LinkOptions())
    maps = MapAccess(loaded)
    number = {p.name: n for n, p in enumerate(obj.programs)}  # prog_array values

    def run(slot: int) -> int:
        return loaded.call("dispatch", bytearray(slot.to_bytes(4, "little")))

    assert run(1) == 111                      # empty slot: the caller goes on
    maps.update("jumps", (1).to_bytes(4, "little"), number["second"].to_bytes(4, "little"))
    assert run(1) == 222                      # the target's r0 ends the caller
    maps.update("jumps", (3).to_bytes(4, "little"), number["chain"].to_bytes(4, "little"))
    # chain runs once, then 33 tail calls (MAX_TAIL_CALL_CNT), then goes on.
    assert loaded.call("chain", bytearray(4)) == 34
