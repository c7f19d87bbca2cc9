"""The code's structure follows the data's path, and the imports prove it. Every import counts, including those
inside functions, so wiring can never creep back in unseen:

- packages import downwards only: kb (the library) ← ingest ← server ← cli (bench above them all);
- inside kb, the subpackages import along the path only: text → embedding → stores → search → answers, with
  errors, schema and config beneath them all and the facade (knowledge_base, evaluate, kb itself) on top;
- no module imports itself back through others (no cycle, at any depth).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

from kb.config import PROJECT_ROOT

PACKAGES = ("kb", "ingest", "server", "cli", "bench")
#: Each layer and the packages above it, which it must not import.
LAYERS = {"kb": {"ingest", "server", "cli", "bench"}, "ingest": {"server", "cli", "bench"},
          "server": {"cli", "bench"}, "cli": {"bench"}}
#: kb's parts in the data's order: a module may import its own part and the ones before it, never one after.
KB_ORDER = (("kb.errors", "kb.schema", "kb.config"), ("kb.text",), ("kb.embedding",), ("kb.stores",),
            ("kb.search",), ("kb.answers",), ("kb.knowledge_base", "kb.evaluate", "kb"))


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    return {module_name(path, root): path for package in packages for path in sorted((root / package).rglob("*.py"))}


def imports_of(path: Path, name: str, known: set[str]) -> set[tuple[str, int]]:
    """(imported project module, line) for every import in a file, inside functions too. `from a.b import c`
    names the module a.b.c when there is one, else a.b; relative imports are resolved against `name`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {(alias.name, node.lineno) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add((submodule if submodule in known else base, node.lineno))
    return {(imported, line) for imported, line in found if imported.split(".")[0] in PACKAGES}


def import_graph(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, set[str]]:
    modules = project_modules(root, packages)
    known = set(modules)
    return {name: {imported for imported, _ in imports_of(path, name, known) if imported in known and imported != name}
            for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other (strongly connected, more than one module), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:  # Tarjan's algorithm, iteratively: deep import chains need no recursion
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(found)


def kb_part(module: str) -> int:
    """Where a kb module stands in KB_ORDER (the longest matching prefix)."""
    matches = [(len(prefix), rank) for rank, prefixes in enumerate(KB_ORDER) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    if not matches:
        raise AssertionError(f"{module} is in no part of KB_ORDER: place it in the data's path")
    return max(matches)[1]


def backward_imports(root: Path) -> list[str]:
    modules = project_modules(root, ("kb",))
    known = set(modules)
    return [f"{path.relative_to(root)}:{line} imports {imported}"
            for name, path in modules.items() for imported, line in sorted(imports_of(path, name, known))
            if imported in known and kb_part(imported) > kb_part(name)]


def upward_imports(package: str) -> list[str]:
    modules = project_modules(PROJECT_ROOT, (package,))
    return [f"{path.relative_to(PROJECT_ROOT)}:{line} imports {imported}"
            for name, path in modules.items() for imported, line in sorted(imports_of(path, name, set()))
            if imported.split(".")[0] in LAYERS[package]]


@pytest.mark.parametrize("package", LAYERS)
def test_no_layer_imports_a_higher_one(package: str) -> None:
    assert upward_imports(package) == []


def test_kb_parts_import_along_the_data_path_only() -> None:
    assert backward_imports(PROJECT_ROOT) == []


def test_every_kb_module_has_its_place_in_the_path() -> None:
    for name in project_modules(PROJECT_ROOT, ("kb",)):
        kb_part(name)  # raises for a module outside every part


def test_no_module_imports_itself_back() -> None:
    assert cycles(import_graph(PROJECT_ROOT)) == []


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    from server.app import serve\n    import cli.main\n", encoding="utf-8")
    assert {name for name, _ in imports_of(source, "kb.m", set())} == {"server.app", "cli.main"}


def plant(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_a_planted_cycle_is_caught_even_inside_a_function(tmp_path: Path) -> None:
    plant(tmp_path, {"ingest/__init__.py": "", "ingest/a.py": "from ingest.b import g\n",
                     "ingest/b.py": "def g():\n    from . import c\n", "ingest/c.py": "import ingest.a\n",
                     "ingest/d.py": "from ingest import a\n"})
    assert cycles(import_graph(tmp_path, ("ingest",))) == [["ingest.a", "ingest.b", "ingest.c"]]


def test_a_planted_backward_import_is_caught(tmp_path: Path) -> None:
    plant(tmp_path, {"kb/__init__.py": "", "kb/stores/__init__.py": "", "kb/search/__init__.py": "",
                     "kb/search/rank.py": "X = 1\n", "kb/stores/local.py": "def f():\n    from kb.search.rank import X\n",
                     "kb/search/retrieve.py": "from kb.stores.local import f\n"})
    assert backward_imports(tmp_path) == ["kb/stores/local.py:2 imports kb.search.rank"]
