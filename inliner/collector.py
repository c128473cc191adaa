"""Python's cycle collector paused while a link builds its large object graphs.

The lift makes millions of objects that all live until the IR text is
parsed (facts per instruction, llvmlite's IR, the text's pieces): every
collection in between walks each of them again, 40% of a 100k-instruction
lift for nothing, as refcounting frees what the lift drops. After the pause
they go straight to the oldest generation (freeze, then unfreeze: no walk),
where a full collection frees them once they are garbage. The collector
does not count them there, so a process that links again and again (corpus,
bench, tests) would keep every earlier link's IR: past UNWALKED_LIMIT such
objects, the next pause collects first.
"""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

UNWALKED_LIMIT = 200_000   # objects: about an 8k-instruction lift's

_unwalked = 0     # objects the pauses put in the oldest generation since its last walk
_full_seen = 0    # full collections the collector had made then


@contextmanager
def cycles_uncollected() -> Iterator[None]:
    """The collector off for the block, unless it is off already (an enclosing
    pause, or the caller's own choice): then it is left as it is."""
    global _unwalked, _full_seen
    if not gc.isenabled():
        yield
        return
    full = gc.get_stats()[-1]["collections"]
    if full != _full_seen:   # it walked the oldest generation since: all counted again
        _unwalked, _full_seen = 0, full
    if _unwalked > UNWALKED_LIMIT:
        gc.collect()
        _unwalked, _full_seen = 0, gc.get_stats()[-1]["collections"]
    gc.disable()
    try:
        yield
    finally:
        _unwalked += gc.get_count()[0]   # tracked objects made (net) during the pause
        gc.freeze()
        gc.unfreeze()
        gc.enable()
