"""Studies whose trials train (small models, a few batches each) and the worker processes that run
them. What is checked before any trial is in tests/unit/tuning/test_tune.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from labkit.config import Experiment
from labkit.tuning import StudyHandle, best_experiment
from labkit.tuning._objective import run_trial
from tests.unit.tuning.test_tune import _fast

Load = Callable[..., Experiment]


def _run_all(handle: StudyHandle) -> int:
    done = 0
    while (claimed := handle.claim()) is not None:
        run_trial(handle, *claimed, progress="none")
        done += 1
    return done


def test_exactly_n_trials_then_resume_adds_none(load: Load, tmp_path: Path, store: str) -> None:
    exp = _fast(load)
    url = f"sqlite:///{tmp_path / 's.db'}"
    handle = StudyHandle.create(exp, "unit", url)
    assert handle.ensure_slots(3) == 3
    assert _run_all(handle) == 3
    assert handle.tally().finished == 3 and handle.tally().open == 0
    again = StudyHandle.create(exp, "unit", url)
    assert again.ensure_slots(3) == 0 and again.claim() is None
    assert again.ensure_slots(4) == 1  # raising the budget queues only the difference

    client = MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 3
    assert {r.data.tags["labkit.study"] for r in runs} == {"unit"}
    assert sorted(r.data.tags["labkit.trial"] for r in runs) == ["0", "1", "2"]
    assert {r.data.tags["labkit.trial_state"] for r in runs} <= {"COMPLETE", "PRUNED"}


def test_failing_trial_is_recorded_and_the_study_goes_on(load: Load, tmp_path: Path, store: str) -> None:
    exp = _fast(
        load,
        "model={class_path: tests.user_models.Exploding, init_args: {after: 2}}",
        "search.params={optimizer.lr: {type: float, low: 0.001, high: 0.01}}",
    )
    handle = StudyHandle.create(exp, "boom", f"sqlite:///{tmp_path / 's.db'}")
    handle.ensure_slots(2)
    assert _run_all(handle) == 2
    trials = handle.trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 2
    assert trials[0].user_attrs["labkit.fail_reason"] == "RuntimeError: exploded after 2 batches"
    client = MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert {(r.info.status, r.data.tags["labkit.trial_state"]) for r in runs} == {("FAILED", "FAIL")}


def test_best_experiment_is_runnable(load: Load, tmp_path: Path) -> None:
    import labkit
    from labkit.config import load_experiment

    exp = _fast(load)
    handle = StudyHandle.create(exp, "best", f"sqlite:///{tmp_path / 's.db'}")
    handle.ensure_slots(2)
    _run_all(handle)
    best = handle.best()
    assert best is not None
    out = tmp_path / "best.yaml"
    out.write_text(best_experiment(handle))
    chosen = load_experiment(out, cwd=tmp_path)
    assert chosen.search is None
    assert chosen.optimizer.lr == pytest.approx(best.params["optimizer.lr"])
    assert labkit.run(chosen, progress="none").metrics["test_acc"] >= 0.0


def test_nan_loss_fails_the_trial_with_the_reason(load: Load, tmp_path: Path) -> None:
    exp = _fast(
        load,
        "model={class_path: tests.user_models.NaNNet}",
        "search.params={optimizer.lr: {type: float, low: 0.001, high: 0.01}}",
    )
    handle = StudyHandle.create(exp, "nan", f"sqlite:///{tmp_path / 's.db'}")
    handle.ensure_slots(1)
    assert _run_all(handle) == 1
    (trial,) = handle.trials()
    assert trial.state == optuna.trial.TrialState.FAIL
    assert (
        trial.user_attrs["labkit.fail_reason"]
        == "FloatingPointError: training loss became nan at epoch 0, batch 0"
    )


def test_workers_that_keep_crashing_stop_the_study(load: Load, tmp_path: Path) -> None:
    import io
    import sys

    from labkit.errors import LabkitError
    from labkit.tuning._tune import _drive

    handle = StudyHandle.create(_fast(load), "crash", f"sqlite:///{tmp_path / 's.db'}")
    handle.ensure_slots(2)
    crash = [sys.executable, "-c", "import sys; print('cannot import torch'); sys.exit(3)"]
    with pytest.raises(
        LabkitError,
        match=r"workers keep failing; the last one's log, .*worker-\d+-2\.log: cannot import torch",
    ):
        _drive(handle, "crash", "unused", 1, tmp_path / "logs", io.StringIO(), command=crash)


@pytest.mark.parametrize("sampler", ["grid", "cmaes", "qmc", "gp"])
def test_every_sampler_runs_trials(sampler: str, load: Load, tmp_path: Path) -> None:
    space = (
        "search.params={optimizer.lr: {type: float, low: 0.001, high: 0.003, step: 0.001}, "
        "trainer.max_epochs: {type: int, low: 1, high: 2}}"
    )
    exp = _fast(load, space, f"search.sampler={sampler}", "search.pruner=none")
    handle = StudyHandle.create(exp, sampler, f"sqlite:///{tmp_path / 's.db'}")
    n = 6 if sampler == "grid" else 3  # grid: every one of the 3 x 2 points, once
    handle.ensure_slots(n)
    assert _run_all(handle) == n
    assert handle.tally().counts == {"COMPLETE": n}
    if sampler == "grid":
        assert len({tuple(sorted(t.params.items())) for t in handle.trials()}) == 6
