"""No package imports another package's private module: the underscore marks a boundary.

An AST scan of ``labkit/`` (imports inside functions count; ``if TYPE_CHECKING:`` blocks do
not) finds every import of ``labkit.x._y`` (or ``labkit.x.y._z``) from a file outside
``labkit/x``. ``ALLOWED`` lists the ones that exist today (issue 15's debt): a new one fails,
and so does a listed one that is gone, so the list only shrinks. The layer arrows themselves are
checked by import-linter (``[tool.importlinter]`` in pyproject.toml, run by ``make check``).

Print the list for the tree as it is now: ``.venv/bin/python tests/unit/test_layers.py``
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# (importing file, private module it imports): each is issue-15 debt, to be paid by importing a
# public name (or making the name public), never by adding to this list.
ALLOWED: frozenset[tuple[str, str]] = frozenset()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_modules(tree: ast.Module, package: str) -> list[tuple[str, int]]:
    """Every module ``tree`` imports (``from m import n`` gives ``m.n`` too), with its line."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((module, node.lineno))
            found.extend((f"{module}.{alias.name}", node.lineno) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _private_part(module: str) -> str | None:
    """``labkit.x._y`` for any module at or below a private module of a labkit package."""
    parts = module.split(".")
    if parts[0] != "labkit" or len(parts) < 3:
        return None
    for i in range(2, len(parts)):
        if parts[i].startswith("_") and not parts[i].startswith("__"):
            return ".".join(parts[: i + 1])
    return None


def _is_module(name: str, root: Path) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def private_imports(root: Path = REPO) -> dict[tuple[str, str], list[int]]:
    """(importing file, private module of another package) -> the lines that import it."""
    result: dict[tuple[str, str], list[int]] = {}
    for path in sorted((root / "labkit").rglob("*.py")):
        rel = path.relative_to(root)
        parts = list(rel.with_suffix("").parts)
        package = ".".join(parts[:-1])  # the package relative imports start from
        for module, line in _imported_modules(ast.parse(path.read_text(), str(path)), package):
            private = _private_part(module)
            if private is None or private.split(".")[1] == parts[1] or not _is_module(private, root):
                continue
            lines = result.setdefault((rel.as_posix(), private), [])
            if line not in lines:
                lines.append(line)
    return result


@functools.cache
def _today() -> dict[tuple[str, str], list[int]]:
    return private_imports()


def test_no_new_private_imports_across_packages() -> None:
    new = {key: lines for key, lines in _today().items() if key not in ALLOWED}
    assert not new, "a package imports another package's private module; import its public name " + (
        "(from labkit.x import ...) or make the name public instead:\n"
        + "\n".join(f"  {file}:{lines[0]} imports {module}" for (file, module), lines in sorted(new.items()))
    )


def test_allowlist_only_shrinks() -> None:
    gone = sorted(ALLOWED - set(_today()))
    assert not gone, (
        "debt paid, well done; remove it from the list ALLOWED in tests/unit/test_layers.py:\n"
        + ("\n".join(f"  {file} no longer imports {module}" for file, module in gone))
    )


def test_scan_sees_function_imports_and_skips_type_checking(tmp_path: Path) -> None:
    for package in ("a", "b"):
        (tmp_path / "labkit" / package).mkdir(parents=True)
        (tmp_path / "labkit" / package / "__init__.py").write_text("")
        (tmp_path / "labkit" / package / "_impl.py").write_text("")
    (tmp_path / "labkit" / "__init__.py").write_text("")
    (tmp_path / "labkit" / "a" / "use.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import _impl\n"  # its own package: fine
        "if TYPE_CHECKING:\n"
        "    from labkit.b._impl import X\n"  # for the type checker only: fine
        "else:\n"
        "    import labkit.b._impl\n"
        "def f():\n"
        "    from labkit.b import _impl\n"
        "    from labkit.b._impl import g\n"
    )
    assert private_imports(tmp_path) == {("labkit/a/use.py", "labkit.b._impl"): [6, 8, 9]}


def _package_of(parts: list[str], root: Path) -> str:
    """The package a module belongs to: ``labkit.x`` for anything under ``labkit/x/``; the
    ground floor (``labkit._rundir``, ``labkit.errors`` ...) is one package, ``ground``; the
    facade ``labkit/__init__.py`` (``__version__`` and lazy names) another, ``labkit``; the entry
    point ``python -m labkit`` a third, ``__main__``."""
    if len(parts) < 2 or parts[1] == "__init__":
        return "labkit"
    if parts[1] == "__main__":
        return "__main__"
    return parts[1] if (root / "labkit" / parts[1]).is_dir() else "ground"


def package_graph(root: Path = REPO) -> dict[str, set[str]]:
    """package -> the other labkit packages it imports (function imports count)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((root / "labkit").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        source = _package_of(parts, root)
        edges = graph.setdefault(source, set())
        for module, _ in _imported_modules(ast.parse(path.read_text(), str(path)), ".".join(parts[:-1])):
            target_parts = module.split(".")
            if target_parts[0] != "labkit" or not _is_module(module, root):
                continue
            target = _package_of(target_parts, root) if len(target_parts) > 1 else "labkit"
            if target != source:
                edges.add(target)
    return graph


def package_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(cycles)


def test_no_package_cycles() -> None:
    cycles = package_cycles(package_graph())
    assert not cycles, "packages that import each other (directly or round a loop): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_cycle_scan_finds_a_loop_through_a_function_import(tmp_path: Path) -> None:
    for package, body in (
        ("a", "from labkit.b import x\n"),
        ("b", "def f():\n    import labkit.c\n"),
        ("c", "from labkit.a import y\n"),
        ("d", "import labkit.a\n"),
    ):
        (tmp_path / "labkit" / package).mkdir(parents=True)
        (tmp_path / "labkit" / package / "__init__.py").write_text(body)
    (tmp_path / "labkit" / "__init__.py").write_text("")
    assert package_cycles(package_graph(tmp_path)) == [["a", "b", "c"]]


if __name__ == "__main__":
    for file, module in sorted(private_imports()):
        print(f'        ("{file}", "{module}"),')
    print("package cycles:", package_cycles(package_graph()))
