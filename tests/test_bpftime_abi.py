"""--abi bpftime: the object follows bpftime's AOT contract for maps.

tests/maps_prog/bpftime.c is linked with --abi bpftime; then the system's
linker puts the object and a small C host into one shared library. The host
plays bpftime's runtime: it owns the maps' storage, decodes map handles as
bpftime does (the fd itself, or `fd << 32 | 0xffffffff` with `--map-handle
shifted`) and logs every call the program makes into it. The expectations
come from that host's storage and logs, not from ebpf-lto's own map runtime.
(tests/test_llvmbpf.py loads objects through bpftime's real loader.)
"""
import ctypes
import shutil
import subprocess
import sys

import pytest
from elftools.elf.elffile import ELFFile

from conftest import ROOT
from inliner import pipeline
from inliner.elf import loader
from inliner.tools import asm
from inliner.elf.model import Ref
from inliner.facts import abi
from inliner.facts.abi import FAULT
from inliner.facts.maps import MapDef

PROG = ROOT / "tests" / "maps_prog" / "bpftime.o"
FDS = {"slots": 11, "totals": 12, "per_cpu_hits": 13}
NOT_FOUND = 0xDEAD
SLOT_SIZE, SLOTS = 12, 4          # struct slot and max_entries in bpftime.c
RUNTIME = {"__lddw_helper_map_val", "_bpf_helper_ext_0001", "_bpf_helper_ext_0002"}
PROGRAMS = {"bpf_main", "count", "per_cpu", "checksum"}
CC = shutil.which("clang-19") or shutil.which("clang")

HOST = r"""
#include <errno.h>
#include <stdint.h>
#include <string.h>

/* What map_ptr_by_fd made of the fd: the fd itself, or fd << 32 | 0xffffffff. */
#define FD(handle) ((uint32_t)(SHIFTED ? (handle) >> 32 : (handle)))
#define LOG 256

uint8_t host_slots[SLOTS * SLOT_SIZE];   /* the ARRAY's storage, values SLOT_SIZE apart */
uint64_t host_per_cpu[2];
struct total { uint32_t used, key; uint64_t value; } host_totals[64];
/* The fd of each call the program made, by function. */
uint32_t map_val_log[LOG], lookup_log[LOG], update_log[LOG];
uint32_t map_val_n, lookup_n, update_n;
uint64_t bad_handles;  /* handles not of the convention: its low half not all ones */

void host_reset(void)
{
	memset(host_slots, 0, sizeof host_slots);
	memset(host_per_cpu, 0, sizeof host_per_cpu);
	memset(host_totals, 0, sizeof host_totals);
	map_val_n = lookup_n = update_n = 0;
	bad_handles = 0;
}

static void note(uint32_t *log, uint32_t *n, uint64_t handle)
{
	if (SHIFTED ? (uint32_t)handle != 0xffffffffu : handle >> 32)
		bad_handles++;
	if (*n < LOG)
		log[(*n)++] = FD(handle);
}

uint64_t __lddw_helper_map_val(uint64_t map)
{
	note(map_val_log, &map_val_n, map);
	return FD(map) == SLOTS_FD ? (uint64_t)host_slots : 0;
}

static struct total *find(uint32_t key, int add)
{
	for (int i = 0; i < 64; i++)
		if (host_totals[i].used && host_totals[i].key == key)
			return &host_totals[i];
	for (int i = 0; add && i < 64; i++)
		if (!host_totals[i].used) {
			host_totals[i].used = 1;
			host_totals[i].key = key;
			return &host_totals[i];
		}
	return 0;
}

uint64_t _bpf_helper_ext_0001(uint64_t map, uint64_t key, uint64_t r3, uint64_t r4, uint64_t r5)
{
	uint32_t k = *(uint32_t *)key;
	note(lookup_log, &lookup_n, map);
	if (FD(map) == TOTALS_FD) {
		struct total *t = find(k, 0);
		return t ? (uint64_t)&t->value : 0;
	}
	if (FD(map) == PER_CPU_FD)
		return k < 2 ? (uint64_t)&host_per_cpu[k] : 0;
	return 0;
}

uint64_t _bpf_helper_ext_0002(uint64_t map, uint64_t key, uint64_t value, uint64_t flags,
			      uint64_t r5)
{
	note(update_log, &update_n, map);
	if (FD(map) != TOTALS_FD)
		return -EINVAL;
	struct total *t = find(*(uint32_t *)key, 1);
	if (!t)
		return -E2BIG;
	memcpy(&t->value, (void *)value, sizeof t->value);
	return 0;
}
"""


def link(emit: str = "obj", **options) -> tuple[bytes, pipeline.Linked]:
    opts = {"abi": "bpftime", "map_fds": FDS, **options}
    return pipeline.link(loader.load(str(PROG)), pipeline.LinkOptions(**opts), emit)


def symbols(image: bytes, tmp_path) -> tuple[set[str], set[str]]:
    """The object's undefined symbols and the global symbols it defines."""
    path = tmp_path / "prog.o"
    path.write_bytes(image)
    with open(path, "rb") as fh:
        syms = [s for s in ELFFile(fh).get_section_by_name(".symtab").iter_symbols()
                if s["st_info"]["bind"] != "STB_LOCAL" and s.name]
    return ({s.name for s in syms if s["st_shndx"] == "SHN_UNDEF"},
            {s.name for s in syms if s["st_shndx"] != "SHN_UNDEF"})


class Host:
    """The linked object and the C host in one shared library."""

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib
        lib.host_reset()

    def run(self, program: str, key: int, flow: int = 0) -> int:
        fn = getattr(self.lib, program)
        fn.restype, fn.argtypes = ctypes.c_uint64, [ctypes.c_void_p, ctypes.c_uint64]
        args = (ctypes.c_uint32 * 2)(key, flow)
        return fn(ctypes.addressof(args), ctypes.sizeof(args))

    def slot(self, index: int) -> tuple[int, int, int]:
        raw = bytes((ctypes.c_uint8 * (SLOTS * SLOT_SIZE)).in_dll(self.lib, "host_slots"))
        part = raw[index * SLOT_SIZE:(index + 1) * SLOT_SIZE]
        return tuple(int.from_bytes(part[i:i + 4], "little") for i in range(0, SLOT_SIZE, 4))

    def log(self, name: str) -> list[int]:
        n = ctypes.c_uint32.in_dll(self.lib, f"{name}_n").value
        return list((ctypes.c_uint32 * 256).in_dll(self.lib, f"{name}_log")[:n])

    def bad_handles(self) -> int:
        return ctypes.c_uint64.in_dll(self.lib, "bad_handles").value

    def per_cpu(self, index: int) -> int:
        return (ctypes.c_uint64 * 2).in_dll(self.lib, "host_per_cpu")[index]


@pytest.fixture(scope="module", params=[(0, "fd"), (2, "fd"), (2, "shifted")],
                ids=["O0", "O2", "O2-shifted"])
def built(request, tmp_path_factory):
    if CC is None:
        pytest.skip("no clang to build the host")
    opt_level, handle = request.param
    tmp = tmp_path_factory.mktemp(f"bpftime_O{opt_level}_{handle}")
    image, _ = link(opt_level=opt_level, map_handle=handle)
    (tmp / "prog.o").write_bytes(image)
    (tmp / "host.c").write_text(HOST)
    defines = [f"-D{name}={value}" for name, value in
               (("SLOTS", SLOTS), ("SLOT_SIZE", SLOT_SIZE), ("SHIFTED", int(handle == "shifted")),
                ("SLOTS_FD", FDS["slots"]),
                ("TOTALS_FD", FDS["totals"]), ("PER_CPU_FD", FDS["per_cpu_hits"]))]
    lib = tmp / "libhost.so"
    subprocess.run([CC, "-shared", "-fPIC", "-O1", *defines, "-o", lib, tmp / "host.c",
                    tmp / "prog.o"], check=True, capture_output=True)
    return ctypes.CDLL(str(lib))


@pytest.fixture
def host(built):
    return Host(built)


def test_array_lookup_is_the_runtimes_storage_at_key_times_value_size(host):
    assert [host.run("count", key=2, flow=7) for _ in range(3)] == [1, 2, 3]
    assert host.slot(2) == (3, 2, 0x5A5A5A5A)   # hits, last_key, marker
    assert [host.slot(i) for i in (0, 1, 3)] == [(0, 0, 0)] * 3
    host.run("count", key=3, flow=7)             # the last element ends the storage
    assert host.slot(3) == (1, 3, 0x5A5A5A5A)
    # The array site never called the runtime's lookup: every helper-1 call was the hash's.
    assert host.log("lookup") == [FDS["totals"]] * 4
    assert set(host.log("map_val")) == {FDS["slots"]}
    assert host.log("update") == [FDS["totals"]]
    assert host.bad_handles() == 0


@pytest.mark.parametrize("key", [SLOTS, SLOTS + 1, 0xFFFFFFFF])
def test_out_of_range_key_gives_null(host, key):
    assert host.run("count", key=key, flow=7) == NOT_FOUND
    assert [host.slot(i) for i in range(SLOTS)] == [(0, 0, 0)] * SLOTS
    assert host.log("lookup") == [] and host.log("update") == []


def test_per_cpu_array_lookup_stays_the_runtimes_call(host):
    assert [host.run("per_cpu", key=1) for _ in range(2)] == [1, 2]
    assert host.per_cpu(1) == 2 and host.per_cpu(0) == 0
    assert host.run("per_cpu", key=2) == NOT_FOUND
    assert host.log("lookup") == [FDS["per_cpu_hits"]] * 3
    assert host.log("map_val") == []


def test_object_needs_only_the_runtime_and_defines_only_the_programs(tmp_path):
    image, _ = link()
    undefined, defined = symbols(image, tmp_path)
    assert undefined == RUNTIME      # no map runtime, no ebpf_lto_* tables or state
    assert defined == PROGRAMS | {FAULT}   # and the fault record (docs/safety.md)
    # Helpers without maps follow --inline as ever: csum_diff is linked in above, not here.
    undefined, _ = symbols(link(inline="none")[0], tmp_path)
    assert undefined == RUNTIME | {"_bpf_helper_ext_0028"}


def test_the_array_site_is_no_call_in_the_ir():
    ir, _ = link(program="count", opt_level=0, emit="llvm")
    calls = [line for line in ir.decode().splitlines() if "call" in line]
    assert sum("@_bpf_helper_ext_0001(" in line for line in calls) == 1   # the hash's
    assert any("@__lddw_helper_map_val(" in line for line in calls)


def test_map_helpers_stay_external_whatever_inlining_says():
    _, linked = link(inline="all", force_inline=("map_lookup_elem", "map_update_elem"))
    by_site = {(d.site.function, d.site.insn): d for d in linked.decisions}
    array = by_site[("count", 8)]
    assert (array.action, array.site.call) == ("inline", None)
    assert "ARRAY slots" in array.reason and "* 12" in array.reason
    for site in (("count", 23), ("count", 39), ("per_cpu", 48)):
        assert by_site[site].action == "external"
        assert "--abi bpftime" in by_site[site].reason
    assert by_site[("checksum", 61)].action == "inline"   # csum_diff: not a map helper


def test_the_data_flow_follows_a_map_through_spills_and_moves_but_not_joins():
    code = asm.assemble_bytes("""
        lddw %r1, 0                 # slot 0: the array
        stxdw [%r10-16], %r1
        mov %r1, 0
        stw [%r10-4], 1
        mov %r2, %r10
        add %r2, -4
        ldxdw %r6, [%r10-16]
        mov %r1, %r6
        call 1                      # slot 9: still the array
        lddw %r1, 0                 # slot 10: the array
        jeq %r0, 0, +2
        lddw %r1, 0                 # slot 13: the hash
        mov %r2, %r10
        add %r2, -4
        call 1                      # slot 17: the array or the hash
        exit
    """)
    obj = loader.from_raw(code, "prog")
    obj.maps = {"arr": MapDef("arr", 2, 4, 8, 16), "hash": MapDef("hash", 1, 4, 8, 16)}
    obj.refs.update({("raw", 0): Ref("map", "arr"), ("raw", 10): Ref("map", "arr"),
                     ("raw", 13): Ref("map", "hash")})
    options = pipeline.LinkOptions(abi="bpftime", map_fds={"arr": 3, "hash": 4})
    sites = {s.insn: s for s in pipeline.lift(obj, options, pipeline.helper_set(options)).sites}
    assert "ARRAY arr" in sites[9].lowered and sites[9].call is None
    assert not sites[17].lowered and sites[17].call is not None


def cli(*args):
    return subprocess.run([sys.executable, "-m", "inliner.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def fd_args(**fds):
    return [arg for name, fd in fds.items() for arg in ("--map-fd", f"{name}={fd}")]


def test_explain_shows_why():
    done = cli("explain", PROG, "--abi", "bpftime", *fd_args(**FDS))
    assert done.returncode == 0, done.stderr
    assert "the runtime owns the maps (--abi bpftime)" in done.stdout
    assert "ARRAY slots" in done.stdout


@pytest.mark.parametrize("args,words", [
    (["--abi", "bpftime", *fd_args(slots=11, totals=12, per_cpu_hits=11)],
     ["slots", "per_cpu_hits", "both have fd 11"]),
    (["--abi", "bpftime", *fd_args(slots=4)], ["both have fd 4"]),   # a default's fd
    (["--map-handle", "fd"], ["--abi bpftime"]),
    (["--abi", "bpftime", "--map-handle", "pointer"], ["--map-handle", "pointer"]),
    (["--abi", "bpftime", *fd_args(**FDS, nosuch=4)], ["nosuch", "not a map"]),
    (["--abi", "bpftime", "--map-fd", "slots", *fd_args(totals=12, per_cpu_hits=13)],
     ["NAME=FD"]),
    (["--abi", "bpftime", *fd_args(**FDS), "--map-fd", "slots=-1"], ["twice"]),
    (["--abi", "bpftime", *fd_args(slots=-1, totals=12, per_cpu_hits=13)], ["slots=-1"]),
    (fd_args(**FDS), ["--abi bpftime"]),
    (["--abi", "bpftime", "--maps", "extern", *fd_args(**FDS)], ["--maps extern"]),
])
def test_link_refuses_in_one_line(tmp_path, args, words):
    out = tmp_path / "prog.aot.o"
    done = cli("link", PROG, "-o", out, *args)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert all(word in done.stderr for word in words), done.stderr
    assert not out.exists()


def test_run_refuses_the_bpftime_abi():
    done = cli("run", PROG, "--abi", "bpftime", *fd_args(**FDS), "--mem", "00" * 8)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "bpftime's runtime" in done.stderr


def test_default_fds_are_libbpfs_order_from_3():
    """libbpf creates BTF maps in the order of their offsets in .maps (read here
    from the ELF's symbols), and bpftime gives each the lowest free fd."""
    with open(PROG, "rb") as fh:
        elf = ELFFile(fh)
        index = next(i for i, sec in enumerate(elf.iter_sections()) if sec.name == ".maps")
        order = [s.name for s in sorted(
            (s for s in elf.get_section_by_name(".symtab").iter_symbols()
             if s["st_shndx"] == index and s.name), key=lambda s: s["st_value"])]
    assert abi.default_map_fds(loader.load(str(PROG)).maps) == {
        name: 3 + i for i, name in enumerate(order)}


def test_default_fds_skip_a_map_in_maps_inner_map():
    # libbpf creates the inner map just before its outer map and closes it after.
    maps = {"a": MapDef("a", 2, 4, 8, 1), "tmpl": MapDef("tmpl", 2, 4, 8, 1),
            "outer": MapDef("outer", 12, 4, 4, 1, inner="tmpl"), "b": MapDef("b", 2, 4, 8, 1)}
    assert abi.default_map_fds(maps) == {"a": 3, "outer": 5, "b": 4}


@pytest.mark.parametrize("handle,expected", [(None, 3), ("fd", 3), ("shifted", 3 << 32 | 0xFFFFFFFF)])
def test_lddw_of_a_map_is_the_handle_as_a_constant(handle, expected):
    code = asm.assemble_bytes("lddw %r0, 0\nexit")
    obj = loader.from_raw(code, "prog")
    obj.maps = {"m": MapDef("m", 1, 4, 8, 16)}
    obj.refs[("raw", 0)] = Ref("map", "m")
    options = pipeline.LinkOptions(abi="bpftime", map_handle=handle)
    ir_text = pipeline.link(obj, options, "llvm")[0].decode()
    assert "__lddw_helper" not in ir_text.replace("__lddw_helper_map_val", "")
    assert f"ret i64 {expected}" in ir_text


def test_helpers_that_need_the_c_library_stay_the_runtimes(tmp_path):
    """ktime_get_ns (5) and get_current_pid_tgid (14) call clock_gettime and getpid in
    the helper library; bpftime's loader gives no C library, so they stay calls."""
    obj = loader.from_raw(asm.assemble_bytes("call 5\nmov %r6, %r0\ncall 14\nadd %r0, %r6\n"
                                             "exit"), "prog")
    image, linked = pipeline.link(obj, pipeline.LinkOptions(abi="bpftime", inline="all"))
    undefined, _ = symbols(image, tmp_path)
    assert undefined == {"_bpf_helper_ext_0005", "_bpf_helper_ext_0014"}
    assert all(d.action == "external" and "C library" in d.reason for d in linked.decisions)
    # The default ABI's host has one: the same helpers are spliced in.
    image, _ = pipeline.link(obj, pipeline.LinkOptions(inline="all"))
    assert not any(name.startswith("_bpf_helper_ext_") for name in symbols(image, tmp_path)[0])


# ---- LLVM IR from another lifter: its map handles are not ebpf-lto's descriptors ----

FOREIGN = ROOT / "tests" / "fixtures" / "ir" / "foreign_maps.ll"
GCC = shutil.which("gcc")

# A host as bpftime's tools/aot/README.md builds one for `bpftime-aot build`'s
# objects: a C program that defines the helpers and __lddw_helper_map_by_fd
# and is linked with the object into one executable. A map's handle is its fd.
FOREIGN_HOST = r"""
#include <stdint.h>
#include <stdio.h>

uint64_t bpf_main(void *ctx, uint64_t size);
uint64_t maps[8];                 /* key 0 of the map whose fd is the index */
unsigned by_fd_calls, adjust_calls, bad_handles;

uint64_t __lddw_helper_map_by_fd(uint32_t fd) { by_fd_calls++; return fd; }

uint64_t _bpf_helper_ext_0001(uint64_t map, uint64_t key, uint64_t r3, uint64_t r4, uint64_t r5)
{
	if (map != 3 && map != 4) {
		bad_handles++;
		return 0;
	}
	return *(uint32_t *)key == 0 ? (uint64_t)&maps[map] : 0;
}

uint64_t _bpf_helper_ext_0044(uint64_t ctx, uint64_t off, uint64_t r3, uint64_t r4, uint64_t r5)
{
	adjust_calls++;
	return 0;
}

int main(void)
{
	uint8_t mem[4] = { 1, 2, 3, 4 };
	uint64_t r0 = 0;
	for (int i = 0; i < RUNS; i++)
		r0 = bpf_main(mem, sizeof mem);
	printf("%llu %llu %llu %u %u %u\n", (unsigned long long)r0, (unsigned long long)maps[3],
	       (unsigned long long)maps[4], by_fd_calls, adjust_calls, bad_handles);
	return 0;
}
"""


def host_executable(tmp_path, source: str, image: bytes, *defines: str) -> list[int]:
    """Link the object with the C host into one executable, as bpftime's README
    does, run it, and return the numbers it prints."""
    if GCC is None:
        pytest.skip("no gcc to link the host with the object")
    (tmp_path / "prog.o").write_bytes(image)
    (tmp_path / "main.c").write_text(source)
    exe = tmp_path / "host"
    subprocess.run([GCC, "-O1", *(f"-D{d}" for d in defines), "-o", exe, tmp_path / "main.c",
                    tmp_path / "prog.o"], check=True, capture_output=True)
    done = subprocess.run([exe], capture_output=True, text=True, timeout=30, check=True)
    return [int(word) for word in done.stdout.split()]


def local_functions(image: bytes, tmp_path) -> set[str]:
    path = tmp_path / "local.o"
    path.write_bytes(image)
    with open(path, "rb") as fh:
        return {s.name for s in ELFFile(fh).get_section_by_name(".symtab").iter_symbols()
                if s["st_info"]["bind"] == "STB_LOCAL" and s["st_info"]["type"] == "STT_FUNC"}


@pytest.mark.parametrize("abi_name", ["ebpf-lto", "bpftime"])
def test_foreign_ir_keeps_its_map_helpers_external(tmp_path, abi_name):
    """Linked with ebpf-lto's map runtime, the lookups would take handles 3 and 4 for
    descriptors' addresses and LLVM would drop the counting; kept external, the
    host's own maps count every run. csum_diff, which takes no map, is spliced in
    (the RFC 1071 sum of 01 02 03 04: 0x0201 + 0x0403); xdp_adjust_head takes the
    lifter's context, whose layout is not ebpf-lto's, so it stays the host's."""
    image, linked = pipeline.link_ir(FOREIGN.read_bytes(), FOREIGN.name,
                                     pipeline.LinkOptions(abi=abi_name))
    undefined, defined = symbols(image, tmp_path)
    assert undefined == {"__lddw_helper_map_by_fd", "_bpf_helper_ext_0001",
                         "_bpf_helper_ext_0044"}
    assert defined == {"bpf_main"}
    assert local_functions(image, tmp_path) <= set(abi.MEMFUNCS)   # no map runtime
    assert linked.external_helpers == [1, 44]
    r0, map3, map4, by_fd, adjusted, bad = host_executable(tmp_path, FOREIGN_HOST, image,
                                                           "RUNS=3")
    assert (r0, map3, map4, adjusted, bad) == (0x0604, 3, 3, 3, 0)
    assert by_fd >= 1


def test_foreign_ir_refuses_forcing_the_map_runtime(tmp_path):
    out = tmp_path / "prog.o"
    for name in ("map_lookup_elem", "bpf_map_update_elem", "1"):
        done = cli("link", FOREIGN, "-o", out, "--force-inline", name)
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
        assert "not ebpf-lto's map descriptors" in done.stderr
        assert not out.exists()


def test_ebpf_ltos_own_ir_keeps_its_map_runtime(tmp_path):
    """Read back, ebpf-lto's IR (it exports the map table) links its map runtime
    again, and refuses --abi bpftime, whose runtime would get descriptors."""
    ir_path, out = tmp_path / "own.ll", tmp_path / "own.o"
    assert cli("link", PROG, "-o", ir_path, "--emit", "llvm").returncode == 0
    image, linked = pipeline.link_ir(ir_path.read_bytes(), "own.ll", pipeline.LinkOptions())
    assert linked.external_helpers == []
    assert abi.MAP_TABLE in symbols(image, tmp_path)[1]
    done = cli("link", ir_path, "-o", out, "--abi", "bpftime")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert abi.MAP_TABLE in done.stderr and not out.exists()


# ---- bpftime-aot build's contract: --map-handle by-fd ----

# The host of tools/aot/README.md in eunomia-bpf/bpftime, for tests/maps_prog's
# count: it defines the helpers and __lddw_helper_map_by_fd, whose answer (here
# the address of the host's map, no fd) is the handle the helpers get back.
BUILD_HOST = r"""
#include <stdint.h>
#include <stdio.h>
#include <string.h>

uint64_t bpf_main(void *ctx, uint64_t size);

struct map { uint32_t fd, value_size, max_entries, n; uint32_t keys[64]; uint8_t data[64 * 16]; };
struct map maps[2] = { { SLOTS_FD, SLOT_SIZE, SLOTS }, { TOTALS_FD, 8, 64 } };
uint32_t by_fd_log[64], by_fd_n, bad_handles;

uint64_t __lddw_helper_map_by_fd(uint32_t fd)
{
	if (by_fd_n < 64)
		by_fd_log[by_fd_n++] = fd;
	for (int i = 0; i < 2; i++)
		if (maps[i].fd == fd)
			return (uint64_t)&maps[i];
	return 0;
}

static struct map *of(uint64_t handle)
{
	for (int i = 0; i < 2; i++)
		if (handle == (uint64_t)&maps[i])
			return &maps[i];
	bad_handles++;
	return 0;
}

/* The slot of key k: an ARRAY's index, a HASH's (here a list's) entry. */
static uint8_t *value(struct map *m, uint32_t k, int add)
{
	if (m->fd == SLOTS_FD)
		return k < m->max_entries ? m->data + k * m->value_size : 0;
	for (uint32_t i = 0; i < m->n; i++)
		if (m->keys[i] == k)
			return m->data + i * m->value_size;
	if (!add || m->n == m->max_entries)
		return 0;
	m->keys[m->n] = k;
	return m->data + m->n++ * m->value_size;
}

uint64_t _bpf_helper_ext_0001(uint64_t map, uint64_t key, uint64_t r3, uint64_t r4, uint64_t r5)
{
	struct map *m = of(map);
	return m ? (uint64_t)value(m, *(uint32_t *)key, 0) : 0;
}

uint64_t _bpf_helper_ext_0002(uint64_t map, uint64_t key, uint64_t val, uint64_t flags,
			      uint64_t r5)
{
	struct map *m = of(map);
	uint8_t *v = m ? value(m, *(uint32_t *)key, 1) : 0;
	if (!v)
		return -1;
	memcpy(v, (void *)val, m->value_size);
	return 0;
}

int main(void)
{
	uint32_t args[2] = { 2, 7 };   /* struct args: key, flow */
	for (int i = 0; i < 3; i++)
		printf("%llu ", (unsigned long long)bpf_main(args, sizeof args));
	uint32_t slot[3];
	memcpy(slot, maps[0].data + 2 * SLOT_SIZE, sizeof slot);
	printf("%u %u %u %u", slot[0], slot[1], slot[2], bad_handles);
	for (uint32_t i = 0; i < by_fd_n; i++)
		printf(" %u", by_fd_log[i]);
	printf("\n");
	return 0;
}
"""


@pytest.mark.parametrize("opt_level", [0, 2])
def test_build_contract_leaves_map_by_fd_to_the_host(tmp_path, opt_level):
    """--map-handle by-fd: lddw of a map is a call to the host's map_by_fd with the
    map's fd, the ARRAY lookup too stays a helper call (such a host has no map_val),
    and the object links with the README's host into one program that counts."""
    image, linked = link(program="count", map_handle="by-fd", opt_level=opt_level)
    undefined, defined = symbols(image, tmp_path)
    assert undefined == {abi.MAP_BY_FD, "_bpf_helper_ext_0001", "_bpf_helper_ext_0002"}
    assert {"bpf_main", "count"} <= defined
    assert all(d.action == "external" for d in linked.decisions if d.site.helper_id == 1)
    out = host_executable(tmp_path, BUILD_HOST, image, f"SLOTS={SLOTS}",
                          f"SLOT_SIZE={SLOT_SIZE}", f"SLOTS_FD={FDS['slots']}",
                          f"TOTALS_FD={FDS['totals']}")
    r0s, slot, bad, fds = out[:3], out[3:6], out[6], out[7:]
    assert r0s == [1, 2, 3]
    assert slot == [3, 2, 0x5A5A5A5A] and bad == 0
    assert set(fds) == {FDS["slots"], FDS["totals"]}
