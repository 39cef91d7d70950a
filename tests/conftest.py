from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"

# Small, fast settings used by tests that train: a few batches of digits, two epochs.
SMOKE = ["trainer.max_epochs=2", "trainer.early_stopping=null"]
# ... and for experiments on simulated events: a few hundred of them
SMOKE_SIM = ["data.events=600"]


@pytest.fixture(scope="session")
def sim_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of simulated events for the whole session (never the user's ~/.cache)."""
    return tmp_path_factory.mktemp("labkit-cache")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, sim_cache: Path) -> None:
    """No test talks to a tracking server it did not start, or waits minutes on a dead one."""
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(sim_cache))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A fresh local MLflow tracking store (SQLite) in the test's directory."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def load(tmp_path: Path, store: str) -> Callable[..., object]:
    """Load a shipped experiment with overrides, tracking into ``store`` and runs under tmp_path."""
    from labkit.config import load_experiment

    def _load(name: str = "digits_mlp", *overrides: str):  # type: ignore[no-untyped-def]
        base = [f"tracking.uri={store}", f"runs_root={tmp_path / 'runs'}"]
        return load_experiment(EXPERIMENTS / f"{name}.yaml", [*base, *overrides], cwd=tmp_path)

    return _load


@pytest.fixture
def in_tmp(tmp_path: Path) -> Iterator[Path]:
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


_TRACEBACK = "Traceback (most recent call last)"


@pytest.fixture(autouse=True)
def _no_traceback_from_labkit(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over the whole suite, a ``labkit`` command that fails prints one line, never a traceback:
    every ``subprocess.run`` of ``python -m labkit ...`` is checked. A test of a crash in the
    user's own training code (which keeps its traceback) is marked ``traceback_expected``."""
    if request.node.get_closest_marker("traceback_expected"):
        return
    real_run = subprocess.run

    def checked_run(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        result = real_run(*args, **kwargs)
        cmd = [str(part) for part in (args[0] if args else kwargs.get("args", []))]
        stderr = result.stderr.decode(errors="replace") if isinstance(result.stderr, bytes) else result.stderr
        is_labkit = bool(cmd) and (Path(cmd[0]).name == "labkit" or "labkit" in cmd[1:3])
        if is_labkit and result.returncode != 0 and stderr and _TRACEBACK in stderr:
            pytest.fail(
                f"`{' '.join(cmd[1:])}` exited {result.returncode} with a traceback:\n{stderr[-3000:]}"
            )
        return result

    monkeypatch.setattr(subprocess, "run", checked_run)
