"""`ebpf-lto corpus --compare`: every runnable program of an object, three ways.

The object is linked twice, all its programs in one module each time: with
helpers inlined (`--inline auto`, the survey's own link) and not (`--inline
none`). Each program that has an input to run on is then run by the native
code of both links and by the reference interpreter (tools/interp.py), each
with fresh maps; what the runs leave (`Outcome`: r0 and the memory after
each run, then every map) must be the same three times.

- Packet programs (a context layout: xdp, tc, socket filter, the other
  `__sk_buff` types) run on every frame of the shipped traffic
  (`sample_packets()`) through the userspace context, one after another on
  the same maps.
- Tracing programs run once on a synthetic context (`TRACING_CONTEXTS`):
  the bytes their section implies, filled with a fixed pattern.

The interpreter runs on host memory (`HostMemory`): it calls the very helper
functions and map runtime the not-inlined link calls, from a load of its own,
so that its maps are fresh too and can be compared with the native ones;
get_hash_recalc is its own (interp_net), so the flow hash is checked too.
Every load is seeded (`SEED`) and its clock fixed (`CLOCK_NS`), so random
numbers and the time are the same in the three runs. A program is not run,
with the reason counted, when it calls a helper no helper set provides, or
one that calls back into the program (the interpreter's code has no host
address).
"""
from __future__ import annotations

import ctypes
import dataclasses
import functools
import os
import struct
from contextlib import contextmanager
from dataclasses import dataclass

from .. import codegen, pipeline
from ..errors import EbpfLtoError
from ..facts import abi, contexts
from ..facts.abi import helper_symbol
from ..facts.helpers import (GET_HASH_RECALC, HELPER_ARGS, MAP_LOOKUP, MAP_LOOKUP_PERCPU,
                             RINGBUF_RESERVE, TAIL_CALL, ArgKind, helper_name)
from ..run.hostmaps import MapAccess
from ..run.runner import LoadedObjects, ProgramFault
from . import interp, interp_net, traffic
from .corpus import called_helpers

# Bytes of a tracing program's context: x86_64's struct pt_regs (21 u64),
# bpf_perf_event_data (pt_regs, sample_period, addr), the arguments of a raw
# tracepoint or of fentry/fexit/tp_btf (`tracing`; at most 12, u64 each), and
# for a tracepoint the event's record, whose format only the kernel's
# tracefs gives: 256 bytes hold the common ones.
TRACING_CONTEXTS = {"kprobe": 168, "perf_event": 184, "raw_tracepoint": 96,
                    "raw_tracepoint_writable": 96, "tracing": 96, "tracepoint": 256}
# Helpers that call a function of the program: native code cannot call into the interpreter.
CALLBACK_HELPERS = frozenset({164, 170, 180, 181, 209})
PROG_ARRAY_GET = "ebpf_lto_prog_array_get"   # the map runtime's slot lookup, for tail calls
HELPER_FN = ctypes.CFUNCTYPE(ctypes.c_uint64, *[ctypes.c_uint64] * 5)
PROG_ARRAY_FN = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32)
MAP_RELEASE = "ebpf_lto_map_release"         # the host API's: a map's storage freed
MAP_RELEASE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
# Every load draws get_prandom_u32's numbers from this seed and reads this
# time from every clock (an hour and a bit of uptime), so that programs that
# read them answer the same in the three runs.
SEED = 18
CLOCK_NS = 3_600_123_456_789
ENOENT = 2


@functools.cache
def sample_packets() -> tuple[bytes, ...]:
    """The frames of the shipped traffic (examples/traffic.pcap, which tools/traffic.py
    writes byte for byte), as captured: the truncated one cut short."""
    return tuple(f.data for f in traffic.frames())


def tracing_context(size: int) -> bytes:
    """A fixed pattern: each 8-byte slot holds its own offset plus 0x1000,
    a value no program mistakes for a pointer it owns."""
    return b"".join(struct.pack("<Q", 0x1000 + off) for off in range(0, size, 8))[:size]


@dataclass(frozen=True)
class Outcome:
    """What one run left; compared field by field (`difference`)."""
    r0: int
    memory: bytes   # the packet as data..data_end say after the run, or the context
    redirect: abi.Redirect | None = None   # the target a redirect helper recorded


def difference(a, b) -> str | None:
    """The first field in which two results differ, or None."""
    for f in dataclasses.fields(a):
        if getattr(a, f.name) != getattr(b, f.name):
            return f.name
    return None


# --- the inputs ----------------------------------------------------------------

class HostMemory(interp.Memory):
    """Regions at the host addresses of their buffers, so that the helper
    library and the map runtime, compiled for the host, are handed the
    program's pointers as they are. Helpers write memory behind the
    interpreter's back, so it does not track which stack bytes were written."""

    def __init__(self) -> None:
        super().__init__()
        self._pins: dict[int, object] = {}   # region id -> the ctypes view that fixes its address

    def map(self, base: int, data: bytearray, writable: bool, name: str,
            track_writes: bool = False) -> interp.Region:
        """Map `data` where it lives (`base` is the interpreter's choice, not taken)."""
        view = (ctypes.c_char * len(data)).from_buffer(data)
        region = self.map_at(ctypes.addressof(view), data, writable, name)
        self._pins[id(region)] = view
        return region

    def map_at(self, addr: int, data, writable: bool, name: str) -> interp.Region:
        """Map `data` (anything sliced as bytes) at host address `addr`."""
        return super().map(addr, data, writable, name)

    def unmap(self, region: interp.Region) -> None:
        super().unmap(region)
        self._pins.pop(id(region), None)

    def covers(self, addr: int, size: int) -> bool:
        return any(r.base <= addr and addr + size <= r.end for r in self.regions)

    def expose(self, addr: int, size: int, name: str) -> None:
        """Map host memory a helper returned (a map value, a ringbuf record)."""
        if size <= 0 or self.covers(addr, size):
            return
        for other in [r for r in self.regions if addr < r.end and r.base < addr + size]:
            if isinstance(other.data, ctypes.Array):  # an earlier exposed piece: widen it
                self.unmap(other)
                size = max(addr + size, other.end) - min(addr, other.base)
                addr = min(addr, other.base)
        self.map_at(addr, (ctypes.c_char * size).from_address(addr), True, name)


class KernelContext:
    """The kernel's view of a userspace context (facts/contexts.py), as the
    interpreter's memory: its accesses by kernel offset reach the userspace
    field, and a 32-bit load of a packet pointer gives the whole pointer, as
    the verifier's convert_ctx_access makes them. An 8-byte read at a
    userspace pointer's offset, which no kernel field allows, reads that
    pointer: the interpreter's ld_abs reads the packet's bounds so."""

    def __init__(self, layout: contexts.Layout, user: bytearray):
        self.layout = layout
        self.user = user
        self.size = max(max(f.kernel_off + f.kernel_size for f in layout.fields), len(user))

    def __len__(self) -> int:
        return self.size

    def _field(self, off: int, size: int, write: bool) -> contexts.Field:
        field = self.layout.field_at(off, size)
        if field is None or write and (field.kind != contexts.SCALAR or not field.writable):
            raise interp.InterpError(f"{'write' if write else 'read'} of {size} bytes at "
                                     f"offset {off} of {self.layout.name}, which the kernel "
                                     "refuses")
        return field

    def _u64(self, off: int) -> int:
        return struct.unpack_from("<Q", self.user, off)[0]

    def __getitem__(self, span: slice) -> bytes:
        off, size = span.start, span.stop - span.start
        if size == 8 and off in self.layout.addresses:
            return bytes(self.user[off:off + 8])
        field = self._field(off, size, False)
        if field.kind == contexts.POINTER:
            return bytes(self.user[field.user_off:field.user_off + 8])
        if field.kind == contexts.META_POINTER:  # data - the bytes of metadata
            meta, = struct.unpack_from("<I", self.user, field.user_off)
            return struct.pack("<Q", self._u64(self.layout.data) - meta)
        at = field.user_off + off - field.kernel_off
        return bytes(self.user[at:at + size])

    def __setitem__(self, span: slice, payload: bytes) -> None:
        field = self._field(span.start, len(payload), True)
        at = field.user_off + span.start - field.kernel_off
        self.user[at:at + len(payload)] = payload


class Input:
    """One run's input at fixed host addresses: a packet behind a context, or raw memory."""

    def __init__(self, layout: contexts.Layout | None, data: bytes):
        self.layout = layout
        self.mem = HostMemory()
        if layout is None:
            self.buf = None
            self.ctx = bytearray(data)
            return
        self.buf = bytearray(contexts.HEADROOM + len(data) + contexts.TAILROOM)
        self.buf[contexts.HEADROOM:contexts.HEADROOM + len(data)] = data
        self.base = self.mem.map(0, self.buf, True, "packet").base
        self.ctx = bytearray(contexts.build(layout, self.base, len(data),
                                            contexts.ethertype_be(data)))
        view = (ctypes.c_char * len(self.ctx)).from_buffer(self.ctx)
        self.address = ctypes.addressof(view)
        self.mem.map_at(self.address, KernelContext(layout, self.ctx), True, layout.name)
        self._pin = view

    def after(self) -> bytes:
        """The memory as the run left it."""
        if self.layout is None:
            return bytes(self.ctx)
        data, = struct.unpack_from("<Q", self.ctx, self.layout.data)
        data_end, = struct.unpack_from("<Q", self.ctx, self.layout.data_end)
        if not self.base <= data <= data_end <= self.base + len(self.buf):
            raise EbpfLtoError("the program left the packet bounds outside its buffer")
        return bytes(self.buf[data - self.base:data_end - self.base])

    def get_hash_recalc(self) -> int:
        """The reference interpreter's bpf_get_hash_recalc (interp_net) on this
        packet, writing skb->hash as the helper does."""
        at = self.layout.offset("hash")
        current, = struct.unpack_from("<I", self.ctx, at)
        value = interp_net.hash_recalc(current, self.after())
        struct.pack_into("<I", self.ctx, at, value)
        return value

    def run_native(self, loaded: LoadedObjects, name: str) -> Outcome:
        ctx = (ctypes.c_char * len(self.ctx)).from_buffer(self.ctx)
        loaded.clear_redirect(self.layout is contexts.XDP)
        return Outcome(loaded.call_address(name, ctypes.addressof(ctx), len(self.ctx)),
                       self.after(), loaded.redirect())

    def run_interp(self, obj, name: str, helpers: dict, maps: dict[str, int],
                   data: dict, loaded: LoadedObjects) -> Outcome:
        """Raw memory is mapped by the interpreter; a context is mapped already.
        The helpers are `loaded`'s, which record a redirect's target."""
        raw = self.layout is None
        loaded.clear_redirect(self.layout is contexts.XDP)
        r0 = interp.run_object(obj, self.ctx if raw else None, helpers, program=name,
                               mem=self.mem, maps=maps, data=data,
                               args=None if raw else (self.address, len(self.ctx)))
        return Outcome(r0, self.after(), loaded.redirect())


# --- the builds ------------------------------------------------------------------

class Build:
    """One link's native objects; each `load` gives fresh maps."""

    def __init__(self, obj, options: pipeline.LinkOptions, linked_image=None):
        image, linked = linked_image or pipeline.link(obj, options)
        self.linked = linked
        hset = linked.helper_set
        missing = [h for h in linked.external_helpers if hset is None or h not in hset.ids]
        provided = dataclasses.replace(linked, external_helpers=[
            h for h in linked.external_helpers if h not in missing])
        self.objects, self.exports = pipeline.native_images(image, provided, options)
        if missing:  # only programs that never call them run (`verdicts`)
            self.objects.append(_trap_stubs(missing, options))

    @contextmanager
    def load(self, extra: list[str] = ()):
        """A fresh load (LoadedObjects), its maps' storage freed afterwards: a
        worker makes thousands of loads, and storage left mapped spreads the
        address space until a JIT's 32-bit relocations no longer reach."""
        loaded = LoadedObjects(self.objects, self.exports + list(extra))
        loaded.seed(SEED)
        loaded.fix_clock(CLOCK_NS)
        try:
            yield loaded
        finally:
            maps = MapAccess(loaded).maps
            if maps:
                release = MAP_RELEASE_FN(loaded.address(MAP_RELEASE))
                for m in maps.values():
                    release(m.address)


def _trap_stubs(ids: list[int], options: pipeline.LinkOptions) -> bytes:
    """Definitions of helpers no set provides that trap: an object whose
    programs call them loads, and the programs that do are never run."""
    text = "declare void @llvm.trap()\n" + "".join(
        f"define i64 @{helper_symbol(h)}(i64, i64, i64, i64, i64) {{\n"
        "  call void @llvm.trap()\n  unreachable\n}\n" for h in ids)
    tm = codegen.target_machine(codegen.make_target(options.arch, options.cpu), 0)
    return codegen.emit(codegen.parse_ir(text, "trap stubs"), tm, "obj")


def _host_helpers(loaded: LoadedObjects, mem_of, ids, maps: MapAccess, tail_calls: bool) -> dict:
    """The interpreter's helpers: the not-inlined link's own functions, called
    with the program's registers. Arguments are checked as the checked build
    checks them, so that a bad pointer is the interpreter's error, not a crash."""
    by_address = {m.address: m for m in maps.maps.values()}
    helpers = {h: _host_helper(h, HELPER_FN(loaded.address(helper_symbol(h))), mem_of, by_address)
               for h in ids}
    if tail_calls:
        get = PROG_ARRAY_FN(loaded.address(PROG_ARRAY_GET))

        def tail_call(memory, ctx, prog_array, index, d, e):
            if prog_array not in by_address:
                raise interp.InterpError(f"tail_call: r2 {prog_array:#x} is no map")
            if get(prog_array, index & 0xFFFFFFFF) != 0xFFFFFFFF:
                raise interp.InterpError("tail call through a filled slot: the interpreter "
                                         "does not follow tail calls")
            return -ENOENT & (2**64 - 1)   # an empty slot: the program goes on
        helpers[TAIL_CALL] = tail_call
    return helpers


def _host_helper(hid: int, fn, mem_of, by_address: dict):
    name = helper_name(hid)
    spec = HELPER_ARGS.get(hid, ())

    def call(memory, *args):
        regs = list(args)
        mem = mem_of()
        for arg in spec:
            value = regs[arg.reg - 1]
            size = regs[arg.size - 1] if arg.size else 1
            if arg.kind is ArgKind.UNSAFE:  # as the checked build: only the program's memory
                regs[arg.reg - 1] = value if mem.covers(value, size) else 0
            elif arg.kind is ArgKind.MAP:
                if value not in by_address:
                    raise interp.InterpError(f"{name}: r{arg.reg} {value:#x} is no map")
            elif size and not mem.covers(value, size):
                raise interp.InterpError(f"{name}: r{arg.reg} {value:#x} ({size} bytes) is "
                                         "outside the program's memory")
        r0 = fn(*regs)
        if r0 and hid in (MAP_LOOKUP, MAP_LOOKUP_PERCPU) and regs[0] in by_address:
            mem.expose(r0, by_address[regs[0]].value_size, f"a value of {name}")
        elif r0 and hid == RINGBUF_RESERVE:
            mem.expose(r0, regs[1], "a ringbuf record")
        return r0
    return call


# --- the comparison --------------------------------------------------------------

def compare_object(obj, names: list[str], options: pipeline.LinkOptions, whole=None):
    """A verdict for each program of `names`, in order: "same", "differs: ..."
    or "not run: ...". `whole` is the survey's link of all the object's
    programs (inlined); without it each program is linked on its own."""
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})  # per-cpu maps fill the same copy in every run
    try:
        builds = None
        if whole is not None:
            try:
                builds = _builds(obj, options, whole)
            except EbpfLtoError as err:
                builds = f"not run: {err.reason}"
        for name in names:
            yield _verdict(obj, name, options, builds)
    finally:
        os.sched_setaffinity(0, allowed)


def _builds(obj, options: pipeline.LinkOptions, whole=None) -> tuple[Build, Build]:
    return (Build(obj, dataclasses.replace(options, inline="auto"), whole),
            Build(obj, dataclasses.replace(options, inline="none")))


class NotRun(Exception):
    """Why a program cannot be run three ways (a count in the report, not a failure)."""


def _verdict(obj, name: str, options: pipeline.LinkOptions, builds) -> str:
    if isinstance(builds, str):
        return builds
    try:
        return agreement(run_three(obj, name, options, builds))
    except NotRun as why:
        return f"not run: {why}"
    except EbpfLtoError as err:
        return f"not run: {err.reason}"


def run_three(obj, name: str, options: pipeline.LinkOptions,
              builds: tuple[Build, Build] | None = None) -> dict:
    """{build: (an Outcome per input, the maps after)}: inlined, not inlined, and
    the interpreter; NotRun when the program cannot be run so."""
    prog = obj.program(name)
    layout = contexts.for_program_type(prog.prog_type)
    if layout is None and prog.prog_type not in TRACING_CONTEXTS:
        raise NotRun(f"no context for {prog.prog_type} programs")
    hset = pipeline.helper_set(options)
    called = called_helpers(obj, prog)
    missing = sorted(h for h in called - {TAIL_CALL} if hset is None or h not in hset.ids)
    if missing:
        raise NotRun("calls helpers only a kernel provides: "
                     + ", ".join(helper_name(h) for h in missing))
    if called & CALLBACK_HELPERS:
        raise NotRun("calls " + ", ".join(helper_name(h) for h in sorted(called & CALLBACK_HELPERS))
                     + ", which calls back into the program")
    inlined, outlined = builds or _builds(obj, dataclasses.replace(options, program=name))
    inputs = ([tracing_context(TRACING_CONTEXTS[prog.prog_type])] if layout is None
              else sample_packets())
    results = {}
    for label, build in (("inlined", inlined), ("not inlined", outlined)):
        with build.load() as loaded:
            try:
                runs = [Input(layout, data).run_native(loaded, name) for data in inputs]
            except ProgramFault as fault:
                raise NotRun(f"the {label} native code stops: {fault.describe()}") from None
            results[label] = (runs, MapAccess(loaded).dump())
    results["interpreter"] = _interpret(obj, name, layout, inputs, outlined,
                                        sorted(called & hset.ids), TAIL_CALL in called)
    return results


def _interpret(obj, name, layout, inputs, outlined: Build, ids, tail_calls: bool):
    # The helpers stay out of line, in the helper set's object: export them.
    # (The map runtime's host API, ebpf_lto_prog_array_get among it, is exported.)
    with outlined.load([helper_symbol(h) for h in ids]) as loaded:
        return _interpret_with(obj, name, layout, inputs, loaded, ids, tail_calls)


def _interpret_with(obj, name, layout, inputs, loaded: LoadedObjects, ids, tail_calls: bool):
    maps = MapAccess(loaded)
    current = []
    helpers = _host_helpers(loaded, lambda: current[-1].mem, ids, maps, tail_calls)
    if GET_HASH_RECALC in helpers:  # the interpreter's own, an independent check of the C one
        helpers[GET_HASH_RECALC] = lambda memory, *regs: current[-1].get_hash_recalc()
    addresses = {n: m.address for n, m in maps.maps.items()}
    data: dict = {}   # global data, kept from run to run as the native code keeps it
    runs = []
    for packet in inputs:
        current.append(Input(layout, packet))
        try:
            runs.append(current[-1].run_interp(obj, name, helpers, addresses, data, loaded))
        except interp.InterpError as err:
            raise NotRun(f"the interpreter stops: {err.reason}") from None
    return runs, maps.dump()


def agreement(results: dict) -> str:
    """"same", or where a native build first disagrees with the interpreter."""
    ref_runs, ref_maps = results["interpreter"]
    for label, (runs, maps) in results.items():
        for n, (a, b) in enumerate(zip(ref_runs, runs)):
            field = difference(a, b)
            if field is not None:
                return (f"differs: input {n}: {field}: interpreter {_shown(getattr(a, field))}, "
                        f"{label} {_shown(getattr(b, field))}")
        if maps != ref_maps:
            return f"differs: the maps after the runs: interpreter and {label}"
    return "same"


def _shown(value) -> str:
    if isinstance(value, int):
        return f"{value:#x}"
    return f"{len(value)} bytes" if isinstance(value, bytes) else str(value)
