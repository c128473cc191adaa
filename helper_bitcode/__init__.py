"""Helper C sources and their clang-built bitcode (see Makefile); data only."""
