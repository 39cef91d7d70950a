"""What a login node loads stays light: each module imported in a fresh interpreter (a subprocess).
The static import rules are in tests/unit/test_imports.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

HEAVY = (
    "torch",
    "lightning",
    "pytorch_lightning",
    "mlflow",
    "torchmetrics",
    "optuna",
    "onnx",
    "onnxruntime",
    "onnxscript",
)


@pytest.mark.parametrize(
    "module",
    [
        "labkit",
        "labkit.cli",
        "labkit.config",
        "labkit.errors",
        "labkit.runner",
        "labkit.tracking",
        "labkit.tracking.write._spool",
        "labkit.tracking.write._sync",
        "labkit.tracking.server._process",
        "labkit.tracking.server._admin",
        "labkit.models",
        "labkit.data",
        "labkit.tasks",
        "labkit.tuning",
        "labkit.cluster",
        "labkit.cluster._submit",
        "labkit.cluster._status",
        "labkit.cluster._env",
        "labkit.cluster._executor",
        "labkit.tuning._dashboard",
        "labkit.sim",
        "labkit.sim._registry",
        "labkit.config._data_specs",
        "labkit.config._task_specs",
        "labkit.report",
        "labkit.report._table",
        "labkit.report._format",
        "labkit.report._html",
        "labkit.report._api",
        "labkit.tracking.query._fetch",
        "labkit.runner._reproduce",
        "labkit.cli._predict",
        "labkit.cli._export",
        "labkit.cli._plot",
        "labkit.cli._evaluate",
        "labkit.tasks._showers",
        "labkit.tasks._shower_io",
        "labkit.notify",
        "labkit.notify._send",
        "labkit.notify._message",
        "labkit.tracking.write._follow",
    ],
)
def test_light_imports(module: str) -> None:
    code = f"import sys, {module}; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
