"""Soak: one program on every core for a bounded time, then the maps' invariants.

tests/maps_prog/soak.c does ROUND_OPS operations per call on an array
(atomic counters), a hash map (each thread owns its keys) and an LRU hash
(more keys than entries, shared by all threads). Each thread calls it in
rounds until the time is up; afterwards the host reads the maps back and
checks what the kernel guarantees: no counter increment lost, every owned key
present with its thread's last value, the LRU never above max_entries and
every entry in it whole.

EBPF_LTO_SOAK_SECONDS sets the time (default 3); EBPF_LTO_SOAK_SECONDS=600
is the long run (docs/testing.md).
"""
import ctypes
import os
import threading
import time

import pytest

from conftest import ROOT
from inliner import pipeline
from inliner.elf import loader
from inliner.run.hostmaps import MapAccess

SOAK = ROOT / "tests" / "maps_prog" / "soak.o"
SECONDS = float(os.environ.get("EBPF_LTO_SOAK_SECONDS", "3"))
SLOTS, KEYS, ROUND_OPS, LRU_ENTRIES = 16, 64, 256, 512   # as in soak.c
MASK64 = (1 << 64) - 1


class Call(ctypes.Structure):
    _fields_ = [("thread", ctypes.c_uint32), ("round", ctypes.c_uint32),
                ("hits", ctypes.c_uint64)]


def check(key: int) -> int:
    return key * 0x9E3779B97F4A7C15 & MASK64


@pytest.mark.parametrize("level", [0, 2])
def test_maps_keep_their_invariants_on_every_core(level):
    options = pipeline.LinkOptions(opt_level=level)
    loaded, _ = pipeline.load(loader.load(str(SOAK)), options)
    maps = MapAccess(loaded)
    entry = loaded.entry("soak")
    threads = max(2, os.cpu_count() or 1)
    rounds = [0] * threads
    failures: list[tuple[int, int, int]] = []
    deadline = time.monotonic() + SECONDS

    def worker(t: int) -> None:
        call = Call(thread=t)
        while time.monotonic() < deadline:
            call.round = rounds[t]
            r0 = entry(ctypes.addressof(call), ctypes.sizeof(call))
            if r0:
                failures.append((t, rounds[t], r0))
                return
            rounds[t] += 1

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()

    assert failures == [], "(thread, round, r0): r0 is the check in soak.c that failed"
    assert all(rounds), f"a thread made no call in {SECONDS} s: {rounds}"

    total = sum(rounds)
    for slot in range(SLOTS):
        got = int.from_bytes(maps.lookup("counters", slot.to_bytes(4, "little")), "little")
        assert got == total * (ROUND_OPS // SLOTS), f"counter {slot} lost increments"

    owned = {int.from_bytes(k, "little") for k in maps.keys("owned")}
    assert owned == {t << 32 | k for t in range(threads) for k in range(KEYS)}
    for t in range(threads):
        last = rounds[t] - 1
        for k in range(KEYS):
            value = maps.lookup("owned", (t << 32 | k).to_bytes(8, "little"))
            assert int.from_bytes(value, "little") == t << 48 | last << 8 | k

    churn = [int.from_bytes(k, "little") for k in maps.keys("churn")]
    assert 0 < len(churn) <= LRU_ENTRIES
    for key in churn:
        value = maps.lookup("churn", key.to_bytes(8, "little"))
        assert value is not None and int.from_bytes(value, "little") == check(key)
