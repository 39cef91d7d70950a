"""The design's import boundaries: what a login node loads stays light; only tracking has mlflow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

HEAVY = ("torch", "lightning", "pytorch_lightning", "mlflow", "torchmetrics", "optuna")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    "path", sorted((REPO / "labkit").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO))
)
def test_only_tracking_imports_mlflow(path: Path) -> None:
    if "mlflow" in _imports(path):
        assert path.parent.name == "tracking", f"{path} imports mlflow; only labkit/tracking may"


@pytest.mark.parametrize(
    "path", sorted((REPO / "labkit").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO))
)
def test_only_tuning_imports_optuna(path: Path) -> None:
    if _imports(path) & {"optuna", "optuna_integration", "optuna_dashboard"}:
        assert path.parent.name == "tuning", f"{path} imports optuna; only labkit/tuning may"


@pytest.mark.parametrize("path", sorted((REPO / "labkit" / "models").glob("*.py")), ids=lambda p: p.name)
def test_models_know_no_lightning_or_tracking(path: Path) -> None:
    assert not _imports(path) & {"lightning", "pytorch_lightning", "mlflow"}
    assert "labkit.tracking" not in path.read_text()


@pytest.mark.parametrize(
    "path", sorted((REPO / "labkit" / "cluster").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO))
)
def test_cluster_knows_nothing_about_torch(path: Path) -> None:
    assert not _imports(path) & {"torch", "lightning", "mlflow", "optuna"}, f"{path}: a login-node module"
