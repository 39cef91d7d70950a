"""Hostile input to ``labkit tune`` (issue 14): a giant grid is refused before anything is listed,
and a study whose trials all failed says how to go on instead of repeating the old error."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from labkit.config import Experiment
from labkit.config._search import CategoricalParam, FloatParam, IntParam, SearchConfig
from labkit.errors import ConfigError
from labkit.tuning import StudyHandle
from labkit.tuning._optuna import MAX_GRID_POINTS, check_grid_size, grid_sizes, make_sampler
from labkit.tuning._tune import prepare_study

Load = Callable[..., Experiment]


def _unchecked_grid(**params: object) -> SearchConfig:
    """A grid search as the search section would hold it, without its own validation (so that
    tuning's guard is tested whatever limit the config applies first)."""
    return SearchConfig.model_construct(
        metric="val_loss", direction="minimize", trials=3, sampler="grid", pruner="none", params=params
    )


def test_grid_size_is_counted_without_listing_the_values() -> None:
    search = _unchecked_grid(
        a=IntParam.model_construct(type="int", low=1, high=10**9, step=1, log=False),
        b=FloatParam.model_construct(type="float", low=0.0, high=1.0, step=0.25, log=False),
        c=CategoricalParam.model_construct(type="categorical", choices=["x", "y"]),
    )
    assert grid_sizes(search) == {"a": 10**9, "b": 5, "c": 2}


def test_a_grid_of_a_billion_points_is_refused() -> None:
    search = _unchecked_grid(
        **{
            "trainer.max_epochs": IntParam.model_construct(type="int", low=1, high=1000, step=1, log=False),
            "optimizer.lr": FloatParam.model_construct(type="float", low=0.0, high=1.0, step=1e-6, log=False),
        }
    )
    message = r"search.params: the grid has 1,000,001,000 points \(1000 \(trainer.max_epochs\) x 1000001"
    with pytest.raises(ConfigError, match=message):
        check_grid_size(search)
    with pytest.raises(ConfigError, match=rf"sampler grid allows at most {MAX_GRID_POINTS:,}"):
        make_sampler(search, seed=0)


def test_an_endless_float_grid_is_refused() -> None:
    search = _unchecked_grid(
        x=FloatParam.model_construct(type="float", low=0.0, high=1e308, step=1e-308, log=False)
    )
    with pytest.raises(ConfigError, match=r"the grid has about 10\^\d+ points"):
        check_grid_size(search)


def test_tune_refuses_a_giant_grid_before_any_trial(load: Load, tmp_path: Path) -> None:
    giant = (
        "search.params={optimizer.lr: {type: float, low: 0.0001, high: 0.1, step: 0.0000000001}, "
        "trainer.max_epochs: {type: int, low: 1, high: 100}}"
    )
    with pytest.raises(ConfigError, match=r"(?i)grid"):  # the config, or tune itself, refuses it
        exp = load("digits_mlp_search", "search.sampler=grid", giant)
        prepare_study(
            exp, study="g", storage=f"sqlite:///{tmp_path / 's.db'}", trials=None, stream=io.StringIO()
        )
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.json"))


def _fail_all(handle: StudyHandle, reason: str) -> None:
    while (claimed := handle.claim()) is not None:
        trial, _ = claimed
        trial.set_user_attr("labkit.fail_reason", reason)
        handle.study.tell(trial, state=optuna.trial.TrialState.FAIL)


def test_a_study_whose_trials_all_failed_says_how_to_go_on(load: Load, tmp_path: Path) -> None:
    exp = load("digits_mlp_search", "search.trials=2")
    url = f"sqlite:///{tmp_path / 's.db'}"
    handle = StudyHandle.create(exp, "poisoned", url)
    handle.ensure_slots(2)
    _fail_all(handle, "RegistryError: model.class_path: cannot import module 'mymodels'")
    message = (
        r"study 'poisoned' in .* already holds its 2 trials and every one failed \(the first: RegistryError: "
        r"model.class_path: cannot import module 'mymodels'\); nothing is left to run. Once the cause is "
        r"fixed, start a fresh study with --study poisoned-2, or run more trials in this one with --trials 4"
    )
    with pytest.raises(ConfigError, match=message):
        prepare_study(exp, study="poisoned", storage=url, trials=None, stream=io.StringIO())
    # more trials: the study goes on (the new ones are queued; the failed ones stay in the record)
    assert StudyHandle.create(exp, "poisoned", url).ensure_slots(4) == 2


def test_a_study_with_one_success_is_not_called_poisoned(load: Load, tmp_path: Path) -> None:
    from labkit.tuning._tune import _refuse_a_spent_failed_study

    exp = load("digits_mlp_search", "search.trials=2")
    url = f"sqlite:///{tmp_path / 's.db'}"
    handle = StudyHandle.create(exp, "mixed", url)
    handle.ensure_slots(2)
    trial, _ = handle.claim() or pytest.fail("no trial")
    handle.study.tell(trial, 0.5)
    _fail_all(handle, "boom")
    _refuse_a_spent_failed_study(handle, 2, url)  # no error: one trial completed
