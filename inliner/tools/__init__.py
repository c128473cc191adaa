"""Tools around the pipeline, never imported by it: the assembler and disassembler
(asm.py), the reference interpreter (interp.py), the conformance runner
(conformance.py), the corpus survey (corpus.py) and its
`--compare` (corpus_compare.py), the benchmarks (bench/) and
progress lines (progress.py). They reach the pipeline through its public API."""
