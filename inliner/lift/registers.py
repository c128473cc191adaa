"""The registers of one eBPF function as the emitter keeps them: SSA values.

The emitter reads and writes r0-r9 through `Registers`, which builds SSA
form as it goes, the way Braun et al. do ("Simple and Efficient
Construction of Static Single Assignment Form", CC 2013): a read is the
value the block holds, or else the value where the block begins, which is
what its one predecessor left, or a phi over what its predecessors left
(none when they all left the same value; a predecessor no path reaches
leaves undef). A block that may still get predecessors when it is read (a
loop's header, a block a loop's copy leaves to: `unseal`) gets a phi whose
incoming values are filled in when the function is done (`finish`), which
then drops those phis whose values turn out to be one value, and orders
phis and their incoming values as mem2reg does: LLVM's pipeline gets the
SSA form it got when mem2reg built it (the 100k-instruction program of
`bench --compile-cost` and 39 of the 42 bench objects are byte-identical).

So the lifted IR has no register allocas, loads or stores. mem2reg would
remove them, but only after Python built and printed them and LLVM parsed
them: a third of a large program's lifted IR (with the regions' shadows of
a checked build, guard.py, two fifths).

A block continues the register values of the block before it (`carry_to`)
where only that block enters it (a passed check); the builder tells the
registers of each terminator it places (`Builder`), and where a terminator's
other end reads no register and ends the program (`branch_on`), no path
may read what that end holds.
"""
from __future__ import annotations

from typing import Hashable

from llvmlite import ir

I64 = ir.IntType(64)
ZERO = ir.Constant(I64, 0)
# What a block no path enters holds (undef, as mem2reg gives it): a phi's
# value from such a predecessor, which LLVM folds away with the block.
UNDEF = ir.Constant(I64, ir.Undefined)
# A sealed block's predecessors are looked through for a read at most this
# deep; deeper, a phi to fill in at the end: no recursion past Python's limit.
LOOK_DEPTH = 64


class _Chain:
    """Blocks one after another that only the one before enters: the values they hold."""
    __slots__ = ("start", "values")

    def __init__(self, start: ir.Block):
        self.start = start
        self.values: dict[Hashable, ir.Value] = {}


KEPT = object()   # the exit of a branch_on: its other end reads nothing


class _Forward(ir.Value):
    """What a phi placed before its block's predecessors were all there stands for:
    the phi, or, when its incoming values turn out to be one value (LLVM's
    trivial phi), that value (`finish`). llvmlite has no replace-all-uses, so
    the instructions that read it name it through this."""

    def __init__(self, phi: ir.PhiInstr):
        self.type = I64
        self.phi = phi
        self.target: ir.Value = phi

    def get_reference(self) -> str:
        return self.target.get_reference()


class Registers:
    """r0-r9 of one function (or any other variables, by key), as SSA values."""

    def __init__(self, entry: ir.Block, initial: dict[Hashable, ir.Value]):
        self.b = Builder(entry, self)
        self.entry = entry
        self.initial = initial               # at the function's entry; others are 0
        self.chains: dict[ir.Block, _Chain] = {}
        self.exits: dict[ir.Block, object] = {}   # block -> (chain start, values) at its end
        self.entering: dict[tuple[ir.Block, Hashable], ir.Value] = {}
        self.unsealed: set[ir.Block] = set()
        self.pending: list[tuple[ir.PhiInstr, ir.Block, Hashable]] = []
        self.forwards: list[_Forward] = []
        self.phis: list[tuple[ir.PhiInstr, Hashable]] = []
        self.removed: set[ir.PhiInstr] = set()
        self.declared: list[Hashable] = list(range(10))   # r0-r9, then what `declare` adds
        self.preds: dict[ir.Block, list[ir.Block]] = {}
        self.looked: dict[ir.Block, int] = {}   # sealed block -> predecessors it had
        self.busy: set[tuple[ir.Block, Hashable]] = set()
        self.keep = False                     # the next terminator is a branch_on
        self.final = False
        self.last: tuple = (None, None)       # the chain _chain found last, and its block

    def declare(self, keys) -> None:
        """Variables beside r0-r9, in the order their phis' rank (`_order`)."""
        self.declared.extend(keys)

    def unseal(self, blocks) -> None:
        """These blocks may get predecessors after a read in them (the rest may not)."""
        self.unsealed.update(blocks)

    def _chain(self) -> _Chain:
        block = self.b.block
        if block is self.last[0]:
            return self.last[1]
        chain = self.chains.get(block)
        if chain is None:
            chain = self.chains[block] = _Chain(block)
        self.last = (block, chain)
        return chain

    def read(self, key: Hashable) -> ir.Value:
        chain = self._chain()
        value = chain.values.get(key)
        if value is None:
            value = chain.values[key] = self._entering(chain.start, key, 0)
        return value

    def write(self, key: Hashable, value: ir.Value) -> None:
        self._chain().values[key] = value

    def branch_on(self, cond: ir.Value, truebr: ir.Block, falsebr: ir.Block) -> ir.Instruction:
        """A branch one of whose ends reads no register and ends the program; the
        caller goes on emitting into the other end (carry_to)."""
        self.keep = True
        try:
            return self.b.cbranch(cond, truebr, falsebr)
        finally:
            self.keep = False

    def switch(self, value: ir.Value, default: ir.Block,
               cases: list[tuple[ir.Constant, ir.Block]]) -> ir.SwitchInstr:
        """A switch with all its cases: a case added later would be a predecessor a
        read may already have looked through."""
        term = ir.IRBuilder.switch(self.b, value, default)
        for const, block in cases:
            term.add_case(const, block)
        self.terminated(term)
        return term

    def carry_to(self, block: ir.Block) -> None:
        """Emit on into `block`, which only the current block enters (a passed check)."""
        chain = self.chains[block] = self._chain()
        self.b.position_at_end(block)
        self.last = (block, chain)

    def terminated(self, term: ir.Instruction) -> None:
        """The builder placed `term`, a jump, at the end of its block."""
        block = self.b.block
        for succ in _successors(term):
            self.preds.setdefault(succ, []).append(block)
        if self.keep:
            self.exits[block] = KEPT
        elif block in self.chains:
            chain = self.chains[block]
            self.exits[block] = (chain.start, dict(chain.values))

    # -- where a block begins ------------------------------------------------------

    def looked_at(self, block: ir.Block) -> list[ir.Block]:
        """The predecessors of a sealed block, which `finish` makes sure it keeps."""
        preds = self.preds.get(block, [])
        self.looked[block] = len(preds)
        return preds

    def _leaving(self, pred: ir.Block, key: Hashable) -> tuple[ir.Value | None, ir.Block]:
        """What `key` holds where `pred` jumps: a value, or (None, the block whose
        beginning's value it is)."""
        out = self.exits.get(pred)
        if out is None:
            if pred in self.chains:
                raise RuntimeError(f"internal error: {pred.name} left by a jump not "
                                   "placed through the registers' builder")
            return None, pred    # a block that touches no register
        if out is KEPT:
            raise RuntimeError(f"internal error: a read past the ending branch of {pred.name}")
        start, values = out
        return values.get(key), start

    def _entering(self, block: ir.Block, key: Hashable, depth: int) -> ir.Value:
        """What `key` holds where `block` begins."""
        path = []
        seen = set()
        while True:
            value = self.entering.get((block, key))
            if value is not None:
                break
            if block is self.entry:
                value = self.initial.get(key, ZERO)
                break
            if block in seen or (block, key) in self.busy or not self.final and (
                    block in self.unsealed or depth > LOOK_DEPTH):
                value = self._phi(block, key)
                break
            seen.add(block)
            preds = self.preds.get(block, ()) if self.final else self.looked_at(block)
            path.append((block, key))
            if not preds:       # no way in
                value = UNDEF
                break
            first = preds[0]
            if len(preds) > 1 and any(p is not first for p in preds):
                value = self._phi(block, key) if self.final else \
                    self._joined(block, key, preds, depth)
                break
            value, block = self._leaving(first, key)
            if value is not None:
                break
        for step in path:
            self.entering[step] = value
        return value

    def _joined(self, block: ir.Block, key: Hashable, preds: list[ir.Block],
                depth: int) -> ir.Value:
        """The value at a sealed block with several predecessors: theirs if they agree."""
        self.busy.add((block, key))
        try:
            values = []
            for p in preds:
                value, start = self._leaving(p, key)
                values.append(value if value is not None else
                              self._entering(start, key, depth + 1))
        finally:
            self.busy.discard((block, key))
        known = [v for v in values if v is not UNDEF]
        if not known or all(v is known[0] for v in known):
            return known[0] if known else UNDEF
        phi = self._phi(block, key, pending=False)
        for v, p in zip(values, preds):
            phi.add_incoming(v, p)
        return phi

    def _phi(self, block: ir.Block, key: Hashable, pending: bool = True) -> ir.Value:
        """A phi at the start of `block`; pending: its incoming values come in
        `finish`, and what it stands for is read through a _Forward."""
        b = self.b
        if not self.final and not b.at_end:
            raise RuntimeError("internal error: a register read with the builder "
                               "inside a block")
        here = b.block
        b.position_at_start(block)
        phi = b.phi(I64, name=key if isinstance(key, str) else f"r{key}")
        b.position_at_end(here)
        self.phis.append((phi, key))
        value = phi
        if pending:
            value = _Forward(phi)
            self.pending.append((phi, block, key))
            self.forwards.append(value)
        self.entering[(block, key)] = value
        return value

    def finish(self, fn: ir.Function) -> None:
        """Fill in the phis of blocks read before all their predecessors were there."""
        self.final = True
        self.preds = preds = {}
        succs = {}
        for block in fn.blocks:
            term = block.terminator
            if term is not None:
                succs[block] = _successors(term)
                for succ in succs[block]:
                    preds.setdefault(succ, []).append(block)
        for block, n in self.looked.items():
            if len(preds.get(block, [])) != n:
                raise RuntimeError(f"internal error: {block.name} got a predecessor "
                                   "after a read in it looked through them")
        edges = _rename_order(fn.entry_basic_block, succs)
        dead = {}
        while self.pending:
            phi, block, key = self.pending.pop()
            ins = preds.get(block)
            if not ins:   # no way in: a phi needs one incoming
                if block not in dead:
                    dead[block] = fn.append_basic_block(f"{block.name}.none")
                    ir.IRBuilder(dead[block]).branch(block)
                phi.add_incoming(UNDEF, dead[block])
                continue
            for p in ins:
                if (p, block) not in edges:   # a way in from no way in
                    phi.add_incoming(UNDEF, p)
                    continue
                value, start = self._leaving(p, key)
                phi.add_incoming(value if value is not None else
                                 self._entering(start, key, 0), p)
        self._fold_trivial()
        self._order(edges)

    def _order(self, edges: dict[tuple[ir.Block, ir.Block], int]) -> None:
        """Phis and their incoming values in mem2reg's order (`_rename_order`; in a
        block, the variable `declare`d last first), as LLVM's pipeline and the
        code it makes were tuned with the lifts that left the registers to it."""
        rank = {key: n for n, key in enumerate(self.declared)}
        blocks = {}
        for phi, key in self.phis:
            if phi in self.removed:
                continue
            block = phi.parent
            blocks.setdefault(block, {})[phi] = rank.get(key, len(rank))
            phi.incomings.sort(key=lambda vb: edges.get((vb[1], block), len(edges)))
        for block, mine in blocks.items():
            head = block.instructions[:len(mine)]
            if set(head) != set(mine):
                raise RuntimeError(f"internal error: {block.name} begins with other "
                                   "than its register phis")
            block.instructions[:len(mine)] = sorted(mine, key=mine.get, reverse=True)

    def _fold_trivial(self) -> None:
        """Each group of pending phis that only pass one value around among themselves
        (a strongly connected group whose incoming values from outside it are one
        value) stands for that value: its forwards name the value, and the phis go.
        Tarjan's order gives a group after the groups it reads, so those are final."""
        phis = {f.phi: f for f in self.forwards}

        def resolved(v: ir.Value) -> ir.Value:
            while isinstance(v, _Forward) and v.target is not v.phi:
                v = v.target
            return v.phi if isinstance(v, _Forward) else v

        def reads(phi: ir.PhiInstr) -> list[ir.PhiInstr]:
            return [w for v, _ in phi.incomings if (w := resolved(v)) in phis]

        for group in _components(list(phis), reads):
            inside = set(group)
            outside = {id(w): w for phi in group for v, _ in phi.incomings
                       if (w := resolved(v)) not in inside and w is not UNDEF}
            if len(outside) > 1:
                continue
            value = next(iter(outside.values()), UNDEF)
            for phi in group:
                phis[phi].target = value
                phi.parent.instructions.remove(phi)
                self.removed.add(phi)
        for f in self.forwards:
            f.target = resolved(f)


def _rename_order(entry: ir.Block, succs: dict[ir.Block, list[ir.Block]]
                  ) -> dict[tuple[ir.Block, ir.Block], int]:
    """The edges from blocks a path from the entry reaches, in the order mem2reg's
    renaming walk takes them: a block's first successor at once, the others
    later, in their order (PromoteMemoryToRegister.cpp, RenamePass)."""
    order: dict[tuple[ir.Block, ir.Block], int] = {}
    visited: set[ir.Block] = set()
    work: list[tuple[ir.Block, ir.Block | None]] = [(entry, None)]
    while work:
        block, pred = work.pop()
        while True:
            if pred is not None and (pred, block) not in order:
                order[pred, block] = len(order)
            if block in visited:
                break
            visited.add(block)
            out = succs.get(block, [])
            if not out:
                break
            later = []
            for nxt in out[1:]:
                if nxt is not out[0] and nxt not in later:
                    later.append(nxt)
            work.extend((nxt, block) for nxt in reversed(later))
            pred, block = block, out[0]
    return order


def _components(nodes: list, succs) -> list[list]:
    """Tarjan's strongly connected components of the graph `succs` gives, each after
    those it reaches; iterative, for graphs deeper than Python's recursion."""
    index: dict = {}
    low: dict = {}
    stack: list = []
    on_stack: set = set()
    out: list[list] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(succs(root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(succs(nxt))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        group.append(w)
                        if w is node:
                            break
                    out.append(group)
    return out


def _successors(term: ir.Instruction) -> list[ir.Block]:
    if isinstance(term, ir.SwitchInstr):
        return [term.default, *(block for _, block in term.cases)]
    ops = term.operands
    return ops[1:] if len(ops) == 3 else ops   # cbranch: cond, then, else; br: target


class Builder(ir.IRBuilder):
    """llvmlite's builder, telling the registers of each jump it places, and whether
    it is at the end of its block (where a read may place a phi at the start)."""

    def __init__(self, block: ir.Block, registers: Registers):
        super().__init__(block)
        self.registers = registers
        self.at_end = True

    def position_at_end(self, block):
        super().position_at_end(block)
        self.at_end = True

    def position_at_start(self, block):
        super().position_at_start(block)
        self.at_end = False

    def position_before(self, instr):
        super().position_before(instr)
        self.at_end = False

    def position_after(self, instr):
        super().position_after(instr)
        self.at_end = False

    def branch(self, target):
        term = super().branch(target)
        self.registers.terminated(term)
        return term

    def cbranch(self, cond, truebr, falsebr):
        term = super().cbranch(cond, truebr, falsebr)
        self.registers.terminated(term)
        return term

    def switch(self, value, default):
        raise RuntimeError("internal error: a switch is placed with its cases "
                           "(Registers.switch)")
