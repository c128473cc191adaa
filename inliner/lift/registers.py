"""The registers of one eBPF function as the emitter keeps them.

Each register r0-r9 is an alloca that mem2reg promotes. Inside a block the
emitter keeps what it loaded or wrote as the SSA value itself: a read after
a write in the same block is that value, and a write reaches the alloca only
where the block ends, once however often the block wrote the register, and
only if a later block may read it (cfg.registers_live_out). mem2reg would
remove the loads and stores as well, but only after Python built, printed
and LLVM parsed them: a tenth of a large program's IR and lift time.

The builder tells the registers of each terminator before it places it
(`Builder`), so that no path out of a block misses a store.
"""
from __future__ import annotations

from llvmlite import ir

I64 = ir.IntType(64)


class Registers:
    """r0-r9 of one function: allocas, and the values the block being emitted holds."""

    def __init__(self, entry: ir.Block, live_out: dict[int, frozenset[int]]):
        self.b = Builder(entry, self)
        self.allocas = [self.b.alloca(I64, name=f"r{r}") for r in range(10)]
        self.live_out = live_out
        self.values: dict[int, ir.Value] = {}   # in block `holder`
        self.holder: ir.Block | None = None
        self.dirty: set[int] = set()     # of `values`, not yet in their allocas
        self.keep = False                # the next terminator leaves them pending
        self.ending: frozenset[int] | None = None   # live out of the block a jump ends

    def _here(self) -> dict[int, ir.Value]:
        """The values of the block being emitted (or of the blocks it continues, carry_to)."""
        if self.holder is not self.b.block:
            if self.dirty:
                raise RuntimeError(f"internal error: registers {sorted(self.dirty)} written "
                                   f"in {self.holder.name} were never stored")
            self.values, self.holder = {}, self.b.block
        return self.values

    def read(self, r: int) -> ir.Value:
        values = self._here()
        if r not in values:
            values[r] = self.b.load(self.allocas[r])
        return values[r]

    def write(self, r: int, value: ir.Value) -> None:
        self._here()[r] = value
        self.dirty.add(r)

    def end_block(self, leader: int | None) -> None:
        """The next terminator ends eBPF block `leader` (None: after it, no more)."""
        self.ending = None if leader is None else self.live_out[leader]

    def leave(self, returning: bool) -> None:
        """Before a terminator: the registers the block wrote go to their allocas, which
        the next block reads; at the jump that ends an eBPF block only those a later
        block may read; none at a return, after which nothing reads them, and none at a
        branch_on, whose block goes on in the passed path."""
        if self.holder is not self.b.block or self.keep:
            return
        if not returning:
            live = self.dirty if self.ending is None else self.dirty & self.ending
            for r in sorted(live):
                self.b.store(self.values[r], self.allocas[r])
        self.dirty.clear()

    def branch_on(self, cond: ir.Value, truebr: ir.Block, falsebr: ir.Block) -> ir.Instruction:
        """A branch one of whose ends reads no register and ends the program: the values
        stay pending, and the caller goes on emitting into the other end (carry_to)."""
        self.keep = True
        try:
            return self.b.cbranch(cond, truebr, falsebr)
        finally:
            self.keep = False

    def carry_to(self, block: ir.Block) -> None:
        """Emit on into `block`, which only the current block enters (a passed check)."""
        if self.holder is self.b.block:
            self.holder = block
        self.b.position_at_end(block)


class Builder(ir.IRBuilder):
    """llvmlite's builder, telling the registers of each terminator before placing it."""

    def __init__(self, block: ir.Block, registers: Registers):
        super().__init__(block)
        self.registers = registers

    def branch(self, target):
        self.registers.leave(False)
        return super().branch(target)

    def cbranch(self, cond, truebr, falsebr):
        self.registers.leave(False)
        return super().cbranch(cond, truebr, falsebr)

    def switch(self, value, default):
        self.registers.leave(False)
        return super().switch(value, default)

    def ret(self, value):
        self.registers.leave(True)
        return super().ret(value)

    def unreachable(self):
        self.registers.leave(True)
        return super().unreachable()
