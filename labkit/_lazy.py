"""Lazy attribute access for package ``__init__`` modules (PEP 562), keeping imports cheap.

Each package states its public surface once, as a map from its private modules to the names
they provide::

    __all__, __getattr__ = lazy_exports(__name__, {
        "labkit.report._table": ("compare_frame", "select"),
        "labkit.report._html": ("build_report",),
    })

``__all__`` is generated from that map, and a name's module is imported only when the name is
first used. The ``if TYPE_CHECKING:`` block beside it repeats the imports for type checkers
(``from m import X as X``); ``tests/unit/test_public_surface.py`` checks that the two agree.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports", "lazy_getattr"]


def lazy_getattr(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``where[name]`` on first access of ``name``."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def lazy_exports(
    package: str, modules: Mapping[str, Iterable[str]], *, eager: Iterable[str] = ()
) -> tuple[list[str], Callable[[str], Any]]:
    """``(__all__, __getattr__)`` for ``package`` from one map ``{module: names}``.

    ``eager`` names are defined in the package ``__init__`` itself (imported at the top); they
    join ``__all__`` but need no lazy lookup. A name listed twice is a mistake and raises.
    """
    where: dict[str, str] = {}
    for module, names in modules.items():
        for name in names:
            if name in where:
                raise ValueError(f"{package}: {name!r} is exported from both {where[name]} and {module}")
            where[name] = module
    return sorted([*where, *eager]), lazy_getattr(package, where)
