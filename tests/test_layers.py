"""The layers import downwards only: kb (the library) ← ingest ← server ← cli. Every import counts, including
those inside functions, so wiring can never creep back into the library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from kb.config import PROJECT_ROOT

#: Each layer and the packages above it, which it must not import.
LAYERS = {"kb": {"ingest", "server", "cli", "bench"}, "ingest": {"server", "cli", "bench"},
          "server": {"cli", "bench"}, "cli": {"bench"}}


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """(top-level package, line) of every import in a file; relative imports stay in their own package."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {(alias.name.split(".")[0], node.lineno) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
    return found


def upward_imports(package: str) -> list[str]:
    return [f"{path.relative_to(PROJECT_ROOT)}:{line} imports {imported}"
            for path in sorted((PROJECT_ROOT / package).rglob("*.py"))
            for imported, line in sorted(imported_packages(path)) if imported in LAYERS[package]]


@pytest.mark.parametrize("package", LAYERS)
def test_no_layer_imports_a_higher_one(package: str) -> None:
    assert upward_imports(package) == []


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    from server.app import serve\n    import cli.main\n", encoding="utf-8")
    assert {name for name, _ in imported_packages(source)} == {"os", "server", "cli"}
