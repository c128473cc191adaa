"""Program types: which section names (libbpf's `SEC()`) and context structs name which type.

The type says what r1 points at (facts/contexts.py). A program's type is
decided in this order (docs/abi.md):

1. libbpf's section table (libbpf.c `section_defs`, libbpf >= 1.0): `NAME`
   matches exactly, `NAME+` exactly or as `NAME/extras`, `NAME/` as a prefix;
2. libbpf < 1.0's prefix rule, which old objects rely on (`socket1`,
   `xdp_redirect`, `classifier_x`): the first table name that starts the section;
3. the object's BTF: the struct the entry function's first parameter points
   at (`struct xdp_md *` is xdp, `struct __sk_buff *` tc...), for sections no
   table names;
4. the names Cilium's loader gives programs (`from-netdev`, `to-container`,
   ...: tc), and iproute2's tail-call sections `ID/KEY` (`2/10`), which take the
   type of the object's other programs when those agree; and a program whose
   own code uses ld_abs/ld_ind, which only __sk_buff programs may: a socket
   filter;
5. otherwise `unspec`: r1 is raw memory, and the command line warns.

`--type NAME` (bpftool's `prog load ... type NAME`) overrides all of it: NAME
is looked up like a section name.
"""
from __future__ import annotations

import re

UNSPEC, RAW = "unspec", "raw"

# libbpf's section_defs as (section name, type); a trailing '+' or '/' as in libbpf.
# Types are named as the kernel's BPF_PROG_TYPE_*, lower case; `lwt` stands for
# the four lwt types, which share the __sk_buff context.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("socket", "socket_filter"), ("sk_reuseport/migrate", "sk_reuseport"),
    ("sk_reuseport", "sk_reuseport"),
    ("kprobe+", "kprobe"), ("uprobe+", "kprobe"), ("uprobe.s+", "kprobe"),
    ("kretprobe+", "kprobe"), ("uretprobe+", "kprobe"), ("uretprobe.s+", "kprobe"),
    ("kprobe.multi+", "kprobe"), ("kretprobe.multi+", "kprobe"),
    ("kprobe.session+", "kprobe"), ("uprobe.multi+", "kprobe"),
    ("uretprobe.multi+", "kprobe"), ("uprobe.multi.s+", "kprobe"),
    ("uretprobe.multi.s+", "kprobe"), ("ksyscall+", "kprobe"), ("kretsyscall+", "kprobe"),
    ("usdt+", "kprobe"), ("usdt.s+", "kprobe"),
    ("tc/ingress", "sched_cls"), ("tc/egress", "sched_cls"),
    ("tcx/ingress", "sched_cls"), ("tcx/egress", "sched_cls"), ("tc", "sched_cls"),
    ("classifier", "sched_cls"), ("action", "sched_act"),
    ("netkit/primary", "sched_cls"), ("netkit/peer", "sched_cls"),
    ("tracepoint+", "tracepoint"), ("tp+", "tracepoint"),
    ("raw_tracepoint+", "raw_tracepoint"), ("raw_tp+", "raw_tracepoint"),
    ("raw_tracepoint.w+", "raw_tracepoint_writable"), ("raw_tp.w+", "raw_tracepoint_writable"),
    ("tp_btf+", "tracing"), ("fentry+", "tracing"), ("fmod_ret+", "tracing"),
    ("fexit+", "tracing"), ("fentry.s+", "tracing"), ("fmod_ret.s+", "tracing"),
    ("fexit.s+", "tracing"), ("iter+", "tracing"), ("iter.s+", "tracing"),
    ("freplace+", "ext"), ("lsm+", "lsm"), ("lsm.s+", "lsm"), ("lsm_cgroup+", "lsm"),
    ("xdp.frags/devmap", "xdp"), ("xdp/devmap", "xdp"), ("xdp.frags/cpumap", "xdp"),
    ("xdp/cpumap", "xdp"), ("xdp.frags", "xdp"), ("xdp", "xdp"),
    ("perf_event", "perf_event"),
    ("lwt_in", "lwt"), ("lwt_out", "lwt"), ("lwt_xmit", "lwt"), ("lwt_seg6local", "lwt"),
    ("sockops", "sock_ops"), ("sk_skb/stream_parser", "sk_skb"),
    ("sk_skb/stream_verdict", "sk_skb"), ("sk_skb/verdict", "sk_skb"), ("sk_skb", "sk_skb"),
    ("sk_msg", "sk_msg"), ("lirc_mode2", "lirc_mode2"), ("flow_dissector", "flow_dissector"),
    ("cgroup_skb/ingress", "cgroup_skb"), ("cgroup_skb/egress", "cgroup_skb"),
    ("cgroup/skb", "cgroup_skb"), ("cgroup/sock_create", "cgroup_sock"),
    ("cgroup/sock_release", "cgroup_sock"), ("cgroup/sock", "cgroup_sock"),
    ("cgroup/post_bind4", "cgroup_sock"), ("cgroup/post_bind6", "cgroup_sock"),
    ("cgroup/bind4", "cgroup_sock_addr"), ("cgroup/bind6", "cgroup_sock_addr"),
    ("cgroup/connect4", "cgroup_sock_addr"), ("cgroup/connect6", "cgroup_sock_addr"),
    ("cgroup/connect_unix", "cgroup_sock_addr"), ("cgroup/sendmsg4", "cgroup_sock_addr"),
    ("cgroup/sendmsg6", "cgroup_sock_addr"), ("cgroup/sendmsg_unix", "cgroup_sock_addr"),
    ("cgroup/recvmsg4", "cgroup_sock_addr"), ("cgroup/recvmsg6", "cgroup_sock_addr"),
    ("cgroup/recvmsg_unix", "cgroup_sock_addr"), ("cgroup/getpeername4", "cgroup_sock_addr"),
    ("cgroup/getpeername6", "cgroup_sock_addr"),
    ("cgroup/getpeername_unix", "cgroup_sock_addr"),
    ("cgroup/getsockname4", "cgroup_sock_addr"), ("cgroup/getsockname6", "cgroup_sock_addr"),
    ("cgroup/getsockname_unix", "cgroup_sock_addr"), ("cgroup/sysctl", "cgroup_sysctl"),
    ("cgroup/getsockopt", "cgroup_sockopt"), ("cgroup/setsockopt", "cgroup_sockopt"),
    ("cgroup/dev", "cgroup_device"), ("struct_ops+", "struct_ops"),
    ("struct_ops.s+", "struct_ops"), ("sk_lookup", "sk_lookup"),
    ("syscall", "syscall"), ("netfilter", "netfilter"),
)

# libbpf < 1.0 matched these as bare prefixes (SEC_SLOPPY_PFX), longest first
# where one starts another; section names of objects built for it still do.
LEGACY_PREFIXES: tuple[tuple[str, str], ...] = (
    ("socket", "socket_filter"), ("sk_reuseport", "sk_reuseport"),
    ("kretprobe", "kprobe"), ("kprobe", "kprobe"), ("uretprobe", "kprobe"),
    ("uprobe", "kprobe"), ("usdt", "kprobe"), ("ksyscall", "kprobe"),
    ("classifier", "sched_cls"), ("action", "sched_act"), ("tcx", "sched_cls"),
    ("tc", "sched_cls"), ("tracepoint", "tracepoint"), ("tp_btf", "tracing"),
    ("tp/", "tracepoint"), ("raw_tracepoint", "raw_tracepoint"), ("raw_tp", "raw_tracepoint"),
    ("fentry", "tracing"), ("fexit", "tracing"), ("fmod_ret", "tracing"), ("iter", "tracing"),
    ("xdp", "xdp"), ("perf_event", "perf_event"), ("lwt_", "lwt"), ("sockops", "sock_ops"),
    ("sk_skb", "sk_skb"), ("sk_msg", "sk_msg"), ("flow_dissector", "flow_dissector"),
    ("cgroup_skb", "cgroup_skb"), ("cgroup/skb", "cgroup_skb"), ("cgroup/dev", "cgroup_device"),
    ("cgroup/sock", "cgroup_sock"), ("cgroup/", "cgroup_sock_addr"), ("lsm", "lsm"),
    ("struct_ops", "struct_ops"),
)

# The struct a program's context parameter points at, for step 3.
CONTEXT_STRUCTS: dict[str, str] = {
    "xdp_md": "xdp", "__sk_buff": "sched_cls", "pt_regs": "kprobe",
    "bpf_perf_event_data": "perf_event", "bpf_sock_ops": "sock_ops", "sk_msg_md": "sk_msg",
    "bpf_sock": "cgroup_sock", "bpf_sock_addr": "cgroup_sock_addr",
    "bpf_sysctl": "cgroup_sysctl", "bpf_sockopt": "cgroup_sockopt",
    "bpf_raw_tracepoint_args": "raw_tracepoint", "sk_reuseport_md": "sk_reuseport",
    "bpf_sk_lookup": "sk_lookup", "bpf_cgroup_dev_ctx": "cgroup_device",
}

# Cilium's loader (and iproute2's `tc ... bpf obj X sec NAME` before it) loads
# these sections as tc programs.
CILIUM_TC = re.compile(r"(?:from|to)-[a-z0-9-]+\Z")
# The type step 4 gives a program using legacy packet loads: the first type the
# kernel allowed them in, whose context is the __sk_buff tc's is too.
PACKET_LOAD_TYPE = "socket_filter"
# iproute2's `__section_tail(ID, KEY)`: a program for slot KEY of prog array ID.
TAIL_CALL_SECTION = re.compile(r"\d+/(?:0x[0-9a-fA-F]+|\d+)\Z")


TYPES = frozenset(kind for _, kind in SECTIONS) | {RAW}


def _matches(name: str, section: str) -> bool:
    """libbpf's sec_def_matches."""
    if name.endswith("/"):
        return section.startswith(name)
    if name.endswith("+"):
        base = name[:-1]
        return section == base or section.startswith(base + "/")
    return section == name


def from_section(section: str) -> str | None:
    """The type libbpf gives a section (steps 1-2), `raw` for ebpf-lto's own; None if none."""
    if section == RAW or section.startswith(RAW + "/"):
        return RAW
    for name, kind in SECTIONS:
        if _matches(name, section):
            return kind
    for prefix, kind in LEGACY_PREFIXES:
        if section.startswith(prefix):
            return kind
    return None


def from_loader_names(section: str) -> str | None:
    """Step 4's names that say the type by themselves (Cilium's)."""
    return "sched_cls" if CILIUM_TC.match(section) else None


def is_tail_call_section(section: str) -> bool:
    return bool(TAIL_CALL_SECTION.match(section))


def by_name(name: str) -> str:
    """The type `--type NAME` names: a libbpf section name (as bpftool takes) or a type."""
    for section, kind in SECTIONS:
        if _matches(section, name):
            return kind
    if name in TYPES:
        return name
    raise ValueError(name)


def type_names() -> list[str]:
    """The names `--type` takes, as its help lists them: a few common ones."""
    return ["xdp", "tc", "classifier", "action", "socket", "sk_skb", "sk_msg", "cgroup/skb",
            "lwt_in", "kprobe", "tracepoint", "raw_tracepoint", "perf_event", "raw"]


# enum bpf_prog_type (include/uapi/linux/bpf.h) by number, as bpftime records a
# program's type; 0 (unspec, bpftime's uprobes) is raw memory.
BY_ID: tuple[str, ...] = (
    RAW, "socket_filter", "kprobe", "sched_cls", "sched_act", "tracepoint", "xdp",
    "perf_event", "cgroup_skb", "cgroup_sock", "lwt", "lwt", "lwt", "sock_ops", "sk_skb",
    "cgroup_device", "sk_msg", "raw_tracepoint", "cgroup_sock_addr", "lwt", "lirc_mode2",
    "sk_reuseport", "flow_dissector", "cgroup_sysctl", "raw_tracepoint_writable",
    "cgroup_sockopt", "tracing", "struct_ops", "ext", "lsm", "sk_lookup", "syscall",
    "netfilter",
)


def by_id(number: int) -> str | None:
    """The type of the kernel's BPF_PROG_TYPE_* number; None for a number it lacks."""
    return BY_ID[number] if 0 <= number < len(BY_ID) else None
