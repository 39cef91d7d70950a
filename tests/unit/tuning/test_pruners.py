"""The pruners' settings, as benchmarks/tuning.py chose them; Hyperband and successive halving
scale with the trials' length."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from labkit.config import Experiment
from labkit.tuning import StudyHandle
from labkit.tuning._optuna import make_pruner

Load = Callable[..., Experiment]


def _search(load: Load, pruner: str, *extra: str) -> Experiment:
    return load("digits_mlp_search", f"search.pruner={pruner}", *extra)


@pytest.mark.parametrize("epochs", [30, 10, 1])
def test_median_waits_for_three_trials_and_one_epoch(load: Load, epochs: int) -> None:
    exp = _search(load, "median")
    assert exp.search is not None
    pruner = make_pruner(exp.search, max_epochs=epochs)
    assert isinstance(pruner, optuna.pruners.MedianPruner)
    assert (pruner._n_warmup_steps, pruner._n_startup_trials) == (1, 3)


@pytest.mark.parametrize(("epochs", "first"), [(30, 3), (60, 6), (10, 1), (1, 1)])
def test_hyperband_starts_after_a_tenth_and_keeps_a_quarter(load: Load, epochs: int, first: int) -> None:
    exp = _search(load, "hyperband")
    assert exp.search is not None
    pruner = make_pruner(exp.search, max_epochs=epochs)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert (pruner._min_resource, pruner._max_resource, pruner._reduction_factor) == (
        first,
        max(2, epochs),
        4,
    )


@pytest.mark.parametrize(("epochs", "first"), [(30, 3), (60, 6), (5, 1)])
def test_successive_halving_starts_after_a_tenth_and_keeps_a_quarter(
    load: Load, epochs: int, first: int
) -> None:
    exp = _search(load, "asha")
    assert exp.search is not None
    pruner = make_pruner(exp.search, max_epochs=epochs)
    assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner)
    assert (pruner._min_resource, pruner._reduction_factor) == (first, 4)


def test_a_study_scales_its_pruner_to_the_longest_trial(load: Load, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    searched = _search(load, "hyperband")  # the file searches trainer.max_epochs in [3, 10]
    assert searched.search is not None and "trainer.max_epochs" in searched.search.params
    handle = StudyHandle.create(
        load(
            "digits_mlp_search",
            "search.pruner=hyperband",
            "search.params={optimizer.lr: {type: float, low: 0.001, high: 0.01},"
            " trainer.max_epochs: {type: int, low: 3, high: 45}}",
        ),
        "long",
        url,
    )
    assert handle.study.pruner._min_resource == 4  # a tenth of 45, not of the file's 10
    assert handle.study.pruner._max_resource == 45
    again = StudyHandle.load("long", url)
    assert (again.study.pruner._min_resource, again.study.pruner._max_resource) == (4, 45)
