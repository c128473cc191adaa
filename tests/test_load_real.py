"""What real toolchains and loaders produce loads: program types by libbpf's section
names and the loaders' conventions, kernel-only map attributes, EM_NONE objects,
calls to the C library, and objects with one bad part (tests/fixtures/load)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, needs_shared, shared_path
from inliner import pipeline
from inliner.elf import loader
from inliner.elf.model import Ref
from inliner.errors import EbpfLtoError
from inliner.facts import maps, progtypes
from test_fuzz_inputs import EH_FIELDS, SHT_REL, elf_sections, put, table_entries

FIXTURES = ROOT / "tests" / "fixtures" / "load"
SECTIONS, KERNEL_MAPS, LIBC = (FIXTURES / f for f in ("sections.o", "kernel_maps.o",
                                                      "libc_calls.o"))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "inliner.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


# libbpf's "Program Types and ELF Sections" table (Documentation/bpf/libbpf/
# program_types.rst), the kernel's BPF_PROG_TYPE_* in lower case.
LIBBPF_DOCUMENTED = [
    ("xdp", "xdp"), ("xdp.frags", "xdp"), ("xdp/devmap", "xdp"), ("xdp.frags/cpumap", "xdp"),
    ("tc", "sched_cls"), ("classifier", "sched_cls"), ("tcx/ingress", "sched_cls"),
    ("tcx/egress", "sched_cls"), ("action", "sched_act"), ("socket", "socket_filter"),
    ("sk_skb", "sk_skb"), ("sk_skb/stream_parser", "sk_skb"), ("sk_skb/stream_verdict", "sk_skb"),
    ("sk_msg", "sk_msg"), ("kprobe/do_unlinkat", "kprobe"), ("kretprobe/do_unlinkat", "kprobe"),
    ("uprobe//bin/bash:readline", "kprobe"), ("usdt/libc.so.6:libc:setjmp", "kprobe"),
    ("ksyscall/execve", "kprobe"), ("tracepoint/syscalls/sys_enter_openat", "tracepoint"),
    ("tp/sched/sched_switch", "tracepoint"), ("raw_tracepoint/sched_switch", "raw_tracepoint"),
    ("raw_tp/sched_switch", "raw_tracepoint"), ("perf_event", "perf_event"),
    ("cgroup_skb/ingress", "cgroup_skb"), ("cgroup_skb/egress", "cgroup_skb"),
    ("cgroup/skb", "cgroup_skb"), ("cgroup/sock_create", "cgroup_sock"),
    ("cgroup/connect4", "cgroup_sock_addr"), ("cgroup/dev", "cgroup_device"),
    ("cgroup/sysctl", "cgroup_sysctl"), ("cgroup/getsockopt", "cgroup_sockopt"),
    ("lwt_in", "lwt"), ("lwt_out", "lwt"), ("lwt_xmit", "lwt"), ("lwt_seg6local", "lwt"),
    ("sockops", "sock_ops"), ("flow_dissector", "flow_dissector"),
    ("sk_reuseport", "sk_reuseport"), ("sk_lookup", "sk_lookup"),
    ("fentry/tcp_connect", "tracing"), ("fexit/tcp_connect", "tracing"),
    ("tp_btf/sched_switch", "tracing"), ("iter/task", "tracing"), ("lsm/file_open", "lsm"),
    ("struct_ops/dctcp_init", "struct_ops"), ("syscall", "syscall"),
    ("lirc_mode2", "lirc_mode2"), ("freplace/handler", "ext"),
]


@pytest.mark.parametrize("section, kind", LIBBPF_DOCUMENTED)
def test_libbpf_section_names(section, kind):
    assert progtypes.from_section(section) == kind


@pytest.mark.parametrize("section, kind", [
    # libbpf < 1.0 took any section a table name starts (samples/bpf's objects).
    ("socket1", "socket_filter"), ("xdp_redirect_map", "xdp"), ("kprobe_sys_write", "kprobe"),
    # nothing in the table: left to BTF, the loaders' names, or unspec
    ("from-netdev", None), ("2/10", None), ("filter", None), (".text", None), ("bind", None),
])
def test_legacy_prefixes_and_names_no_table_has(section, kind):
    assert progtypes.from_section(section) == kind


def test_bpftool_type_names():
    """bpftool's `prog load ... type NAME` takes a libbpf section name."""
    assert [progtypes.by_name(n) for n in ("xdp", "tc", "socket", "classifier", "kprobe",
                                           "cgroup/skb", "lwt_in")] == [
        "xdp", "sched_cls", "socket_filter", "sched_cls", "kprobe", "cgroup_skb", "lwt"]
    with pytest.raises(ValueError):
        progtypes.by_name("xdp_")   # a legacy prefix match is no type name


def test_types_from_section_btf_and_the_loaders_names():
    obj = loader.load(str(SECTIONS))
    got = {p.name: (p.prog_type, p.type_from) for p in obj.programs}
    assert got == {
        "frags": ("xdp", "section"), "tcx": ("sched_cls", "section"),
        # Cilium's loader loads these as tc programs
        "from_netdev": ("sched_cls", "loader's section name"),
        "to_container": ("sched_cls", "loader's section name"),
        # the object's other programs disagree on a type: nothing to take
        "tail_slot": ("unspec", "none"),
        # `int by_btf(struct xdp_md *ctx)` in BTF
        "by_btf": ("xdp", "BTF"),
        "untyped": ("unspec", "none"),
        # ld_abs: only __sk_buff programs may use it
        "by_ld_abs": ("socket_filter", "legacy packet loads"),
    }


@needs_shared("ebpf-samples", "cilium", "bpf_lxc.o")
def test_cilium_tail_call_sections_take_the_objects_type():
    """bpf_lxc.o's programs in iproute2's `ID/KEY` sections are tail-called from its
    tc programs (from-container), and so are tc programs too."""
    obj = loader.load(str(shared_path("ebpf-samples", "cilium", "bpf_lxc.o")))
    tails = [p for p in obj.programs if progtypes.is_tail_call_section(p.section)]
    assert tails and {p.prog_type for p in obj.programs} == {"sched_cls"}


@needs_shared("ebpf-samples", "suricata", "lb.o")
def test_suricatas_socket_filters_are_typed_by_their_packet_loads():
    """Suricata's AF_PACKET filters sit in sections `filter` and `loadbalancer`
    and read the packet with ld_abs: socket filters, which then link."""
    for name in ("lb.o", "bypass_filter.o"):
        obj = loader.load(str(shared_path("ebpf-samples", "suricata", name)))
        assert [p.prog_type for p in obj.programs] == ["socket_filter"]
        pipeline.link(obj, pipeline.LinkOptions(opt_level=0))


def test_kernel_only_map_attributes_are_noted_and_a_bad_map_refuses_its_users():
    obj = loader.load(str(KERNEL_MAPS))
    assert [p.name for p in obj.programs] == ["count", "alone"]
    assert obj.notes == ["map 'pinned': kernel-only attributes ignored: pinning 16, "
                         "numa_node 1, map_flags BPF_F_NUMA_NODE"]
    assert "broken" not in obj.maps and obj.maps["pinned"].max_entries == 4
    with pytest.raises(EbpfLtoError, match="uses map 'broken', which was refused: bad BTF: "
                                           "map 'broken': unknown member 'frobnicate'"):
        obj.program("bad")
    _, linked = pipeline.link(obj, pipeline.LinkOptions(opt_level=0))
    assert {"count", "alone"} <= set(linked.entries)


def test_a_call_to_memset_is_typed_for_the_lifter_and_its_program_links():
    # tests/test_libcalls.py runs such calls; here the loader's typed ref is what
    # the lifter lowers, and both programs link.
    obj = loader.load(str(LIBC))
    assert Ref("libc", "memset") in obj.refs.values()
    _, linked = pipeline.link(obj, pipeline.LinkOptions(opt_level=0))
    assert {"clear", "plain"} <= set(linked.entries)


@needs_shared("ebpf-samples", "cilium", "bpf_lb.o")
def test_iproute2_map_definitions_pinning_is_noted():
    """Older Cilium objects define maps as iproute2's struct bpf_elf_map, pinning
    (PIN_GLOBAL_NS, 2) at byte 24, and cilium_ipcache with BPF_F_NO_PREALLOC."""
    notes = loader.load(str(shared_path("ebpf-samples", "cilium", "bpf_lb.o"))).notes
    assert "map 'cilium_events': kernel-only attributes ignored: pinning 2" in notes
    assert ("map 'cilium_ipcache': kernel-only attributes ignored: pinning 2, "
            "map_flags BPF_F_NO_PREALLOC") in notes


def test_kernel_only_map_flags_by_their_uapi_names():
    """include/uapi/linux/bpf.h: BPF_F_NO_PREALLOC 1, BPF_F_NUMA_NODE 4,
    BPF_F_RDONLY_PROG 128, BPF_F_MMAPABLE 1024; BPF_F_INNER_MAP (4096) is the
    map runtime's to read, so not kernel-only."""
    assert maps.kernel_only_flags(1 | 4 | 128 | 1024 | 4096) == (
        "BPF_F_NO_PREALLOC|BPF_F_NUMA_NODE|BPF_F_RDONLY_PROG|BPF_F_MMAPABLE")
    assert maps.kernel_only_flags(4096) == ""


def _patched(tmp_path, source, *edits):
    buf = bytearray(source.read_bytes())
    for edit in edits:
        edit(buf)
    path = tmp_path / "patched.o"
    path.write_bytes(buf)
    return path


def _machine(value):
    return lambda buf: put(buf, *EH_FIELDS["e_machine"], value)


def test_an_em_none_object_with_bpf_code_loads(tmp_path):
    """Old LLVM wrote EM_NONE; PREVAIL loads such objects."""
    obj = loader.load(str(_patched(tmp_path, KERNEL_MAPS, _machine(0))))
    assert [p.name for p in obj.programs] == ["count", "alone"]


def test_an_em_none_object_with_other_relocations_is_refused(tmp_path):
    """Relocation type 42 is x86-64's REX_GOTPCRELX, no BPF one: not eBPF after all."""
    path = _patched(tmp_path, KERNEL_MAPS, _machine(0), lambda b: put(b, at_rel(b), 4, 42))
    with pytest.raises(EbpfLtoError, match="not an eBPF object \\(machine EM_NONE"):
        loader.load(str(path))
    with pytest.raises(EbpfLtoError, match="not an eBPF object \\(machine EM_X86_64\\)"):
        loader.load(str(_patched(tmp_path, KERNEL_MAPS, _machine(62))))


def at_rel(buf) -> int:
    """The file offset of the type field of the first REL entry's r_info."""
    (_, at), *_ = table_entries(bytes(buf), elf_sections(bytes(buf)), SHT_REL, 16)
    return at + 8


def test_link_warns_of_refused_and_untyped_programs_and_type_overrides():
    done = cli("link", KERNEL_MAPS, "-o", "/dev/null")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("ebpf-lto: warning: program bad refused: ")
    assert "uses map 'broken'" in done.stderr
    assert cli("link", KERNEL_MAPS, "-o", "/dev/null", "-q").stderr == ""
    done = cli("link", SECTIONS, "-o", "/dev/null", "--program", "untyped")
    assert done.returncode == 0 and done.stderr.splitlines() == [
        "ebpf-lto: warning: program untyped (section unknown) is linked as type unspec: its "
        "context is treated as raw memory (give its type with --type)"]
    done = cli("link", SECTIONS, "-o", "/dev/null", "--program", "untyped", "--type", "tc")
    assert done.returncode == 0 and done.stderr == ""


def test_run_with_type_runs_on_the_types_context():
    packet = "00" * 14
    done = cli("run", SECTIONS, "--program", "untyped", "--type", "xdp", "--packet", packet)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "packet 1: XDP_ABORTED (r0 = 0)"


def test_an_unknown_type_is_one_line():
    done = cli("link", SECTIONS, "-o", "/dev/null", "--type", "nonsense")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert "unknown --type 'nonsense'" in done.stderr
