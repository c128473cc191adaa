"""Linux helper function ids and names (include/uapi/linux/bpf.h, __BPF_FUNC_MAPPER).

Defined once here; the assembler, disassembler, lifter, helper library and
interpreter all name helpers from this table. Generated from libbpf's
bpf_helper_defs.h (ids 1-211); id 0 is bpf_unspec.
"""
import enum
from typing import NamedTuple


KERNEL_HELPERS: dict[int, str] = {
    1: "map_lookup_elem",
    2: "map_update_elem",
    3: "map_delete_elem",
    4: "probe_read",
    5: "ktime_get_ns",
    6: "trace_printk",
    7: "get_prandom_u32",
    8: "get_smp_processor_id",
    9: "skb_store_bytes",
    10: "l3_csum_replace",
    11: "l4_csum_replace",
    12: "tail_call",
    13: "clone_redirect",
    14: "get_current_pid_tgid",
    15: "get_current_uid_gid",
    16: "get_current_comm",
    17: "get_cgroup_classid",
    18: "skb_vlan_push",
    19: "skb_vlan_pop",
    20: "skb_get_tunnel_key",
    21: "skb_set_tunnel_key",
    22: "perf_event_read",
    23: "redirect",
    24: "get_route_realm",
    25: "perf_event_output",
    26: "skb_load_bytes",
    27: "get_stackid",
    28: "csum_diff",
    29: "skb_get_tunnel_opt",
    30: "skb_set_tunnel_opt",
    31: "skb_change_proto",
    32: "skb_change_type",
    33: "skb_under_cgroup",
    34: "get_hash_recalc",
    35: "get_current_task",
    36: "probe_write_user",
    37: "current_task_under_cgroup",
    38: "skb_change_tail",
    39: "skb_pull_data",
    40: "csum_update",
    41: "set_hash_invalid",
    42: "get_numa_node_id",
    43: "skb_change_head",
    44: "xdp_adjust_head",
    45: "probe_read_str",
    46: "get_socket_cookie",
    47: "get_socket_uid",
    48: "set_hash",
    49: "setsockopt",
    50: "skb_adjust_room",
    51: "redirect_map",
    52: "sk_redirect_map",
    53: "sock_map_update",
    54: "xdp_adjust_meta",
    55: "perf_event_read_value",
    56: "perf_prog_read_value",
    57: "getsockopt",
    58: "override_return",
    59: "sock_ops_cb_flags_set",
    60: "msg_redirect_map",
    61: "msg_apply_bytes",
    62: "msg_cork_bytes",
    63: "msg_pull_data",
    64: "bind",
    65: "xdp_adjust_tail",
    66: "skb_get_xfrm_state",
    67: "get_stack",
    68: "skb_load_bytes_relative",
    69: "fib_lookup",
    70: "sock_hash_update",
    71: "msg_redirect_hash",
    72: "sk_redirect_hash",
    73: "lwt_push_encap",
    74: "lwt_seg6_store_bytes",
    75: "lwt_seg6_adjust_srh",
    76: "lwt_seg6_action",
    77: "rc_repeat",
    78: "rc_keydown",
    79: "skb_cgroup_id",
    80: "get_current_cgroup_id",
    81: "get_local_storage",
    82: "sk_select_reuseport",
    83: "skb_ancestor_cgroup_id",
    84: "sk_lookup_tcp",
    85: "sk_lookup_udp",
    86: "sk_release",
    87: "map_push_elem",
    88: "map_pop_elem",
    89: "map_peek_elem",
    90: "msg_push_data",
    91: "msg_pop_data",
    92: "rc_pointer_rel",
    93: "spin_lock",
    94: "spin_unlock",
    95: "sk_fullsock",
    96: "tcp_sock",
    97: "skb_ecn_set_ce",
    98: "get_listener_sock",
    99: "skc_lookup_tcp",
    100: "tcp_check_syncookie",
    101: "sysctl_get_name",
    102: "sysctl_get_current_value",
    103: "sysctl_get_new_value",
    104: "sysctl_set_new_value",
    105: "strtol",
    106: "strtoul",
    107: "sk_storage_get",
    108: "sk_storage_delete",
    109: "send_signal",
    110: "tcp_gen_syncookie",
    111: "skb_output",
    112: "probe_read_user",
    113: "probe_read_kernel",
    114: "probe_read_user_str",
    115: "probe_read_kernel_str",
    116: "tcp_send_ack",
    117: "send_signal_thread",
    118: "jiffies64",
    119: "read_branch_records",
    120: "get_ns_current_pid_tgid",
    121: "xdp_output",
    122: "get_netns_cookie",
    123: "get_current_ancestor_cgroup_id",
    124: "sk_assign",
    125: "ktime_get_boot_ns",
    126: "seq_printf",
    127: "seq_write",
    128: "sk_cgroup_id",
    129: "sk_ancestor_cgroup_id",
    130: "ringbuf_output",
    131: "ringbuf_reserve",
    132: "ringbuf_submit",
    133: "ringbuf_discard",
    134: "ringbuf_query",
    135: "csum_level",
    136: "skc_to_tcp6_sock",
    137: "skc_to_tcp_sock",
    138: "skc_to_tcp_timewait_sock",
    139: "skc_to_tcp_request_sock",
    140: "skc_to_udp6_sock",
    141: "get_task_stack",
    142: "load_hdr_opt",
    143: "store_hdr_opt",
    144: "reserve_hdr_opt",
    145: "inode_storage_get",
    146: "inode_storage_delete",
    147: "d_path",
    148: "copy_from_user",
    149: "snprintf_btf",
    150: "seq_printf_btf",
    151: "skb_cgroup_classid",
    152: "redirect_neigh",
    153: "per_cpu_ptr",
    154: "this_cpu_ptr",
    155: "redirect_peer",
    156: "task_storage_get",
    157: "task_storage_delete",
    158: "get_current_task_btf",
    159: "bprm_opts_set",
    160: "ktime_get_coarse_ns",
    161: "ima_inode_hash",
    162: "sock_from_file",
    163: "check_mtu",
    164: "for_each_map_elem",
    165: "snprintf",
    166: "sys_bpf",
    167: "btf_find_by_name_kind",
    168: "sys_close",
    169: "timer_init",
    170: "timer_set_callback",
    171: "timer_start",
    172: "timer_cancel",
    173: "get_func_ip",
    174: "get_attach_cookie",
    175: "task_pt_regs",
    176: "get_branch_snapshot",
    177: "trace_vprintk",
    178: "skc_to_unix_sock",
    179: "kallsyms_lookup_name",
    180: "find_vma",
    181: "loop",
    182: "strncmp",
    183: "get_func_arg",
    184: "get_func_ret",
    185: "get_func_arg_cnt",
    186: "get_retval",
    187: "set_retval",
    188: "xdp_get_buff_len",
    189: "xdp_load_bytes",
    190: "xdp_store_bytes",
    191: "copy_from_user_task",
    192: "skb_set_tstamp",
    193: "ima_file_hash",
    194: "kptr_xchg",
    195: "map_lookup_percpu_elem",
    196: "skc_to_mptcp_sock",
    197: "dynptr_from_mem",
    198: "ringbuf_reserve_dynptr",
    199: "ringbuf_submit_dynptr",
    200: "ringbuf_discard_dynptr",
    201: "dynptr_read",
    202: "dynptr_write",
    203: "dynptr_data",
    204: "tcp_raw_gen_syncookie_ipv4",
    205: "tcp_raw_gen_syncookie_ipv6",
    206: "tcp_raw_check_syncookie_ipv4",
    207: "tcp_raw_check_syncookie_ipv6",
    208: "ktime_get_tai_ns",
    209: "user_ringbuf_drain",
    210: "cgrp_storage_get",
    211: "cgrp_storage_delete",
}

HELPER_IDS: dict[str, int] = {name: hid for hid, name in KERNEL_HELPERS.items()}
MAP_LOOKUP = HELPER_IDS["map_lookup_elem"]
MAP_LOOKUP_PERCPU = HELPER_IDS["map_lookup_percpu_elem"]
RINGBUF_RESERVE = HELPER_IDS["ringbuf_reserve"]
TAIL_CALL = HELPER_IDS["tail_call"]
GET_HASH_RECALC = HELPER_IDS["get_hash_recalc"]


def helper_name(hid: int) -> str:
    return KERNEL_HELPERS.get(hid, f"helper {hid}")

# Helpers that take a map (what an lddw of a map loads) or memory a map owns
# (ringbuf records and dynptrs). With --abi bpftime the maps are the runtime's,
# so these are always calls into it (docs/abi.md).
MAP_HELPERS: frozenset[int] = frozenset({
    1, 2, 3, 12, 22, 25, 27, 33, 37, 51, 52, 53, 55, 60, 70, 71, 72, 81, 82, 87, 88, 89,
    107, 108, 130, 131, 132, 133, 134, 145, 146, 156, 157, 164, 169, 195, 198, 199, 200,
    209, 210, 211,
})

# Helpers whose only effect is reading memory: each returns a function of its
# arguments and of the memory they point at, as the kernel's protos say (every
# pointer argument ARG_PTR_TO_MEM | MEM_RDONLY or a constant string,
# RET_INTEGER; net/core/filter.c bpf_csum_diff, kernel/bpf/helpers.c
# bpf_strncmp). An external call to one is declared readonly, as the default
# library's definitions are (memory(read)): LLVM keeps loads across it and
# shares one call among equal ones, as it does when the helper is linked in.
# A helper file of the user's that defines one keeps its call (LiftOptions.read_only).
READ_ONLY_HELPERS: frozenset[int] = frozenset({28, 182})   # csum_diff, strncmp

# Helpers that leave a forwarding target for the host to act on after the run
# (docs/abi.md, the redirect record): with --abi bpftime the runtime that
# forwards the packet must own them, so they stay its calls.
REDIRECT_HELPERS: frozenset[int] = frozenset({23, 51, 155})


class ArgKind(enum.Enum):
    """What a helper argument must be, as the kernel's bpf_func_proto arg types say."""
    MEM = "mem"      # memory of `size` bytes (ARG_PTR_TO_MEM + ARG_CONST_SIZE)
    KEY = "key"      # a key of the map in r1 (ARG_PTR_TO_MAP_KEY)
    VALUE = "value"  # a value of the map in r1 (ARG_PTR_TO_MAP_VALUE)
    CTX = "ctx"      # the program's context (ARG_PTR_TO_CTX)
    MAP = "map"      # a map (ARG_CONST_MAP_PTR)
    # memory of `size` bytes the helper reads without faulting, whatever the
    # address (probe_read's source): a checked build hands it only the
    # program's own memory, any other address as NULL, which the helper
    # answers with -EFAULT and a zeroed destination, as for a bad address
    UNSAFE = "unsafe"


class HelperArg(NamedTuple):
    kind: ArgKind
    reg: int              # the argument's register
    size: int = 0         # MEM: the register holding its size in bytes
    write: bool = False   # the helper writes the memory


def _mem(reg: int, size: int, write: bool = False) -> HelperArg:
    return HelperArg(ArgKind.MEM, reg, size, write)


_MAP, _CTX = HelperArg(ArgKind.MAP, 1), HelperArg(ArgKind.CTX, 1)
_KEY = HelperArg(ArgKind.KEY, 2)
_PROBE = (_mem(1, 2, write=True), HelperArg(ArgKind.UNSAFE, 3, 2))

# The pointer arguments of the helpers the default library implements, from
# the kernel's protos (net/core/filter.c, kernel/bpf/helpers.c). A checked
# build validates each against the caller's regions before the call; a bad one
# gets the helper's error code instead of the call (docs/safety.md).
HELPER_ARGS: dict[int, tuple[HelperArg, ...]] = {
    1: (_MAP, _KEY),                                                  # map_lookup_elem
    2: (_MAP, _KEY, HelperArg(ArgKind.VALUE, 3)),                     # map_update_elem
    3: (_MAP, _KEY),                                                  # map_delete_elem
    4: _PROBE,                                                        # probe_read
    6: (_mem(1, 2),),                                                 # trace_printk
    9: (_CTX, _mem(3, 4)),                                            # skb_store_bytes
    10: (_CTX,),                                                      # l3_csum_replace
    11: (_CTX,),                                                      # l4_csum_replace
    16: (_mem(1, 2, write=True),),                                    # get_current_comm
    25: (_CTX, HelperArg(ArgKind.MAP, 2), _mem(4, 5)),                # perf_event_output
    24: (_CTX,),                                                      # get_route_realm
    26: (_CTX, _mem(3, 4, write=True)),                               # skb_load_bytes
    18: (_CTX,),                                                      # skb_vlan_push
    19: (_CTX,),                                                      # skb_vlan_pop
    28: (_mem(1, 2), _mem(3, 4)),                                     # csum_diff
    31: (_CTX,),                                                      # skb_change_proto
    34: (_CTX,),                                                      # get_hash_recalc
    38: (_CTX,),                                                      # skb_change_tail
    43: (_CTX,),                                                      # skb_change_head
    44: (_CTX,),                                                      # xdp_adjust_head
    45: _PROBE,                                                       # probe_read_str
    54: (_CTX,),                                                      # xdp_adjust_meta
    65: (_CTX,),                                                      # xdp_adjust_tail
    87: (_MAP, HelperArg(ArgKind.VALUE, 2)),                          # map_push_elem
    88: (_MAP, HelperArg(ArgKind.VALUE, 2, write=True)),              # map_pop_elem
    89: (_MAP, HelperArg(ArgKind.VALUE, 2, write=True)),              # map_peek_elem
    112: _PROBE,                                                      # probe_read_user
    113: _PROBE,                                                      # probe_read_kernel
    114: _PROBE,                                                      # probe_read_user_str
    115: _PROBE,                                                      # probe_read_kernel_str
    130: (_MAP, _mem(2, 3)),                                           # ringbuf_output
    131: (_MAP,),                                                     # ringbuf_reserve
    134: (_MAP,),                                                     # ringbuf_query
    164: (_MAP,),                                                     # for_each_map_elem
    165: (_mem(1, 2, write=True), _mem(4, 5)),                         # snprintf
    177: (_mem(1, 2), _mem(3, 4)),                                    # trace_vprintk
    182: (_mem(1, 2),),                                               # strncmp
    195: (_MAP, _KEY),                                                # map_lookup_percpu_elem
    51: (_MAP,),                                                      # redirect_map
    69: (_CTX, _mem(2, 3, write=True)),                               # fib_lookup
    84: (_CTX, _mem(2, 3)),                                           # sk_lookup_tcp
    85: (_CTX, _mem(2, 3)),                                           # sk_lookup_udp
    99: (_CTX, _mem(2, 3)),                                           # skc_lookup_tcp
}

# The helpers above that take the program's context: their code reads the
# context as ebpf-lto's lifter lays it out (docs/abi.md), not another lifter's.
CONTEXT_HELPERS: frozenset[int] = frozenset(
    hid for hid, args in HELPER_ARGS.items() if any(a.kind is ArgKind.CTX for a in args))

# The C library's memory functions, which clang (older ones, or a size it does
# not know) emits as calls to external functions instead of expanding the
# builtin. The loader resolves such a call to a "libc" Ref naming one of these;
# each is called with r1-r3 and returns in r0 as C does, its pointer
# arguments (and the register of their size) as for helpers.
LIBC_FUNCTIONS: dict[str, tuple[HelperArg, ...]] = {
    "memset": (_mem(1, 3, write=True),),
    "memcpy": (_mem(1, 3, write=True), _mem(2, 3)),
    "memmove": (_mem(1, 3, write=True), _mem(2, 3)),
    "memcmp": (_mem(1, 3), _mem(2, 3)),
}
