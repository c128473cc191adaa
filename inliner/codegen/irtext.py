"""LLVM IR text, read a function and a basic block at a time, for the rewrites of
stage 5 that llvmlite cannot express as passes (storefwd.py, splitblocks.py)."""
from __future__ import annotations

import re
from collections.abc import Callable

NAME = r'(?:%[-\w$.]+|%"[^"]*"|@[-\w$.]+)'
LABEL = re.compile(r'^(?:[-\w$.]+|"[^"]*"):')
DEFINE = re.compile(r'^define [^@]*(@[-\w$.]+|@"[^"]*")\(')


def rewrite_functions(text: str, rewrite: Callable[[str, list[str]], list[str]]) -> str:
    """Replace each function definition's body by `rewrite(name, body lines)`."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = DEFINE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        end = i
        while not lines[end].startswith("}"):
            end += 1
        out.append(lines[i])
        out.extend(rewrite(m[1], lines[i + 1:end]))
        out.append(lines[end])
        i = end + 1
    return "\n".join(out)


def blocks(body: list[str]) -> list[list[str]]:
    """A function body's lines, cut before each block label (the entry may have none)."""
    out: list[list[str]] = [[]]
    for line in body:
        if LABEL.match(line):
            out.append([])
        out[-1].append(line)
    return out
