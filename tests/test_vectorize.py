"""Loops over packet or input bytes come out as SIMD code.

The lifter emits each access through a pointer derived from a root (the
input pointer, a packet pointer) as root + offset, so that LLVM's loop
vectorizer sees consecutive addresses. Lifted as plain integer-to-pointer
casts, the same loops vectorize only into gathers, several times slower
(benchmarks: sum_bytes/1500 12.8x the native twin before, 1.0x after).
"""
import re

import pytest

from conftest import ROOT
from inliner import cli

LOOPS = [
    ("sum_bytes", "XDP loop summing packet bytes"),
    ("bitcount", "loop over 256 words of the input memory"),
    ("memcpy", "4 KiB copy within the input memory"),
]


# AVX2, and two AVX-512 cpus whose cheap gathers tempt the cost model most.
CPUS = ("x86-64-v3", "icelake-server", "znver4")


@pytest.mark.parametrize("cpu", CPUS)
@pytest.mark.parametrize("name,about", LOOPS, ids=[n for n, _ in LOOPS])
def test_loops_vectorize_with_contiguous_loads(name, about, cpu, tmp_path):
    out = tmp_path / f"{name}.s"
    status = cli.main(["link", str(ROOT / "benchmarks" / f"{name}.o"), "-O", "3",
                       "--cpu", cpu, "--emit", "asm", "-o", str(out)])
    assert status == 0
    asm = out.read_text()
    assert re.search(r"\bv\w+\s+[^\n]*%[yz]mm", asm), f"{about}: no 256- or 512-bit vector instruction"
    assert "gather" not in asm, f"{about}: vectorized only with gathers"


def test_strided_loads_are_not_gathered_on_zen(tmp_path):
    """accum_8 reads its words eight apart: LLVM's znver cost model would vectorize
    that with vpgatherqq, which Zen runs as microcode (AMD's optimization guide),
    1.9x slower there than the loads it replaces (docs/benchmarks.md)."""
    out = tmp_path / "accum.s"
    assert cli.main(["link", str(ROOT / "benchmarks" / "accum.o"), "--program", "accum_8",
                     "--cpu", "znver4", "--emit", "asm", "-o", str(out)]) == 0
    assert "gather" not in out.read_text()


@pytest.mark.parametrize("arch", ("x86_64", "aarch64"))
def test_functions_start_on_a_cache_line(arch, tmp_path):
    """LLVM aligns loops relative to their function's start: with functions only 16
    bytes apart, whether strcmp's 29-byte loop straddles a 64-byte line depended on
    where the loader put the object (560 against 420 ns on Zen 4). Every function
    of the object, and so its text section, starts on a 64-byte line."""
    from elftools.elf.elffile import ELFFile
    out = tmp_path / "strcmp.o"
    assert cli.main(["link", str(ROOT / "benchmarks" / "strcmp.o"), "--target", arch,
                     "-o", str(out)]) == 0
    with open(out, "rb") as f:
        elf = ELFFile(f)
        text = elf.get_section_by_name(".text")
        assert text["sh_addralign"] >= 64
        funcs = [s for s in elf.get_section_by_name(".symtab").iter_symbols()
                 if s["st_info"]["type"] == "STT_FUNC"]
        assert funcs and all(s["st_value"] % 64 == 0 for s in funcs)



def test_innermost_loops_start_on_a_cache_line(tmp_path):
    """x86's default aligns loops to 16 bytes: csum_counter's 35-byte loop at
    --cpu generic straddled a 64-byte line or not as the code before it changed
    by a few bytes (55 against 40 ns a call). strcmp's one loop, the block its
    backward branch returns to, starts on a line."""
    out = tmp_path / "strcmp.s"
    assert cli.main(["link", str(ROOT / "benchmarks" / "strcmp.o"), "--cpu", "generic",
                     "--emit", "asm", "-o", str(out)]) == 0
    lines = [line.split() for line in out.read_text().splitlines()]
    start = lines.index(["strcmp_1k:"])
    end = next(i for i in range(start, len(lines)) if lines[i] == ["retq"])
    labels = {line[0][:-1]: i for i, line in enumerate(lines[:end]) if line
              and line[0].startswith(".LBB") and line[0].endswith(":")}
    heads = {labels[line[1]] for i, line in enumerate(lines[start:end], start)
             if len(line) == 2 and line[0].startswith("j") and labels.get(line[1], end) < i}
    assert len(heads) == 1
    assert lines[heads.pop() - 1] == [".p2align", "6"]


def test_select_chain_keeps_its_masks_in_registers(tmp_path):
    """select_chain's five `?:` steps are branches in the bytecode. Run straight
    through LLVM's pipeline they became selects in an order that kept eight
    AVX-512 masks live at once, one more than k1-k7, and two were spilled to the
    stack in the loop (1.16x the twin's time); the program's functions simplified
    before the pipeline (codegen.prelink) keep them in registers, as the twin does."""
    out = tmp_path / "select_chain.s"
    assert cli.main(["link", str(ROOT / "benchmarks" / "select_chain.o"), "--cpu", "znver4",
                     "--emit", "asm", "-o", str(out)]) == 0
    text = out.read_text()
    assert "vpcmpnleud" in text  # vectorized with mask compares, or the test says nothing
    assert not [line for line in text.splitlines() if "kmov" in line and "(%rsp)" in line]
