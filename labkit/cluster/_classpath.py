"""Check, before a job is queued, that every ``class_path`` of the experiment will import on the node.

Nothing is imported: modules are found as the import system would find them (the job's working
directory first, as ``python -m labkit`` puts it there, then this Python's ``sys.path``) and the
module's source is read with :mod:`ast` for a top-level definition of the name. So
``torch.nn.Module`` is checked without importing torch, and a user's module is not executed on
the login node.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import sys
import tokenize
from collections.abc import Iterator, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path

from labkit.config import ClassPathSpec, Experiment
from labkit.errors import RegistryError, did_you_mean

__all__ = ["check_class_paths", "check_class_path"]


def check_class_paths(exp: Experiment, workdir: Path, *, missing_ok: bool = False) -> None:
    """RegistryError naming the field when a ``class_path`` of ``exp`` (model, data) names a
    module or a class that does not exist. ``missing_ok``: a module not found here is accepted
    (the job runs another Python, e.g. in an Apptainer image); a class missing from a module
    found here is still an error."""
    for field in ("model", "data", "task"):
        spec = getattr(exp, field, None)
        if isinstance(spec, ClassPathSpec):
            check_class_path(spec.class_path, f"{field}.class_path", workdir, missing_ok=missing_ok)
    search = exp.search
    for key, param in (search.params if search is not None else {}).items():
        if key.split(".")[-1] == "class_path":  # a search over classes: each choice is a class_path
            for choice in getattr(param, "choices", ()):
                if isinstance(choice, str):
                    check_class_path(choice, f"search.params.{key}", workdir, missing_ok=missing_ok)


def check_class_path(path: str, field: str, workdir: Path, *, missing_ok: bool = False) -> None:
    """Check that ``package.module.Name`` (or ``package.module:Name``) resolves, importing nothing."""
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    parts = module_name.split(".")
    spec: ModuleSpec | None = None
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        spec = _find(name, spec, workdir)
        if spec is None:
            if missing_ok:
                return
            where = (
                f"in {workdir} (the job's working directory) or this Python's sys.path"
                if i == 0
                else f"in package {'.'.join(parts[:i])!r}"
            )
            raise RegistryError(
                f"{field}: {path!r}: no module named {name!r} {where}; the job would fail on the node "
                "(check the spelling, or submit from the directory that holds the module)"
            )
    assert spec is not None
    loaded = sys.modules.get(module_name)
    if loaded is not None:  # already imported here: look in it (not hasattr: a lazy module would import)
        known = vars(loaded)
        if attr not in known and "__getattr__" not in known and not _submodule(spec, attr):
            names = [n for n in dir(loaded) if not n.startswith("_")]
            raise RegistryError(
                f"{field}: {path!r}: module {module_name!r} has no {attr!r}{did_you_mean(attr, names)}"
            )
        return
    source = _source(spec)
    if source is None:  # an extension or namespace module: only an import could tell
        namespace = spec.submodule_search_locations is not None and spec.origin in (None, "namespace")
        if namespace and not _submodule(spec, attr):  # a namespace package holds only its submodules
            raise RegistryError(
                f"{field}: {path!r}: namespace package {module_name!r} has no module or class {attr!r}"
            )
        return
    file, text = source
    try:
        tree = ast.parse(text, filename=str(file))
    except SyntaxError as exc:
        raise RegistryError(
            f"{field}: {path!r}: module {module_name!r} does not import: syntax error in {file}, "
            f"line {exc.lineno}: {exc.msg}"
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise RegistryError(
            f"{field}: {path!r}: cannot read module {module_name!r} ({file}): {exc}"
        ) from None
    defined, open_ended = _top_level_names(tree)
    if attr in defined or open_ended or _submodule(spec, attr):
        return
    public = sorted(n for n in defined if not n.startswith("_"))
    raise RegistryError(
        f"{field}: {path!r}: module {module_name!r} ({file}) defines no {attr!r}"
        f"{did_you_mean(attr, public)}; the job would fail on the node"
    )


def _find(name: str, parent: ModuleSpec | None, workdir: Path) -> ModuleSpec | None:
    """The spec of module ``name`` (its parent's spec given), importing nothing."""
    if name in sys.modules:
        module = sys.modules[name]
        found = getattr(module, "__spec__", None)
        if isinstance(found, ModuleSpec):
            return found
        return ModuleSpec(name, None, origin=getattr(module, "__file__", None))
    try:
        if parent is None:
            spec = importlib.machinery.PathFinder.find_spec(name, [str(workdir)])
            # top-level: no parent is imported; builtins, frozen modules and import hooks too
            return spec or importlib.util.find_spec(name)
        if parent.submodule_search_locations is None:
            return None  # a plain module has no submodules
        return importlib.machinery.PathFinder.find_spec(name, list(parent.submodule_search_locations))
    except (ImportError, ValueError, OSError):
        return None


def _submodule(spec: ModuleSpec, attr: str) -> bool:
    """Whether package ``spec`` holds a submodule ``attr`` (``import_module`` then getattr finds
    it once something imported it; counted as there)."""
    if spec.submodule_search_locations is None:
        return False
    try:
        found = importlib.machinery.PathFinder.find_spec(
            f"{spec.name}.{attr}", list(spec.submodule_search_locations)
        )
    except (ImportError, ValueError, OSError):
        return False
    return found is not None


def _source(spec: ModuleSpec) -> tuple[Path, str] | None:
    origin = spec.origin
    if not origin or not origin.endswith(".py"):
        return None
    file = Path(origin)
    try:
        with tokenize.open(file) as handle:  # the encoding the module declares
            return file, handle.read()
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _top_level_names(tree: ast.Module) -> tuple[set[str], bool]:
    """Names a module binds at its top level (in ``if``/``try``/``with`` blocks too), and whether
    it may bind others that cannot be read off (``from x import *``, a module ``__getattr__``,
    ``globals()`` assignments)."""
    names: set[str] = set()
    open_ended = False
    for node in _statements(tree.body):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
            open_ended |= node.name == "__getattr__"
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(_bound(target))
        elif isinstance(node, ast.Import):
            names.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    open_ended = True
                else:
                    names.add(alias.asname or alias.name)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            names.update(_bound(node.target))
    for every in ast.walk(tree):
        if isinstance(every, ast.Call) and isinstance(every.func, ast.Name) and every.func.id == "globals":
            open_ended = True  # globals()[name] = ..., globals().update(...)
        elif isinstance(every, ast.NamedExpr):
            names.add(every.target.id)
    return names, open_ended


#: blocks whose statements run at import time (``TryStar`` is Python 3.11's ``try/except*``)
_BLOCKS = {"If", "Try", "TryStar", "With", "AsyncWith"}


def _statements(body: Sequence[ast.stmt]) -> Iterator[ast.stmt]:
    for node in body:
        yield node
        if type(node).__name__ in _BLOCKS:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from _statements([child])
                elif isinstance(child, ast.ExceptHandler):
                    yield from _statements(child.body)


def _bound(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for item in target.elts:
            yield from _bound(item)
    elif isinstance(target, ast.Starred):
        yield from _bound(target.value)
