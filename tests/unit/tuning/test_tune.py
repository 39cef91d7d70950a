from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from labkit.config import Experiment
from labkit.errors import ConfigError
from labkit.tuning import StudyHandle, best_experiment
from labkit.tuning._objective import run_trial
from tests.conftest import SMOKE

Load = Callable[..., Experiment]


def _fast(load: Load, *extra: str) -> Experiment:
    return load(
        "digits_mlp_search",
        *SMOKE,
        "trainer.limit_train_batches=5",
        "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2",
        *extra,
    )


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


def test_changed_search_space_needs_a_new_study(load: Load, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    StudyHandle.create(_fast(load), "same", url)
    other = _fast(load, "search.params={optimizer.lr: {type: float, low: 0.001, high: 0.01}}")
    with pytest.raises(
        ConfigError,
        match=r"study 'same' exists with another search \(search\.params differ\): use another --study name",
    ):
        StudyHandle.create(other, "same", url)


def test_unknown_study(tmp_path: Path, load: Load) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    StudyHandle.create(_fast(load), "digits", url)
    with pytest.raises(ConfigError, match=r"--study: no study 'digit' in .* \(did you mean 'digits'\?\)"):
        StudyHandle.load("digit", url)


def test_bad_storage_url() -> None:
    from labkit.tuning._optuna import open_storage

    with pytest.raises(ConfigError, match=r"--storage 'redis://x': use sqlite:///"):
        open_storage("redis://x")


def test_unknown_study_metric_stops_before_any_trial(load: Load, tmp_path: Path) -> None:
    from labkit.tuning import tune

    exp = _fast(load, "search.metric=val_accuracy")
    with pytest.raises(
        ConfigError, match=r"search\.metric: .* no metric 'val_accuracy' .*\(did you mean 'val_acc'\?\)"
    ):
        tune(exp, study="m", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert not (tmp_path / "s.db").exists()


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


def test_parallel_workers_draw_different_values(load: Load, tmp_path: Path) -> None:
    exp = _fast(load, "search.sampler=random")
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = StudyHandle.create(exp, "par", url)
    first.ensure_slots(4)
    second = StudyHandle.load("par", url)  # another worker process, same seed in the file
    drawn = []
    for handle in (first, second, first, second):
        claimed = handle.claim()
        assert claimed is not None
        trial, _ = claimed
        drawn.append(trial.suggest_float("optimizer.lr", 1e-4, 1e-1, log=True))
        handle.study.tell(trial, 1.0)
    assert len(set(drawn)) == 4


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
