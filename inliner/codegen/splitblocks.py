"""Part of stage 5: split huge basic blocks before instruction selection.

LLVM's SelectionDAG instruction selection works one basic block at a time,
and its cost grows faster than linearly with the block's size: a generated
program of 60k eBPF instructions, which -O2 makes one block of 40k IR
instructions, spent 7.6 s in X86 instruction selection, 4.9x the time of one
half its size. Split into blocks of BLOCK_LIMIT instructions, the same
program selects in 1.6 s. CodeGenPrepare merges a block into its single
predecessor when that one ends in an unconditional branch, which would undo
the split, except for blocks whose address is taken; so each new block's
address goes into one internal constant table, which nothing reads.

Only blocks above BLOCK_LIMIT are touched; the code inside is unchanged but
for one `br` per split, and values that cross a split live in registers.
It works on the printed text alone (irtext.py), where the cut is made
anyway: a block's size is its count of instruction lines, where llvmlite
would list each instruction for five microseconds (a quarter second for a
block of 50k), and whether an instruction is a phi, an alloca or a musttail
call (which llvmlite does not tell) is on its line.
"""
from __future__ import annotations

import re

from . import irtext
from .irview import ModuleView

BLOCK_LIMIT = 2000   # IR instructions in one block after the split
ANCHORS = "@ebpf_lto.block_anchors"

# Instructions a split may not come before, or right after.
_NOT_BEFORE = re.compile(r'^\s*(?:%\S+ = )?(?:phi|landingpad) ')
_NOT_AFTER = re.compile(r'musttail call')


def _cuts(lines: list[str]) -> list[int]:
    """Where a block of these instruction lines is cut: before which lines."""
    # Static allocas must stay in the entry block: split only after the last one.
    start = max((n + 1 for n, line in enumerate(lines) if " = alloca " in line), default=0)
    cuts = []
    done = 0
    for n in range(len(lines) - 1):   # never before the terminator
        if done >= BLOCK_LIMIT and n >= start and not _NOT_BEFORE.match(lines[n]) \
                and not _NOT_AFTER.search(lines[n - 1]):
            cuts.append(n)
            done = 0
        done += 1
    return cuts


def split(view: ModuleView, blocks: dict[tuple[int, int], irtext.Items]) -> tuple[str, int]:
    """Cut every block above BLOCK_LIMIT instructions, counting what `blocks`
    (function, block: items, irtext.py) already rewrites, into `blocks`.
    Returns the anchors table's line, to end the module with, and the cuts."""
    counter: list[int] = []
    anchors: list[str] = []
    for fn in view.functions:
        printed = fn.text()
        renamed: dict[str, str] = {}   # block name -> name of its last piece
        for b, block in enumerate(printed.blocks):
            items = blocks.get((fn.index, b)) or list(range(len(block)))
            head = block.head()
            if len(items) <= BLOCK_LIMIT or not head:
                continue   # an unnamed entry block prints no label: left whole
            cuts = _cuts([block.line(k) if isinstance(k, int) else k for k in items])
            if not cuts:
                continue
            if not counter:  # fresh names, should the module be an earlier link's output
                counter.append(view.text.largest("split.", r'\bsplit\.(\d+)\b'))
            pieces, last = [], 0
            for n in cuts:
                counter[0] += 1
                name = f"%split.{counter[0]}"
                pieces += items[last:n] + [f"  br label {name}", f"{name[1:]}:"]
                anchors.append(f"ptr blockaddress({printed.name}, {name})")
                last = n
            blocks[(fn.index, b)] = pieces + items[last:]
            renamed["%" + irtext.LABEL.match(head[0])[0][:-1]] = name
        if renamed:
            _rename_phis(fn.index, printed, blocks, renamed)
    if not anchors:
        return "", 0
    taken = ANCHORS in view.text.text and \
        len(re.findall(rf'^{re.escape(ANCHORS)}(?:\.\d+)? =', view.text.text, re.M))
    table = ANCHORS + (f".{taken}" if taken else "")
    return f"{table} = internal constant [{len(anchors)} x ptr] [{', '.join(anchors)}]", \
        len(anchors)


def _rename_phis(f: int, printed: irtext.FunctionText,
                 blocks: dict[tuple[int, int], irtext.Items], renamed: dict[str, str]) -> None:
    """Point the phis of function `f` that name a cut block at its last piece."""
    for b, block in enumerate(printed.blocks):
        items = blocks.get((f, b)) or list(range(len(block)))
        changed = False
        for n, k in enumerate(items):
            line = block.line(k) if isinstance(k, int) else k
            if " phi " not in line:
                continue
            fixed = line
            for old, new in renamed.items():
                fixed = re.sub(rf', {re.escape(old)} \]', f', {new} ]', fixed)
            if fixed != line:
                items[n] = fixed
                changed = True
        if changed:
            blocks[(f, b)] = items
