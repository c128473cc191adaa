"""The command line: the main job on the shipped example, the ABI, and bad input."""
import json
import re
import shutil
import subprocess
import sys

import pytest
from pathlib import Path
from elftools.elf.elffile import ELFFile

from conftest import ROOT

EXAMPLE = ROOT / "examples" / "ipv4_csum.o"
HEADER = ROOT / "examples" / "ipv4_header.bin"


def cli(*args, input=None):
    return subprocess.run([sys.executable, "-m", "inliner.cli", *map(str, args)],
                          capture_output=True, text=True, input=input, timeout=300)


def assert_refused(done, *words):
    """Bad input: exit 2 and exactly one line on stderr, no traceback."""
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("level", ("0", "2"))
def test_run_example_gives_the_textbook_ipv4_checksum(level):
    done = cli("run", EXAMPLE, "--mem", f"@{HEADER}", "-O", level, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["r0"] == 0xB861  # RFC 1071 checksum of the header


def test_linked_object_follows_the_aot_contract(tmp_path):
    out = tmp_path / "prog.aot.o"
    done = cli("link", EXAMPLE, "-o", out)
    assert done.returncode == 0, done.stderr
    with open(out, "rb") as fh:
        elf = ELFFile(fh)
        assert elf["e_type"] == "ET_REL" and elf["e_machine"] == "EM_X86_64"
        symbols = {s.name: s for s in elf.get_section_by_name(".symtab").iter_symbols()}
    for name in ("bpf_main", "ipv4_csum"):
        assert symbols[name]["st_info"]["bind"] == "STB_GLOBAL"
        assert symbols[name]["st_info"]["type"] == "STT_FUNC"
    # Only the entries and the documented tables are exported; subprograms and data stay internal.
    exported = {n for n, s in symbols.items() if s["st_info"]["bind"] == "STB_GLOBAL"
                and s["st_shndx"] != "SHN_UNDEF"}
    assert exported == {"bpf_main", "ipv4_csum", "ebpf_lto_maps", "ebpf_lto_maps_count",
                        "ebpf_lto_program_names", "ebpf_lto_programs_count", "ebpf_lto_fault"}


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler to build a host")
def test_a_c_host_links_the_object_and_calls_bpf_main(tmp_path):
    """The object works outside our runner: a plain C program links and calls it."""
    obj = tmp_path / "prog.aot.o"
    assert cli("link", EXAMPLE, "-o", obj).returncode == 0
    host = tmp_path / "host.c"
    host.write_text(
        "#include <stdint.h>\n#include <stdio.h>\n"
        "uint64_t bpf_main(void *ctx, uint64_t len);\n"
        "int main(void) { unsigned char p[60] = {0x45,0,0,0x73,0,0,0x40,0,0x40,0x11,0,0,"
        "0xc0,0xa8,0,1,0xc0,0xa8,0,0xc7};\n"
        "  printf(\"%llx\\n\", (unsigned long long)bpf_main(p, sizeof p)); return 0; }\n")
    exe = tmp_path / "host"
    subprocess.run(["cc", "-o", exe, host, obj], check=True)
    assert subprocess.run([exe], capture_output=True, text=True).stdout.strip() == "b861"


@pytest.mark.parametrize("emit,marker", [("asm", b"bpf_main:"), ("llvm", b"define"),
                                         ("bc", b"BC\xc0\xde")])
def test_emit_kinds(tmp_path, emit, marker):
    out = tmp_path / "out"
    assert cli("link", EXAMPLE, "--emit", emit, "-o", out).returncode == 0
    assert marker in out.read_bytes()


def test_aarch64_emits_a_valid_object(tmp_path):
    out = tmp_path / "prog.o"
    assert cli("link", EXAMPLE, "--target", "aarch64", "-o", out).returncode == 0
    with open(out, "rb") as fh:
        assert ELFFile(fh)["e_machine"] == "EM_AARCH64"


def test_output_to_stdout():
    done = subprocess.run([sys.executable, "-m", "inliner.cli", "link", str(EXAMPLE),
                           "--emit", "llvm", "-o", "-"], capture_output=True, timeout=300)
    assert done.returncode == 0 and b"define" in done.stdout


def test_failed_link_leaves_the_previous_output_untouched(tmp_path):
    out = tmp_path / "prog.aot.o"
    out.write_bytes(b"previous")
    bad = tmp_path / "bad.o"
    bad.write_bytes(EXAMPLE.read_bytes()[:300])
    assert_refused(cli("link", bad, "-o", out))
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.o", "prog.aot.o"]


@pytest.mark.parametrize("args,words", [
    (["run", "missing.o"], ["missing.o", "cannot read"]),
    (["run", ROOT / "examples" / "ipv4_csum.c"], ["not an eBPF object", "C source"]),
    (["run", EXAMPLE, "--mem", "zz"], ["--mem"]),
    (["run", EXAMPLE, "--program", "nope"], ["no program named 'nope'", "ipv4_csum"]),
    (["link", EXAMPLE, "-o", "/tmp/x.o", "--cpu", "no-such-cpu"], ["no-such-cpu"]),
    (["link", EXAMPLE, "-o", "/nonexistent-dir/x.o"], ["cannot write"]),
    (["link", EXAMPLE], ["-o"]),
    (["frobnicate"], ["frobnicate"]),
    (["run", EXAMPLE, "--helpers", "nosuchset"], ["unknown helper set"]),
])
def test_bad_input_costs_one_line_and_exit_2(args, words):
    assert_refused(cli(*args), *words)


def test_wrong_architecture_is_refused(tmp_path):
    obj = tmp_path / "native.o"
    obj.write_bytes(b"")
    assert cli("link", EXAMPLE, "-o", obj).returncode == 0  # an x86-64 ELF, not eBPF
    assert_refused(cli("run", obj), "not an eBPF object")


def test_disasm_names_maps_and_reassembles_to_the_object_bytes():
    from elftools.elf.elffile import ELFFile as Elf

    from inliner.tools.asm import assemble_bytes
    obj = ROOT / "tests" / "fixtures" / "btf" / "maps.o"
    done = cli("disasm", obj)
    assert done.returncode == 0, done.stderr
    assert "lddw %r1, 0 # map counters" in done.stdout
    assert "call 1 # map_lookup_elem" in done.stdout
    # The listing of the xdp section is the section's bytes, instruction for instruction.
    body = done.stdout.split("section xdp):\n", 1)[1]
    asm = "\n".join(line.split(": ", 1)[1] for line in body.splitlines()
                    if ": " in line and not line.endswith(":"))
    with open(obj, "rb") as fh:
        code = Elf(fh).get_section_by_name("xdp").data()
    assert assemble_bytes(asm) == code


def test_disasm_json_gives_each_function_its_instructions():
    obj = ROOT / "tests" / "fixtures" / "btf" / "maps.o"
    done = cli("disasm", obj, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["syntax"] == "ubpf"
    with open(obj, "rb") as fh:
        elf = ELFFile(fh)
        for func in report["functions"]:
            code = elf.get_section_by_name(func["section"]).data()
            insns = func["insns"]
            # The instructions are the section's bytes from start to end, each at its slot.
            assert bytes.fromhex("".join(i["bytes"] for i in insns)) == \
                code[8 * func["start"]:8 * func["end"]]
            for i in insns:
                raw = bytes.fromhex(i["bytes"])
                assert raw[0] == i["opcode"] and raw[1] == i["dst"] | i["src"] << 4
                assert code[8 * i["slot"]:8 * i["slot"] + len(raw)] == raw
    programs = {f["name"]: f["type"] for f in report["functions"] if f["program"]}
    assert programs == {"tail": "xdp", "prog": "xdp"}
    comments = {i["comment"] for f in report["functions"] for i in f["insns"]}
    assert {"map counters", "map_lookup_elem"} <= comments


@pytest.mark.skipif(shutil.which("llvm-objdump-19") is None,
                    reason="llvm-objdump-19 (Debian's llvm-19) is not installed")
def test_disasm_llvm_syntax_is_what_llvm_objdump_prints():
    obj = ROOT / "examples" / "csum_count.o"
    done = cli("disasm", obj, "--syntax", "llvm")
    assert done.returncode == 0, done.stderr
    ours = [line.split(": ", 1)[1].split(" # ")[0] for line in done.stdout.splitlines()
            if ": " in line and not line.endswith(":")]
    dump = subprocess.run(["llvm-objdump-19", "-d", "--no-show-raw-insn", str(obj)],
                          capture_output=True, text=True, check=True).stdout
    theirs = [line.split("\t", 1)[1].split(" <")[0] for line in dump.splitlines()
              if line[:1] == " " and "\t" in line]
    assert ours == theirs and "r2 = *(u32 *)(r1 + 0x4)" in ours
    assert "lock *(u64 *)(r0 + 0x0) += r1" in ours


def test_output_to_a_device_writes_through_it():
    # As root, an atomic rename would replace /dev/null with a regular file.
    assert cli("link", EXAMPLE, "-o", "/dev/null").returncode == 0
    assert not Path("/dev/null").is_file()


def test_readme_links_every_doc_and_lists_every_command():
    readme = (ROOT / "README.md").read_text()
    docs = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert [d for d in docs if f"](docs/{d})" not in readme] == []
    assert len(re.findall(r"\]\(docs/helpers\.md\)", readme)) == 1
    usage = cli("--help").stdout
    commands = re.search(r"\{([\w,-]+)\}", usage)[1].split(",")
    assert "bench" in commands
    assert [c for c in commands if f"| `ebpf-lto {c}" not in readme] == []
