"""The printed IR of a module, cut into functions, blocks and instructions, and
put back together with some blocks rewritten.

llvmlite can read a module but not build instructions into it, so stage 5's
own rewrites (storefwd.py, splitblocks.py) print the module, replace the
blocks they change and parse the result. The cut follows the module as
llvmlite iterates it (irview.py): the k-th definition, its b-th block, the
i-th instruction of that block.

A rewritten block is a list of items: an int is an instruction of the block
as printed (with the debug records before it), a str a new line.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

NAME = r'(?:%[-\w$.]+|%"[^"]*"|@[-\w$.]+)'
LABEL = re.compile(r'^(?:[-\w$.]+|"[^"]*"):')
DEFINE = re.compile(r'^define [^@]*(@[-\w$.]+|@"[^"]*")\(', re.M)

Items = list[int | str]


@dataclass
class BlockText:
    lines: list[str]   # the label line (none for an unnamed entry block), then the body
    at: list[int]      # the line of each instruction

    def __len__(self) -> int:
        return len(self.at)

    def line(self, index: int) -> str:
        """The line of instruction `index` itself."""
        return self.lines[self.at[index]]

    def chunk(self, index: int) -> list[str]:
        """Instruction `index` as printed: the debug records before it, its line,
        and for the terminator what continues it."""
        begin = self.at[index - 1] + 1 if index else (1 if LABEL.match(self.lines[0]) else 0)
        end = self.at[index] + 1 if index + 1 < len(self.at) else len(self.lines)
        return self.lines[begin:end]

    def head(self) -> list[str]:
        return self.lines[:1] if LABEL.match(self.lines[0]) else []


@dataclass
class FunctionText:
    name: str                 # as printed: @f or @"f"
    define: str
    blocks: list[BlockText]

    def lines(self, items: dict[int, Sequence[int | str]]) -> list[str]:
        """The body, with the blocks in `items` (by index) rewritten."""
        out = [self.define]
        for b, block in enumerate(self.blocks):
            if b not in items:
                out += block.lines
                continue
            out += block.head()
            for item in items[b]:
                if isinstance(item, str):
                    out.append(item)
                else:
                    out += block.chunk(item)
        out.append("}")
        return out


def _starts_instruction(line: str) -> bool:
    """Instructions print indented by two; what continues one (a switch's or a
    landingpad's clauses) by more, debug records start with `#`."""
    return line[:2] == "  " and line[2:3] not in _NOT_STARTS


_NOT_STARTS = ("", " ", ";", "#", "]")


class ModuleText:
    """The printed module, and its definitions cut into blocks on request."""

    def __init__(self, text: str):
        self.text = text
        self._spans: list[tuple[int, int, str]] = []   # start of `define`, after its `}`
        for m in DEFINE.finditer(text):
            end = text.find("\n}", m.start())
            self._spans.append((m.start(), end + 2, m[1]))

    def __len__(self) -> int:
        return len(self._spans)

    def function(self, index: int) -> FunctionText:
        """Definition `index`, cut into blocks and instructions."""
        start, end, name = self._spans[index]
        return _cut(name, self.text[start:end].split("\n"))

    def rewrite(self, functions: dict[int, Callable[[], list[str]]], tail: str = "") -> str:
        """The module with definition k's text replaced by `functions[k]()`, and
        `tail` (a global, say) added at the end."""
        out, pos = [], 0
        for index in sorted(functions):
            start, end, _ = self._spans[index]
            out += [self.text[pos:start], "\n".join(functions[index]())]
            pos = end
        out.append(self.text[pos:])
        if tail:
            out.append("\n" + tail + "\n")
        return "".join(out)

    def largest(self, literal: str, pattern: str) -> int:
        """The largest N of the names `pattern` (a regex with one group of digits,
        which only matches where `literal` is) matches in the text, 0 if none:
        where fresh names may start counting."""
        if literal not in self.text:
            return 0
        return max(map(int, re.findall(pattern, self.text)), default=0)


def _cut(name: str, lines: list[str]) -> FunctionText:
    body = lines[1:-1]
    starts = [n for n, line in enumerate(body) if line[:1] not in ("", " ", ";")
              and LABEL.match(line)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)   # the entry block, unnamed and so unlabelled
    starts.append(len(body))
    blocks = []
    for b in range(len(starts) - 1):
        part = body[starts[b]:starts[b + 1]]
        blocks.append(BlockText(part, [n for n, line in enumerate(part)
                                       if _starts_instruction(line)]))
    return FunctionText(name, lines[0], blocks)
