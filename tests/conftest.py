import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """The shared test data (conformance suite, sample corpus), or None.

    Only EBPF_LTO_SHARED names it, never a ../shared that happens to sit
    beside the project: the README's test command then runs the same tests
    with the same inputs on every machine. `.ci/run` sets it for its
    second run, of the tests marked `shared` (`pytest -m shared`).
    """
    path = os.environ.get("EBPF_LTO_SHARED")
    return Path(path) if path else None


def shared_path(*parts: str) -> Path | None:
    """A file or folder of the shared data, or None when it is not there."""
    root = shared_dir()
    path = root.joinpath(*parts) if root else None
    return path if path is not None and path.exists() else None


def needs_shared(*parts: str):
    """Marks a test `shared` and skips it, with the reason, without that data."""
    path = shared_path(*parts)
    where = os.environ.get("EBPF_LTO_SHARED")
    reason = (f"no {'/'.join(parts)} in EBPF_LTO_SHARED={where}" if where
              else "EBPF_LTO_SHARED is not set (the shared test data; see docs/testing.md)")

    def mark(test):
        return pytest.mark.shared(pytest.mark.skipif(path is None, reason=reason)(test))
    return mark


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if path is None or not path.is_dir():
        pytest.skip("EBPF_LTO_SHARED does not name the shared test data")
    return path
