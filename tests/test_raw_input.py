"""bpftime's input: raw bytecode with relocated map references (`--raw`, `--from-bpftime`).

The raw bytecode is made here, independently of ebpf-lto's loader: a program's
bytes cut from a committed ELF object by its symbol, each map relocation
applied as libbpf applies it for bpftime (lddw src = BPF_PSEUDO_MAP_FD, imm =
the fd this test gives the map). The maps' attributes are the C sources'. The
expectation is `ebpf-lto run` of the ELF of the same program: r0, the packet
or memory after, and every map. The export file has the shape bpftime's
runtime/src/bpftime_shm_json.cpp writes.
"""
import io
import json
import shutil
import struct
import subprocess
import sys

import pytest
from elftools.elf.elffile import ELFFile

from conftest import ROOT, needs_shared, shared_path
from inliner.tools.bench.suite import tcp_packet

BPF_PSEUDO_MAP_FD = 1
LDDW = 0x18
NM = shutil.which("llvm-nm-19") or shutil.which("llvm-nm")

# name: (ELF, program, --type, bpf_prog_type, {map: (type, key, value, entries)}, run input)
PACKETS = ["--packet", tcp_packet(64).hex(), "--packet", tcp_packet(64).hex(),
           "--packet", tcp_packet(200).hex(), "--packet", tcp_packet(64, src="10.0.0.9").hex()]
CASES = {
    "array_counter": ("benchmarks/array_counter.o", "array_counter", "xdp", 6,
                      {"rxcnt": ("array", 4, 8, 256), "size_hist": ("array", 4, 8, 32)},
                      PACKETS),
    "flow_table": ("benchmarks/flow_table.o", "flow_table", "xdp", 6,
                   {"flows": ("hash", 16, 16, 4096)}, PACKETS),
    "count": ("tests/maps_prog/bpftime.o", "count", None, 0,
              {"slots": ("array", 4, 12, 4), "totals": ("hash", 4, 8, 64)},
              ["--mem", struct.pack("<II", 2, 7).hex()]),
}
TYPE_IDS = {"hash": 1, "array": 2}


def fds_for(case: str) -> dict[str, int]:
    """Fds unlike the 3, 4, ... a loader gives by default, so defaults cannot pass."""
    return {name: 20 + 3 * i for i, name in enumerate(sorted(CASES[case][4]))}


def relocated(case: str) -> bytes:
    """The program's instructions with its maps relocated to fds, as bpftime holds them."""
    path, program = ROOT / CASES[case][0], CASES[case][1]
    fds = fds_for(case)
    elf = ELFFile(io.BytesIO(path.read_bytes()))
    sym = next(s for s in elf.get_section_by_name(".symtab").iter_symbols()
               if s.name == program and s["st_info"]["type"] == "STT_FUNC")
    sec = elf.get_section(sym["st_shndx"])
    start, size = sym["st_value"], sym["st_size"]
    code = bytearray(sec.data()[start:start + size])
    rel = elf.get_section_by_name(".rel" + sec.name)
    symtab = elf.get_section(rel["sh_link"])
    patched = 0
    for r in rel.iter_relocations():
        at = r["r_offset"] - start
        if not 0 <= at < size:
            continue
        target = symtab.get_symbol(r["r_info_sym"]).name
        assert code[at] == LDDW, f"{case}: relocation of a non-lddw at {at}"
        code[at + 1] = (code[at + 1] & 0x0F) | BPF_PSEUDO_MAP_FD << 4
        struct.pack_into("<i", code, at + 4, fds[target])   # KeyError: not a map
        patched += 1
    assert patched, f"{case}: no map relocation"
    return bytes(code)


def map_defs(case: str) -> list[str]:
    fds = fds_for(case)
    return [arg for name, (kind, key, value, entries) in CASES[case][4].items()
            for arg in ("--map-def", f"{fds[name]}={kind}:{key}:{value}:{entries}:{name}")]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "inliner.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def ok(*args) -> str:
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_json(*args) -> dict:
    return json.loads(ok("run", *args, "--json", "--ncpus", "1"))


def elf_run(case: str, opt: int) -> dict:
    """The ELF's run; its maps but those the program uses (bpftime.o's per_cpu_hits)
    left out, as the raw program is given only the maps it names."""
    path, program, _, _, maps, inputs = CASES[case]
    got = run_json(ROOT / path, "--program", program, "-O", opt, *inputs)
    got["maps"] = {name: m for name, m in got["maps"].items() if name in maps}
    return got


def raw_args(case: str, tmp_path) -> list:
    _, program, kind, _, _, _ = CASES[case]
    raw = tmp_path / f"{case}.bin"
    raw.write_bytes(relocated(case))
    return ["--raw", raw, "--program", program, *map_defs(case),
            *(["--type", kind] if kind else [])]


def export(case: str, tmp_path, prog_fd: int = 5):
    """A bpftimetool export holding the program, its maps, and things it does not use."""
    _, program, _, type_id, maps, _ = CASES[case]
    fds = fds_for(case)
    code = relocated(case)

    def map_handler(name, kind, key, value, entries):
        return {"type": "bpf_map_handler", "name": name, "attr": {
            "map_type": TYPE_IDS[kind], "key_size": key, "value_size": value,
            "max_entries": entries, "flags": 0, "ifindex": 0, "btf_vmlinux_value_type_id": 0,
            "btf_id": 0, "btf_key_type_id": 0, "btf_value_type_id": 0, "map_extra": 0,
            "kernel_bpf_map_id": 0}}
    state = {str(fds[name]): map_handler(name, *attrs) for name, attrs in maps.items()}
    state["4"] = map_handler("unused", "hash", 8, 8, 16)
    state[str(prog_fd)] = {"type": "bpf_prog_handler", "name": program, "attr": {
        "type": type_id, "insns": code.hex(), "cnt": len(code) // 8}}
    state["6"] = {"type": "bpf_prog_handler", "name": "other", "attr": {
        "type": 0, "insns": "b7000000000000009500000000000000", "cnt": 2}}
    state["7"] = {"type": "bpf_perf_event_handler", "attr": {"type": 6}, "enabled": True}
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state, indent=4))
    return path


@pytest.mark.parametrize("opt", [0, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_raw_runs_as_the_elf(tmp_path, case, opt):
    got = run_json(*raw_args(case, tmp_path), "-O", opt, *CASES[case][5])
    assert got == elf_run(case, opt)


@pytest.mark.parametrize("by", ["name", "fd"])
@pytest.mark.parametrize("case", ["array_counter", "count"])
def test_bpftime_export_runs_as_the_elf(tmp_path, case, by):
    state = export(case, tmp_path)
    program = CASES[case][1] if by == "name" else "5"
    got = run_json("--from-bpftime", state, "--program", program, *CASES[case][5])
    assert got == elf_run(case, 2)


def ir_of(*args) -> list[str]:
    """The module's IR without the lines that name its input file."""
    return [line for line in ok("link", *args, "-o", "-", "--emit", "llvm").splitlines()
            if not line.startswith(("; ModuleID", "source_filename"))]


@pytest.mark.parametrize("case", list(CASES))
def test_bpftime_abi_bakes_the_given_fds(tmp_path, case):
    """With --abi bpftime the raw program is the ELF's linked with --map-fd for
    the same fds: the fds bpftime relocated are the maps' handles."""
    fds = [arg for name, fd in fds_for(case).items() for arg in ("--map-fd", f"{name}={fd}")]
    path, program, kind = CASES[case][:3]
    typed = ["--type", kind] if kind else []
    elf_ir = ir_of(ROOT / path, "--program", program, "--abi", "bpftime", *fds, *typed)
    assert ir_of(*raw_args(case, tmp_path), "--abi", "bpftime") == elf_ir


@pytest.mark.skipif(NM is None, reason="llvm-nm is not installed")
@pytest.mark.parametrize("source", ["raw", "export"])
def test_bpftime_abi_object_needs_only_the_runtime(tmp_path, source):
    out = tmp_path / "prog.aot.o"
    args = (raw_args("flow_table", tmp_path) if source == "raw" else
            ["--from-bpftime", export("flow_table", tmp_path), "--program", "flow_table"])
    ok("link", *args, "--abi", "bpftime", "-o", out)
    undefined = subprocess.run([NM, "-u", "--format=just-symbols", out], capture_output=True,
                               text=True,
                               check=True).stdout.split()
    assert undefined and all(n.startswith("_bpf_helper_ext_") or n == "__lddw_helper_map_val"
                             for n in undefined), undefined


def test_an_unused_map_def_and_the_exports_other_maps_are_left_out(tmp_path):
    raw = tmp_path / "a.bin"
    raw.write_bytes(relocated("flow_table"))
    ir = "\n".join(ir_of("--raw", raw, *map_defs("flow_table"), "--map-def",
                         "3=array:4:4:1:spare", "--type", "xdp"))
    assert '"flows\\00"' in ir and "spare" not in ir
    ir = "\n".join(ir_of("--from-bpftime", export("flow_table", tmp_path), "--program",
                         "flow_table"))
    assert '"flows\\00"' in ir and "unused" not in ir


LLVMBPF = ("peers", "llvmbpf")


@needs_shared(*LLVMBPF)
@pytest.mark.parametrize("case", ["array_counter", "flow_table"])
def test_llvmbpf_loads_the_raw_object_as_the_elfs(tmp_path, case):
    """bpftime's loader (llvmbpf's load_aot_object, in the host that makes the
    maps as bpftime's syscall server does) runs the raw program's object as the
    ELF's, each linked with the fds that host gives the maps."""
    from inliner.tools import llvmbpf
    try:
        host = llvmbpf.Host(llvmbpf.build(shared_path(*LLVMBPF)))
    except llvmbpf.Unavailable as err:
        pytest.skip(f"llvmbpf cannot be built here: {err}")
    path, program = ROOT / CASES[case][0], CASES[case][1]
    given = {name: m["fd"] for name, m in host.list(path)["maps"].items()
             if name in CASES[case][4]}
    # The raw program names the maps by the fds that host gives them.
    raw = bytearray(relocated(case))
    ours = fds_for(case)
    for at in range(0, len(raw), 8):
        if raw[at] == LDDW and raw[at + 1] >> 4 == BPF_PSEUDO_MAP_FD:
            fd = struct.unpack_from("<i", raw, at + 4)[0]
            name = next(n for n, f in ours.items() if f == fd)
            struct.pack_into("<i", raw, at + 4, given[name])
    (tmp_path / "host.bin").write_bytes(raw)
    defs = [arg for name, (kind, key, value, entries) in CASES[case][4].items()
            for arg in ("--map-def", f"{given[name]}={kind}:{key}:{value}:{entries}:{name}")]
    results = []
    for args in (["--raw", tmp_path / "host.bin", *defs, "--type", "xdp"], [path]):
        out = tmp_path / "prog.aot.o"
        ok("link", *args, "--program", program, "--abi", "bpftime", "-o", out)
        got = host.run(path, program, tcp_packet(64), load=out, semantics="kernel")
        results.append((got["r0"], got["data"], got["maps"]))
    assert results[0] == results[1]
    assert any(m.get("entries") for m in results[0][2].values())


def one_line_error(done, *words):
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("ebpf-lto: error:"), done.stderr
    assert all(w in done.stderr for w in words), done.stderr


@pytest.mark.parametrize("drop,words", [("rxcnt", ["fd 20", "no map is given"]),
                                        ("size_hist", ["fd 23"])])
def test_lddw_of_a_map_not_given_is_refused(tmp_path, drop, words):
    args = raw_args("array_counter", tmp_path)
    i = next(i for i, a in enumerate(args) if str(a).endswith(f":{drop}"))
    del args[i - 1:i + 1]
    out = tmp_path / "out.o"
    one_line_error(cli("link", *args, "-o", out), *words)
    assert not out.exists()


@pytest.mark.parametrize("spec,words", [
    ("20=array:4:8", ["FD=TYPE:KEY_SIZE"]),
    ("x=array:4:8:256", ["FD=TYPE:KEY_SIZE"]),
    ("20:array:4:8:256", ["FD=TYPE:KEY_SIZE"]),
    ("20=nosuch:4:8:256", ["unknown map type 'nosuch'"]),
    ("20=array:4:8:-1", ["max entries -1"]),
    ("20=array:4:0x100000000:1", ["value size"]),
    ("-1=array:4:8:256", ["file descriptor"]),
])
def test_bad_map_def_is_refused(tmp_path, spec, words):
    raw = tmp_path / "a.bin"
    raw.write_bytes(relocated("array_counter"))
    out = tmp_path / "out.o"
    one_line_error(cli("link", "--raw", raw, f"--map-def={spec}", "-o", out), *words)
    assert not out.exists()


def test_bad_command_lines_are_refused(tmp_path):
    raw = tmp_path / "a.bin"
    raw.write_bytes(relocated("array_counter"))
    out = tmp_path / "out.o"
    elf = ROOT / CASES["array_counter"][0]
    one_line_error(cli("link", elf, "--raw", raw, "-o", out), "one input")
    one_line_error(cli("link", "-o", out), "one input")
    one_line_error(cli("link", elf, "--map-def", "3=array:4:8:1", "-o", out), "--raw")
    one_line_error(cli("link", "--raw", raw, *map_defs("array_counter"), "--map-def",
                       "20=array:4:8:1", "-o", out), "fd 20 twice")
    (tmp_path / "odd.bin").write_bytes(relocated("array_counter")[:-3])
    one_line_error(cli("link", "--raw", tmp_path / "odd.bin", "-o", out), "multiple of 8")
    assert not out.exists()


def test_bad_exports_are_refused(tmp_path):
    out = tmp_path / "out.o"
    state = export("array_counter", tmp_path)
    one_line_error(cli("link", "--from-bpftime", state, "--program", "nosuch", "-o", out),
                   "no program 'nosuch'", "array_counter (fd 5)")
    one_line_error(cli("link", "--from-bpftime", state, "-o", out), "more than one program")
    data = json.loads(state.read_text())
    data["5"]["attr"]["cnt"] += 1
    state.write_text(json.dumps(data))
    one_line_error(cli("link", "--from-bpftime", state, "--program", "5", "-o", out), "cnt")
    del data["5"]["attr"]["insns"]
    state.write_text(json.dumps(data))
    one_line_error(cli("link", "--from-bpftime", state, "--program", "5", "-o", out),
                   "'insns'")
    state.write_text("{not json")
    one_line_error(cli("link", "--from-bpftime", state, "-o", out), "not a bpftimetool export")
    state.write_text("[]")
    one_line_error(cli("link", "--from-bpftime", state, "-o", out), "not a bpftimetool export")
    assert not out.exists()
