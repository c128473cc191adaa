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
"""
from __future__ import annotations

import re

from . import irtext

BLOCK_LIMIT = 2000   # IR instructions in one block after the split
ANCHORS = "@ebpf_lto.block_anchors"

# Instructions a split may not come before, or right after.
_NOT_BEFORE = re.compile(r'^\s*(?:%\S+ = )?(?:phi|landingpad) ')
_NOT_AFTER = re.compile(r'musttail call')


def _is_instruction(line: str) -> bool:
    body = line.strip()
    return bool(body) and line[0].isspace() and not body.startswith((";", "#dbg_", "]"))


def _split_function(lines: list[str], fname: str, counter: list[int],
                    anchors: list[str]) -> list[str]:
    """Split the oversized blocks of one function body; fixes successors' phis."""
    blocks = irtext.blocks(lines)
    renamed: dict[str, str] = {}   # old block name -> name of its last piece
    out: list[list[str]] = []
    for block in blocks:
        label = irtext.LABEL.match(block[0]) if block else None
        count = sum(1 for line in block if _is_instruction(line))
        if label is None or count <= BLOCK_LIMIT:
            out.append(block)
            continue
        name = "%" + label[0][:-1]
        # Static allocas must stay in the entry block: split only after the last one.
        start = max((n + 1 for n, line in enumerate(block) if " = alloca " in line), default=0)
        piece: list[str] = []
        done = 0
        prev = ""
        current = name
        ending = False   # inside the terminator (a switch spans lines)
        for n, line in enumerate(block):
            ending = ending or (_is_instruction(line) and _terminator_start(line))
            if (_is_instruction(line) and done >= BLOCK_LIMIT and not ending and n >= start
                    and not _NOT_BEFORE.match(line) and not _NOT_AFTER.search(prev)):
                counter[0] += 1
                current = f"%split.{counter[0]}"
                piece.append(f"  br label {current}")
                out.append(piece)
                piece = [f"{current[1:]}:"]
                anchors.append(f"ptr blockaddress({fname}, {current})")
                done = 0
            piece.append(line)
            if _is_instruction(line):
                done += 1
                prev = line
        out.append(piece)
        if current != name:
            renamed[name] = current
    if renamed:
        for block in out:
            for i, line in enumerate(block):
                if " phi " in line:
                    for old, new in renamed.items():
                        line = re.sub(rf', {re.escape(old)} \]', f', {new} ]', line)
                    block[i] = line
    return [line for block in out for line in block]


def _terminator_start(line: str) -> bool:
    body = line.strip()
    return body.startswith(("br ", "ret", "switch ", "indirectbr ", "unreachable", "resume ",
                            "callbr ", "invoke ")) or " = invoke " in body or \
        " = callbr " in body


def split(text: str) -> tuple[str, int]:
    """Split every block above BLOCK_LIMIT instructions; returns the text and the splits."""
    if text.count("\n") < BLOCK_LIMIT:
        return text, 0
    # Fresh names, should the text be an earlier link's output.
    counter = [max(map(int, re.findall(r'\bsplit\.(\d+)\b', text)), default=0)]
    taken = len(re.findall(rf'^{re.escape(ANCHORS)}(?:\.\d+)? =', text, re.M))
    anchors: list[str] = []
    text = irtext.rewrite_functions(
        text, lambda name, body: _split_function(body, name, counter, anchors))
    if not anchors:
        return text, 0
    table = ANCHORS + (f".{taken}" if taken else "")
    anchors_line = f"{table} = internal constant [{len(anchors)} x ptr] [{', '.join(anchors)}]"
    return text + "\n" + anchors_line + "\n", len(anchors)
