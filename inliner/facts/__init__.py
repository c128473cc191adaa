"""Facts defined once and used by every stage and tool: the instruction set (isa.py),
the helper table (helpers.py), program contexts (contexts.py), maps and their
descriptor (maps.py), the native object's symbol names (abi.py), and the C view
of them the helper library compiles against (cabi.py, generating abi.h)."""
