from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from labkit.config import Experiment
from labkit.errors import ConfigError
from labkit.tuning import StudyHandle
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
