"""The reference interpreter (inliner/interp.py): the conformance suite, and its machine model."""
import pytest

from conftest import needs_shared, shared_path
from inliner.elf import loader
from inliner.facts import isa
from inliner.tools import conformance, interp
from inliner.tools.asm import assemble

SUITE = shared_path("bpf_conformance")
TESTS = sorted((SUITE / "tests").glob("*.data")) if SUITE else []
needs_suite = needs_shared("bpf_conformance", "tests")
H = interp.CONFORMANCE_HELPERS


def run(text: str, mem: bytes | None = None, **kw) -> int:
    return interp.run(assemble(text), bytearray(mem) if mem is not None else None, H, **kw)


@needs_suite
@pytest.mark.parametrize("path", TESTS, ids=[p.stem for p in TESTS])
def test_suite_file(path):
    test = conformance.load_test(path)
    code = conformance.program_bytes(test)
    mem = bytearray(test.mem) if test.mem else None
    assert interp.run(isa.decode(code), mem, H) == test.result
    # The object entry point gives the same answer.
    mem = bytearray(test.mem) if test.mem else None
    assert interp.run_object(loader.from_raw(code), mem, H) == test.result


@needs_suite
def test_suite_is_complete():
    assert len(TESTS) == 313


def test_memory_is_written_in_place():
    mem = bytearray(b"\x01\x02\x03\x04")
    assert run("mov %r0, %r2\nexit", mem=None) == 0        # no memory: r1 = r2 = 0
    r0 = interp.run(assemble("stb [%r1+1], 0x7f\nmov %r0, %r2\nexit"), mem, H)
    assert r0 == 4 and mem == bytearray(b"\x01\x7f\x03\x04")


def test_memfrob_writes_through_the_memory_map():
    mem = bytearray(b"abc")
    interp.run(assemble("mov %r2, 3\ncall 1\nexit"), mem, H)
    assert mem == bytearray(x ^ 42 for x in b"abc")


@pytest.mark.parametrize("text", [
    "ldxb %r0, [%r1+4]\nexit",                     # one past the input
    "ldxdw %r0, [%r10-516]\nexit",                 # below the frame
    "ldxb %r0, [%r10]\nexit",                      # r10 is one past the frame
    "mov %r1, 0\nldxw %r0, [%r1]\nexit",           # null
    "stb [%r1-1], 0\nmov %r0, 0\nexit",
    "mov %r0, 0\nlock add [%r1+2], %r0\nexit",    # straddles the end
])
def test_access_outside_mapped_memory_raises(text):
    with pytest.raises(interp.InterpError, match="outside every mapped region"):
        run(text, mem=b"\0" * 4)


def test_callee_frames_are_fresh_and_unmapped_after_return():
    # The callee passes its r10 back; reading it after the return faults.
    text = """
stdw [%r10-8], 42
call local f
ldxdw %r0, [%r0-8]
exit
f:
stdw [%r10-8], 7
mov %r0, %r10
exit
"""
    with pytest.raises(interp.InterpError, match="outside every mapped region"):
        run(text)
    text = """
stdw [%r10-8], 42
call local f
ldxdw %r0, [%r10-8]
exit
f:
ldxdw %r0, [%r10-8]
stdw [%r10-8], 7
exit
"""
    with pytest.raises(interp.InterpError, match="never written"):
        run(text)                                 # the callee's frame is not the caller's
    assert run(text, check_reads=False) == 42     # and its writes do not reach the caller's


def test_callee_saved_registers_are_restored():
    text = """
mov %r6, 6
mov %r9, 9
call local f
add %r6, %r9
mov %r0, %r6
exit
f:
mov %r6, 100
mov %r9, 100
mov %r0, 0
exit
"""
    assert run(text) == 15


def test_unwind_stops_from_any_depth():
    text = """
mov %r6, 1
call local f
mov %r0, 99
exit
f:
call local g
mov %r0, 98
exit
g:
mov %r1, 0
call 5
mov %r0, 97
exit
"""
    assert run(text) == 0


def test_callx_names_a_helper_a_function_or_nothing():
    assert run("mov %r1, 9\nmov %r2, 3\ncall %r2\nexit") == 3     # sqrti(9)
    assert run("mov %r2, 77\ncall %r2\nmov %r0, 1\nexit") == interp.STOPPED_R0
    text = """
lddw %r3, func f
call %r3
add %r0, 1
exit
f:
mov %r0, 41
exit
"""
    assert run(text) == 42
    # Older uBPF tools put the register in imm with dst 0.
    slots = assemble("mov %r1, 16\nmov %r4, 3\nmov %r0, 0\nexit")
    slots.insert(3, isa.Insn(isa.CALLX, 0, 0, 0, 4))
    assert interp.run(slots, None, H) == 4


def test_reading_an_unwritten_register_raises():
    with pytest.raises(interp.InterpError, match="reads r0"):
        run("exit")
    with pytest.raises(interp.InterpError, match="reads r3"):
        run("mov %r3, 1\ncall 2\nmov %r0, %r3\nexit")      # r1-r5 are scratch after a call
    with pytest.raises(interp.InterpError, match="reads r6"):
        run("mov %r6, 1\ncall local f\nexit\nf:\nmov %r0, %r6\nexit")
    assert run("mov %r3, 1\ncall 2\nmov %r0, %r3\nexit", check_reads=False) == 1


def test_reading_unwritten_stack_raises():
    with pytest.raises(interp.InterpError, match="never written"):
        run("stw [%r10-8], 1\nldxdw %r0, [%r10-8]\nexit")
    assert run("stw [%r10-8], 1\nldxw %r0, [%r10-8]\nexit") == 1


def test_step_limit():
    with pytest.raises(interp.StepLimitExceeded):
        run("mov %r0, 0\nja -1\nexit", max_steps=1000)


def call_chain(frames: int) -> str:
    """The main program and frames - 1 nested calls; the innermost returns frames."""
    n = frames - 1
    return ("mov %r0, 0\ncall local f1\nexit\n"
            + "".join(f"f{i}:\ncall local f{i + 1}\nexit\n" for i in range(1, n))
            + f"f{n}:\nmov %r0, {frames}\nexit\n")


def test_call_depth_is_the_kernels_eight_frames():
    # MAX_CALL_FRAMES in the kernel's verifier: 8, the main program's included.
    assert run(call_chain(8)) == 8
    with pytest.raises(interp.InterpError, match="deeper"):
        run(call_chain(9))
    with pytest.raises(interp.InterpError, match="deeper"):
        run("call local f\nexit\nf:\ncall local f\nexit")


@pytest.mark.parametrize("text,reason", [
    ("mov %r0, 0\nja +5\nexit", "left the code"),
    ("mov %r10, 0\nexit", "r10"),
    ("mov %r0, 0\ncall 1234\nexit", "not provided"),
    (".invalid 0x00000000000000f4\nexit", "unknown arithmetic"),
    ("ldabsw 12\nexit", "reads r6"),   # ld_abs reads the context in r6
])
def test_undefined_programs_raise(text, reason):
    with pytest.raises(interp.InterpError, match=reason):
        run(text)


@pytest.mark.parametrize("value,expected", [
    (0, 0), (1, 1), (15, 3), (16, 4), (1 << 32, 1 << 16), ((1 << 64) - 1, 1 << 32),
])
def test_sqrti_is_ubpfs(value, expected):
    """uBPF: (uint64_t)sqrt((double)a), over the whole 64-bit argument."""
    assert interp.CONFORMANCE_HELPERS[3](None, value, 0, 0, 0, 0) == expected


def _object_with_data(text: str, writable: bool) -> loader.EbpfObject:
    slots = assemble(text)
    key = loader.FuncKey("prog", 0)
    return loader.EbpfObject(
        "<test>", {"prog": slots}, {("prog", 0): loader.Ref("data", ".data", 4)},
        {key: loader.Function(key, "prog", len(slots))},
        [loader.Program("prog", "prog", "raw", key)],
        data={".data": loader.DataSection(".data", bytes(range(16)), writable)})


def test_objects_map_their_global_data():
    obj = _object_with_data("lddw %r1, 0\nldxw %r0, [%r1+4]\nexit", writable=False)
    assert interp.run_object(obj, None, H) == 0x0B0A0908
    obj = _object_with_data("lddw %r1, 0\nstb [%r1], 1\nldxb %r0, [%r1]\nexit", writable=True)
    assert interp.run_object(obj, None, H) == 1
    obj = _object_with_data("lddw %r1, 0\nstb [%r1], 1\nmov %r0, 0\nexit", writable=False)
    with pytest.raises(interp.InterpError, match="read-only"):
        interp.run_object(obj, None, H)
