"""The bpf_conformance suite: its test files, its plugin protocol, and a runner.

A test file has `-- asm` (or `-- raw`), optional `-- mem` and `-- result`
or `-- error` sections (shared/bpf_conformance/ORIGIN.md). Programs run
through the same link pipeline users get, with the `conformance` helpers.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from .. import codegen, pipeline
from ..elf import loader
from ..errors import EbpfLtoError
from ..run.runner import ProgramFault
from ..facts.abi import ENTRY_SYMBOL
from ..run.emulate import Emulator, Step
from .asm import AsmError, assemble_bytes

HELPERS = "conformance"


@dataclass(frozen=True)
class ConformanceTest:
    name: str
    asm: str | None = None
    raw: bytes | None = None
    mem: bytes | None = None
    result: int | None = None
    error: str | None = None

    @property
    def has_program(self) -> bool:
        return self.asm is not None or self.raw is not None


@dataclass(frozen=True)
class Outcome:
    status: str  # "pass", "fail" or "skip"
    detail: str = ""


def parse_test(text: str, name: str = "<test>") -> ConformanceTest:
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("-- "):
            current = line[3:].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    asm = "\n".join(sections["asm"]) if "asm" in sections else None
    raw = _parse_raw(sections["raw"], name) if "raw" in sections else None
    mem = None
    if "mem" in sections:
        try:
            mem = bytes.fromhex(" ".join(_payload(sections["mem"])))
        except ValueError:
            raise EbpfLtoError("-- mem is not hex bytes", file=name) from None
    result = None
    if "result" in sections:
        words = _payload(sections["result"])
        try:
            result = int(words[0], 0) & 0xFFFFFFFFFFFFFFFF if words else None
        except ValueError:
            raise EbpfLtoError(f"-- result is not a number: {words[0]!r}", file=name) from None
    error = "\n".join(sections["error"]).strip() if "error" in sections else None
    return ConformanceTest(name, asm, raw, mem, result, error)


def _payload(lines: list[str]) -> list[str]:
    return [w for line in lines if not line.lstrip().startswith("#") for w in line.split()]


def _parse_raw(lines: list[str], name: str) -> bytes:
    """`-- raw` holds 64-bit words (`0x...`) or the instruction bytes in hex."""
    out = bytearray()
    try:
        for word in _payload(lines):
            if word.startswith("0x"):
                out += struct.pack("<Q", int(word, 16))
            else:
                out += bytes.fromhex(word)
    except (ValueError, struct.error):
        raise EbpfLtoError("-- raw is neither 64-bit words nor hex bytes", file=name) from None
    return bytes(out)


def program_bytes(test: ConformanceTest) -> bytes:
    if test.asm is not None:
        try:
            return assemble_bytes(test.asm)
        except AsmError as err:
            raise EbpfLtoError(f"-- asm {err}", file=test.name) from None
    return test.raw or b""


def run_program(code: bytes, mem: bytes | None, options: pipeline.LinkOptions,
                name: str = "<program>", emulator: Emulator | None = None,
                elf: bool = False) -> int:
    """r0 of `code` (instructions, or with `elf` an ELF object's bytes) run on
    `mem`: in this process, or, for another architecture than the host's,
    under `emulator`."""
    obj = loader.load(name, code) if elf else loader.from_raw(code, path=name)
    if options.arch == codegen.host_arch():
        r0, _ = pipeline.run(obj, mem, options)
        return r0
    if emulator is None:
        raise EbpfLtoError(f"{options.arch} code runs on this host only under an emulator")
    objects, exports, _ = pipeline.images(obj, options)
    [(r0, _)] = emulator.run(objects, exports, [Step(ENTRY_SYMBOL, mem or b"")])
    return r0


def run_test(test: ConformanceTest, options: pipeline.LinkOptions,
             emulator: Emulator | None = None) -> Outcome:
    if not test.has_program:
        return Outcome("skip", "no program")
    # As the suite's runner does (bpf_test_parser.cc): nothing to check the
    # run against, and such a program may never end.
    if test.result is None and test.error is None:
        return Outcome("skip", "no -- result or -- error")
    try:
        r0 = run_program(program_bytes(test), test.mem, options, test.name, emulator)
    except EbpfLtoError as err:
        if test.error is not None:
            return Outcome("pass", f"refused: {err.reason}")
        return Outcome("fail", f"refused: {err}")
    except ProgramFault as fault:
        if test.error is not None:
            return Outcome("pass", f"stopped: {fault}")
        return Outcome("fail", f"stopped: {fault}")
    if test.error is not None:
        return Outcome("fail", f"ran (r0 = {r0:#x}) but the test expects an error: {test.error}")
    if r0 != test.result:
        return Outcome("fail", f"r0 = {r0:#x}, expected {test.result:#x}")
    return Outcome("pass")


def suite_files(directory: str) -> list[Path]:
    root = Path(directory)
    if not root.is_dir():
        raise EbpfLtoError("not a directory", file=directory)
    files = sorted(root.rglob("*.data"))
    if not files:
        raise EbpfLtoError("holds no .data test files", file=directory)
    return files


def load_test(path: Path) -> ConformanceTest:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise EbpfLtoError(f"cannot read test: {err}", file=str(path)) from None
    return parse_test(text, path.name)
