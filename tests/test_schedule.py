"""Functions past codegen.SCHEDULE_LIMIT are emitted without LLVM's machine scheduler
(its cost grows with the square of a long function in llvmlite's assertion build).

The unscheduled code must still compute what the reference interpreter does, and
the scheduler must be back on for the next link.
"""
from __future__ import annotations

import random

from inliner import codegen, pipeline
from inliner.elf import loader
from inliner.facts import isa
from inliner.tools import interp
from inliner.tools.asm import assemble_bytes
from inliner.tools.bench.compile_cost import elf_object


def _program(n: int, seed: int = 3) -> str:
    """About n instructions of loads from r1's 512 bytes, ALU, stack stores and
    reloads and short branches: code the scheduler reorders."""
    rng = random.Random(seed)
    lines = ["mov %r6, %r1", "mov %r0, 0", "mov %r7, 1", "mov %r8, 3", "mov %r9, 5"]
    while len(lines) < n:
        reg = rng.choice(("%r7", "%r8", "%r9"))
        slot = -8 * rng.randrange(1, 64)
        lines += [f"ldxdw %r2, [%r6+{8 * rng.randrange(64)}]", "add %r0, %r2",
                  f"mul {reg}, {rng.randrange(3, 40)}", f"xor %r0, {reg}",
                  f"jgt %r0, {reg}, +1", "add %r0, 1", f"stxdw [%r10{slot}], %r0",
                  f"ldxdw %r3, [%r10{slot}]", f"rsh {reg}, 3", "add %r9, %r3"]
    return "\n".join(lines + ["add %r0, %r9", "exit"]) + "\n"


def test_a_function_past_the_limit_runs_unscheduled_as_the_interpreter_says(tmp_path,
                                                                           monkeypatch):
    code = assemble_bytes(_program(1000))
    path = tmp_path / "long.o"
    path.write_bytes(elf_object(code))
    obj = loader.load(str(path))
    memory = bytes(random.Random(5).randrange(256) for _ in range(512))
    expected = interp.run(isa.decode(code), bytearray(memory), interp.CONFORMANCE_HELPERS)
    options = pipeline.LinkOptions()

    scheduled, _ = pipeline.link(obj, options)
    monkeypatch.setattr(codegen, "SCHEDULE_LIMIT", 500)
    unscheduled, linked = pipeline.link(obj, options)
    assert linked.largest > 500
    assert unscheduled != scheduled      # the switch reached LLVM
    assert pipeline.run(obj, memory, options)[0] == expected
    monkeypatch.undo()
    assert pipeline.link(obj, options)[0] == scheduled   # and it was set back
    assert pipeline.run(obj, memory, options)[0] == expected
