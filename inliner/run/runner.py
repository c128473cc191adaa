"""Stage 6, run: load native objects in-process through LLVM's ORC JIT and call an entry.

This is what a userspace runtime does with the linked object (bpftime's AOT
loader takes an object image the same way): the objects are linked in
memory, helpers resolve against each other, and the entry is called with
r1 = the context and r2 = its length.
"""
from __future__ import annotations

import ctypes
import itertools
import struct

import llvmlite.binding as llvm

from .. import codegen
from ..errors import EbpfLtoError
from ..facts import abi, contexts

ENTRY = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64)
_names = itertools.count()


class FaultRecord(ctypes.Structure):
    """struct ebpf_lto_fault (facts/abi.py, docs/safety.md)."""
    _fields_ = [(name, ctypes.c_uint64) for name in abi.FAULT_FIELDS[:-1]] + [
        ("function", ctypes.c_char_p)]


class RedirectRecord(ctypes.Structure):
    """struct ebpf_lto_redirect (facts/abi.py, docs/abi.md)."""
    _fields_ = [(name, ctypes.c_uint32 if ctype == "uint32_t" else ctypes.c_uint64)
                for ctype, name in abi.REDIRECT_FIELDS]


class PrandomState(ctypes.Structure):
    """struct ebpf_lto_prandom (facts/abi.py)."""
    _fields_ = [("key", ctypes.c_uint64), ("counter", ctypes.c_uint64)]


class ClockRecord(ctypes.Structure):
    """struct ebpf_lto_clock (facts/abi.py)."""
    _fields_ = [("ns", ctypes.c_uint64)]


class ProgramFault(Exception):
    """A checked program stopped by a failed check or its spent budget."""

    def __init__(self, record: FaultRecord):
        self.code = abi.Fault(record.code)
        self.insn, self.addr, self.size = record.insn, record.addr, record.size
        self.what = abi.Region(record.region) if record.region in abi.Region.__members__.values() \
            else abi.Region.NONE
        self.region = (record.region_lo, record.region_hi)
        self.function = (record.function or b"?").decode(errors="replace")
        super().__init__(self.describe())

    def describe(self) -> str:
        where = f"at insn {self.insn} of {self.function}"
        if self.code is abi.Fault.STEPS:
            return f"{self.code.what} {where} (a loop ran past --max-steps)"
        lo, hi = self.region
        unit = "byte" if self.size == 1 else "bytes"
        what = self.what.what
        if self.what is abi.Region.NONE:
            whence = f"{self.addr:#x}: the pointer has no memory of the program's"
        elif self.addr >= lo:
            whence = f"{what} + {self.addr - lo}, {what} is {hi - lo} bytes"
        else:
            whence = f"{what} - {lo - self.addr}, {what} is {hi - lo} bytes"
        return f"{self.code.what} of {self.size} {unit} {where} ({whence})"


class LoadedObjects:
    """Native objects linked into this process; symbols stay valid while it lives."""

    def __init__(self, objects: list[bytes], exports: list[str]):
        codegen.init()
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        self._jit = llvm.create_lljit_compiler()
        builder = llvm.JITLibraryBuilder()
        for image in objects:
            builder.add_object_img(image)
        builder.add_current_process()  # helpers may call libc
        for name in exports:
            builder.export_symbol(name)
        try:
            self._tracker = builder.link(self._jit, f"ebpf_lto_{next(_names)}")
        except RuntimeError as err:
            raise EbpfLtoError(f"cannot load the native object: {str(err).strip()}") from None
        self._entries: dict[str, ENTRY] = {}
        self.fault = self._record(FaultRecord, abi.FAULT)  # None: built with --no-checks
        self._redirect = self._record(RedirectRecord, abi.REDIRECT)
        self._prandom = self._record(PrandomState, abi.PRANDOM)
        self._clock = self._record(ClockRecord, abi.CLOCK)

    def _record(self, struct, symbol: str):
        """An exported record, or None when nothing defines it."""
        try:
            return struct.from_address(self.address(symbol))
        except (KeyError, RuntimeError):
            return None

    def seed(self, seed: int) -> None:
        """Key bpf_get_prandom_u32's generator for a reproducible sequence (facts/abi.py)."""
        if self._prandom is not None:
            self._prandom.key, self._prandom.counter = abi.prandom_key(seed), 0

    def fix_clock(self, ns: int) -> None:
        """Make every clock helper read `ns` (0: the host's clocks again; facts/abi.py)."""
        if self._clock is not None:
            self._clock.ns = ns

    def clear_redirect(self, xdp: bool) -> None:
        """Before a run: no target yet, and whether bpf_redirect answers as in XDP."""
        if self._redirect is not None:
            self._redirect.helper = 0
            self._redirect.xdp = xdp

    def redirect(self) -> abi.Redirect | None:
        """The target the last call_packet's redirect helpers recorded, or None."""
        rec = self._redirect
        if rec is None or rec.helper == 0:
            return None
        return abi.Redirect(rec.helper, rec.map_type, rec.map_index, rec.key, rec.target,
                            rec.flags)

    def address(self, symbol: str) -> int:
        return self._tracker[symbol]

    def entry(self, symbol: str):
        fn = self._entries.get(symbol)
        if fn is None:
            fn = self._entries[symbol] = ENTRY(self.address(symbol))
        return fn

    def call(self, symbol: str, memory: bytearray | None) -> int:
        """Call an entry with r1 = the memory (NULL when None) and r2 = its length.

        The program may write the memory; the caller sees the bytes after the run.
        """
        if memory is None or len(memory) == 0:
            return self.call_address(symbol, None, 0)
        buf = (ctypes.c_char * len(memory)).from_buffer(memory)
        return self.call_address(symbol, ctypes.addressof(buf), len(memory))

    def call_address(self, symbol: str, r1: int | None, r2: int) -> int:
        """r0 of one call of the entry with r1 and r2 as given (r1 an address the
        caller keeps alive); ProgramFault if a check stopped it."""
        fn = self.entry(symbol)
        if self.fault is None:
            return fn(r1, r2)
        self.fault.code = 0
        r0 = fn(r1, r2)
        if self.fault.code:
            raise ProgramFault(self.fault)
        return r0

    def call_packet(self, symbol: str, layout: contexts.Layout | None,
                    packet: bytes) -> tuple[int, bytes]:
        """Run on one packet; returns r0 and the packet as data..data_end say after the run.

        With a context layout r1 points at the userspace context (docs/abi.md);
        without one, r1 is the packet itself and r2 its length. The redirect
        record is cleared first; `redirect()` reads it after.
        """
        self.clear_redirect(layout is contexts.XDP)
        if layout is None:
            memory = bytearray(packet)
            return self.call(symbol, memory), bytes(memory)
        buf = bytearray(contexts.HEADROOM + len(packet) + contexts.TAILROOM)
        buf[contexts.HEADROOM:contexts.HEADROOM + len(packet)] = packet
        cbuf = (ctypes.c_char * len(buf)).from_buffer(buf)
        base = ctypes.addressof(cbuf)
        ctx = bytearray(contexts.build(layout, base, len(packet), contexts.ethertype_be(packet)))
        cctx = (ctypes.c_char * len(ctx)).from_buffer(ctx)
        r0 = self.call_address(symbol, ctypes.addressof(cctx), len(ctx))
        data, = struct.unpack_from("<Q", ctx, layout.data)
        data_end, = struct.unpack_from("<Q", ctx, layout.data_end)
        if not base <= data <= data_end <= base + len(buf):
            raise EbpfLtoError("the program left the packet bounds outside its buffer")
        return r0, bytes(buf[data - base:data_end - base])
