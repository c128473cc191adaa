"""Program contexts: programs written against the kernel's xdp_md and __sk_buff run
unchanged on packets and return the kernel's results, computed here from the packets."""
import dataclasses
import json
import logging
import subprocess
import sys

import pytest

from conftest import ROOT
from inliner import pipeline
from inliner.elf import loader
from inliner.facts import contexts
from inliner.tools import conformance
from inliner.errors import EbpfLtoError

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402
from scapy.layers.l2 import ARP, Ether  # noqa: E402
from scapy.utils import wrpcap  # noqa: E402

OBJ = ROOT / "tests" / "contexts_c" / "packets.o"
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX = 0, 1, 2, 3
TC_ACT_SHOT = 2

PACKETS = [
    Ether() / IP(dst="10.0.0.1") / TCP(dport=22),
    Ether() / IP() / TCP(dport=80),
    Ether() / IP() / UDP(dport=53),
    Ether() / IP() / ICMP(),
    Ether() / ARP(),
    Ether() / IP() / TCP(dport=443) / (b"x" * 100),
    Ether() / IP(ihl=6, options=b"\x01\x01\x01\x01") / TCP(dport=22),
]


def firewall_verdict(pkt) -> int:
    """The XDP program's verdict, from the packet's fields."""
    if IP not in pkt:
        return XDP_PASS
    if TCP not in pkt:
        return XDP_TX
    return XDP_DROP if pkt[TCP].dport == 22 else XDP_PASS


def run(program: str, packets: list[bytes], level: int = 2):
    options = pipeline.LinkOptions(opt_level=level, program=program)
    return list(pipeline.run_packets(loader.load(str(OBJ)), packets, options))


@pytest.mark.parametrize("level", (0, 2))
def test_xdp_program_gives_the_kernel_verdicts(level):
    results = run("xdp_firewall", [bytes(p) for p in PACKETS], level)
    assert [r0 for r0, _ in results] == [firewall_verdict(p) for p in PACKETS]
    # The packet is the program's data..data_end, unchanged.
    assert [after for _, after in results] == [bytes(p) for p in PACKETS]


def test_truncated_packet_is_aborted():
    assert run("xdp_firewall", [bytes(Ether() / IP())[:20]])[0][0] == XDP_ABORTED


@pytest.mark.parametrize("level", (0, 2))
def test_context_reaches_a_subprogram_and_data_meta_is_data(level):
    results = run("xdp_length", [bytes(p) for p in PACKETS], level)
    # ingress_ifindex is 1 in the context the runner builds.
    assert [r0 for r0, _ in results] == [len(p) + 1000 for p in PACKETS]


@pytest.mark.parametrize("level", (0, 2))
def test_tc_program_reads_and_writes_sk_buff_fields(level):
    results = run("tc_mark", [bytes(p) for p in PACKETS] + [b"\x00" * 10], level)
    expected = [len(p) * 3 + (IP in p) for p in PACKETS] + [TC_ACT_SHOT]
    assert [r0 for r0, _ in results] == expected


def test_pcap_through_the_command_line(tmp_path):
    pcap = tmp_path / "trace.pcap"
    wrpcap(str(pcap), PACKETS)
    done = subprocess.run([sys.executable, "-m", "inliner.cli", "run", str(OBJ), "--program",
                           "xdp_firewall", "--pcap", str(pcap), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    names = {XDP_DROP: "XDP_DROP", XDP_PASS: "XDP_PASS", XDP_TX: "XDP_TX"}
    assert [r["action"] for r in results] == [names[firewall_verdict(p)] for p in PACKETS]


def xdp_asm(asm: str):
    code = conformance.program_bytes(conformance.parse_test("-- asm\n" + asm))
    obj = loader.from_raw(code)
    obj.programs = [dataclasses.replace(obj.programs[0], prog_type="xdp")]
    return obj


def test_context_pointer_survives_a_spill_to_the_stack():
    obj = xdp_asm("stxdw [%r10-16], %r1\nmov %r1, 0\nldxdw %r2, [%r10-16]\n"
                  "ldxw %r0, [%r2+4]\nldxw %r3, [%r2]\nsub %r0, %r3\nexit")
    [(r0, _)] = pipeline.run_packets(obj, [b"\x01" * 77], pipeline.LinkOptions())
    assert r0 == 77


@pytest.mark.parametrize("asm,reason", [
    ("ldxw %r0, [%r1+24]\nexit", "offset 24"),             # past the end of xdp_md
    ("ldxdw %r0, [%r1]\nexit", "offset 0 of 8 bytes"),      # data is a 32-bit field
    ("stw [%r1+12], 5\nmov %r0, 0\nexit", "read-only"),     # ingress_ifindex
    ("mov %r2, 1\nlock add [%r1+12], %r2\nmov %r0, 0\nexit", "atomic operation on the context"),
])
def test_accesses_that_are_not_context_fields_are_refused(asm, reason):
    with pytest.raises(EbpfLtoError) as err:
        pipeline.link(xdp_asm(asm), pipeline.LinkOptions())
    assert reason in str(err.value) and err.value.insn is not None


def test_layouts_match_the_kernel_structs():
    # Offsets from include/uapi/linux/bpf.h: struct xdp_md and struct __sk_buff.
    xdp = {f.name: f.kernel_off for f in contexts.XDP.fields}
    assert xdp == {"data": 0, "data_end": 4, "data_meta": 8, "ingress_ifindex": 12,
                   "rx_queue_index": 16, "egress_ifindex": 20}
    skb = {f.name: f.kernel_off for f in contexts.SKB.fields}
    assert (skb["len"], skb["mark"], skb["protocol"], skb["cb"], skb["hash"], skb["data"],
            skb["data_end"], skb["data_meta"]) == (0, 8, 16, 48, 68, 76, 80, 140)


def test_generated_c_header_is_current():
    """helper_bitcode/src/abi.h is what `python -m inliner.facts.cabi` writes from the Python facts."""
    from inliner.facts import cabi
    assert (ROOT / "helper_bitcode" / "src" / "abi.h").read_text() == cabi.header()
