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
from ..facts import contexts

ENTRY = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64)
_names = itertools.count()


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
        fn = self.entry(symbol)
        if memory is None or len(memory) == 0:
            return fn(None, 0)
        buf = (ctypes.c_char * len(memory)).from_buffer(memory)
        return fn(ctypes.addressof(buf), len(memory))

    def call_packet(self, symbol: str, layout: contexts.Layout | None,
                    packet: bytes) -> tuple[int, bytes]:
        """Run on one packet; returns r0 and the packet as data..data_end say after the run.

        With a context layout r1 points at the userspace context (docs/abi.md);
        without one, r1 is the packet itself and r2 its length.
        """
        if layout is None:
            memory = bytearray(packet)
            return self.call(symbol, memory), bytes(memory)
        buf = bytearray(contexts.HEADROOM + len(packet) + contexts.TAILROOM)
        buf[contexts.HEADROOM:contexts.HEADROOM + len(packet)] = packet
        cbuf = (ctypes.c_char * len(buf)).from_buffer(buf)
        base = ctypes.addressof(cbuf)
        ctx = bytearray(contexts.build(layout, base, len(packet), contexts.ethertype_be(packet)))
        cctx = (ctypes.c_char * len(ctx)).from_buffer(ctx)
        r0 = self.entry(symbol)(ctypes.addressof(cctx), len(ctx))
        data, = struct.unpack_from("<Q", ctx, layout.data)
        data_end, = struct.unpack_from("<Q", ctx, layout.data_end)
        if not base <= data <= data_end <= base + len(buf):
            raise EbpfLtoError("the program left the packet bounds outside its buffer")
        return r0, bytes(buf[data - base:data_end - base])
