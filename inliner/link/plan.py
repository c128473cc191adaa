"""Stage 4, plan: which call sites to splice in, decided over the call graph.

The graph (networkx) holds the programs, their bpf-to-bpf subprograms, the
helpers and whatever the helpers call, with one edge per call site. The
policy decides each site of the program: splice the callee in, keep one
shared out-of-line copy in the object, or leave it an external call. The
decision is applied as call-site attributes that LLVM's inliner obeys
(`alwaysinline`, `noinline`), so no call remains to a helper decided inline.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import llvmlite.binding as llvm
import networkx as nx

from ..errors import EbpfLtoError
from ..facts.abi import helper_id, helper_symbol
from ..facts.helpers import HELPER_IDS, REDIRECT_HELPERS, helper_name
from ..lift import Site
from .helpers import HelperSet

MODES = ("auto", "all", "none")
# Instructions of the callee as shipped (clang's ThinLTO pre-link -O2 form). 250
# admits every helper of the default library, csum_diff (about 120) included.
DEFAULT_THRESHOLD = 250
LOOP_FACTOR = 4           # a site inside a loop may cost this many times more
HOT_LIMIT = 4 * DEFAULT_THRESHOLD  # a site the profile says runs is spliced in up to this
CALL_COST = 6             # what an out-of-line call costs: setup, call, spills
# Growth the size rules may splice into one function. LLVM's loop passes
# (IndVarSimplify above all) cost about (loops in a function) x (its size), so
# unbounded splicing of a helper with a loop makes compile time quadratic in
# the number of call sites; past the budget a site shares the out-of-line copy.
CALLER_GROWTH_LIMIT = 4000
# Into a function above LARGE_FUNCTION eBPF instructions the size rules splice
# no helper with a loop (GCC's large-function-insns likewise stops inlining
# into huge functions). Where the call's arguments decide the loop's guard
# (csum_diff of a 20-byte header) the spliced loop is entered straight from
# the caller's code, one block with it, and IndVarSimplify sinks every
# instruction of that block the loop does not use below the loop, forgetting
# each one's SCEV by walking all its users: the rest of the function. One
# such loop costs (its preheader) x (the function): three in a 100k-
# instruction function took 3.6 s, 36 in a 10k one 5.2 s. Loop-free helpers
# cost what they add, and keep the budget.
LARGE_FUNCTION = 10_000


@dataclass(frozen=True)
class PlanOptions:
    mode: str = "auto"
    threshold: int = DEFAULT_THRESHOLD
    no_inline: frozenset[str] = frozenset()     # helper names (map_lookup_elem), ids or functions
    force_inline: frozenset[str] = frozenset()
    counts: dict | None = field(default=None, compare=False)  # (function, insn) -> profile count
    runtime_helpers: frozenset[int] = frozenset()  # always external: --abi bpftime's map helpers
    host_helpers: frozenset[int] = frozenset()  # --abi bpftime: helpers that need the C library


@dataclass(frozen=True)
class Decision:
    site: Site
    action: str   # "inline", "outline" or "external"
    reason: str
    cost: int | None = None
    growth: int | None = None
    count: int | None = None


def _matches(site: Site, names: frozenset[str]) -> bool:
    if site.helper_id is None:
        return site.callee in names or site.callee.removeprefix("bpf.") in names
    return site.helper_id in helper_ids(names)


def helper_ids(names: Iterable[str]) -> set[int]:
    """The helper ids that --no-inline/--force-inline names denote (functions are none)."""
    return {int(n) if n.isdigit() else HELPER_IDS[n.removeprefix("bpf_")] for n in names
            if n.isdigit() or n.removeprefix("bpf_") in HELPER_IDS}


def check_names(option: str, names: Iterable[str], functions: Iterable[str] = ()) -> None:
    """Refuse a --no-inline/--force-inline name that is no helper id, helper or function.

    A misspelt name would otherwise match no site and change nothing, silently.
    """
    known = {*HELPER_IDS, *(f"bpf_{name}" for name in HELPER_IDS), *functions}
    for name in names:
        if name.isdigit() or name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else \
            " (a helper name such as map_lookup_elem, its id, or a function of the object)"
        raise EbpfLtoError(f"{option} {name}: no helper or function of that name{hint}")


# Both walk every instruction of the helper library: once per set and process,
# not once per link (a corpus links hundreds of programs against one set).
@lru_cache(maxsize=16)
def helper_costs(hset: HelperSet) -> dict[str, int]:
    """Each helper-library function's size in IR instructions, optimized alone.

    The shipped bitcode is clang's -O2 pre-link form: simplified, not yet
    vectorized or unrolled, which is the size that inlining adds before the
    whole module is optimized for its target.
    """
    return {fn.name: sum(1 for block in fn.blocks for _ in block.instructions)
            for mod in hset.modules() for fn in mod.functions if not fn.is_declaration}


@lru_cache(maxsize=16)
def helper_loops(hset: HelperSet) -> frozenset[str]:
    """The helper-library functions whose control flow has a cycle: each block's
    edges to the blocks its terminator names, as llvmlite reads them."""
    looping = set()
    for mod in hset.modules():
        for fn in mod.functions:
            cfg = nx.DiGraph()
            for block in fn.blocks:
                *_, last = block.instructions
                cfg.add_edges_from((block, op) for op in last.operands
                                   if op.value_kind == llvm.ValueKind.basic_block)
            if not nx.is_directed_acyclic_graph(cfg):
                looping.add(fn.name)
    return frozenset(looping)


@lru_cache(maxsize=8)
def callee_edges(hset: HelperSet) -> tuple[tuple[str, str], ...]:
    """Calls made inside the helper library, for the graph."""
    edges = []
    for mod in hset.modules():
        for fn in mod.functions:
            for block in fn.blocks:
                for ins in block.instructions:
                    if ins.opcode == "call":
                        callee = list(ins.operands)[-1].name
                        if callee and not callee.startswith("llvm."):
                            edges.append((fn.name, callee))
    return tuple(edges)


def build_graph(sites: list[Site], costs: dict[str, int], library_edges,
                subprogram_sizes: dict[str, int]) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    for site in sites:
        caller = f"bpf.{site.function}"
        cost = costs.get(site.callee) if site.helper_id is not None \
            else subprogram_sizes.get(site.callee)
        g.add_edge(caller, site.callee, site=site, cost=cost,
                   growth=None if cost is None else max(cost - CALL_COST, 0))
        g.nodes[site.callee]["kind"] = "helper" if site.helper_id is not None else "subprogram"
    for caller, callee in library_edges:
        g.add_edge(caller, callee)
    return g


# Reasons of the size rules: the decisions the caller budget may overrule.
_SIZE_RULES = ("hot in the profile", "small (", "in a loop (")


def decide(sites: list[Site], graph: nx.MultiDiGraph, provided: frozenset[str],
           options: PlanOptions, sizes: dict[str, int] | None = None,
           loops: frozenset[str] = frozenset()) -> list[Decision]:
    """Each site's decision. `sizes`: eBPF function name -> instructions; `loops`:
    the helper-library functions with a loop (helper_loops)."""
    looping = {callee for callee in {site.callee for site in sites}
               if callee in loops or loops & nx.descendants(graph, callee)}
    return _within_budget(_decide_each(sites, graph, provided, options), sizes or {},
                          frozenset(looping))


def _within_budget(decisions: list[Decision], sizes: dict[str, int],
                   looping: frozenset[str]) -> list[Decision]:
    """Overrule size-rule splices past each function's CALLER_GROWTH_LIMIT, hottest
    sites first, and of helpers with a loop into functions above LARGE_FUNCTION."""
    def priority(n: int):
        dec = decisions[n]
        return (-(dec.count or 0), not dec.site.in_loop, dec.growth or 0, n)

    grown: dict[str, int] = {}
    out = list(decisions)
    for n in sorted(range(len(decisions)), key=priority):
        dec = decisions[n]
        if dec.action != "inline" or not dec.reason.startswith(_SIZE_RULES):
            continue
        size = sizes.get(dec.site.function, 0)
        total = grown.get(dec.site.function, 0) + (dec.growth or 0)
        if size > LARGE_FUNCTION and dec.site.callee in looping:
            out[n] = Decision(dec.site, "outline", f"it has a loop and {dec.site.function} "
                              f"is above {LARGE_FUNCTION} instructions ({size})",
                              dec.cost, dec.growth, dec.count)
        elif total > CALLER_GROWTH_LIMIT:
            out[n] = Decision(dec.site, "outline", f"{dec.site.function} grown by "
                              f"{grown.get(dec.site.function, 0)} already "
                              f"(limit {CALLER_GROWTH_LIMIT})", dec.cost, dec.growth, dec.count)
        else:
            grown[dec.site.function] = total
    return out


def _decide_each(sites: list[Site], graph: nx.MultiDiGraph, provided: frozenset[str],
                 options: PlanOptions) -> list[Decision]:
    recursive = {n for comp in nx.strongly_connected_components(graph)
                 for n in comp if len(comp) > 1 or graph.has_edge(n, n)}
    # Each site's edge, found once: scanning the callee's edges per site was quadratic
    # (a million-instruction program's 17k csum_diff sites: over two minutes).
    edge_of = {id(d["site"]): d for _, _, d in graph.edges(data=True) if "site" in d}
    out = []
    for site in sites:
        data = edge_of[id(site)]
        cost, growth = data["cost"], data["growth"]
        count = (options.counts or {}).get((site.function, site.insn))

        def d(action, reason):
            return Decision(site, action, reason, cost, growth, count)

        if site.lowered:
            out.append(d("inline", site.lowered))
        elif site.helper_id in options.runtime_helpers:
            owns = "the redirect" if site.helper_id in REDIRECT_HELPERS else "the maps"
            out.append(d("external", f"the runtime owns {owns} (--abi bpftime)"))
        elif site.helper_id in options.host_helpers:
            out.append(d("external", "it needs the C library, which bpftime's loader does "
                                     "not give (--abi bpftime)"))
        elif site.helper_id is not None and site.callee not in provided:
            out.append(d("external", "no helper set provides it"))
        elif options.mode == "none":
            out.append(d("external" if site.helper_id is not None else "outline", "--inline none"))
        elif _matches(site, options.no_inline):
            out.append(d("outline", "--no-inline"))
        elif _matches(site, options.force_inline):
            out.append(d("inline", "--force-inline"))
        elif site.callee in recursive:
            out.append(d("outline", "recursive"))
        elif options.mode == "all":
            out.append(d("inline", "--inline all"))
        elif count is not None and count == 0:
            out.append(d("outline", "never run in the profile"))
        elif count is not None and cost is not None and cost <= HOT_LIMIT:
            out.append(d("inline", f"hot in the profile ({count} calls)"))
        elif cost is not None and cost <= options.threshold:
            out.append(d("inline", f"small ({cost} <= {options.threshold})"))
        elif site.in_loop and cost is not None and cost <= LOOP_FACTOR * options.threshold:
            out.append(d("inline", f"in a loop ({cost} <= {LOOP_FACTOR}x{options.threshold})"))
        else:
            out.append(d("outline", f"large ({cost} > {options.threshold})"))
    return out


def apply(decisions: list[Decision]) -> None:
    """Set the call-site attributes that make LLVM's inliner carry out the plan."""
    for dec in decisions:
        if dec.site.call is None:  # lowered by the lifter: nothing left to mark
            continue
        for call in (dec.site.call, *dec.site.copies):
            if dec.action == "inline":
                call.attributes.add("alwaysinline")
            elif dec.action == "outline":
                call.attributes.add("noinline")


def plan(sites: list[Site], hset: HelperSet | None, options: PlanOptions,
         subprogram_sizes: dict[str, int]) -> tuple[list[Decision], nx.MultiDiGraph]:
    if hset is None:
        costs, edges, provided, loops = {}, [], frozenset(), frozenset()
    else:
        costs = helper_costs(hset)
        edges = callee_edges(hset)
        provided = frozenset(helper_symbol(h) for h in hset.ids)
        loops = helper_loops(hset)
    graph = build_graph(sites, costs, edges, subprogram_sizes)
    # Sizes by the eBPF name a site gives its function (the lifter's are by LLVM name).
    callers = {site.function: subprogram_sizes.get(site.call.function.name, 0)
               for site in sites if site.call is not None}
    return decide(sites, graph, provided, options, callers, loops), graph


def to_dot(decisions: list[Decision], programs: dict[str, str]) -> str:
    """The program's call graph in Graphviz's DOT language.

    Nodes are the programs (`programs`: function name -> program type), the
    functions they call and the helpers called, not the helper library's
    inner calls; each call site is an edge coloured by its decision. Render
    with `dot -Tsvg plan.dot -o plan.svg`.
    """
    colour = {"inline": "forestgreen", "outline": "darkorange", "external": "gray50"}
    nodes = {f"bpf.{name}": f"{name}\\n{kind} program" for name, kind in programs.items()}
    for d in decisions:
        nodes.setdefault(f"bpf.{d.site.function}", d.site.function)
        callee, hid = d.site.callee, d.site.helper_id
        nodes.setdefault(callee, f"{helper_name(hid)} ({hid})" if hid is not None
                         else callee.removeprefix("bpf."))
    lines = ["// render: dot -Tsvg plan.dot -o plan.svg", "digraph plan {",
             "  rankdir=LR; node [fontname=monospace]; edge [fontname=monospace];"]
    for node, label in nodes.items():
        shape = ("ellipse" if helper_id(node) is not None
                 else "box, style=bold" if node.removeprefix("bpf.") in programs else "box")
        lines.append(f'  {_dot_id(node)} [label="{label}", shape={shape}];')
    for d in decisions:
        lines.append(f'  {_dot_id("bpf." + d.site.function)} -> {_dot_id(d.site.callee)} '
                     f'[label="insn {d.site.insn}: {d.action}", color={colour[d.action]}, '
                     f'fontcolor={colour[d.action]}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_id(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
