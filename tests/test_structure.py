"""The package's shape, as docs/architecture.md draws it, checked on the source.

- the pipeline (every folder but tools/, and the modules beside them) never
  imports the tools: they sit outside its import graph and use its public API;
- no module uses another module's `_private` names;
- no module is over 800 lines;
- docs/architecture.md names every module of the package.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "inliner"
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))
MAX_LINES = 800


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import of a file."""
    tree = ast.parse(path.read_text())
    package = _name(path) if path.name == "__init__.py" else _name(path).rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            out.append((base, [a.name for a in node.names], node.lineno))
    return out


def _is_module(name: str) -> bool:
    return (ROOT / Path(*name.split("."))).with_suffix(".py").is_file() or \
        (ROOT / Path(*name.split(".")) / "__init__.py").is_file()


def test_every_module_is_named_in_the_architecture():
    """Each module has a row in the table: `| folder/ | `name.py` |` (`—` for the top)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = []
    for p in MODULES:
        folder = p.parent.relative_to(PACKAGE).as_posix()
        cell = "—" if folder == "." else f"{folder}/"
        if p.name != "__init__.py" and not re.search(
                rf"^\| {re.escape(cell)} \| [^|]*`{re.escape(p.name)}`", text, re.M):
            missing.append(str(p.relative_to(PACKAGE)))
    assert missing == [], "docs/architecture.md does not name these modules"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_size(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


@pytest.mark.parametrize("path", [p for p in MODULES if "tools" not in p.parts
                                  and p.name != "cli.py"],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_pipeline_never_imports_the_tools(path):
    for module, names, line in _imports(path):
        targets = [module] + [f"{module}.{n}" for n in names]
        assert not any(t == "inliner.tools" or t.startswith("inliner.tools.")
                       for t in targets), f"line {line} imports {module}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_names_of_other_modules(path):
    """Neither `from x import _y` nor `x._y` for a module x of the package."""
    own = _name(path)
    tree = ast.parse(path.read_text())
    aliases = {}
    for module, names, line in _imports(path):
        if not module.startswith("inliner"):
            continue
        for n in names:
            full = f"{module}.{n}"
            if _is_module(full):
                aliases[n] = full
            elif n.startswith("_") and not n.startswith("__") and module != own:
                raise AssertionError(f"line {line}: from {module} import {n}")
        if not names:
            aliases[module.split(".")[-1]] = module
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__") and aliases[node.value.id] != own):
            raise AssertionError(f"line {node.lineno}: {node.value.id}.{node.attr}")
