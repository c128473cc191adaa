"""The bpf_conformance suite (shared/bpf_conformance) through the link pipeline and the plugin."""
import subprocess
import sys

import pytest

from conftest import needs_shared, shared_path
from inliner import conformance, pipeline
from inliner.errors import EbpfLtoError

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


def _plugin(memory: str, program: bytes, options: str = "") -> subprocess.CompletedProcess:
    """Call the plugin as the suite's runner does: memory and options in argv, program on stdin."""
    return subprocess.run([sys.executable, "-m", "inliner.cli", "conformance-plugin", memory, options],
                          input=" ".join(f"{b:02x}" for b in program) + "\n",
                          capture_output=True, text=True, timeout=120)


def test_plugin_protocol_reads_memory_and_prints_r0_in_hex():
    code = conformance.program_bytes(conformance.parse_test(
        "-- asm\nldxh %r0, [%r1+2]\nadd %r0, %r2\nexit"))
    # The runner separates the memory's bytes with two spaces.
    done = _plugin("aa  bb  11  22  cc  dd  ", code, "-O 0")
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip(), 16) == 0x2211 + 6


def test_plugin_reports_a_bad_program_on_stderr():
    done = _plugin("", bytes.fromhex("b700000001000000"))  # mov r0, 1 without exit
    assert done.returncode != 0
    assert done.stdout == ""
    assert "falls off the end" in done.stderr and len(done.stderr.splitlines()) == 1
