"""Programs the Linux verifier accepts, where ebpf-lto's data flow joins what the
verifier follows path by path (tests/packet_c/spilled_ctx.c): checked or not, each runs as the
kernel runs it, the reference interpreter (tools/interp.py) agreeing."""
from pathlib import Path

import pytest

from inliner import pipeline
from inliner.elf import loader
from inliner.tools import corpus_compare

SPILLED_CTX_O = Path(__file__).parent / "packet_c" / "spilled_ctx.o"


@pytest.mark.parametrize("checks", [True, False], ids=["checked", "no-checks"])
@pytest.mark.parametrize("program", ["ctx_after_chosen_map", "ctx_after_either_maps_value",
                                     "ctx_after_value_field_by_offset"])
def test_the_context_spilled_before_a_store_into_a_chosen_maps_value_is_still_the_context(
        program, checks):
    """The map a lookup reads is one of two, chosen by a packet byte (or each path
    looks up its own, or the field of the value is chosen by a variable offset); a
    store into the value cannot touch the frame, so the context spilled there
    before is still the context when read back, and data_end - data is the
    packet's length. (Was: a false fault in the checked
    build, the userspace struct's pointer halves subtracted without checks.)"""
    obj = loader.load(str(SPILLED_CTX_O), SPILLED_CTX_O.read_bytes())
    results = corpus_compare.run_three(obj, program,
                                       pipeline.LinkOptions(checks=checks))
    assert corpus_compare.agreement(results) == "same"
    packets = corpus_compare.sample_packets()
    for build in ("inlined", "not inlined", "interpreter"):
        runs, _ = results[build]
        assert [run.r0 for run in runs] == [len(p) for p in packets]
