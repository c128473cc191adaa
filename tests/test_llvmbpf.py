"""--abi bpftime objects in bpftime's real loader: llvmbpf's `load_aot_object`.

llvmbpf is built from ../shared/peers/llvmbpf (inliner/tools/llvmbpf.py; the
first session builds it, a few minutes, and later ones find it cached). Its
host (benchmarks/llvmbpf/) loads each benchmark's and example's ELF with
libbpf as bpftime's syscall server does, which makes the maps and gives
them fds, then loads the object `ebpf-lto link --abi bpftime` made, without
--map-fd, through `load_aot_object`, and runs it with bpftime-shaped maps
and helpers (Linux's helper semantics, `--semantics kernel`, which ebpf-lto's
helpers follow). r0, the packet or memory after and every map must be what
`ebpf-lto run`'s machinery gives for the same program and input. llvmbpf's own
IR of each benchmark, linked by ebpf-lto, must give what llvmbpf's own AOT
object gives, both loaded the same way.
"""
import io
import os
import subprocess
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from multiprocessing import get_context

import pytest
from elftools.elf.elffile import ELFFile

from conftest import ROOT, needs_shared, shared_path
from inliner import pipeline
from inliner.elf import loader
from inliner.errors import EbpfLtoError
from inliner.facts import abi, contexts
from inliner.facts.helpers import CONTEXT_HELPERS, MAP_HELPERS
from inliner.run.hostmaps import MapAccess
from inliner.tools import corpus, llvmbpf
from inliner.tools.bench.suite import BENCHMARKS, Benchmark, tcp_packet

LLVMBPF = ("peers", "llvmbpf")
EXAMPLES = (
    Benchmark("ex:csum_count", "../examples/csum_count", "csum_count", lambda: tcp_packet(64)),
    Benchmark("ex:ipv4_csum", "../examples/ipv4_csum", "ipv4_csum",
              lambda: (ROOT / "examples" / "ipv4_header.bin").read_bytes()),
)
CASES = {b.name: b for b in (*BENCHMARKS, *EXAMPLES)}
USES_MAPS = ("array_counter", "flow_table", "katran_lb", "ex:csum_count")


@pytest.fixture(scope="session")
def host() -> llvmbpf.Host:
    try:
        return llvmbpf.Host(llvmbpf.build(shared_path(*LLVMBPF)))
    except llvmbpf.Unavailable as err:
        pytest.skip(f"llvmbpf cannot be built here: {err}")


def elf_path(case: Benchmark):
    return (ROOT / "benchmarks" / f"{case.source}.o").resolve()


@lru_cache(maxsize=None)
def reference(name: str) -> dict:
    """What `ebpf-lto run` gives: the default ABI, its own map runtime, one cpu."""
    case = CASES[name]
    obj = loader.load(str(elf_path(case)))
    loaded, _ = pipeline.load(obj, pipeline.LinkOptions(ncpus=1))
    if case.setup:
        loaded.call(case.setup, None)
    layout = contexts.for_program_type(obj.program(case.program).prog_type)
    r0, after = loaded.call_packet(case.program, layout, case.input)
    return {"r0": r0, "data": after.hex(), "maps": normal(MapAccess(loaded).dump())}


def normal(maps: dict) -> dict:
    return {name: sorted((e["key"], e["value"]) for e in m.get("entries", []))
            for name, m in maps.items()}


def undefined(image: bytes) -> set[str]:
    symtab = ELFFile(io.BytesIO(image)).get_section_by_name(".symtab")
    return {s.name for s in symtab.iter_symbols() if s.name and s["st_shndx"] == "SHN_UNDEF"}


def outside_contract(names: set[str]) -> set[str]:
    """What llvmbpf's load_aot_object would not resolve."""
    return {n for n in names if abi.helper_id(n) is None and n != abi.MAP_VAL}


def link_and_run(host, tmp_path, name: str, inline: str, handle: str = "fd") -> dict:
    case = CASES[name]
    options = pipeline.LinkOptions(abi="bpftime", program=case.program, inline=inline,
                                   map_handle=handle)
    image, _ = pipeline.link(loader.load(str(elf_path(case))), options)
    assert outside_contract(undefined(image)) == set()
    obj = tmp_path / "prog.aot.o"
    obj.write_bytes(image)
    got = host.run(elf_path(case), case.program, case.input, load=obj, setup=case.setup,
                   handle=handle, semantics="kernel")
    return {"r0": got["r0"], "data": got["data"], "maps": normal(got["maps"])}


@needs_shared(*LLVMBPF)
@pytest.mark.parametrize("inline", ["auto", "none"])
@pytest.mark.parametrize("name", list(CASES))
def test_loads_in_llvmbpf_and_agrees_with_ebpf_lto_run(host, tmp_path, name, inline):
    assert link_and_run(host, tmp_path, name, inline) == reference(name)


@needs_shared(*LLVMBPF)
@pytest.mark.parametrize("name", USES_MAPS)
def test_older_bpftimes_shifted_handles(host, tmp_path, name):
    assert link_and_run(host, tmp_path, name, "auto", handle="shifted") == reference(name)


@needs_shared(*LLVMBPF)
def test_a_mismatched_handle_misses_the_maps(host, tmp_path):
    """The test can fail: an object baked for one convention, run by a runtime of
    the other, finds no map (its ARRAY base is NULL), and the counters stay 0."""
    case = CASES["array_counter"]
    options = pipeline.LinkOptions(abi="bpftime", program=case.program, map_handle="shifted")
    obj = tmp_path / "prog.aot.o"
    obj.write_bytes(pipeline.link(loader.load(str(elf_path(case))), options)[0])
    got = host.run(elf_path(case), case.program, case.input, load=obj, handle="fd",
                   semantics="kernel")
    assert normal(got["maps"]) != reference("array_counter")["maps"]


@needs_shared(*LLVMBPF)
@pytest.mark.parametrize("path", sorted({*(elf_path(c) for c in CASES.values()),
                                         *ROOT.glob("tests/maps_prog/*.o")}), ids=str)
def test_default_fds_are_the_ones_bpftimes_loader_gives(host, path):
    """libbpf, answered as bpftime's syscall server answers it, gives the fds; the
    data sections' maps (.bss, ...), which the object keeps, come after."""
    given = {name: m["fd"] for name, m in host.list(path)["maps"].items()}
    ours = abi.default_map_fds(loader.load(str(path)).maps)
    assert ours == {name: fd for name, fd in given.items() if name in ours}
    assert all(fd > max(ours.values(), default=0) for name, fd in given.items()
               if name not in ours)


def llvmbpf_ctx(case: Benchmark) -> str | None:
    """The host's --ctx for code from llvmbpf's IR: an xdp program's bytecode reads the
    kernel's struct xdp_md, which llvmbpf does not rewrite (docs/abi.md)."""
    prog = loader.load(str(elf_path(case))).program(case.program)
    return "xdp-kernel" if prog.prog_type == "xdp" else None


def comparable(result: dict) -> dict:
    return {"r0": result["r0"], "data": result["data"], "maps": normal(result["maps"])}


@needs_shared(*LLVMBPF)
@pytest.mark.parametrize("abi_name", abi.ABIS)
@pytest.mark.parametrize("name", [b.name for b in BENCHMARKS])
def test_llvmbpfs_own_ir_linked_by_ebpf_lto_agrees_with_llvmbpfs_object(host, tmp_path, name,
                                                                         abi_name):
    """llvmbpf's IR (`bpftime-aot compile -e`), linked with --abi bpftime, loads
    through load_aot_object and gives what llvmbpf's own AOT object gives. Its map
    helpers stay the runtime's calls under llvmbpf's handles (the fd); helpers
    without maps or context (csum_diff) are spliced in."""
    case = CASES[name]
    ir, theirs, ours = tmp_path / "prog.ll", tmp_path / "llvmbpf.o", tmp_path / "ebpf-lto.o"
    common = {"setup": case.setup, "semantics": "kernel", "ctx": llvmbpf_ctx(case)}
    host.run(elf_path(case), case.program, case.input, engine="aot", emit_llvm=ir,
             emit_obj=theirs, **common)
    image, linked = pipeline.link_ir(ir.read_bytes(), ir.name,
                                     pipeline.LinkOptions(abi=abi_name))
    assert outside_contract(undefined(image)) == set()
    assert set(linked.external_helpers) <= MAP_HELPERS | CONTEXT_HELPERS
    ours.write_bytes(image)
    expected = host.run(elf_path(case), case.program, case.input, load=theirs, **common)
    got = host.run(elf_path(case), case.program, case.input, load=ours, **common)
    assert comparable(got) == comparable(expected)


def bpftime_outside(path: str) -> list[str] | None:
    """What an --abi bpftime object of `path` needs beyond the loader (None: refused,
    which tests/test_corpus.py covers)."""
    try:
        image, _ = pipeline.link(loader.load(path), pipeline.LinkOptions(abi="bpftime"))
    except EbpfLtoError:
        return None
    return sorted(outside_contract(undefined(image)))


@needs_shared("ebpf-samples")
def test_corpus_objects_reference_only_what_the_loader_defines():
    """llvm-nm -u of every --abi bpftime object ebpf-lto links from the shared corpus,
    linked on every cpu (a few objects take 20 s each)."""
    root = shared_path("ebpf-samples")
    paths = corpus.find_objects(root)
    with ProcessPoolExecutor(os.cpu_count(), mp_context=get_context("spawn")) as pool:
        results = dict(zip(paths, pool.map(bpftime_outside, map(str, paths))))
    linked = [p for p, names in results.items() if names is not None]
    assert {str(p.relative_to(root)): results[p] for p in linked if results[p]} == {}
    assert len(linked) >= 100      # 125 of 144 when this was written


def test_build_says_why_it_cannot(tmp_path):
    """Where llvmbpf cannot be built the tests skip with this reason."""
    with pytest.raises(llvmbpf.Unavailable, match="no llvmbpf source at"):
        llvmbpf.build(tmp_path)


@needs_shared(*LLVMBPF)
@pytest.mark.parametrize("args,words", [(["--elf", "/nonexistent.o"], "cannot open"),
                                        (["--elf", "x.o", "--handle", "ptr"], "--handle"),
                                        (["--frob"], "unknown option")])
def test_the_host_refuses_in_one_line(host, args, words):
    done = subprocess.run([host.path, *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert words in done.stderr
