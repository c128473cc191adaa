"""Stage 6, run: native objects loaded in-process through ORC (runner.py), their maps
(hostmaps.py), and another architecture's objects under qemu-user (emulate.py)."""
