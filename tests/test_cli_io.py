"""The command line's input and output: what it reads, what it refuses, what it writes.

Every refusal is exit 2 and one line on stderr (test_cli.assert_refused);
inputs are told apart by their magic numbers (ELF, LLVM's bitcode and
bitcode-wrapper magic, the start of LLVM IR text), never by a parser's
failure.
"""
import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import ROOT
from inliner import inputs
from inliner.elf import loader
from inliner.run.hostmaps import MapAccess
from inliner.run.runner import LoadedObjects
from test_cli import EXAMPLE, HEADER, assert_refused, cli

CSUM = ROOT / "examples" / "csum_count.o"
TAIL = ROOT / "tests" / "maps_prog" / "tail.o"
NOT_AN_INPUT = "not an eBPF object, LLVM bitcode or LLVM IR"
# A pcap file header (magic a1b2c3d4, version 2.4, snaplen 65535, Ethernet) and
# one 14-byte record, as libpcap writes them.
PCAP = (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
        + struct.pack("<IIII", 0, 0, 14, 14) + bytes(14))
FOREIGN_IR = """
define i64 @bpf_main(ptr %ctx, i64 %len) {
  ret i64 %len
}
"""


def run_bytes(*args):
    """The command with arguments given as bytes: file names need not be UTF-8."""
    return subprocess.run([sys.executable, "-m", "inliner.cli",
                           *(a if isinstance(a, bytes) else os.fsencode(str(a)) for a in args)],
                          capture_output=True, timeout=300)


def exported(path: Path) -> list[str]:
    """The global symbols an object defines, read from its ELF symbol table."""
    with open(path, "rb") as fh:
        return [s.name for s in ELFFile(fh).get_section_by_name(".symtab").iter_symbols()
                if s["st_info"]["bind"] == "STB_GLOBAL" and s["st_shndx"] != "SHN_UNDEF"]


def loaded(path: Path) -> LoadedObjects:
    return LoadedObjects([path.read_bytes()], exported(path))


# -- what an input is, by its first bytes ------------------------------------

@pytest.mark.parametrize("head,kind", [
    (b"\x7fELF\x02\x01\x01", inputs.ELF),
    (b"BC\xc0\xde\x35\x14", inputs.BITCODE),
    (b"\xde\xc0\x17\x0b\x00\x00\x00\x00", inputs.BITCODE),   # the wrapper, 0x0B17C0DE
    (b"; ModuleID = 'x'\nsource_filename = \"x\"\n", inputs.LLVM_IR),
    (b"\n  ; a comment\n\ntarget triple = \"x86_64\"\n", inputs.LLVM_IR),
    (b"define i64 @f() {\n", inputs.LLVM_IR),
    (b"declare void @g()\n", inputs.LLVM_IR),
    (b"@x = global i32 0\n", inputs.LLVM_IR),
    (b"%struct.s = type { i32 }\n", inputs.LLVM_IR),
    (b"!0 = !{}\n", inputs.LLVM_IR),
    (b"attributes #0 = { nounwind }\n", inputs.LLVM_IR),
    (b"%PDF-1.7\n", None),          # a % that names no type
    (b"#include <linux/bpf.h>\n", None),
    (b"root:x:0:0:root:/root:/bin/bash\n", None),
    (b"", None),
    (b"\x00" * 64, None),
])
def test_inputs_are_classified_by_their_first_bytes(head, kind):
    assert inputs.classify(head) == kind


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


@pytest.mark.parametrize("make,words", [
    (lambda d: d / "empty.o", ["it is empty"]),
    (lambda d: sparse(d / "zeros.o", 200_000_000), ["zeros"]),
    (lambda d: d / "nul.o", ["binary data"]),
    (lambda d: d / "passwd", ["text"]),
    (lambda d: d / "prog.c", ["C source"]),
    (lambda d: d / "trace.pcap", ["pcap capture"]),
    (lambda d: d / "prog.o.gz", ["gzip"]),
], ids=["empty", "200MB-zeros", "nul-first", "passwd", "c-source", "pcap", "gzip"])
def test_link_refuses_what_is_no_object_bitcode_or_ir(tmp_path, make, words):
    contents = {"empty.o": b"", "nul.o": b"\x00ELF" + bytes(60),
                "passwd": Path("/etc/passwd").read_bytes() if Path("/etc/passwd").is_file()
                else b"root:x:0:0:root:/root:/bin/bash\n",
                "prog.c": (ROOT / "examples" / "csum_count.c").read_bytes(),
                "trace.pcap": PCAP, "prog.o.gz": gzip.compress(EXAMPLE.read_bytes())}
    path = make(tmp_path)
    if path.name in contents:
        path.write_bytes(contents[path.name])
    done = cli("link", path, "-o", tmp_path / "out.o")
    assert_refused(done, NOT_AN_INPUT, *words)
    assert not (tmp_path / "out.o").exists()


def test_devices_directories_and_huge_files_are_refused_unread(tmp_path):
    assert_refused(cli("link", "/dev/zero", "-o", tmp_path / "o"), "/dev/zero", "device")
    assert_refused(cli("link", tmp_path, "-o", tmp_path / "o"), "directory")
    huge = sparse(tmp_path / "huge.o", inputs.MAX_INPUT_BYTES + 1)
    assert_refused(cli("link", huge, "-o", tmp_path / "o"),
                   f"{inputs.MAX_INPUT_BYTES >> 20} MiB input limit")


def test_a_fifo_is_read_bounded_and_never_waited_on(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # No writer: read as empty at once, not waited on.
    assert_refused(cli("link", fifo, "-o", tmp_path / "o"), "it is empty")
    # A writer of endless zeros: refused by the first bytes, not read to the end.
    writer = subprocess.Popen(f"exec cat /dev/zero > {fifo}", shell=True,
                              stderr=subprocess.DEVNULL)
    try:
        assert_refused(cli("link", fifo, "-o", tmp_path / "o"), NOT_AN_INPUT, "zeros")
    finally:
        writer.kill()
        writer.wait()


@pytest.mark.parametrize("command", ["run", "explain", "disasm"])
def test_commands_that_take_only_objects_say_what_they_were_given(tmp_path, command):
    ir = tmp_path / "prog.ll"
    ir.write_text(FOREIGN_IR)
    assert_refused(cli(command, ir), "not an eBPF object (it is LLVM IR)")
    assert_refused(cli(command, ROOT / "examples" / "csum_count.c"),
                   "not an eBPF object (it looks like C source)")
    assert_refused(cli(command, "/dev/zero"), "device")


def test_option_files_are_read_bounded_and_named_for_what_they_are(tmp_path):
    pcap = tmp_path / "trace.pcap"
    pcap.write_bytes(PCAP)
    assert_refused(cli("run", EXAMPLE, "--mem", "@/dev/zero"), "memory file", "device")
    assert_refused(cli("run", CSUM, "--packet", "@/dev/zero"), "memory file", "device")
    done = cli("run", CSUM, "--packet", "00" * 64, "--map", f"counts=@{pcap}")
    assert_refused(done, "map entries are not JSON (it looks like a pcap capture)")
    for command in (["link", EXAMPLE, "-o", tmp_path / "o"], ["run", EXAMPLE]):
        done = cli(*command, "--profile", pcap)
        assert_refused(done, "not an LLVM instrumentation profile (it looks like a pcap capture)")
        assert "codec" not in done.stderr


def test_ir_with_leading_comments_and_the_bitcode_wrapper_are_linked(tmp_path):
    ir = tmp_path / "prog.ll"
    ir.write_text("; from another lifter\n\n" + FOREIGN_IR)
    assert cli("link", ir, "-o", tmp_path / "ir.o").returncode == 0
    assert loaded(tmp_path / "ir.o").call("bpf_main", bytearray(5)) == 5
    # LLVM's bitcode wrapper (BitcodeReader's wrapper header): magic 0x0B17C0DE,
    # version 0, then the offset and size of the bitcode that follows, cputype.
    bc = tmp_path / "prog.bc"
    assert cli("link", EXAMPLE, "--emit", "bc", "-o", bc).returncode == 0
    raw = bc.read_bytes()
    wrapped = tmp_path / "wrapped.bc"
    wrapped.write_bytes(struct.pack("<5I", 0x0B17C0DE, 0, 20, len(raw), 0) + raw)
    done = cli("link", wrapped, "-o", tmp_path / "wrapped.o")
    assert done.returncode == 0, done.stderr
    assert loaded(tmp_path / "wrapped.o").call("bpf_main", bytearray(HEADER.read_bytes())) \
        == 0xB861  # RFC 1071 checksum of the header


# -- output never clobbers input ---------------------------------------------

def test_output_naming_an_input_is_refused_and_the_input_kept(tmp_path, monkeypatch):
    prog = tmp_path / "prog.o"
    prog.write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.o").symlink_to(prog)
    os.link(prog, tmp_path / "hard.o")
    monkeypatch.chdir(tmp_path / "sub")
    for output in (prog, "../prog.o", tmp_path / "link.o", tmp_path / "hard.o"):
        assert_refused(cli("link", "../prog.o", "-o", output), "-o", "is the input file")
    header = tmp_path / "header.bin"
    header.write_bytes(HEADER.read_bytes())
    assert_refused(cli("run", prog, "--mem", f"@{header}", "--profile-out", header),
                   "--profile-out", "is the input file")
    assert_refused(cli("explain", prog, "--dot", prog), "--dot", "is the input file")
    helper = tmp_path / "mine.ll"
    helper.write_text("define i64 @_bpf_helper_ext_0028(i64 %a, i64 %b, i64 %c, i64 %d, "
                      "i64 %e) {\n  ret i64 0\n}\n")
    assert_refused(cli("link", prog, "--helpers", f"default,{helper}", "-o", helper),
                   "is the input file")
    assert prog.read_bytes() == EXAMPLE.read_bytes()
    assert header.read_bytes() == HEADER.read_bytes()
    assert "ret i64 0" in helper.read_text()


def test_file_names_of_any_bytes(tmp_path):
    name = os.fsencode(tmp_path) + b"/prog\xff\xfe.o"
    Path(os.fsdecode(name)).write_bytes(EXAMPLE.read_bytes())
    out = os.fsencode(tmp_path) + b"/out\xff.o"
    done = run_bytes("link", name, "-o", out)
    assert done.returncode == 0, done.stderr
    assert loaded(Path(os.fsdecode(out))).call("bpf_main", bytearray(HEADER.read_bytes())) \
        == 0xB861
    done = run_bytes("run", name, "--mem", b"@" + os.fsencode(HEADER))
    assert done.returncode == 0 and b"0xb861" in done.stdout
    missing = run_bytes("link", os.fsencode(tmp_path) + b"/gone\xff.o", "-o", out)
    assert missing.returncode == 2
    assert missing.stderr.decode().splitlines() == [
        f"ebpf-lto: error: {tmp_path}/gone\\xff.o: cannot read input: No such file or directory"]
    clobber = run_bytes("link", name, "-o", name)
    assert clobber.returncode == 2 and b"prog\\xff\\xfe.o" in clobber.stderr


def test_a_full_disk_on_standard_output_is_a_write_error():
    with open("/dev/full", "wb") as full:
        done = subprocess.run([sys.executable, "-m", "inliner.cli", "link", str(EXAMPLE),
                               "-o", "-"], stdout=full, stderr=subprocess.PIPE, text=True,
                              timeout=300)
    assert_refused(done, "cannot write: No space left on device")


def test_unknown_helper_names_are_refused_with_the_closest(tmp_path):
    out = tmp_path / "o"
    assert_refused(cli("link", CSUM, "-o", out, "--no-inline", "map_lookup_elm"),
                   "--no-inline map_lookup_elm", "did you mean map_lookup_elem")
    assert_refused(cli("link", CSUM, "-o", out, "--force-inline", "bpf_csum_dif"),
                   "did you mean bpf_csum_diff")
    # Ids, names with and without bpf_, and the object's own functions still go.
    done = cli("explain", CSUM, "--no-inline", "1", "--no-inline", "bpf_csum_diff",
               "--force-inline", "csum_count")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("--no-inline") == 2


# -- its own output back in --------------------------------------------------

def csum_key(packet: bytes) -> int:
    """bpf_csum_diff of the first 64 bytes: native-order 16-bit words, folded (RFC 1071)."""
    total = sum(struct.unpack("=32H", packet[:64]))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total & 0xFF


@pytest.mark.parametrize("emit,extra", [("llvm", []), ("bc", []), ("llvm", ["--inline", "none"])],
                         ids=["llvm", "bc", "llvm-inline-none"])
def test_emitted_ir_links_again_and_computes_the_same(tmp_path, emit, extra):
    from inliner.facts import contexts
    ir = tmp_path / f"csum.{emit}"
    assert cli("link", CSUM, "--emit", emit, *extra, "-o", ir).returncode == 0
    again = tmp_path / "again.o"
    done = cli("link", ir, "-o", again)
    assert done.returncode == 0, done.stderr
    objects = loaded(again)
    packets = [bytes((i * 37 + n) & 0xFF for n in range(80)) for i in range(40)] + [bytes(20)]
    for packet in packets:
        assert objects.call_packet("bpf_main", contexts.XDP, packet)[0] == 2  # XDP_PASS
    expected = [0] * 256
    for packet in packets:
        if len(packet) >= 64:
            expected[csum_key(packet)] += 1
    maps = MapAccess(objects)  # the map runtime's host API is still exported
    assert [int.from_bytes(maps.lookup("counts", k.to_bytes(4, "little")), "little")
            for k in range(256)] == expected


def test_relinked_ir_keeps_the_map_runtime_of_a_tests_object(tmp_path):
    """tests/maps_prog/tail.o relinked from IR: prog-array tail calls, with the kernel's limit."""
    ir, again = tmp_path / "tail.ll", tmp_path / "tail.o"
    assert cli("link", TAIL, "--emit", "llvm", "-o", ir).returncode == 0
    assert cli("link", ir, "--emit", "llvm", "-o", tmp_path / "twice.ll").returncode == 0
    done = cli("link", tmp_path / "twice.ll", "-o", again)
    assert done.returncode == 0, done.stderr
    objects = loaded(again)
    maps = MapAccess(objects)
    number = {p.name: n for n, p in enumerate(loader.load(str(TAIL)).programs)}
    assert objects.call("dispatch", bytearray((1).to_bytes(4, "little"))) == 111  # empty slot
    maps.update("jumps", (1).to_bytes(4, "little"), number["second"].to_bytes(4, "little"))
    assert objects.call("dispatch", bytearray((1).to_bytes(4, "little"))) == 222
    maps.update("jumps", (3).to_bytes(4, "little"), number["chain"].to_bytes(4, "little"))
    assert objects.call("chain", bytearray(4)) == 34  # once, then MAX_TAIL_CALL_CNT (33)


# -- -v and -q ----------------------------------------------------------------

def test_verbose_prints_the_stages_and_quiet_the_warnings(tmp_path):
    out = tmp_path / "o"
    done = cli("link", CSUM, "-o", out, "-v")
    assert done.returncode == 0, done.stderr
    stages = [line.split(":")[1].split()[0] for line in done.stderr.splitlines()]
    assert stages[:3] == ["read", "load", "lift"] and stages[-1] == "wrote"
    assert {"plan", "optimize", "emit"} <= set(stages)
    assert "plan: 2 call sites: 2 inline, 0 outline, 0 external" in done.stderr
    # --helpers none leaves both helpers external: a warning, unless -q.
    warned = cli("link", CSUM, "-o", out, "--helpers", "none")
    assert warned.returncode == 0 and "helpers left external: 1 (map_lookup_elem), 28" \
        in warned.stderr
    quiet = cli("link", CSUM, "-o", out, "--helpers", "none", "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert_refused(cli("link", CSUM, "-o", out, "-v", "-q"), "not allowed with")
