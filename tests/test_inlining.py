"""The plan and its application: what is spliced in, what stays out of line, and that the
program computes the same thing either way (checked against RFC 1071 in Python)."""
import json
import re
import struct
import subprocess
import sys

import pytest

from conftest import ROOT
from inliner import pipeline
from inliner.elf import loader
from inliner.tools.asm import assemble_bytes

CSUM = ROOT / "tests" / "helpers_c" / "checksum.o"
HEADER = bytes.fromhex("45000073000040004011 0000 c0a80001c0a800c7".replace(" ", ""))


def ir_of(path, **options) -> str:
    text, _ = pipeline.link(loader.load(str(path)), pipeline.LinkOptions(**options), emit="llvm")
    return text.decode()


def defined(ir: str, symbol: str) -> int:
    return len(re.findall(rf"^define [^@]*@\"?{symbol}\"?\(", ir, re.M))


def called(ir: str, symbol: str) -> int:
    return len(re.findall(rf"call [^@]*@\"?{symbol}\"?\(", ir))


def rfc1071(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_inlined_helper_leaves_no_call_and_no_copy():
    ir = ir_of(CSUM, program="ipv4_checksum")
    assert called(ir, "_bpf_helper_ext_0028") == 0
    # Nothing of the library the program does not use stays in the object.
    assert not re.search(r"^define [^@]*@\"?_bpf_helper_ext_", ir, re.M)


def test_no_inline_keeps_one_internal_out_of_line_copy():
    ir = ir_of(CSUM, no_inline=("csum_diff",))
    assert defined(ir, "_bpf_helper_ext_0028") == 1
    assert re.search(r"^define internal [^@]*@\"?_bpf_helper_ext_0028", ir, re.M)
    assert called(ir, "_bpf_helper_ext_0028") >= 3  # one per program


def test_inline_none_leaves_the_aot_contract_external_call():
    ir = ir_of(CSUM, inline="none")
    assert defined(ir, "_bpf_helper_ext_0028") == 0
    assert re.search(r"^declare [^@]*@\"?_bpf_helper_ext_0028", ir, re.M)


def _raw_ir(text: str, **options) -> str:
    ir, _ = pipeline.link(loader.from_raw(assemble_bytes(text)),
                          pipeline.LinkOptions(**options), emit="llvm")
    return ir.decode()


def _function(ir: str, name: str) -> str:
    """The body of the function defined as `name`."""
    return re.search(rf"^define [^@]*@{name}\(.*?^}}", ir, re.M | re.S).group(0)


# r0 = helper(r1..r5) twice over the same 20 bytes of the context, nothing stored
# between, the two results added: a helper with no effect but reading returns the
# same both times.
CALL = """
    mov %r1, 0
    mov %r2, 0
    mov %r3, %r6
    mov %r4, 20
    mov %r5, 0
    call {hid}
"""
TWICE = "mov %r6, %r1" + CALL + "mov %r7, %r0" + CALL + "add %r0, %r7\nexit\n"


def test_an_external_read_only_helper_is_called_once_for_equal_calls():
    """The kernel's bpf_csum_diff only reads its memory (ARG_PTR_TO_MEM | MEM_RDONLY,
    RET_INTEGER): declared so, the out-of-line call is shared, as the linked one is."""
    ir = _raw_ir(TWICE.format(hid=28), inline="none")
    assert re.search(r"^declare [^@]*@\"?_bpf_helper_ext_0028", ir, re.M)
    assert called(_function(ir, "main"), "_bpf_helper_ext_0028") == 1


def test_an_external_helper_with_effects_is_called_each_time():
    """bpf_get_prandom_u32 (7) changes the generator's state: two calls, two values."""
    ir = _raw_ir(TWICE.format(hid=7), inline="none", checks=False)
    assert called(_function(ir, "main"), "_bpf_helper_ext_0007") == 2


# A helper file of the user's own that gives id 28 its own meaning: *(u32 *)r1 = r2.
STORING_28 = """
define i64 @_bpf_helper_ext_0028(i64 %r1, i64 %r2, i64 %r3, i64 %r4, i64 %r5) {
  %p = inttoptr i64 %r1 to ptr
  %v = trunc i64 %r2 to i32
  store i32 %v, ptr %p
  ret i64 0
}
"""


@pytest.mark.parametrize("inline", ["none", "auto"])
@pytest.mark.parametrize("level", [0, 2])
def test_a_user_helper_under_a_read_only_id_keeps_its_effect(tmp_path, inline, level):
    """Only the Linux library's csum_diff is known to only read: a file of the user's
    own that stores from id 28 is called, and the load after it sees the store."""
    helper = tmp_path / "h28.ll"
    helper.write_text(STORING_28)
    code = assemble_bytes("""
        mov %r6, %r1
        stw [%r6], 1
        mov %r1, %r6
        mov %r2, 99
        mov %r3, 0
        mov %r4, 0
        mov %r5, 0
        call 28
        ldxw %r0, [%r6]
        exit
    """)
    options = pipeline.LinkOptions(opt_level=level, checks=False, helpers=str(helper),
                                   inline=inline)
    r0, mem = pipeline.run(loader.from_raw(code), bytearray(8), options)
    assert (r0, bytes(mem[:4])) == (99, (99).to_bytes(4, "little"))


def test_threshold_and_force_inline():
    sites = {d.action for d in pipeline.link(
        loader.load(str(CSUM)), pipeline.LinkOptions(inline_threshold=10))[1].decisions}
    assert sites == {"outline"}
    forced = pipeline.link(loader.load(str(CSUM)), pipeline.LinkOptions(
        inline_threshold=10, force_inline=("28",)))[1].decisions
    assert {d.action for d in forced} == {"inline"}
    assert {d.reason for d in forced} == {"--force-inline"}


@pytest.mark.parametrize("mode", ["auto", "all", "none"])
@pytest.mark.parametrize("level", [0, 2])
def test_every_mode_computes_the_same_checksum(mode, level):
    obj = loader.load(str(CSUM))
    options = pipeline.LinkOptions(opt_level=level, program="ipv4_checksum", inline=mode)
    _, after = pipeline.run(obj, HEADER, options)
    assert int.from_bytes(after[10:12], "big") == rfc1071(HEADER) == 0xB861


def test_a_recursive_helper_stays_out_of_line(tmp_path):
    # A vendor helper set whose no_op (2) recurses: the plan must not try to splice it in.
    rec = tmp_path / "rec.ll"
    rec.write_text("""
define i64 @_bpf_helper_ext_0002(i64 %a, i64 %b, i64 %c, i64 %d, i64 %e) {
  %z = icmp eq i64 %a, 0
  br i1 %z, label %done, label %more
more:
  %n = sub i64 %a, 1
  %r = call i64 @_bpf_helper_ext_0002(i64 %n, i64 0, i64 0, i64 0, i64 0)
  %s = add i64 %r, 2
  ret i64 %s
done:
  ret i64 0
}
""")
    from inliner.tools import conformance
    code = conformance.program_bytes(conformance.parse_test("-- asm\nmov %r1, 21\ncall 2\nexit"))
    obj = loader.from_raw(code)
    options = pipeline.LinkOptions(helpers=f"conformance,{rec}", inline="all")
    _, linked = pipeline.link(obj, options)
    [decision] = linked.decisions
    assert (decision.action, decision.reason) == ("outline", "recursive")
    assert pipeline.run(obj, None, options)[0] == 42


def test_explain_table_and_dot(tmp_path):
    dot = tmp_path / "plan.dot"
    done = subprocess.run([sys.executable, "-m", "inliner.cli", "explain", str(CSUM),
                           "--no-inline", "bpf_csum_diff", "--dot", str(dot)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("--no-inline") == 3 and "csum_diff (28)" in done.stdout
    graph = dot.read_text()
    assert "digraph plan {" in graph and graph.count("outline") == 3


def _explain(*args) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "inliner.cli", "explain", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def test_explain_dot_draws_the_programs_calls_not_the_helper_library(tmp_path):
    """examples/csum_count.c calls bpf_csum_diff and bpf_map_lookup_elem once
    each (llvm-objdump: `call 0x1c` at slot 9, `call 0x1` at 16): three
    nodes and two edges, none of the library's inner functions."""
    dot = tmp_path / "plan.dot"
    _explain(ROOT / "examples" / "csum_count.o", "--dot", dot)
    text = dot.read_text()
    assert "dot -Tsvg" in text.splitlines()[0]  # how to render it
    labels = re.findall(r'^  "[^"]+" \[label="([^"]*)"', text, re.M)
    edges = re.findall(r'^  "([^"]+)" -> "([^"]+)" \[label="([^"]*)"', text, re.M)
    assert sorted(labels) == ["csum_count\\nxdp program", "csum_diff (28)",
                              "map_lookup_elem (1)"]
    assert sorted(edges) == [("bpf.csum_count", "_bpf_helper_ext_0001", "insn 16: inline"),
                             ("bpf.csum_count", "_bpf_helper_ext_0028", "insn 9: inline")]


def test_explain_dot_draws_bpf_to_bpf_calls(tmp_path):
    """benchmarks/call_chain.c: call_chain calls f1, f1 calls f2, ... f6 calls f7."""
    dot = tmp_path / "plan.dot"
    _explain(ROOT / "benchmarks" / "call_chain.o", "--dot", dot)
    edges = re.findall(r'^  "bpf\.(\w+)" -> "bpf\.(\w+)"', dot.read_text(), re.M)
    chain = ["call_chain"] + [f"f{i}" for i in range(1, 8)]
    assert sorted(edges) == sorted(zip(chain, chain[1:]))


def test_explain_json_lists_each_site_and_its_decision():
    done = _explain(ROOT / "examples" / "csum_count.o", "--no-inline", "map_lookup_elem",
                    "--json")
    report = json.loads(done.stdout)
    assert report["file"].endswith("csum_count.o") and report["programs"] == ["csum_count"]
    assert [(s["function"], s["insn"], s["callee"], s["helper_id"], s["decision"])
            for s in report["sites"]] == [("csum_count", 9, "csum_diff", 28, "inline"),
                                          ("csum_count", 16, "map_lookup_elem", 1, "outline")]
    site = report["sites"][1]
    assert site["reason"] == "--no-inline" and site["in_loop"] is False
    assert set(site) == {"function", "insn", "callee", "helper_id", "in_loop", "count", "cost",
                         "growth", "decision", "reason"}


@pytest.mark.parametrize("as_bitcode", [False, True])
def test_link_takes_another_lifters_ir(tmp_path, as_bitcode):
    """IR from another lifter with the AOT helper names links with the helpers spliced in."""
    import llvmlite.binding as llvm
    text = """
declare i64 @_bpf_helper_ext_0028(i64, i64, i64, i64, i64)
define i64 @bpf_main(ptr %ctx, i64 %len) {
  %p = ptrtoint ptr %ctx to i64
  %r = call i64 @_bpf_helper_ext_0028(i64 0, i64 0, i64 %p, i64 20, i64 0)
  ret i64 %r
}
"""
    data = llvm.parse_assembly(text).as_bitcode() if as_bitcode else text.encode()
    out, linked = pipeline.link_ir(data, "foreign", pipeline.LinkOptions(), emit="llvm")
    assert linked.external_helpers == [] and called(out.decode(), "_bpf_helper_ext_0028") == 0
    # Run it: csum_diff with only `to` is the ones'-complement sum of the buffer's
    # 16-bit words in memory (native) order, folded, not complemented.
    from inliner.run.runner import LoadedObjects
    image, _ = pipeline.link_ir(data, "foreign", pipeline.LinkOptions())
    r0 = LoadedObjects([image], ["bpf_main"]).call("bpf_main", bytearray(HEADER))
    total = sum(struct.unpack("=10H", HEADER))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    assert r0 == total


def test_splicing_into_one_function_stops_at_the_growth_budget():
    # 40 csum_diff sites in one function: splicing all of them would make LLVM's
    # loop passes quadratic; past the budget the sites share one out-of-line copy.
    from inliner.link import plan
    from inliner.tools import conformance
    body = "".join("mov %r1, 0\nmov %r2, 0\nmov %r3, %r6\nmov %r4, 20\nmov %r5, %r0\n"
                   "call 28\n" for _ in range(40))
    code = conformance.program_bytes(conformance.parse_test(
        "-- asm\nmov %r6, %r1\nmov %r0, 0\n" + body + "exit\n"))
    obj = loader.from_raw(code)
    linked = pipeline.link(obj, pipeline.LinkOptions())[1]
    inlined = [d for d in linked.decisions if d.action == "inline"]
    outlined = [d for d in linked.decisions if d.action == "outline"]
    assert inlined and outlined and len(inlined) + len(outlined) == 40
    assert sum(d.growth for d in inlined) <= plan.CALLER_GROWTH_LIMIT
    assert all("limit" in d.reason for d in outlined)
    # The chained checksum: each call folds the header into the previous result.
    header = bytearray(HEADER)
    expected = 0
    for _ in range(40):
        total = expected + sum(struct.unpack("=10H", HEADER))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        expected = total
    r0, _ = pipeline.run(obj, header, pipeline.LinkOptions())
    assert r0 == expected


@pytest.mark.parametrize("padding", [100, 10_100])
def test_a_helper_with_a_loop_stays_out_of_a_huge_function(padding):
    # csum_diff sums in a loop, get_current_uid_gid has none. Spliced into the
    # straight-line code of a function above plan.LARGE_FUNCTION instructions a
    # loop costs LLVM's IndVarSimplify (its preheader) x (the function), so
    # there csum_diff stays out of line while the loop-free helper is spliced.
    import os
    from inliner.link import plan
    from inliner.tools import conformance
    code = conformance.program_bytes(conformance.parse_test(
        "-- asm\nmov %r6, %r1\nmov %r7, 0\n" + "add %r7, 1\n" * padding +
        "mov %r1, 0\nmov %r2, 0\nmov %r3, %r6\nmov %r4, 20\nmov %r5, 0\ncall 28\n"
        "add %r7, %r0\ncall 15\nadd %r0, %r7\nexit\n"))
    loaded, linked = pipeline.load(loader.from_raw(code), pipeline.LinkOptions())
    actions = {d.site.helper_id: d for d in linked.decisions}
    huge = padding + 12 > plan.LARGE_FUNCTION
    assert actions[28].action == ("outline" if huge else "inline")
    assert ("has a loop" in actions[28].reason) == huge
    assert actions[15].action == "inline"
    words = sum(struct.unpack("=10H", HEADER))
    while words >> 16:
        words = (words & 0xFFFF) + (words >> 16)
    uid_gid = os.getgid() << 32 | os.getuid()
    assert loaded.call("bpf_main", bytearray(HEADER)) == uid_gid + padding + words
