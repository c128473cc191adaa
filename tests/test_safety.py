"""Programs the Linux verifier refuses, through the whole pipeline (docs/safety.md).

Each is refused at link time or stopped with a fault, at -O0 and at -O2
alike: the process never dies by a signal or hangs, and nothing outside the
program's own memory is read or written. The expectation for each case is
the verifier's (which instruction is out of bounds, by how much), worked
out here from the program text; memory around the program's is filled with
a canary that must survive.
"""
import ctypes
import json
import re
from pathlib import Path

import pytest

from inliner import pipeline
from inliner.elf import loader
from inliner.errors import EbpfLtoError
from inliner.facts import contexts
from inliner.facts.abi import ENTRY_SYMBOL, Fault
from inliner.run.runner import ProgramFault
from inliner.tools import asm as assembler

LEVELS = (0, 2)
MEM = 64
CANARY = 0xA5
EFAULT = (-14) & ((1 << 64) - 1)


def _link(text: str, level: int, **options):
    obj = loader.from_raw(assembler.assemble_bytes(text), path="<safety>")
    opts = pipeline.LinkOptions(opt_level=level, helpers="conformance", **options)
    loaded, _ = pipeline.load(obj, opts)
    return loaded


def run(text: str, mem: bytes = bytes(MEM), level: int = 2, **options):
    """(r0 or the ProgramFault, the memory after). The memory sits in the middle of a
    canary-filled buffer four times its size, whose other bytes must not change."""
    return run_loaded(_link(text, level, **options), mem, 3 * len(mem) // 2 or 64)


def run_loaded(loaded, mem: bytes, pad: int):
    """run's call of a loaded program, `pad` canary bytes either side of the memory."""
    whole = bytearray([CANARY] * pad) + bytearray(mem) + bytearray([CANARY] * pad)
    outer = (ctypes.c_char * len(whole)).from_buffer(whole)
    try:
        result = loaded.call_address(ENTRY_SYMBOL, ctypes.addressof(outer) + pad, len(mem))
    except ProgramFault as fault:
        result = fault
    assert whole[:pad] == bytes([CANARY] * pad), "wrote below the program's memory"
    assert whole[pad + len(mem):] == bytes([CANARY] * pad), "wrote past the program's memory"
    return result, bytes(whole[pad:pad + len(mem)])


def fault_of(text: str, mem: bytes = bytes(MEM), **options) -> ProgramFault:
    """The fault, the same at -O0 and -O2 (code, instruction, size, offset into its region)."""
    seen = []
    for level in LEVELS:
        result, _ = run(text, mem, level, **options)
        assert isinstance(result, ProgramFault), f"-O{level}: ran to r0 = {result}"
        seen.append(result)
    a, b = seen
    assert (a.code, a.insn, a.size) == (b.code, b.insn, b.size)
    if a.region != (0, 0):   # (0, 0): the pointer has no region at all
        assert a.addr - a.region[0] == b.addr - b.region[0]
    return a


# (program, memory byte 0, instruction that faults, kind, size, offset from the region's start)
OUT_OF_BOUNDS = [
    ("ldxb %r0, [%r1+64]\nexit", 0, 0, Fault.LOAD, 1, 64),
    ("ldxdw %r0, [%r1+60]\nexit", 0, 0, Fault.LOAD, 8, 60),
    ("ldxb %r0, [%r1-1]\nexit", 0, 0, Fault.LOAD, 1, -1),
    ("stb [%r1+64], 1\nmov %r0, 0\nexit", 0, 0, Fault.STORE, 1, 64),
    ("mov %r2, %r1\nadd %r2, 65536\nstb [%r2], 1\nmov %r0, 0\nexit", 0, 2, Fault.STORE, 1, 65536),
    ("lddw %r2, 0x100000\nadd %r2, %r1\nstxdw [%r2], %r2\nmov %r0, 0\nexit", 0, 3, Fault.STORE,
     8, 1 << 20),
    # an offset read from the memory, unchecked: byte 0 = 0xff puts it 255 KiB out
    ("ldxb %r2, [%r1]\nlsh %r2, 10\nadd %r2, %r1\nldxw %r0, [%r2]\nexit", 0xFF, 3, Fault.LOAD,
     4, 255 << 10),
    # atomics are stores
    ("mov %r2, 1\nlock add [%r1+64], %r2\nmov %r0, 0\nexit", 0, 1, Fault.STORE, 8, 64),
    ("mov %r2, 1\nlock fetch add32 [%r1-4], %r2\nmov %r0, 0\nexit", 0, 1, Fault.STORE, 4, -4),
]


@pytest.mark.parametrize("text,byte,insn,code,size,offset", OUT_OF_BOUNDS,
                         ids=[c[0].split("\n")[-3 if "mov %r0, 0" in c[0] else -2]
                              + f"-{n}" for n, c in enumerate(OUT_OF_BOUNDS)])
def test_out_of_bounds_access_is_stopped(text, byte, insn, code, size, offset):
    mem = bytes([byte]) + bytes(MEM - 1)
    fault = fault_of(text, mem)
    assert (fault.code, fault.insn, fault.size) == (code, insn, size)
    assert fault.addr - fault.region[0] == offset & ((1 << 64) - 1) or \
        fault.addr - fault.region[0] == offset


def test_in_bounds_run_of_the_same_program_is_not_stopped():
    # The unchecked offset of OUT_OF_BOUNDS, small enough this time.
    text = "ldxb %r2, [%r1]\nadd %r2, %r1\nldxw %r0, [%r2]\nexit"
    mem = bytes([4]) + bytes(range(1, MEM))
    for level in LEVELS:
        assert run(text, mem, level)[0] == int.from_bytes(mem[4:8], "little")


def test_a_stack_offset_read_from_memory():
    # fp - byte: 0 is the frame's end (out), 8 is in, 200 is in.
    text = "ldxb %r2, [%r1]\nmov %r3, %r10\nsub %r3, %r2\nstb [%r3], 7\nldxb %r0, [%r3]\nexit"
    fault = fault_of(text, bytes(MEM))
    assert (fault.code, fault.insn, fault.size) == (Fault.STORE, 3, 1)
    assert fault.addr == fault.region[1]                  # one past the frame
    for byte in (8, 200):
        assert run(text, bytes([byte]) + bytes(MEM - 1))[0] == 7
    # 0xff << 4 below the frame pointer is past the frame's bottom (512 bytes)
    text = "ldxb %r2, [%r1]\nlsh %r2, 4\nmov %r3, %r10\nsub %r3, %r2\nldxb %r0, [%r3]\nexit"
    assert fault_of(text, b"\xff" + bytes(MEM - 1)).code is Fault.LOAD


def test_a_frame_pointer_returned_by_a_callee_is_dead():
    # The callee's frame is gone when it returns: a pointer into it reads nothing.
    text = """
call local f
ldxdw %r0, [%r0]
exit
f:
stdw [%r10-8], 7
mov %r0, %r10
add %r0, -8
exit
"""
    fault = fault_of(text)
    assert (fault.code, fault.insn) == (Fault.LOAD, 1)


def test_a_frame_pointer_stored_into_the_callers_frame_is_dead_after_return():
    # The callee leaves a pointer to its own frame in the caller's frame; the
    # caller must not write through it once the callee has returned.
    text = """
mov %r1, %r10
add %r1, -8
call local f
ldxdw %r2, [%r10-8]
stdw [%r2], 1
mov %r0, 0
exit
f:
mov %r2, %r10
add %r2, -16
stxdw [%r1], %r2
mov %r0, 0
exit
"""
    fault = fault_of(text)
    assert (fault.code, fault.insn) == (Fault.STORE, 4)


HOST_SECRET = 0x5EC2E7_5EC2E7


def test_an_integer_is_not_a_pointer_to_host_memory():
    # The host's address comes in the input, as an attacker's would.
    secret = ctypes.c_uint64(HOST_SECRET)
    mem = ctypes.addressof(secret).to_bytes(8, "little") + bytes(MEM - 8)
    read = "ldxdw %r2, [%r1]\nldxdw %r0, [%r2]\nexit"
    write = "ldxdw %r2, [%r1]\nstdw [%r2], 0\nmov %r0, 0\nexit"
    assert fault_of(read, mem).code is Fault.LOAD
    assert fault_of(write, mem).code is Fault.STORE
    assert secret.value == HOST_SECRET
    # Nor is the input's address plus the distance to the secret.
    near = "ldxdw %r2, [%r1]\nsub %r2, %r1\nadd %r2, %r1\nldxdw %r0, [%r2]\nexit"
    for level in LEVELS:
        fault, _ = run(near, mem, level)
        assert fault.code is Fault.LOAD and fault.addr == ctypes.addressof(secret)
    # A known constant address is refused before it runs.
    with pytest.raises(EbpfLtoError, match="constant address"):
        _link(f"lddw %r2, {ctypes.addressof(secret):#x}\nldxdw %r0, [%r2]\nexit", 2)


@pytest.mark.parametrize("text", [
    "mov %r0, 0\nadd %r0, 1\nja -2\nexit",
    # while (*p != 0xff) {}: the memory never changes
    "ldxb %r2, [%r1]\njne %r2, 0xff, -2\nmov %r0, 0\nexit",
    # a callee that loops
    "call local f\nexit\nf:\nmov %r0, 1\njne %r0, 0, -1\nexit",
], ids=["ja", "poll", "callee"])
def test_an_endless_loop_is_stopped(text):
    fault = fault_of(text, max_steps=10_000)
    assert fault.code is Fault.STEPS


def test_the_budget_counts_back_edges():
    # 100 times round the loop take 99 back edges; the loop's bound (100 times)
    # is proven once the budget holds it.
    text = "mov %r0, 0\nadd %r0, 1\njlt %r0, 100, -2\nexit"
    for level in LEVELS:
        assert run(text, level=level, max_steps=99)[0] == 100
        assert run(text, level=level, max_steps=100)[0] == 100
    assert fault_of(text, max_steps=98).code is Fault.STEPS


def test_an_oversized_helper_argument_gets_efault():
    # memfrob (the conformance set's helper 1) of 1 MiB of 64 bytes of memory:
    # the kernel's helpers refuse such a pointer with -EFAULT, uncalled.
    text = "mov %r6, %r1\nlddw %r2, 0x100000\ncall 1\nexit"
    for level in LEVELS:
        r0, mem = run(text, bytes(MEM), level)
        assert r0 == EFAULT
        assert mem == bytes(MEM)
    text = "mov %r2, 64\ncall 1\nexit"   # the whole memory is fine
    assert run(text, bytes(MEM))[0] != EFAULT
    assert run(text, bytes(MEM))[1] == bytes([42]) * MEM


def test_unchecked_builds_keep_the_link_time_refusals():
    with pytest.raises(EbpfLtoError, match="outside the 512-byte frame"):
        _link("stb [%r10+8], 1\nmov %r0, 0\nexit", 2, checks=False)
    with pytest.raises(EbpfLtoError, match="constant address"):
        _link("mov %r1, 0\nldxb %r0, [%r1-1]\nexit", 2, checks=False)


@pytest.mark.parametrize("text,what", [
    ("stb [%r10+8], 1\nmov %r0, 0\nexit", "outside the 512-byte frame"),
    ("mov %r1, 0\nldxb %r0, [%r1-1]\nexit", "constant address"),
    ("lddw %r1, 0x1000\nstdw [%r1], 1\nmov %r0, 0\nexit", "constant address"),
])
def test_accesses_that_always_fault_are_refused_at_link_time(text, what):
    with pytest.raises(EbpfLtoError, match=what):
        _link(text, 2)


# -- C programs on packets (tests/unsafe_c/unsafe.c: each says why the verifier refuses it)

UNSAFE_O = Path(__file__).parent / "unsafe_c" / "unsafe.o"
XDP_PASS = 2


def _packet_runs(program: str, packets: list[bytes]) -> list:
    """Per packet, (r0 or the ProgramFault, the packet after), the same at -O0 and -O2."""
    obj = loader.load(str(UNSAFE_O), UNSAFE_O.read_bytes())
    layout = contexts.for_program_type(obj.program(program).prog_type)
    results = []
    for level in LEVELS:
        loaded, _ = pipeline.load(obj, pipeline.LinkOptions(program=program, opt_level=level,
                                                            max_steps=100_000))
        runs = []
        for packet in packets:
            try:
                runs.append(loaded.call_packet(ENTRY_SYMBOL, layout, packet))
            except ProgramFault as fault:
                runs.append((fault, packet))
        results.append(runs)
    low, high = results
    for (a, pa), (b, pb) in zip(low, high):
        if isinstance(a, ProgramFault):
            assert isinstance(b, ProgramFault), f"-O0 stopped ({a}), -O2 ran to {b}"
            assert (a.code, a.insn, a.size) == (b.code, b.insn, b.size)
            if a.region != (0, 0):
                assert a.addr - a.region[0] == b.addr - b.region[0]
        else:
            assert (a, pa) == (b, pb)
    return high


def packet(*head: int, length: int = 64) -> bytes:
    return bytes(head) + bytes(range(len(head), length))


def u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 4], "little")


def test_packet_read_past_the_end():
    ok, edge, far = _packet_runs("packet_read", [packet(60), packet(61), packet(255)])
    assert ok[0] == u32(packet(60), 60)
    for (fault, _), off in ((edge, 61), (far, 255)):
        assert (fault.code, fault.size) == (Fault.LOAD, 4)
        assert (fault.addr - fault.region[0], fault.region[1] - fault.region[0]) == (off, 64)


def test_packet_write_past_the_end():
    (r0, after), (fault, _) = _packet_runs("packet_write", [packet(0), packet(16)])
    assert (r0, after[0]) == (XDP_PASS, 0xEE)
    assert (fault.code, fault.size, fault.addr - fault.region[0]) == (Fault.STORE, 1, 16 * 4096)


def test_map_value_write_past_its_end():
    (r0, _), (fault, _), (far, _) = _packet_runs("value_write",
                                                 [packet(7), packet(8), packet(200)])
    assert r0 == XDP_PASS
    for f, off in ((fault, 8), (far, 200)):
        assert (f.code, f.size) == (Fault.STORE, 1)
        assert (f.addr - f.region[0], f.region[1] - f.region[0]) == (off, 8)


def test_map_value_used_without_the_null_test():
    [(fault, _)] = _packet_runs("value_null", [packet(3)])  # the hash map is empty
    assert (fault.code, fault.size, fault.addr, fault.region) == (Fault.LOAD, 8, 0, (0, 0))


def test_global_array_index_past_the_section():
    (r0, _), (fault, _) = _packet_runs("global_index", [packet(0), packet(1)])
    assert r0 == XDP_PASS
    assert fault.code in (Fault.LOAD, Fault.STORE) and fault.size == 4
    assert fault.addr - fault.region[0] == 1024


def test_stack_array_index_past_the_frame():
    (one, _), (other, _), (fault, _) = _packet_runs("stack_index",
                                                    [packet(1), packet(5), packet(200)])
    assert (one, other) == (7, 0)
    assert (fault.code, fault.size) == (Fault.STORE, 8)


def test_endless_poll_of_a_packet_byte():
    (r0, _), (fault, _) = _packet_runs("spin", [packet(0xFF), packet(0)])
    assert r0 == XDP_PASS
    assert fault.code is Fault.STEPS


def test_csum_diff_of_more_than_the_packet():
    (r0, _), (big, after) = _packet_runs("csum_size", [packet(0), packet(1)])
    assert r0 == 0                              # the sum of nothing, seed 0
    assert big & 0xFFFFFFFF == EFAULT & 0xFFFFFFFF and after == packet(1)


def test_probe_read_of_host_memory():
    secret = ctypes.c_uint64(HOST_SECRET)
    bad = [packet(*ctypes.addressof(secret).to_bytes(8, "little")),
           packet(*(0x10).to_bytes(8, "little")), packet(*(1 << 63).to_bytes(8, "little"))]
    for r0, after in _packet_runs("probe", bad):
        assert r0 & 0xFFFFFFFF == EFAULT & 0xFFFFFFFF
        assert after[8:16] == bytes(8)           # the kernel zeroes the destination
    assert secret.value == HOST_SECRET


def test_a_slot_a_helper_wrote_is_not_the_value_stored_before():
    """off = 0 in a frame slot, then probe_read_kernel writes the packet's first 8
    bytes over it: data[off] with off = 256 is past the 64-byte packet and stops,
    and with off = 3 writes byte 3 (the kernel's verifier marks the slot unknown)."""
    far, near = packet(*(256).to_bytes(8, "little")), packet(*(3).to_bytes(8, "little"))
    (stopped, _), (r0, after) = _packet_runs("helper_wrote_slot", [far, near])
    assert isinstance(stopped, ProgramFault) and stopped.code == Fault.STORE
    assert r0 == 2 and after == near[:3] + bytes([0xEE]) + near[4:]


@pytest.mark.parametrize("how", ["store", "call"])
def test_a_slot_written_through_a_lost_frame_pointer_is_not_the_value_stored_before(how):
    """Slot -16 holds 0, then is overwritten through r10 - 16 + (byte 0 of the
    memory, 0): by a store through that pointer, or by a bpf-to-bpf callee handed
    it. The slot then holds the u64 at bytes 8-15, and the load at that offset
    past the memory stops; with 5 there it reads byte 5."""
    write = ("stxdw [%r3], %r4\n" if how == "store" else
             "mov %r1, %r3\nmov %r2, %r4\ncall local write\n")
    text = ("mov %r6, %r1\nstdw [%r10-16], 0\nldxb %r2, [%r6]\nmov %r3, %r10\n"
            "add %r3, -16\nadd %r3, %r2\nldxdw %r4, [%r6+8]\n" + write +
            "ldxdw %r5, [%r10-16]\nadd %r6, %r5\nldxb %r0, [%r6]\nexit\n"
            "write:\nstxdw [%r1], %r2\nmov %r0, 0\nexit")
    far = bytes(8) + (1000).to_bytes(8, "little") + bytes(range(16, 64))
    fault = fault_of(text, far)
    assert (fault.code, fault.addr - fault.region[0]) == (Fault.LOAD, 1000)
    near = bytes(5) + bytes([77, 0, 0]) + (5).to_bytes(8, "little") + bytes(48)
    for level in LEVELS:
        assert run(text, near, level)[0] == 77


def test_a_map_value_access_always_outside_the_value_is_refused():
    obj = loader.load(str(UNSAFE_O), UNSAFE_O.read_bytes())
    with pytest.raises(EbpfLtoError, match="72 of a 8-byte value of map values: always outside"):
        pipeline.link(obj, pipeline.LinkOptions(program="value_far"))
    # --no-checks keeps the refusal.
    with pytest.raises(EbpfLtoError, match="always outside"):
        pipeline.link(obj, pipeline.LinkOptions(program="value_far", checks=False))


def test_run_and_the_conformance_plugin_report_a_fault_in_one_line(capsys, monkeypatch):
    import io
    from inliner import cli
    # ldxb r0, [r1-1]: one byte before the memory
    monkeypatch.setattr("sys.stdin", io.StringIO("7110ffff00000000 9500000000000000"))
    assert cli.main(["conformance-plugin", "00"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "fault: out-of-bounds load of 1 byte at insn 0 of main (memory - 1, memory is 1 bytes)" \
        in err
    # packet_write writes at packet + byte 0 * 4096: byte 0 = 16 is far out.
    status = cli.main(["run", str(UNSAFE_O), "--program", "packet_write",
                       "--packet", packet(16).hex()])
    out = capsys.readouterr().out
    assert status == 1 and out.count("\n") == 1
    assert out.startswith("packet 1: fault: out-of-bounds store of 1 byte at insn ")
    assert out.endswith("of packet_write (packet + 65536, packet is 64 bytes)\n")


# A loop that walks a pointer 16 times by 4 bytes: with the add before the load
# (at [p-4]) and after it (at [p]), it reads bytes 0..64 of its memory exactly.
# (program, its load's insn)
WALKS = {
    "add-then-load": ("mov %r0, 0\nmov %r2, %r1\nmov %r3, 0\nloop:\nadd %r2, 4\n"
                      "ldxw %r4, [%r2-4]\nadd %r0, %r4\nadd %r3, 1\njlt %r3, 16, loop\nexit", 4),
    "load-then-add": ("mov %r0, 0\nmov %r2, %r1\nmov %r3, 0\nloop:\nldxw %r4, [%r2]\n"
                      "add %r2, 4\nadd %r0, %r4\nadd %r3, 1\njlt %r3, 16, loop\nexit", 3),
}


@pytest.mark.parametrize("name", sorted(WALKS))
def test_a_walked_pointer_is_checked_to_its_last_byte(name):
    """The loop's unchecked copy runs only where its memory holds all 16 words: with
    64 bytes the sum of the words, with 63 the last load stops at offset 60."""
    mem = bytes(range(64))
    text, load = WALKS[name]
    words = sum(int.from_bytes(mem[i:i + 4], "little") for i in range(0, 64, 4))
    for level in LEVELS:
        assert run(text, mem, level)[0] == words
    fault = fault_of(text, mem[:63])
    assert (fault.code, fault.insn, fault.size, fault.addr - fault.region[0]) == \
        (Fault.LOAD, load, 4, 60)


def test_a_helper_handed_a_walked_pointer_is_checked_to_its_last_byte():
    """memfrob of 4 bytes at each of 16 words (the helper's pointer is the memory plus
    4i, as clang indexes an array): the loop's copy runs only where all 64 bytes are
    there; with 63 the last call gets -EFAULT and leaves its bytes be."""
    text = ("mov %r6, %r1\nmov %r7, 0\nloop:\nmov %r3, %r7\nlsh %r3, 2\nmov %r1, %r6\n"
            "add %r1, %r3\nmov %r2, 4\ncall 1\nmov %r9, %r0\nadd %r7, 1\njlt %r7, 16, loop\n"
            "mov %r0, %r9\nexit")
    _check_copy(text, "loop L2 is emitted twice: a copy without 1 of its checks runs when "
                "the regions hold argument r1 bytes 0..64 (written)",
                bytes([42]) * 64, bytes([42]) * 60 + bytes(3))


def _check_copy(text: str, copy: str, whole: bytes, short: bytes) -> None:
    """explain names the copy; with 64 bytes memfrob's calls set them as `whole`;
    with 63 the last call gets -EFAULT and the memory is `short` after."""
    _, linked = pipeline.link(loader.from_raw(assembler.assemble_bytes(text), path="<t>"),
                              pipeline.LinkOptions(helpers="conformance"))
    assert [c.how for c in linked.checks if c.what == "copy"] == [copy]
    for level in LEVELS:
        r0, mem = run(text, bytes(64), level)
        assert r0 != EFAULT and mem == whole
        r0, mem = run(text, bytes(63), level)
        assert r0 == EFAULT and mem == short


def test_the_blocks_after_a_loop_copy_keep_their_checks():
    """The copy goes on into the blocks after its loop (proofs.loop_tail): a load
    there at an offset the memory gives (its first byte) is still checked, in the
    copy as in the checked loop. The loop sums the first 16 bytes; after it, the
    program reads the byte at the sum."""
    text = ("mov %r6, %r1\nmov %r0, 0\nmov %r3, 0\nloop:\nmov %r4, %r6\nadd %r4, %r3\n"
            "ldxb %r5, [%r4]\nadd %r0, %r5\nadd %r3, 1\njlt %r3, 16, loop\n"
            "ldxb %r2, [%r6]\nadd %r6, %r2\nldxb %r0, [%r6]\nexit")
    inside = bytes([40]) + bytes(range(1, 64))
    for level in LEVELS:
        assert run(text, inside, level)[0] == 40
    fault = fault_of(text, bytes([64]) + bytes(63))   # byte 64: one past the memory
    assert (fault.code, fault.insn, fault.size, fault.addr - fault.region[0]) == \
        (Fault.LOAD, 11, 1, 64)


def test_a_function_without_loops_is_emitted_twice_for_its_helpers_arguments():
    """Two calls handed bytes 0..8 and 56..64 of the memory (whole_function): the
    copy without their checks runs where the region holds all 64 bytes; with 63
    the checked function runs, and the second call gets -EFAULT and leaves its
    bytes be, as it does with no copy."""
    text = ("mov %r6, %r1\nmov %r2, 8\ncall 1\nmov %r1, %r6\nadd %r1, 56\nmov %r2, 8\n"
            "call 1\nexit")
    _check_copy(text, "the function is emitted twice: a copy without 2 of its checks runs "
                "when the regions hold argument r1 bytes 0..64 (written)",
                bytes([42]) * 8 + bytes(48) + bytes([42]) * 8, bytes([42]) * 8 + bytes(55))


ROOT = Path(__file__).resolve().parent.parent


# The bytes each benchmark's loop touches, from its C source (benchmarks/*.c).
SOURCE_EXTENTS = {
    "switch": [(0, 4096)],                      # u32 op[1024]
    "binary_search": [(0, 4352)],               # u32 sorted[1024], keys[64]
    "memcpy": [(0, 4096), (4096, 8192)],        # u64 src[512] to dst[512]
    "crc32": [(0, 256)],                        # u8 data[256]
    "tlv_parse": [(0, 8192)],                   # 1024 8-byte records
    "spill": [(0, 4096)],                       # u64 w[512], the index kept in a slot
}


@pytest.mark.parametrize("name", sorted(SOURCE_EXTENTS))
def test_a_loop_copy_needs_no_more_memory_than_its_source_touches(name, capsys):
    """The copy without checks is entered where the argument's region holds the
    bytes the facts allow: exactly those the C loop touches, so a run on an input
    of the source's size takes it."""
    from inliner.cli import main
    assert main(["explain", "--checks", "--json", str(ROOT / "benchmarks" / f"{name}.o")]) == 0
    copies = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["what"] == "copy"]
    assert len(copies) == 1
    spans = [tuple(map(int, m)) for m in re.findall(r"bytes (\d+)\.\.(\d+)", copies[0]["how"])]
    assert sorted(spans) == SOURCE_EXTENTS[name]


def test_a_binary_search_is_bounded_by_walking_it(capsys):
    """benchmarks/binary_search.c's inner loop halves [lo, hi) of 1024 keys: walked
    from lo = 0, hi = 1024 every way the compares allow, it runs at most 11 times
    (floor(log2(1024)) + 1), so it needs no step count."""
    from inliner.cli import main
    assert main(["explain", "--checks", "--json", str(ROOT / "benchmarks" / "binary_search.o")]) == 0
    loops = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["what"] == "loop"]
    assert sorted((c["proven"], c["how"].split(" (")[0]) for c in loops) == [
        (True, "runs at most 11 times"), (True, "runs at most 64 times")]


def test_a_counter_clang_starts_below_zero_bounds_its_loop(capsys):
    """benchmarks/select_chain.c's loop takes i = 0, 2, ..., 1022: 512 times. clang's
    bytecode counts it from -2 (added to before the compare), so read unsigned the
    counter could wrap; read signed it climbs from -2 to 1020 without wrapping."""
    from inliner.cli import main
    assert main(["explain", "--checks", "--json", str(ROOT / "benchmarks" / "select_chain.o")]) == 0
    loops = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["what"] == "loop"]
    assert [(c["proven"], c["how"].split(" (")[0]) for c in loops] == [
        (True, "runs at most 512 times")]


def test_a_loop_walked_back_to_a_state_it_was_in_keeps_its_count():
    # r2 is the byte's value when it is 1, else 1: the second compare always jumps
    # back, whatever the first did, so the loop never ends; walking it finds the
    # state it started from again, and the budget stops it.
    text = ("mov %r3, 0\nloop:\nldxb %r2, [%r1]\njeq %r2, 1, skip\nmov %r2, 1\nadd %r3, 1\n"
            "skip:\njeq %r2, 1, loop\nmov %r0, %r3\nexit")
    assert fault_of(text, max_steps=1000).code is Fault.STEPS


# A pointer into the memory, spilled to the frame by the caller (or by a callee
# through a pointer into the caller's frame), keeps the memory's region when
# reloaded, and through arithmetic the data flow does not follow (`and -1`):
# byte `off` of the memory is read, or the read faults `off` bytes into the
# region. (Registers and slots that hold no region are left without shadows,
# lift/shadows.py; a spilled pointer's slot must not be one of them.)
SPILLED = {
    "and reloaded": "stxdw [%r10-8], %r1\nmov %r1, 0\nldxdw %r2, [%r10-8]\nand %r2, -1\n"
                    "ldxb %r0, [%r2+{off}]\nexit",
    "across a call": "stxdw [%r10-8], %r1\nmov %r1, 0\ncall local f\nldxdw %r2, [%r10-8]\n"
                     "and %r2, -1\nldxb %r0, [%r2+{off}]\nexit\nf:\nmov %r0, 0\nexit",
    "by the callee": "mov %r6, %r1\nmov %r1, %r10\nadd %r1, -8\nmov %r2, %r6\ncall local f\n"
                     "ldxdw %r3, [%r10-8]\nand %r3, -1\nldxb %r0, [%r3+{off}]\nexit\n"
                     "f:\nstxdw [%r1], %r2\nmov %r0, 0\nexit",
}


@pytest.mark.parametrize("how", sorted(SPILLED))
def test_a_spilled_pointer_keeps_its_region(how):
    text = SPILLED[how]
    mem = bytes(range(MEM))
    for level in LEVELS:
        assert run(text.format(off=5), mem, level)[0] == 5
    fault = fault_of(text.format(off=MEM), mem)
    assert fault.code is Fault.LOAD and fault.addr - fault.region[0] == MEM


def _xdp(text: str):
    """An XDP program from assembly, and its context's layout."""
    from inliner.facts import progtypes
    obj = loader.from_raw(assembler.assemble_bytes(text), path="<safety>")
    obj.retype(progtypes.by_name("xdp"))
    return obj, contexts.for_program_type(obj.program(None).prog_type)


def test_a_compare_narrows_the_slot_a_register_was_reloaded_from_only_while_they_agree():
    # An XDP program: r6 is reloaded from [r10-16] (packet byte 0), then the slot
    # is given byte 1. The compare that bounds r6 by 7 says nothing more of the
    # slot (the kernel's scalar ids die with the store), so the read at byte 1's
    # value, past the 8 bytes the program tested, is still checked.
    text = ("ldxw %r2, [%r1]\nldxw %r3, [%r1+4]\nmov %r4, %r2\nadd %r4, 8\n"
            "jgt %r4, %r3, out\nldxb %r5, [%r2]\nstxdw [%r10-16], %r5\nldxdw %r6, [%r10-16]\n"
            "ldxb %r7, [%r2+1]\nstxdw [%r10-16], %r7\njgt %r6, 7, out\n"
            "ldxdw %r8, [%r10-16]\nadd %r2, %r8\nldxb %r0, [%r2]\nexit\nout:\nmov %r0, 0\nexit")
    obj, layout = _xdp(text)
    for level in LEVELS:
        loaded, _ = pipeline.load(obj, pipeline.LinkOptions(opt_level=level))
        assert loaded.call_packet(ENTRY_SYMBOL, layout, packet(0, 40))[0] == 40
        with pytest.raises(ProgramFault) as fault:
            loaded.call_packet(ENTRY_SYMBOL, layout, packet(0, 200))
        assert fault.value.code is Fault.LOAD and fault.value.insn == 13
        assert fault.value.addr - fault.value.region[0] == 200


def test_a_helper_argument_inside_what_the_entry_checked_is_proven():
    # The stores at 0 and 56 run on every path: the entry checks bytes 0..64 once,
    # written, so memfrob's 8 bytes at 8 need no check of their own. With 63 bytes
    # the entry's check stops the program before anything is written.
    text = ("mov %r6, %r1\nstdw [%r6], 1\nstdw [%r6+56], 2\nmov %r1, %r6\nadd %r1, 8\n"
            "mov %r2, 8\ncall 1\nmov %r0, 0\nexit")
    _, linked = pipeline.link(loader.from_raw(assembler.assemble_bytes(text), path="<t>"),
                              pipeline.LinkOptions(helpers="conformance"))
    assert [(c.insn, c.proven) for c in linked.checks if c.what == "helper"] == [(6, True)]
    for level in LEVELS:
        r0, mem = run(text, bytes(64), level)
        assert (r0, mem) == (0, bytes([1]) + bytes(7) + bytes([42]) * 8 + bytes(40) +
                             bytes([2]) + bytes(7))
    fault = fault_of(text, bytes(63))
    assert fault.code is Fault.STORE
    assert run(text, bytes(63))[1] == bytes(63)


def _asm_body(asm: str, symbol: str) -> list[str]:
    """A function's instructions in `asm`, its block labels numbered from one."""
    text = asm[asm.index(f"\n{symbol}:\n") + len(symbol) + 2:]
    lines = [line.strip() for line in text[:text.index(".Lfunc_end")].splitlines()]
    return [re.sub(r"\.LBB\d+_", ".LBB_", line) for line in lines
            if line and not line.startswith((".", "#"))]


@pytest.mark.parametrize("cpu", ["generic", "znver4"])
def test_code_that_checks_nothing_past_its_entry_check_is_the_unchecked_code(cpu):
    # straight_1000's 60 loads are at constant offsets from r1 on its one path: the
    # entry checks bytes 0..256 once, and nothing else is checked. Behind that check
    # the code must be the --no-checks build's, instruction for instruction. Inlined
    # under the check, the pointer its fault record names kept a register of its
    # own, and the allocator served the rounds worse (68 against 66 ns).
    obj = loader.load(str(Path(__file__).parent.parent / "benchmarks" / "straight.o"))
    asm = {}
    for checks in (True, False):
        image, _ = pipeline.link(obj, pipeline.LinkOptions(cpu=cpu, checks=checks,
                                                           program="straight_1000"), emit="asm")
        asm[checks] = image.decode()
    assert _asm_body(asm[True], "bpf.straight_1000") == _asm_body(asm[False], "straight_1000")
    # The check itself still stops a run given 255 bytes, before any load.
    loaded, _ = pipeline.load(obj, pipeline.LinkOptions(program="straight_1000"))
    buf = (ctypes.c_char * 255)()
    with pytest.raises(ProgramFault) as fault:
        loaded.call_address("straight_1000", ctypes.addressof(buf), 255)
    assert (fault.value.code, fault.value.size, fault.value.addr) == \
        (Fault.LOAD, 256, ctypes.addressof(buf))
    assert fault.value.region == (ctypes.addressof(buf), ctypes.addressof(buf) + 255)


# An IPv4-style header of variable length: r2 = data + (byte 0 & 60), a packet
# pointer a variable moved; r3 = r2 + 8 compared with data_end; then insn 11.
VARIABLE_HEADER = ("ldxw %r2, [%r1]\nldxw %r6, [%r1+4]\nmov %r4, %r2\nadd %r4, 1\n"
                   "jgt %r4, %r6, out\nldxb %r5, [%r2]\nand %r5, 60\nadd %r2, %r5\n"
                   "mov %r3, %r2\nadd %r3, 8\njgt %r3, %r6, out\n{access}\nexit\n"
                   "out:\nmov %r0, 0\nexit")


@pytest.mark.parametrize("access, start, size, proven", [
    ("ldxh %r0, [%r2+6]", 6, 2, True), ("ldxh %r0, [%r3-2]", 6, 2, True),
    ("ldxh %r0, [%r2+7]", 7, 2, False), ("ldxb %r0, [%r3]", 8, 1, False)])
def test_bytes_past_a_packet_pointer_a_variable_moved_are_proven_by_its_compare(
        access, start, size, proven):
    # The verifier's range per packet pointer id: r2 + 8 <= data_end proves r2's
    # first 8 bytes wherever byte 0 put it (check_packet_access), and no more.
    obj, layout = _xdp(VARIABLE_HEADER.format(access=access))
    _, linked = pipeline.link(obj, pipeline.LinkOptions())
    assert [c.proven for c in linked.checks if c.insn == 11] == [proven]
    for level in LEVELS:
        loaded, _ = pipeline.load(obj, pipeline.LinkOptions(opt_level=level))
        # Byte 0 = 52: r2 = data + 52, which 60 bytes hold 8 bytes of.
        assert loaded.call_packet(ENTRY_SYMBOL, layout, packet(52, length=59))[0] == 0
        for length in (60, 62):
            data = packet(52, length=length)
            if 52 + start + size <= length:
                r0 = loaded.call_packet(ENTRY_SYMBOL, layout, data)[0]
                assert r0 == int.from_bytes(data[52 + start:52 + start + size], "little")
            else:
                with pytest.raises(ProgramFault) as fault:
                    loaded.call_packet(ENTRY_SYMBOL, layout, data)
                assert (fault.value.code, fault.value.insn) == (Fault.LOAD, 11)


def test_a_data_end_read_before_a_helper_call_proves_nothing_after_it():
    # bpf_xdp_adjust_tail(ctx, -40) leaves 24 of 64 bytes; r6, data_end read before
    # the call, is no longer the packet's end (the kernel's clear_all_pkt_pointers),
    # so `r3 + 8 <= r6` proves none of the 8 bytes at r2 = data + 40.
    text = ("mov %r9, %r1\nldxw %r6, [%r1+4]\nmov %r2, -40\ncall 65\nldxw %r2, [%r9]\n"
            "mov %r4, %r2\nadd %r4, 1\njgt %r4, %r6, out\nldxb %r5, [%r2]\nand %r5, 60\n"
            "add %r2, %r5\nmov %r3, %r2\nadd %r3, 8\njgt %r3, %r6, out\nldxdw %r0, [%r2]\n"
            "exit\nout:\nmov %r0, 0\nexit")
    obj, layout = _xdp(text)
    _, linked = pipeline.link(obj, pipeline.LinkOptions())
    assert [c.proven for c in linked.checks if c.insn == 14] == [False]
    for level in LEVELS:
        loaded, _ = pipeline.load(obj, pipeline.LinkOptions(opt_level=level))
        with pytest.raises(ProgramFault) as fault:
            loaded.call_packet(ENTRY_SYMBOL, layout, packet(40, length=64))
        assert (fault.value.code, fault.value.insn, fault.value.size) == (Fault.LOAD, 14, 8)
        assert fault.value.region[1] - fault.value.region[0] == 24
