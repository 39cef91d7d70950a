"""``search.budget`` as users run it: ``labkit tune`` with two local workers on CPU, where each
trial counts as one device (docs/tuning.md, "Budgets")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEARCH = str(REPO / "experiments" / "digits_mlp_search.yaml")
BUDGET_H = 0.001  # 3.6 s of trial time: a few trials of 20, on any machine


def _labkit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labkit", "tune", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        cwd=REPO,
        timeout=600,
    )


def _hours_spent_at(moment: float, trials: list[optuna.trial.FrozenTrial]) -> float:
    """Device-hours (one device a trial on CPU) of every trial up to ``moment`` (Unix time)."""
    total = 0.0
    for t in trials:
        if t.datetime_start is None or t.datetime_start.timestamp() >= moment:
            continue
        end = t.datetime_complete.timestamp() if t.datetime_complete else moment
        total += (min(end, moment) - t.datetime_start.timestamp()) / 3600
    return total


def test_a_gpu_hour_budget_stops_claims_and_finishes_what_runs(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    run = _labkit(
        SEARCH,
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=5",
        "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2",
        "search.pruner=none",
        f"search.budget={{gpu_hours: {BUDGET_H}}}",
        f"runs_root={tmp_path / 'runs'}",
        *("--trials", "20", "--workers", "2", "--storage", storage, "--study", "budget"),
        env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-2000:]

    trials = optuna.load_study(study_name="budget", storage=storage).trials
    started = [t for t in trials if t.datetime_start is not None]
    assert 1 <= len(started) < 20
    assert all(t.state.is_finished() for t in started)  # what ran finished: none left RUNNING
    assert all(t.state.name == "WAITING" for t in trials if t.datetime_start is None)
    assert all(t.user_attrs["labkit.devices"] == 0 for t in started)  # CPU: counted as one device
    # it stopped claiming at the budget: each trial was claimed while the spent hours were below
    # it (the check and the claim are two steps: allow 2 workers x 1 s), and the budget was reached
    for t in started:
        assert t.datetime_start is not None
        assert _hours_spent_at(t.datetime_start.timestamp(), trials) < BUDGET_H + 2 / 3600
    last = max(t.datetime_complete.timestamp() for t in started if t.datetime_complete)
    assert _hours_spent_at(last, trials) >= BUDGET_H
    assert "no more trials (budget: " in run.stderr

    status = _labkit("status", "--study", "budget", "--storage", storage, env=env)
    assert status.returncode == 0, status.stderr
    assert f"of {BUDGET_H:g} GPU-hours spent, 0 left" in status.stdout
    assert "\n  stopped    budget: " in status.stdout
    print(run.stderr[-1500:], status.stdout, sep="\n")  # the docs' example (pytest -s)
