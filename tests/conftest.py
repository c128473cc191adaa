import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The shared test data beside the project (../shared), or EBPF_LTO_SHARED."""
    return Path(os.environ.get("EBPF_LTO_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(f"no shared test data at {path}")
    return path
