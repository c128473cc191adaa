"""The one error type for input the tool cannot honour.

The command line turns it into a single line on standard error and exit
status 2; library users catch it to get the same location fields.
"""
from __future__ import annotations


class EbpfLtoError(Exception):
    """Bad or unsupported input, located as precisely as the stage knows."""

    def __init__(self, reason: str, *, file: str | None = None,
                 section: str | None = None, insn: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.file = file
        self.section = section
        self.insn = insn

    def located(self, *, file: str | None = None, section: str | None = None) -> "EbpfLtoError":
        """Fill in location fields that an inner stage could not know."""
        if self.file is None:
            self.file = file
        if self.section is None:
            self.section = section
        return self

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.section:
            parts.append(f"section {self.section}")
        if self.insn is not None:
            parts.append(f"insn {self.insn}")
        parts.append(self.reason)
        return ": ".join(parts)
