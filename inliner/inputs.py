"""Input files: read whole but bounded, and told apart by their first bytes.

Every file a command reads (the object or IR to link, --mem and --packet
bytes, --map entries, a profile, a helper file) comes through `read`, so a
device, a directory or a file past MAX_INPUT_BYTES is refused before it is
read, and a file that is not what the option takes is named for what it
looks like ("a pcap capture", "C source") before any parser sees it.
"""
from __future__ import annotations

import codecs
import os
import re
import stat

from .errors import EbpfLtoError

# Far above any eBPF object, IR module or profile the tool makes or takes;
# a bigger file is refused, not read (/dev/zero through a pipe included).
MAX_INPUT_BYTES = 256 << 20
HEAD_BYTES = 64 << 10  # what classify and describe look at

ELF, BITCODE, LLVM_IR = "an eBPF object", "LLVM bitcode", "LLVM IR"
OBJECT_KINDS = (ELF, BITCODE, LLVM_IR)

BITCODE_MAGICS = (b"BC\xc0\xde", (0x0B17C0DE).to_bytes(4, "little"))  # raw; wrapper

# What LLVM IR text starts with, after blank lines and `;` comments.
_IR_START = re.compile(rb"(?:source_filename|target\s|define\s|declare\s|attributes\s|module\s+asm"
                       rb"|uselistorder|[@%!$](?:[-\w$.]+|\"[^\"\n]*\")\s*=)")
_IR_SKIP = re.compile(rb"(?:\s+|;[^\n]*)*")

_MAGICS = (
    (b"\x7fELF", "an ELF file"),
    (b"\xd4\xc3\xb2\xa1", "a pcap capture"), (b"\xa1\xb2\xc3\xd4", "a pcap capture"),
    (b"\x4d\x3c\xb2\xa1", "a pcap capture"), (b"\xa1\xb2\x3c\x4d", "a pcap capture"),
    (b"\x0a\x0d\x0d\x0a", "a pcapng capture"),
    (b"\xfflprofi\x81", "an indexed LLVM profile (.profdata)"),
    (b"\x1f\x8b", "gzip-compressed data"), (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data"), (b"BZh", "bzip2-compressed data"),
    (b"PK\x03\x04", "a zip archive"), (b"!<arch>\n", "an ar archive (a static library)"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O object"), (b"MZ", "a Windows executable"),
)
_C_SOURCE = re.compile(r"^\s*(?:#\s*(?:include|define|ifn?def|if|pragma)\b|SEC\(|"
                       r"(?:static\s+)?(?:int|void|char|struct|__u\d+|u\d+)\s+\w+)", re.M)
_TEXT_PROFILE = re.compile(r"\A(?:# IR level Instrumentation Flag|:ir\b)")


def display_name(path: str | bytes) -> str:
    """A file name as it can be printed: bytes that are not UTF-8 shown as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def classify(head: bytes) -> str | None:
    """ELF, BITCODE or LLVM_IR by the first bytes of a file; None for anything else."""
    if head[:4] == b"\x7fELF":
        return ELF
    if head[:4] in BITCODE_MAGICS:
        return BITCODE
    if _IR_START.match(head, _IR_SKIP.match(head).end()):
        return LLVM_IR
    return None


def _as_text(head: bytes) -> str | None:
    """The head as text if it is UTF-8 without control characters (a cut last character allowed)."""
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 32 and c not in "\t\n\r\f" for c in text):
        return None
    return text


def describe(data: bytes, whole: bool = True) -> str:
    """What a file looks like, for a message; `whole`: `data` is all of the file."""
    head = data[:HEAD_BYTES]
    whole = whole and len(data) <= HEAD_BYTES
    if not head:
        return "it is empty"
    if head.count(0) == len(head):
        return "it is all zero bytes" if whole else f"its first {len(head)} bytes are zeros"
    for magic, what in _MAGICS:
        if head.startswith(magic):
            return f"it looks like {what}"
    text = _as_text(head)
    if text is None:
        return "it looks like binary data"
    if _TEXT_PROFILE.match(text):
        return "it looks like an LLVM text profile"
    if text.startswith("#!"):
        return "it looks like a script"
    if _C_SOURCE.search(text):
        return "it looks like C source"
    return "it looks like text"


def _open(path: str, what: str) -> int:
    """An fd for reading; never blocks on a FIFO that has no writer (it then reads as empty)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise EbpfLtoError(f"cannot read {what}: {err.strerror}", file=display_name(path)) from None
    st = os.fstat(fd)
    refusal = None
    if stat.S_ISDIR(st.st_mode):
        refusal = "is a directory"
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        refusal = "is a device, not a file"
    elif stat.S_ISREG(st.st_mode) and st.st_size > MAX_INPUT_BYTES:
        refusal = f"is {st.st_size >> 20} MiB, over the {MAX_INPUT_BYTES >> 20} MiB input limit"
    if refusal:
        os.close(fd)
        raise EbpfLtoError(f"cannot read {what}: it {refusal}", file=display_name(path))
    os.set_blocking(fd, True)  # a pipe with a writer: wait for its bytes
    return fd


def _read_upto(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(fd, min(limit - size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def read(path: str, what: str, kinds: tuple[str, ...] = ()) -> tuple[str | None, bytes]:
    """The kind (one of `kinds`) and bytes of the file at `path`.

    With `kinds`, a file of another kind is refused by its first bytes before
    the rest is read, the message saying what it looks like. Without, any
    bytes are taken.
    """
    fd = _open(path, what)
    try:
        head = _read_upto(fd, HEAD_BYTES)
        kind = classify(head)
        if kinds and kind not in kinds:
            whole = len(head) < HEAD_BYTES or not _read_upto(fd, 1)
            looks = f"it is {kind}" if kind else describe(head, whole)
            raise EbpfLtoError(f"not {_listed(kinds)} ({looks})", file=display_name(path))
        rest = _read_upto(fd, MAX_INPUT_BYTES + 1 - len(head)) if len(head) == HEAD_BYTES else b""
    except OSError as err:
        raise EbpfLtoError(f"cannot read {what}: {err.strerror}", file=display_name(path)) from None
    finally:
        os.close(fd)
    if len(head) + len(rest) > MAX_INPUT_BYTES:
        raise EbpfLtoError(f"cannot read {what}: it is over the {MAX_INPUT_BYTES >> 20} MiB "
                           "input limit", file=display_name(path))
    return kind, head + rest


def _listed(kinds: tuple[str, ...]) -> str:
    return kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"
