"""collector.cycles_uncollected: the pause the link runs in leaves Python's cycle
collector as it found it, and does not keep garbage for good."""
from __future__ import annotations

import gc
import weakref

from inliner import collector


class Node:
    def __init__(self):
        self.me = self   # a cycle: only the cycle collector frees it


def test_the_pause_turns_the_collector_off_and_on_again():
    assert gc.isenabled()
    with collector.cycles_uncollected():
        assert not gc.isenabled()
        with collector.cycles_uncollected():   # nested: still off, and off after it
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_garbage_the_pauses_moved_unwalked_is_collected_by_a_later_pause(monkeypatch):
    """What a pause made goes to the oldest generation unwalked, where the collector
    does not count it: past the limit, the next pause collects first (else a corpus
    run would keep every earlier link's IR)."""
    monkeypatch.setattr(collector, "UNWALKED_LIMIT", 1000)
    with collector.cycles_uncollected():
        cycle = Node()
        garbage = weakref.ref(cycle)
        filler = [Node() for _ in range(2000)]   # past the limit
    del cycle, filler
    assert garbage() is not None   # no collection walked it yet
    with collector.cycles_uncollected():
        assert garbage() is None
