"""Stage 1, load: an eBPF ELF object to plain data (model.py), by loader.py and btf.py."""
