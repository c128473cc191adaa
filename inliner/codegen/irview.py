"""The optimized module as llvmlite iterates it, for the decisions of stage 5's
own passes.

llvmlite reads opcodes, operands, types and constants, but at a price: about
five microseconds to list one instruction and as much again for its opcode,
where printing the whole module costs one an instruction. So the passes look
at every instruction in the printed text (irtext.py) and ask llvmlite only
about the few blocks where they would rewrite something: a function's blocks,
and a block's instructions, are listed when first asked for. The positions
are the text's (function, block, instruction), checked against llvmlite's
count, so either side can name an instruction to the other.
"""
from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite.binding import TypeKind, ValueKind

from .irtext import FunctionText, Items, ModuleText

# Values that print as a name (%x, @g): what an address or index can be built of.
_NAMED = frozenset({ValueKind.argument, ValueKind.instruction, ValueKind.global_variable,
                    ValueKind.function, ValueKind.global_alias, ValueKind.global_ifunc})


def is_named(value: llvm.ValueRef) -> bool:
    return value.value_kind in _NAMED


def int_constant(value: llvm.ValueRef) -> int | None:
    """A constant integer operand's value (signed, as IR prints it), else None."""
    if value.value_kind != ValueKind.constant_int:
        return None
    return value.get_constant_value(signed_int=True)


def int_bits(ty: llvm.TypeRef) -> tuple[int, int] | None:
    """(lanes, bits per lane) of an integer (lanes 0) or integer-vector type."""
    kind = ty.type_kind
    if kind == TypeKind.integer:
        return 0, ty.type_width
    if kind == TypeKind.vector:
        lane = next(iter(ty.elements))
        if lane.type_kind == TypeKind.integer:
            return ty.element_count, lane.type_width
    return None


class Block:
    """One basic block's instructions, their opcodes read when first asked for."""

    def __init__(self, ref: llvm.ValueRef):
        self.ref = ref
        self.insns = list(ref.instructions)
        self._opcodes: list[str | None] = [None] * len(self.insns)

    def __len__(self) -> int:
        return len(self.insns)

    def opcode(self, index: int) -> str:
        op = self._opcodes[index]
        if op is None:
            op = self._opcodes[index] = self.insns[index].opcode
        return op

    def operands(self, index: int) -> list[llvm.ValueRef]:
        return list(self.insns[index].operands)


class Function:
    def __init__(self, view: ModuleView, ref: llvm.ValueRef, index: int):
        self.view = view
        self.ref = ref
        self.index = index    # among the module's definitions, as printed
        self._refs: list[llvm.ValueRef] | None = None
        self._blocks: dict[int, Block] = {}
        self._defs: dict[llvm.ValueRef, tuple[int, int]] | None = None
        self._text: FunctionText | None = None

    def text(self) -> FunctionText:
        if self._text is None:
            self._text = self.view.text.function(self.index)
        return self._text

    def block(self, b: int) -> Block:
        """Block `b` as llvmlite lists it."""
        if b not in self._blocks:
            if self._refs is None:
                self._refs = list(self.ref.blocks)
                if len(self._refs) != len(self.text().blocks):
                    raise RuntimeError(f"{self.ref.name} has {len(self._refs)} blocks, "
                                       f"prints {len(self.text().blocks)}")
            block = self._blocks[b] = Block(self._refs[b])
            if len(block) != len(self.text().blocks[b]):
                raise RuntimeError(f"block {b} of {self.ref.name} has {len(block)} "
                                   f"instructions, prints {len(self.text().blocks[b])}")
        return self._blocks[b]

    def definition(self, value: llvm.ValueRef) -> tuple[int, int] | None:
        """(block, index) of the instruction of this function that is `value`."""
        if self._defs is None:
            self._defs = {ins: (b, i) for b in range(len(self.text().blocks))
                          for i, ins in enumerate(self.block(b).insns)}
        return self._defs.get(value)


class ModuleView:
    """A module's definitions, read through llvmlite and, printed once, as text."""

    def __init__(self, module: llvm.ModuleRef):
        self.module = module
        self.functions = [Function(self, fn, n) for n, fn in
                          enumerate(fn for fn in module.functions if not fn.is_declaration)]
        self._text: ModuleText | None = None

    @property
    def text(self) -> ModuleText:
        if self._text is None:
            self._text = ModuleText(str(self.module))
            if len(self._text) != len(self.functions):
                raise RuntimeError(f"the module prints {len(self._text)} definitions, "
                                   f"has {len(self.functions)}")
        return self._text

    def rewrite(self, blocks: dict[tuple[int, int], Items], tail: str = "") -> str:
        """The module's text with each block (function, block) in `blocks` replaced
        by its items, and `tail` added."""
        by_function: dict[int, dict[int, Items]] = {}
        for (f, b), items in blocks.items():
            by_function.setdefault(f, {})[b] = items
        return self.text.rewrite(
            {f: (lambda f=f, items=items: self.functions[f].text().lines(items))
             for f, items in by_function.items()}, tail)
