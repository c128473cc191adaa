"""ebpf-lto: link eBPF objects with their helpers into one optimized native object."""
__version__ = "0.1.0"
