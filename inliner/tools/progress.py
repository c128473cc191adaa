"""Progress of a long run (corpus, bench) on standard error.

On a terminal, a live bar that names the item in hand and disappears at the
end. Off one (a CI log, `2> file`) nothing can redraw in place, so each item
is one line as it finishes, and the run is never silent for long.
"""
from __future__ import annotations

import sys
import time


class Progress:
    """Items of one run, `total` of them, reported under the name `what`."""

    def __init__(self, what: str, total: int, stream=None):
        self.what = what
        self.total = total
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.count = 0
        self.began = time.monotonic()
        self._bar = None
        self._task = None

    def __enter__(self) -> "Progress":
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar
            self._bar = Bar("[progress.description]{task.description}", BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(),
                            console=Console(file=self.stream), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=self.total)
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.began

    def working_on(self, name: str) -> None:
        """The item now in hand (shown by the live bar only)."""
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.what}: {name}")

    def done(self, line: str) -> None:
        """One item finished; `line` says how, off a terminal."""
        self.count += 1
        if self._bar is not None:
            self._bar.advance(self._task)
        else:
            print(f"{self.what} [{self.count}/{self.total}] {line}", file=self.stream,
                  flush=True)

    def summary(self, line: str) -> None:
        """The run's one-line summary, on a terminal or not."""
        print(f"{self.what}: {line}", file=self.stream, flush=True)
