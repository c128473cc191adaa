"""The bpf_conformance suite (shared/bpf_conformance) through the link pipeline and the plugin."""
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import needs_shared, shared_path
from inliner import pipeline
from inliner.tools import conformance
from inliner.errors import EbpfLtoError

ROOT = Path(__file__).resolve().parents[1]
SUITE = shared_path("bpf_conformance")
TESTS = sorted((SUITE / "tests").glob("*.data")) if SUITE else []
NEGATIVE = sorted((SUITE / "negative").glob("*.data")) if SUITE else []
needs_suite = needs_shared("bpf_conformance", "tests")


@needs_suite
@pytest.mark.parametrize("level", (0, 2))
@pytest.mark.parametrize("path", TESTS, ids=[p.stem for p in TESTS])
def test_suite_file(path, level):
    options = pipeline.LinkOptions(opt_level=level, helpers=conformance.HELPERS)
    outcome = conformance.run_test(conformance.load_test(path), options)
    assert outcome.status == "pass", outcome.detail


@needs_suite
@pytest.mark.parametrize("path", NEGATIVE, ids=[p.stem for p in NEGATIVE])
def test_negative_file_is_refused_or_differs(path):
    """Each negative file is refused, or (for a wrong expected value) does not match."""
    test = conformance.load_test(path)
    if not test.has_program:
        assert conformance.run_test(test, pipeline.LinkOptions()).status == "skip"
        return
    options = pipeline.LinkOptions(helpers=conformance.HELPERS)
    try:
        r0 = conformance.run_program(conformance.program_bytes(test), test.mem, options, path.name)
    except EbpfLtoError as err:
        assert err.reason
        return
    assert test.result is not None and r0 != test.result


def _plugin(args: list[str], program: bytes) -> subprocess.CompletedProcess:
    """Call the plugin with `args` as its argv, the program as hex on stdin, as the runner does."""
    return subprocess.run([sys.executable, "-m", "inliner.cli", "conformance-plugin", *args],
                          input=" ".join(f"{b:02x}" for b in program) + "\n",
                          capture_output=True, text=True, timeout=120)


def _runner_argv(memory: bytes, options: str, split: bool) -> list[str]:
    """The plugin's argv as bpf_conformance's runner builds it (src/bpf_conformance.cc).

    Bytes are hex, each followed by two spaces. Older runners pass the memory
    (maybe empty) and the options as two arguments; newer ones pass the
    memory only when the test has some, then the options cut at each space
    (runner.cc: getline(stream, option, ' ')), so "-O  0" gives an empty word.
    """
    hex_memory = "".join(f"{b:02x}  " for b in memory)
    if not split:
        return [hex_memory, options]
    return ([hex_memory] if memory else []) + (options.split(" ") if options else [])


@pytest.mark.parametrize("split", [False, True], ids=["one argument", "split"])
@pytest.mark.parametrize("options", ["", "-O 0", "-O  3 --cpu generic"])
def test_plugin_protocol_reads_memory_and_prints_r0_in_hex(split, options):
    code = conformance.program_bytes(conformance.parse_test(
        "-- asm\nldxh %r0, [%r1+2]\nadd %r0, %r2\nexit"))
    memory = bytes.fromhex("aabb1122ccdd")
    done = _plugin(_runner_argv(memory, options, split), code)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip(), 16) == 0x2211 + 6  # little-endian u16 at 2, plus r2 = 6


@pytest.mark.parametrize("split", [False, True], ids=["one argument", "split"])
def test_plugin_options_without_memory_are_read(split):
    code = bytes.fromhex("b700000005000000" "9500000000000000")  # mov r0, 5; exit
    done = _plugin(_runner_argv(b"", "-O 1", split), code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5"
    # The options are read, not skipped: a level past 3 is refused.
    refused = _plugin(_runner_argv(b"", "-O 9", split), code)
    assert refused.returncode == 2 and "invalid choice: 9" in refused.stderr


def test_plugin_runs_an_elf_object_as_the_runners_elf_option_sends():
    """--elf: an ELF object on stdin; examples/ipv4_csum.o over the textbook
    IPv4 header gives that header's checksum."""
    header = (ROOT / "examples" / "ipv4_header.bin").read_bytes()
    words = struct.unpack("!10H", header[:10] + b"\0\0" + header[12:20])
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    done = _plugin(_runner_argv(header, "-O 2", True) + ["--elf"],
                   (ROOT / "examples" / "ipv4_csum.o").read_bytes())
    assert done.returncode == 0, done.stderr
    assert int(done.stdout, 16) == ~total & 0xFFFF


def test_plugin_reports_a_bad_program_on_stderr():
    done = _plugin([""], bytes.fromhex("b700000001000000"))  # mov r0, 1 without exit
    assert done.returncode != 0
    assert done.stdout == ""
    assert "falls off the end" in done.stderr and len(done.stderr.splitlines()) == 1


def test_a_file_without_a_result_is_skipped_not_run(tmp_path):
    """The suite's runner skips a file with neither `-- result` nor `-- error`
    (bpf_test_parser.cc: "No result or error in test file"); running it could
    hang, as this one would: it loops for ever."""
    (tmp_path / "loops.data").write_text("-- asm\nmov %r0, 1\nja -1\nexit\n")
    (tmp_path / "seven.data").write_text("-- asm\nmov %r0, 7\nexit\n-- result\n0x7\n")
    done = subprocess.run([sys.executable, "-m", "inliner.cli", "conformance", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["SKIP loops.data: no -- result or -- error",
                                        "PASS seven.data", "1 passed, 0 failed, 1 skipped"]
