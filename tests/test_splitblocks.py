"""Huge basic blocks split before instruction selection (inliner/codegen/splitblocks.py).

The split function must compute what the arithmetic says, worked out in
Python, and its successors' phis must name the piece that now branches.
"""
import re

from inliner import codegen
from inliner.codegen import splitblocks
from inliner.run import runner

MASK = (1 << 64) - 1


def chain(n: int) -> tuple[list[str], callable]:
    """n instructions of a dependent chain on %acc, and the same in Python."""
    ops = [("add", 7), ("mul", 3), ("xor", 0x5A5A)]
    lines, prev = [], "%acc"
    for i in range(n):
        op, k = ops[i % 3]
        lines.append(f"  %v{i} = {op} i64 {prev}, {k}")
        prev = f"%v{i}"

    def run(acc: int) -> int:
        for i in range(n):
            op, k = ops[i % 3]
            acc = {"add": acc + k, "mul": acc * k, "xor": acc ^ k}[op] & MASK
        return acc
    return lines, run


def loop_function(n: int) -> tuple[str, callable]:
    """A loop whose body is one block of n instructions, left by a multi-line switch."""
    body, step = chain(n)
    last = f"%v{n - 1}"
    ir = "\n".join([
        "define i64 @f(ptr %p, i64 %x) {",
        "entry:",
        "  br label %body",
        "body:",
        "  %i = phi i64 [ 0, %entry ], [ %i.next, %body ]",
        f"  %acc = phi i64 [ %x, %entry ], [ {last}, %body ]",
        *body,
        "  %i.next = add i64 %i, 1",
        "  switch i64 %i.next, label %body [",
        "    i64 3, label %exit",
        "  ]",
        "exit:",
        f"  %r = phi i64 [ {last}, %body ]",
        "  ret i64 %r",
        "}",
    ]) + "\n"

    def expect(x: int) -> int:
        for _ in range(3):
            x = step(x)
        return x
    return ir, expect


def run(ir: str, x: int) -> int:
    tm = codegen.target_machine(codegen.make_target(codegen.host_arch()), 2)
    loaded = runner.LoadedObjects([codegen.emit(codegen.parse_ir(ir, "test"), tm)], ["f"])
    return loaded.entry("f")(None, x)


def split(ir: str) -> tuple[str, int]:
    """ebpf-lto's own passes over `ir`: the module's text after them, and the splits."""
    mod, _, splits = codegen.own_passes(codegen.parse_ir(ir, "test"))
    return str(mod), splits


def test_a_huge_loop_body_is_split_and_computes_the_same():
    n = 2 * splitblocks.BLOCK_LIMIT + 500
    ir, expect = loop_function(n)
    text, splits = split(ir)
    assert splits == 2
    assert len(re.findall(r"^split\.\d+:", text, re.M)) == 2
    # The back edge and the exit now leave from the last piece.
    assert f"[ %v{n - 1}, %split.2 ]" in text and "[ %i.next, %split.2 ]" in text
    for x in (0, 1, 12345, MASK):
        assert run(text, x) == expect(x) == run(ir, x)


def test_blocks_within_the_limit_are_left_alone():
    mod = codegen.parse_ir(loop_function(splitblocks.BLOCK_LIMIT - 10)[0], "test")
    assert codegen.own_passes(mod) == (mod, 0, 0)


def test_a_split_link_output_links_again():
    """Another link of ebpf-lto's own IR output: its split labels must not clash."""
    from inliner import pipeline
    from inliner.elf import loader
    from inliner.tools.bench.compile_cost import synthetic_asm
    from inliner.tools.asm import assemble_bytes
    obj = loader.from_raw(assemble_bytes(synthetic_asm(5000)))
    # Unchecked: a checked build's access checks end its blocks long before the
    # size splitblocks splits at.
    first, _ = pipeline.link(obj, pipeline.LinkOptions(checks=False), emit="llvm")
    assert b"@ebpf_lto.block_anchors" in first
    again, _ = pipeline.link_ir(first, "first.ll", pipeline.LinkOptions(), emit="llvm")
    assert b"@ebpf_lto.block_anchors" in again
    codegen.parse_ir(again.decode(), "again")
