"""Run native objects built for another architecture under a user-mode emulator.

`ebpf-lto link --target aarch64` on an x86_64 host emits code nothing here
can call in-process. To execute it anyway (so that every target ebpf-lto
emits is run, not only compiled), the objects are linked statically with a
small C harness by the target's cross compiler and run under qemu-user. The
harness calls the program's entries as `ebpf-lto run` does on the host: on
plain memory (r1, r2) or on a packet in its program type's context, one step
after another in one process, so that maps carry over between steps.

Debian packages: gcc-aarch64-linux-gnu and libc6-dev-arm64-cross (the
compiler and a static libc), qemu-user (the emulator).
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import EbpfLtoError
from ..facts import contexts
from ..facts.abi import FAULT, FAULT_FIELDS, HOST_API_PREFIX
from .runner import FaultRecord, ProgramFault

# Debian's names for each target's cross tools and emulator.
CROSS_PREFIX = {"aarch64": "aarch64-linux-gnu-", "x86_64": "x86_64-linux-gnu-"}
EMULATOR = {"aarch64": "qemu-aarch64", "x86_64": "qemu-x86_64"}
PACKAGES = {"aarch64": "gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user",
            "x86_64": "gcc-x86-64-linux-gnu libc6-dev-amd64-cross qemu-user"}
RUN_TIMEOUT = 120.0  # seconds for all the steps of one run under the emulator
ENTRY_PREFIX = "ebpf_lto_emu_entry_"

# Steps arrive on stdin, one a line: `ENTRY m MEMHEX` runs entry number ENTRY on
# plain memory; `ENTRY c CTXHEX BUFHEX OFF,OFF,...` on a context whose u64s at
# the listed offsets are addresses relative to the buffer (- for none). Each
# step prints r0, then the memory (or the context, then the buffer) after it,
# addresses made relative again, then the fault record (docs/safety.md) if a
# check stopped the program, else "ok".
HARNESS = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t (*entry_fn)(void *, uint64_t);
%(declarations)s
/* The fault record of a checked object; absent (NULL) from a --no-checks one. */
struct fault { %(fault_fields)s };
extern struct fault %(fault)s __attribute__((weak));

static void report(void)
{
    struct fault *f = &%(fault)s;
    if (f == NULL || f->code == 0) {
        printf("ok\n");
        return;
    }
    printf("fault %(fault_format)s %%s\n", %(fault_args)s, f->function ? f->function : "?");
    f->code = 0;
}
static const entry_fn entries[] = { %(entries)s };

static unsigned char *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    unsigned char *out = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%%2x", &v) != 1)
            exit(3);
        out[i] = (unsigned char)v;
    }
    *len = n;
    return out;
}

static void puthex(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%%02x", p[i]);
    printf("\n");
}

static void relocate(unsigned char *ctx, size_t ctx_len, char *offsets, int64_t delta)
{
    if (strcmp(offsets, "-") == 0)
        return;
    char *copy = strdup(offsets), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t off = strtoul(tok, NULL, 10);
        uint64_t v;
        if (off + 8 > ctx_len)
            exit(3);
        memcpy(&v, ctx + off, 8);
        v += (uint64_t)delta;
        memcpy(ctx + off, &v, 8);
    }
    free(copy);
}

static char line[1 << 22];

int main(void)
{
    while (fgets(line, sizeof line, stdin)) {
        char *save = NULL;
        char *num = strtok_r(line, " \n", &save), *kind = strtok_r(NULL, " \n", &save);
        if (!num || !kind)
            return 3;
        unsigned long e = strtoul(num, NULL, 10);
        if (e >= sizeof entries / sizeof entries[0])
            return 3;
        char *a = strtok_r(NULL, " \n", &save);
        size_t mem_len = 0;
        unsigned char *mem = a && strcmp(a, "-") ? unhex(a, &mem_len) : NULL;
        if (kind[0] == 'm') {
            uint64_t r0 = entries[e](mem_len ? mem : NULL, mem_len);
            printf("%%llx\n", (unsigned long long)r0);
            puthex(mem, mem_len);
            report();
        } else {
            char *b = strtok_r(NULL, " \n", &save), *offs = strtok_r(NULL, " \n", &save);
            size_t buf_len = 0;
            if (!b || !offs)
                return 3;
            unsigned char *buf = unhex(b, &buf_len);
            int64_t base = (int64_t)(uintptr_t)buf;
            relocate(mem, mem_len, offs, base);
            uint64_t r0 = entries[e](mem, mem_len);
            relocate(mem, mem_len, offs, -base);
            printf("%%llx\n", (unsigned long long)r0);
            puthex(mem, mem_len);
            puthex(buf, buf_len);
            report();
            free(buf);
        }
        free(mem);
        fflush(stdout);
    }
    return 0;
}
"""


@dataclass(frozen=True)
class Step:
    """One call of an entry: on plain memory (layout None) or on a packet in a context."""
    entry: str
    data: bytes = b""
    layout: contexts.Layout | None = None


class Emulator:
    """Links objects for `arch` with the harness and runs them under qemu-user."""

    def __init__(self, arch: str):
        self.arch = arch
        prefix, emu = CROSS_PREFIX.get(arch, ""), EMULATOR.get(arch, "")
        self.cc, self.objcopy = shutil.which(prefix + "gcc"), shutil.which(prefix + "objcopy")
        self.emulator = shutil.which(emu)
        if not self.cc or not self.objcopy or not self.emulator:
            raise EbpfLtoError(f"running {arch} code on this host needs {prefix}gcc and {emu} "
                               f"(Debian: apt-get install {PACKAGES.get(arch, '')})")
        self._dir = tempfile.TemporaryDirectory(prefix="ebpf-lto-emu-")
        self.work = Path(self._dir.name)

    def close(self) -> None:
        self._dir.cleanup()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _tool(self, tool: str, args: list[str], what: str) -> None:
        done = subprocess.run([tool, *args], capture_output=True, text=True)
        if done.returncode:
            lines = done.stderr.strip().splitlines() or ["no message"]
            first = next((line for line in lines if "error" in line), lines[0])
            raise EbpfLtoError(f"{Path(tool).name} could not build {what}: {first}")

    def build(self, images: list[bytes], entries: list[str]) -> Path:
        """An executable of the objects (the program's first) and the harness.

        The program's entries are renamed, since a program may be called
        `main`, `write` or anything else libc defines.
        """
        paths = []
        for n, image in enumerate(images):
            path = self.work / f"part{n}.o"
            path.write_bytes(image)
            paths.append(str(path))
        renames = [f"--redefine-sym={name}={ENTRY_PREFIX}{n}" for n, name in enumerate(entries)]
        self._tool(self.objcopy, [*renames, paths[0]], "the program")
        exe = self.work / "prog"
        # Static: qemu-user then needs no target sysroot at run time.
        self._tool(self.cc, ["-static", str(self._harness(len(entries))), *paths,
                             "-o", str(exe)], "the program")
        return exe

    def _harness(self, n: int) -> Path:
        """The harness object for programs with n entries (built once per n)."""
        obj = self.work / f"harness{n}.o"
        if not obj.exists():
            source = self.work / f"harness{n}.c"
            numbers = FAULT_FIELDS[:-1]
            source.write_text(HARNESS % {
                "fault": FAULT,
                "fault_fields": " ".join(f"uint64_t {f};" for f in numbers)
                + f" const char *{FAULT_FIELDS[-1]};",
                "fault_format": " ".join(["%llx"] * len(numbers)),
                "fault_args": ", ".join(f"(unsigned long long)f->{f}" for f in numbers),
                "declarations": "\n".join(f"uint64_t {ENTRY_PREFIX}{i}(void *, uint64_t);"
                                          for i in range(n)),
                "entries": ", ".join(f"{ENTRY_PREFIX}{i}" for i in range(n))})
            self._tool(self.cc, ["-O1", "-c", str(source), "-o", str(obj)], "the harness")
        return obj

    def run(self, images: list[bytes], exports: list[str],
            steps: list[Step]) -> list[tuple[int, bytes]]:
        """Run the steps in order in one process; each gives r0 and the memory
        (or, in a context, the packet as data..data_end say) after it.
        ProgramFault for the first step a check stopped.

        `images` and `exports` are what `pipeline.images` gives.
        """
        entries = [name for name in exports if not name.startswith(HOST_API_PREFIX)]
        exe = self.build(images, entries)
        lines = []
        for s in steps:
            number = entries.index(s.entry)
            if s.layout is None:
                lines.append(f"{number} m {s.data.hex() or '-'}")
                continue
            buf = bytes(contexts.HEADROOM) + s.data + bytes(contexts.TAILROOM)
            ctx = contexts.build(s.layout, 0, len(s.data), contexts.ethertype_be(s.data))
            offsets = ",".join(map(str, s.layout.addresses)) or "-"
            lines.append(f"{number} c {ctx.hex()} {buf.hex()} {offsets}")
        try:
            done = subprocess.run([self.emulator, str(exe)], input="\n".join(lines) + "\n",
                                  capture_output=True, text=True, timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise EbpfLtoError(f"the {self.arch} program ran past {RUN_TIMEOUT:.0f} s "
                               "under the emulator") from None
        if done.returncode:
            how = (f"signal {-done.returncode}" if done.returncode < 0
                   else f"exit status {done.returncode}")
            raise EbpfLtoError(f"the {self.arch} program ended with {how} under the emulator")
        out = done.stdout.split("\n")
        results = []
        for s in steps:
            r0, mem = int(out.pop(0), 16), bytes.fromhex(out.pop(0))
            if s.layout is not None:
                buf = bytes.fromhex(out.pop(0))
                data, = struct.unpack_from("<Q", mem, s.layout.data)
                data_end, = struct.unpack_from("<Q", mem, s.layout.data_end)
                if not 0 <= data <= data_end <= len(buf):
                    raise EbpfLtoError("the program left the packet bounds outside its buffer")
                mem = buf[data:data_end]
            fault = out.pop(0).split(" ")
            if fault[0] == "fault":
                *numbers, function = fault[1:]
                record = FaultRecord(*(int(v, 16) for v in numbers), function.encode())
                raise ProgramFault(record)
            results.append((r0, mem))
        return results
