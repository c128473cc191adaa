"""Block and branch counters: what an instrumented build counts and a profile holds.

Each function has one counter per block, then one per conditional jump (its
taken edge), in CFG order. The profile record of a function carries a hash
of that CFG, so a profile of an older build is recognised as stale instead
of being misapplied (docs/pgo.md).
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from .cfg import Cfg


def ncounters(cfg: Cfg) -> int:
    return len(cfg.order) + len(cfg.branches)


def cfg_hash(cfg: Cfg) -> int:
    """A checksum of the control-flow graph the counters describe (blocks and edges)."""
    start = cfg.start
    shape = [(leader - start, tuple(s - start for s in cfg.succs[leader]))
             for leader in cfg.order]
    shape.append(tuple(i - start for i in cfg.branches))
    digest = int.from_bytes(hashlib.md5(repr(shape).encode()).digest()[:8], "little")
    return digest & 0x0FFF_FFFF_FFFF_FFFF  # LLVM reserves bits 60-63 (context-sensitive)


@dataclass(frozen=True)
class Counts:
    """One function's profile: executions of each block and taken jumps of each branch."""
    blocks: Mapping[int, int]   # leader -> count
    taken: Mapping[int, int]    # conditional jump -> times taken

    def at(self, cfg: Cfg, idx: int) -> int:
        """How often the instruction at `idx` ran."""
        return self.blocks[cfg.block_of[idx]]


def match(cfg: Cfg, record: tuple[int, list[int]]) -> Counts | None:
    """The counts of a profile record `(hash, counters)`, or None if it is stale."""
    hash_, counters = record
    if hash_ != cfg_hash(cfg) or len(counters) != ncounters(cfg):
        return None
    n = len(cfg.order)
    return Counts(dict(zip(cfg.order, counters[:n])), dict(zip(cfg.branches, counters[n:])))
