"""The `ebpf-lto` command line.

Bad input costs one line on standard error and exit status 2; output files
are written whole or not at all.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import io
import json
import logging
import os
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from . import __version__, cli_raw, codegen, inputs, pipeline
from .elf import loader
from .errors import EbpfLtoError
from .facts import contexts, isa, maps, progtypes
from .facts.abi import ABIS, ENTRY_SYMBOL, MAP_HANDLES
from .facts.helpers import helper_name
from .link import plan
from .run.runner import ProgramFault
from .tools.asm import SYNTAXES

EXIT_FAULT = 1      # a checked program stopped (docs/safety.md)
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage plus error
        raise EbpfLtoError(f"{message} (see {self.prog} --help)")


def _add_link_options(p: argparse.ArgumentParser) -> None:
    cli_raw.add_options(p)
    p.add_argument("-O", dest="opt_level", type=int, choices=codegen.OPT_LEVELS, default=2,
                   metavar="N", help="optimization level 0-3, as clang's -O (default 2)")
    p.add_argument("--target", default="x86_64", choices=sorted(codegen.TRIPLES),
                   help="architecture to emit code for (default x86_64)")
    p.add_argument("--cpu", default="generic",
                   help="LLVM cpu name, 'native' or 'generic' (default generic)")
    p.add_argument("--no-checks", dest="checks", action="store_false",
                   help="no run-time memory checks and no step budget: for programs already "
                        "verified by the kernel or PREVAIL (docs/safety.md); link-time "
                        "refusals stay")
    p.add_argument("--max-steps", type=int, default=pipeline.DEFAULT_MAX_STEPS, metavar="N",
                   help=f"back edges and calls one run may take before it is stopped "
                        f"(default {pipeline.DEFAULT_MAX_STEPS})")
    p.add_argument("--program", metavar="NAME", help="only this program (default: all; "
                   "the first is bpf_main)")
    p.add_argument("--type", dest="prog_type", metavar="TYPE",
                   help="the program type, as bpftool's 'prog load ... type' names it (xdp, tc, "
                        "socket, kprobe, ...: a libbpf section name): overrides what the "
                        "section name says (docs/abi.md)")
    p.add_argument("--ncpus", type=int, default=maps.default_ncpus(), metavar="N",
                   help="copies of each value in per-cpu maps (default: this host's cpus)")
    p.add_argument("--maps", choices=("own", "extern"), default="own",
                   help="own: the object holds its maps' state; extern: the host defines "
                        "ebpf_lto_state_NAME for each map (docs/maps.md)")
    p.add_argument("--abi", choices=ABIS, default="ebpf-lto",
                   help="ebpf-lto: the object holds its maps; bpftime: bpftime's runtime holds "
                        "them, named by --map-fd, and map helpers are its calls (docs/abi.md)")
    p.add_argument("--map-fd", metavar="NAME=FD", action="append", default=[],
                   help="with --abi bpftime, the fd of map NAME in bpftime's runtime "
                        "(repeatable; default: 3, 4, ... in libbpf's order, as bpftime's "
                        "loader gives them)")
    p.add_argument("--map-handle", choices=MAP_HANDLES, default=None,
                   help="with --abi bpftime, what bpftime's runtime hands the code for a map: "
                        "fd, the fd itself (default); shifted, fd << 32 | 0xffffffff "
                        "(bpftime before it stopped shifting); or by-fd, what the host's "
                        "__lddw_helper_map_by_fd(fd) answers at run time (bpftime-aot build)")
    p.add_argument("--helpers", metavar="SETS", default="default",
                   help="helper sets: a comma list of set names (default, conformance, none) "
                        "and .bc/.ll files; later ones override earlier ones (default: default)")
    p.add_argument("--inline", choices=plan.MODES, default="auto",
                   help="auto: the plan decides each call site; all: splice every helper in; "
                        "none: helpers stay external calls, as bpftime's AOT has them")
    p.add_argument("--inline-threshold", type=int, default=plan.DEFAULT_THRESHOLD, metavar="N",
                   help=f"largest helper (IR instructions) spliced in everywhere "
                        f"(default {plan.DEFAULT_THRESHOLD})")
    p.add_argument("--no-inline", metavar="HELPER", action="append", default=[],
                   help="keep this helper (name or id) out of line (repeatable)")
    p.add_argument("--force-inline", metavar="HELPER", action="append", default=[],
                   help="splice this helper (name or id) in everywhere (repeatable)")
    p.add_argument("--instrument", action="store_true",
                   help="count basic blocks and taken branches, for run --profile-out")
    p.add_argument("--profile", metavar="FILE",
                   help="an LLVM instrumentation profile (text or indexed .profdata) to "
                        "weigh branches and call sites with (docs/pgo.md)")


def _seed(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number, not {text!r}") from None
    if not 0 <= value < 2**64:
        raise argparse.ArgumentTypeError(f"0 to 2**64 - 1, not {text}")
    return value


def _options(args) -> pipeline.LinkOptions:
    if args.ncpus < 1:
        raise EbpfLtoError(f"--ncpus must be at least 1, not {args.ncpus}")
    if args.inline_threshold < 0:
        raise EbpfLtoError(f"--inline-threshold must not be negative, not {args.inline_threshold}")
    if not 0 < args.max_steps < 2**63:
        raise EbpfLtoError(f"--max-steps must be 1 to 2^63-1, not {args.max_steps}")
    return pipeline.LinkOptions(opt_level=args.opt_level, arch=args.target, cpu=args.cpu,
                                program=args.program, helpers=args.helpers, ncpus=args.ncpus,
                                maps_extern=args.maps == "extern", inline=args.inline,
                                inline_threshold=args.inline_threshold,
                                no_inline=tuple(args.no_inline),
                                force_inline=tuple(args.force_inline),
                                instrument=args.instrument, profile=args.profile,
                                abi=args.abi, map_fds=cli_raw.map_fds(args.map_fd),
                                map_handle=args.map_handle,
                                checks=args.checks, max_steps=args.max_steps)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ebpf-lto", description="Link eBPF objects with their helpers "
                     "into one optimized native object.")
    parser.add_argument("--version", action="version", version=f"ebpf-lto {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("link", help="compile an eBPF object to a native object")
    p.add_argument("input", nargs="?", help="eBPF ELF object (clang -target bpf), or LLVM IR "
                   "or bitcode from link --emit llvm|bc or from another lifter using "
                   "_bpf_helper_ext_NNNN helper names")
    p.add_argument("-o", dest="output", required=True, help="output file")
    p.add_argument("--emit", choices=codegen.EMIT_KINDS, default="obj",
                   help="obj (default), asm, llvm (IR text) or bc (bitcode)")
    talk = p.add_mutually_exclusive_group()
    talk.add_argument("-v", "--verbose", action="store_true",
                      help="print each stage with its time, and the plan's summary, to stderr")
    talk.add_argument("-q", "--quiet", action="store_true",
                      help="print no warnings (errors still)")
    _add_link_options(p)
    p.set_defaults(func=cmd_link)

    p = sub.add_parser("run", help="compile and run a program in-process")
    p.add_argument("input", nargs="?", help="eBPF ELF object")
    p.add_argument("--mem", metavar="HEX|@FILE",
                   help="memory for r1 (r2 = its length): hex bytes, or @file of raw bytes")
    p.add_argument("--packet", metavar="HEX|@FILE", action="append",
                   help="run on this packet, in the program type's context (repeatable)")
    p.add_argument("--pcap", metavar="FILE", help="run on every packet of a pcap/pcapng file")
    p.add_argument("--map", metavar="NAME=@FILE", action="append",
                   help="fill a map before the run from a JSON list of [key, value] pairs "
                        "(hex bytes or integers); --json prints every map after the run")
    p.add_argument("--seed", metavar="N", type=_seed,
                   help="key bpf_get_prandom_u32 so that runs repeat its numbers")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--profile-out", metavar="FILE", help="instrument, run, and write the "
                   "profile (.profdata: LLVM's indexed format; otherwise its text format)")
    _add_link_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("explain", help="show which call sites the plan splices in, and why")
    p.add_argument("input", nargs="?", help="eBPF ELF object")
    p.add_argument("--dot", metavar="FILE",
                   help="also write the program's call graph (its functions and the helpers "
                        "they call, edges coloured by decision) in Graphviz DOT; render it "
                        "with: dot -Tsvg FILE -o graph.svg")
    p.add_argument("--json", action="store_true",
                   help="print the plan as JSON (schema: docs/cli.md)")
    p.add_argument("--checks", dest="show_checks", action="store_true",
                   help="instead of the plan, how each memory access, helper call and loop "
                        "is kept safe: proven at link time or checked at run time, and where "
                        "(docs/safety.md)")
    _add_link_options(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("disasm", help="print the programs of an eBPF object as assembly")
    p.add_argument("input", help="eBPF ELF object")
    p.add_argument("--raw", action="store_true", help="show each instruction's bytes")
    p.add_argument("--syntax", choices=SYNTAXES, default="ubpf",
                   help="ubpf: bpf_conformance's syntax, exact: it assembles back to the "
                        "same bytes (ldxw %%r2, [%%r1+4]; the default); llvm: llvm-objdump's "
                        "and bpftool's (r2 = *(u32 *)(r1 + 0x4))")
    p.add_argument("--json", action="store_true",
                   help="print JSON: each function and its instructions (schema: docs/cli.md)")
    p.set_defaults(func=cmd_disasm)

    p = sub.add_parser("conformance", help="run a bpf_conformance test folder")
    p.add_argument("directory", help="folder of .data files (searched recursively)")
    p.add_argument("-O", dest="opt_level", type=int, choices=codegen.OPT_LEVELS, default=2,
                   metavar="N", help="optimization level 0-3 (default 2)")
    p.add_argument("--cpu", default="generic", help="LLVM cpu name (default generic)")
    p.add_argument("--target", default=codegen.host_arch(), choices=sorted(codegen.TRIPLES),
                   help="architecture to emit code for (default: the host's); another "
                        "architecture's code runs under qemu-user (inliner/emulate.py)")
    p.add_argument("--inline", choices=plan.MODES, default="auto",
                   help="splice the suite's helpers in (auto, all) or keep them external (none)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only failures")
    p.set_defaults(func=cmd_conformance)

    # No '-' prefix: every word, options included, reaches the command as it
    # came, since runners give the options as one argument or split on spaces.
    p = sub.add_parser("conformance-plugin", prefix_chars="+", add_help=False,
                       help="the bpf_conformance runner's plugin: memory hex in argv, "
                            "program hex on stdin, r0 in hex on stdout (-h for its options)")
    p.add_argument("words", nargs="*", metavar="[MEMORY] [OPTIONS]")
    p.set_defaults(func=cmd_conformance_plugin)

    p = sub.add_parser("corpus", help="link every program of every object under a folder "
                       "and report what was linked, refused, or hit an internal error")
    p.add_argument("directory", help="folder of eBPF objects (searched recursively)")
    p.add_argument("-O", dest="opt_level", type=int, choices=codegen.OPT_LEVELS, default=2,
                   metavar="N", help="optimization level 0-3 (default 2)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--jobs", type=int, metavar="N", help="worker processes (default: one a core)")
    p.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                   help="time one program may take before it counts as hung (default 300)")
    p.add_argument("--helpers", metavar="SETS", default="default",
                   help="helper sets to link in, as for link (default: default)")
    p.add_argument("--compare", action="store_true",
                   help="also run each packet and tracing program inlined, not inlined and in "
                        "the reference interpreter; any difference in r0, memory or maps fails "
                        "the run")
    p.add_argument("--profile", metavar="DIR", help="train each packet program on examples/"
                   "traffic.pcap, profile into DIR, relink, time both builds (docs/corpus.md)")
    p.set_defaults(func=cmd_corpus)

    p = sub.add_parser("bench", help="time the benchmark suite in every mode (--inline none, "
                       "inline+LTO, native twin, DPDK) natively; docs/benchmarks.md")
    from .tools.bench import add_arguments as add_bench_arguments
    add_bench_arguments(p)
    p.set_defaults(func=cmd_bench)
    return parser


def _write_error(err: OSError, path: str) -> EbpfLtoError:
    return EbpfLtoError(f"cannot write: {err.strerror}", file=inputs.display_name(path))


def write_atomically(path: str, data: bytes) -> None:
    """Write all of `data` or leave `path` as it was; `-` is standard output."""
    if path == "-":  # a failed write (/dev/full) is main's to report
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    target = Path(path)
    if target.exists() and not target.is_file():
        # A device or pipe (/dev/null): write through it, never replace it.
        try:
            with open(target, "wb") as fh:
                fh.write(data)
            return
        except OSError as err:
            raise _write_error(err, path) from None
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=directory)
    except OSError as err:
        raise _write_error(err, path) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as err:
        os.unlink(tmp)
        raise _write_error(err, path) from None


def _input_paths(args) -> list[str]:
    """Every file the command reads, named by its options."""
    paths = [cli_raw.input_path(args)]
    helper_files = getattr(args, "helpers", "") or ""
    paths += [h.strip() for h in helper_files.split(",") if h.strip().endswith((".bc", ".ll"))]
    for spec in (getattr(args, "mem", None), *(getattr(args, "packet", None) or ())):
        if spec and spec.startswith("@"):
            paths.append(spec[1:])
    paths += [spec.partition("=@")[2] for spec in getattr(args, "map", None) or ()]
    paths += [p for p in (getattr(args, "pcap", None), getattr(args, "profile", None)) if p]
    return paths


def _refuse_clobbering(args, option: str, output: str | None) -> None:
    """Refuse an output file that is one of the inputs, whatever the path (links, ../x).

    Checked before any work, so the input is never overwritten by what was
    made from it.
    """
    if not output or output == "-":
        return
    try:
        out = os.stat(output)
    except OSError:  # not there yet, or unreachable: the write says why
        return
    for path in _input_paths(args):
        try:
            same = os.path.samestat(os.stat(path), out)
        except OSError:
            continue
        if same and stat.S_ISREG(out.st_mode):
            raise EbpfLtoError(f"{option} {inputs.display_name(output)} is the input file "
                               f"{inputs.display_name(path)}; refusing to overwrite it")


def _load_object(path: str, args=None, data: bytes | None = None) -> loader.EbpfObject:
    """The eBPF object at `path`, refused by its first bytes if it is something else;
    with the type `--type` gives its chosen programs. Raw input (cli_raw) instead."""
    if args is not None and cli_raw.given(args):
        obj = cli_raw.load(args)
    else:
        if data is None:
            _, data = inputs.read(path, "input", (inputs.ELF,))
        obj = loader.load(inputs.display_name(path), data)
    for note in obj.notes:
        pipeline.log.info("load: %s", note)
    if getattr(args, "prog_type", None):
        try:
            kind = progtypes.by_name(args.prog_type)
        except ValueError:
            raise EbpfLtoError(f"unknown --type {args.prog_type!r} (known: "
                               f"{', '.join(progtypes.type_names())}, ...)") from None
        obj.retype(kind, args.program)
    return obj


def _warn_load(obj, args) -> None:
    """What the load refused, and programs linked as type unspec: a line each."""
    if getattr(args, "quiet", False):
        return
    chosen = [obj.program(args.program)] if args.program else obj.programs
    lines = [f"{obj.path}: {w}" for w in obj.warnings]
    if not args.program:
        lines += [f"program {name} refused: {err}" for name, err in obj.refused.items()]
    lines += [f"program {p.name} (section {p.section}) is linked as type unspec: its context "
              "is treated as raw memory (give its type with --type)"
              for p in chosen if p.prog_type == progtypes.UNSPEC]
    for line in lines:
        print(f"ebpf-lto: warning: {line}", file=sys.stderr)


def parse_memory(spec: str | None) -> bytes | None:
    if spec is None:
        return None
    if spec.startswith("@"):
        return inputs.read(spec[1:], "memory file")[1]
    try:
        return bytes.fromhex(spec.replace(",", " "))
    except ValueError:
        raise EbpfLtoError(f"--mem is neither hex bytes nor @file: {spec[:40]!r}") from None


def _report_warnings(linked, quiet: bool = False) -> None:
    if quiet:
        return
    for name in linked.stale:
        print(f"ebpf-lto: warning: the profile of {name} does not match it (the program "
              "changed); ignored for that function", file=sys.stderr)
    for target in linked.skipped_targets:
        print(f"ebpf-lto: warning: tail calls to program {target}; they fail as to an empty "
              "slot", file=sys.stderr)


@contextmanager
def _verbose(enabled: bool):
    """With -v, the pipeline's stage log on stderr, clang -v style."""
    if not enabled:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ebpf-lto: %(message)s"))
    level = pipeline.log.level
    pipeline.log.addHandler(handler)
    pipeline.log.setLevel(logging.INFO)
    try:
        yield
    finally:
        pipeline.log.removeHandler(handler)
        pipeline.log.setLevel(level)


def cmd_link(args) -> int:
    _refuse_clobbering(args, "-o", args.output)
    with _verbose(args.verbose):
        raw = cli_raw.given(args)
        kind, source = ((inputs.ELF, b"") if raw
                        else inputs.read(args.input, "input", inputs.OBJECT_KINDS))
        name = inputs.display_name(cli_raw.input_path(args))
        pipeline.log.info("read %s: %s", name, "raw bytecode" if raw
                          else f"{kind}, {len(source)} bytes")
        if kind == inputs.ELF:
            with pipeline.stage("load"):
                obj = _load_object(args.input, args, source)
            _warn_load(obj, args)
            data, linked = pipeline.link(obj, _options(args), emit=args.emit)
            _report_warnings(linked, args.quiet)
        else:  # LLVM IR or bitcode: another lifter's, or ebpf-lto's own --emit llvm|bc
            data, linked = pipeline.link_ir(source, name, _options(args), emit=args.emit)
        write_atomically(args.output, data)
        pipeline.log.info("wrote %s: %d bytes", "standard output" if args.output == "-"
                          else inputs.display_name(args.output), len(data))
    if linked.external_helpers and not args.quiet:
        ids = ", ".join(f"{h} ({helper_name(h)})" for h in linked.external_helpers
                        if not linked.helper_set or h not in linked.helper_set.ids)
        if ids:
            print(f"ebpf-lto: helpers left external: {ids}", file=sys.stderr)
    return 0


def read_pcap(path: str) -> list[bytes]:
    import logging
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)  # no libpcap warnings
    from scapy.error import Scapy_Exception
    from scapy.utils import PcapReader
    _, data = inputs.read(path, "pcap file")
    try:
        with PcapReader(io.BytesIO(data)) as reader:
            return [bytes(pkt) for pkt in reader]
    except (Scapy_Exception, OSError, EOFError, ValueError) as err:
        raise EbpfLtoError(f"not a readable pcap file: {err}",
                           file=inputs.display_name(path)) from None


def cmd_run(args) -> int:
    from .facts.contexts import REDIRECT_ACTIONS, action_name
    from .run.hostmaps import MapAccess
    _refuse_clobbering(args, "--profile-out", args.profile_out)
    obj = _load_object(args.input, args)
    program = obj.program(args.program)
    _warn_load(obj, args)
    packets = [parse_memory(p) for p in args.packet or ()]
    if args.pcap:
        packets += read_pcap(args.pcap)
    by_packet = bool(args.packet or args.pcap)
    if by_packet and args.mem is not None:
        raise EbpfLtoError("--mem and --packet/--pcap do not go together")
    options = _options(args)
    if args.profile_out:
        options = dataclasses.replace(options, instrument=True)
    loaded, linked = pipeline.load(obj, options)
    _report_warnings(linked)
    if args.seed is not None:
        loaded.seed(args.seed)
    maps = MapAccess(loaded)
    for spec in args.map or ():
        name, sep, path = spec.partition("=@")
        if not sep:
            raise EbpfLtoError(f"--map wants NAME=@FILE.json, not {spec!r}")
        maps.fill(name, path)
    out: dict = {"program": program.name}
    faults = 0
    if by_packet:
        out["results"] = []
        layout = contexts.for_program_type(program.prog_type)
        for n, packet in enumerate(packets, 1):
            try:
                r0, after = loaded.call_packet(ENTRY_SYMBOL, layout, packet)
            except ProgramFault as fault:
                faults += 1
                out["results"].append({"packet": n, "fault": str(fault)})
                if not args.json:
                    print(f"packet {n}: fault: {fault}")
                continue
            action = action_name(program.prog_type, r0)
            result = {"packet": n, "r0": r0, "action": action, "data": after.hex()}
            target = loaded.redirect() if action in REDIRECT_ACTIONS else None
            if target is not None:
                result["redirect"] = target.as_json(list(maps.maps))
            out["results"].append(result)
            if not args.json:
                shown = f"{action} (r0 = {r0})" if action else f"r0 = {r0} ({r0:#x})"
                if target is not None:
                    shown += f" -> {result['redirect']['text']}"
                print(f"packet {n}: {shown}")
    else:
        memory = parse_memory(args.mem)
        if memory is None and _reads_input(obj, program):
            raise EbpfLtoError(f"program {program.name} reads memory through r1: give it with "
                               "--mem HEX|@FILE")
        buf = bytearray(memory or b"")
        try:
            out["r0"] = r0 = loaded.call(ENTRY_SYMBOL, buf if memory else None)
        except ProgramFault as fault:
            faults += 1
            out["fault"] = str(fault)
            print(f"ebpf-lto: fault: {fault}", file=sys.stderr)
        else:
            if not args.json:
                print(f"{program.name}: r0 = {r0} ({r0:#x})")
        if memory:
            out["mem"] = buf.hex()
    if args.profile_out:
        from .pgo import profile
        write_atomically(args.profile_out, profile.save(profile.read_counters(loaded),
                                                        args.profile_out))
    if args.json:
        out["maps"] = maps.dump()
        print(json.dumps(out))
    return EXIT_FAULT if faults else 0


def _reads_input(obj, program) -> bool:
    """Whether a program without a context layout accesses memory through its r1."""
    from .lift import analyze
    from .lift.values import Kind
    if contexts.for_program_type(program.prog_type) is not None:
        return False
    facts = analyze(obj, [program])[program.entry]
    slots = obj.code[program.entry.section]
    for idx, state in facts.before.items():
        insn = slots[idx]
        base = {isa.LDX: insn.src, isa.ST: insn.dst, isa.STX: insn.dst}.get(insn.cls)
        if base is not None and state.regs[base].kind is Kind.ARG and state.regs[base].root == 1:
            return True
    return False


def cmd_explain(args) -> int:
    _refuse_clobbering(args, "--dot", args.dot)
    obj = _load_object(args.input, args)
    _warn_load(obj, args)
    for note in obj.notes:
        print(f"ebpf-lto: note: {obj.path}: {note}", file=sys.stderr)
    _, linked = pipeline.link(obj, _options(args), emit="llvm")
    programs = [obj.program(args.program)] if args.program else obj.programs
    if args.dot:
        write_atomically(args.dot, plan.to_dot(
            linked.decisions, {obj.functions[p.entry].name: p.prog_type for p in programs}
        ).encode())
    if args.show_checks:
        return _explain_checks(obj, programs, linked.checks, args)
    if args.json:
        print(json.dumps({"file": obj.path, "programs": [p.name for p in programs],
                          "sites": [_site_json(d, helper_name) for d in linked.decisions]},
                         indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"call sites of {obj.path}")
    for column in ("function", "insn", "callee", "in loop", "count", "cost", "growth",
                   "decision", "reason"):
        table.add_column(column, justify="right" if column in ("insn", "count", "cost",
                                                                "growth") else "left")
    colour = {"inline": "green", "outline": "yellow", "external": "dim"}
    for d in linked.decisions:
        site = d.site
        callee = (f"{helper_name(site.helper_id)} ({site.helper_id})"
                  if site.helper_id is not None else site.callee.removeprefix("bpf."))
        table.add_row(site.function, str(site.insn), callee, "yes" if site.in_loop else "",
                      "" if d.count is None else str(d.count),
                      "" if d.cost is None else str(d.cost),
                      "" if d.growth is None else str(d.growth),
                      f"[{colour[d.action]}]{d.action}[/]", d.reason)
    # Not a terminal: wide enough that the reasons stay on one line.
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    return 0


def _explain_checks(obj, programs, checks, args) -> int:
    """explain --checks: per function, how many accesses are proven and how many
    checked at run time; then each run-time check."""
    by_function: dict[str, list] = {}
    for c in checks:
        by_function.setdefault(c.function, []).append(c)
    if args.json:
        print(json.dumps({"file": obj.path, "programs": [p.name for p in programs],
                          "checked": args.checks, "max_steps": args.max_steps,
                          "checks": [dataclasses.asdict(c) for c in checks]}, indent=2))
        return 0
    if not args.checks:
        print(f"{obj.path}: built with --no-checks: no run-time checks and no step budget; "
              "the link-time refusals still hold")
        return 0
    for function, items in by_function.items():
        accesses = [c for c in items if c.what in ("load", "store", "atomic")]
        proven = sum(c.proven for c in accesses)
        helpers = [c for c in items if c.what == "helper"]
        loops = [c for c in items if c.what == "loop"]
        print(f"{function}: {len(accesses)} memory accesses, {proven} proven at link time, "
              f"{len(accesses) - proven} checked at run time; {len(helpers)} helper calls "
              f"with pointer arguments, {sum(not c.proven for c in helpers)} checked; "
              f"{len(loops)} loops, {sum(c.proven for c in loops)} bounded by the facts, "
              f"{sum(not c.proven for c in loops)} counted against --max-steps {args.max_steps}")
        for c in items:
            if c.what == "copy":
                print(f"  insn {c.insn}: {c.how}")
            elif not c.proven:
                print(f"  insn {c.insn}: {c.what} checked {c.how}")
    return 0


def _site_json(d: plan.Decision, helper_name) -> dict:
    site = d.site
    helper = site.helper_id is not None
    return {"function": site.function, "insn": site.insn,
            "callee": helper_name(site.helper_id) if helper else site.callee.removeprefix("bpf."),
            "helper_id": site.helper_id, "in_loop": site.in_loop, "count": d.count,
            "cost": d.cost, "growth": d.growth, "decision": d.action, "reason": d.reason}


def cmd_disasm(args) -> int:
    from .tools.asm import format_insn
    obj = _load_object(args.input)
    programs = {p.entry: p for p in obj.programs}
    functions = []
    for key, func in sorted(obj.functions.items(), key=lambda kv: (kv[0].section, kv[0].start)):
        prog = programs.get(key)
        insns = []
        for idx in range(key.start, func.end):
            insn = obj.code[key.section][idx]
            if insn is None:
                continue
            note = _annotation(obj, key.section, idx, insn, helper_name)
            insns.append({"slot": idx, "bytes": insn.encode().hex(), "opcode": insn.opcode,
                          "dst": insn.dst, "src": insn.src, "off": insn.off, "imm": insn.imm,
                          **({"next_imm": insn.next_imm} if insn.is_wide else {}),
                          "text": format_insn(insn, syntax=args.syntax), "comment": note})
        functions.append({"name": func.name, "section": key.section, "program": prog is not None,
                          "type": prog.prog_type if prog else None, "start": key.start,
                          "end": func.end, "insns": insns})
    if args.json:
        print(json.dumps({"file": obj.path, "syntax": args.syntax, "functions": functions},
                         indent=2))
        return 0
    for f in functions:
        kind = f"program, type {f['type']}" if f["program"] else "function"
        print(f"{f['name']} ({kind}, section {f['section']}):")
        for i in f["insns"]:
            raw = f"{bytes.fromhex(i['bytes']).hex(' '):<48} " if args.raw else ""
            note = f" # {i['comment']}" if i["comment"] else ""
            print(f"{i['slot']:6}: {raw}{i['text']}{note}")
        print()
    return 0


def _annotation(obj, section: str, idx: int, insn, helper_name) -> str | None:
    """What a relocated instruction or a helper call refers to, by name."""
    ref = obj.refs.get((section, idx))
    if ref is not None:
        if ref.kind == "map":
            return f"map {ref.target}"
        if ref.kind == "data":
            return f"{ref.target}+{ref.offset}"
        name = obj.functions[ref.function].name
        return name if ref.kind == "call" else f"&{name}"
    if isa.call_kind(insn) is isa.CallKind.HELPER:
        return helper_name(insn.imm)
    return None


def cmd_conformance(args) -> int:
    from .run.emulate import Emulator
    from .tools import conformance
    options = pipeline.LinkOptions(opt_level=args.opt_level, cpu=args.cpu, arch=args.target,
                                   helpers=conformance.HELPERS, inline=args.inline)
    foreign = args.target != codegen.host_arch()
    counts = {"pass": 0, "fail": 0, "skip": 0}
    with Emulator(args.target) if foreign else contextlib.nullcontext() as emulator:
        for path in conformance.suite_files(args.directory):
            try:
                outcome = conformance.run_test(conformance.load_test(path), options, emulator)
            except EbpfLtoError as err:
                outcome = conformance.Outcome("fail", str(err))
            counts[outcome.status] += 1
            if outcome.status != "pass" or not args.quiet:
                detail = f": {outcome.detail}" if outcome.detail else ""
                print(f"{outcome.status.upper():4} {path.name}{detail}")
    skipped = f", {counts['skip']} skipped" if counts["skip"] else ""
    print(f"{counts['pass']} passed, {counts['fail']} failed{skipped}")
    return 1 if counts["fail"] else 0


def _plugin_options() -> argparse.ArgumentParser:
    p = _Parser(prog="ebpf-lto conformance-plugin",
                usage="%(prog)s [MEMORY] [-O N] [--cpu NAME] [--elf]",
                description="The bpf_conformance runner's plugin: MEMORY as hex bytes, the "
                            "program as hex bytes on standard input, r0 in hex on standard "
                            "output. The options may come as one argument ('-O 0', older "
                            "runners) or as separate words (newer runners split them).")
    p.add_argument("-O", dest="opt_level", type=int, choices=codegen.OPT_LEVELS, default=2,
                   metavar="N", help="optimization level 0-3 (default 2)")
    p.add_argument("--cpu", default="generic", help="LLVM cpu name (default generic)")
    p.add_argument("--elf", action="store_true",
                   help="standard input holds an eBPF ELF object, as the runner's --elf sends")
    return p


def cmd_conformance_plugin(args) -> int:
    from .tools import conformance
    words = list(args.words)
    # The memory comes first: always from older runners (maybe empty), only
    # when the test has some from newer ones. Hex bytes never start with '-'.
    memory = words.pop(0) if words and not words[0].startswith("-") else ""
    opts = _plugin_options().parse_args(" ".join(words).split())
    try:
        mem = bytes.fromhex(memory)
        code = bytes.fromhex(sys.stdin.read())
    except ValueError:
        raise EbpfLtoError("memory and program must be hex bytes") from None
    options = pipeline.LinkOptions(opt_level=opts.opt_level, cpu=opts.cpu,
                                   helpers=conformance.HELPERS)
    try:
        r0 = conformance.run_program(code, mem or None, options, elf=opts.elf)
    except ProgramFault as fault:  # the runner takes a failed run as the test's error
        print(f"ebpf-lto: fault: {fault}", file=sys.stderr)
        return EXIT_FAULT
    print(f"{r0:x}")
    return 0


def cmd_corpus(args) -> int:
    from .link.helpers import resolve
    from .tools import corpus
    resolve(args.helpers, codegen.host_arch())  # a bad --helpers is the user's, said once
    if args.profile:
        from .tools import corpus_profile
        return corpus_profile.command(args)
    report = corpus.survey(args.directory, opt_level=args.opt_level, jobs=args.jobs,
                           timeout=args.timeout, progress=True,
                           helpers=args.helpers, compare=args.compare)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        corpus.print_report(report)
    print(f"corpus: {corpus.summary_line(report)}", file=sys.stderr)
    # Refusals are answers; an internal error or a difference is a bug of ours.
    differ = report["compared"] and report["compared"]["differ"]
    return EXIT_INTERNAL if report["internal_errors"] or differ else 0


def cmd_bench(args) -> int:
    from .tools import bench
    return bench.command(args)


# Errors of a write that failed for want of room or a working device: the
# user's disk, not a bug of ours (standard output on /dev/full, say).
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def _discard_stdout() -> None:
    """Point standard output at /dev/null: what could not be written is dropped, not
    written again (and failed again, with a traceback) at exit."""
    try:
        fd = sys.stdout.fileno()
    except OSError:  # not a file (a caller's buffer): nothing is retried at exit
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    # File names may be any bytes (surrogate-escaped in argv): print them, never crash on them.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        status = args.func(args)
        sys.stdout.flush()  # a failed write is reported now, not at exit
        return status
    except EbpfLtoError as err:
        print(f"ebpf-lto: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("ebpf-lto: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug of ours: still one line, unless asked for more
        if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
            _discard_stdout()
            print(f"ebpf-lto: error: cannot write: {err.strerror}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if os.environ.get("EBPF_LTO_DEBUG"):
            raise
        print(f"ebpf-lto: internal error: {type(err).__name__}: {err} "
              "(set EBPF_LTO_DEBUG=1 for a traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
