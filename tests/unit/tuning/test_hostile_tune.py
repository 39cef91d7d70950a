"""Hostile input to ``labkit tune`` (issue 14): a giant grid is refused before anything is listed,
and a study whose trials all failed says how to go on instead of repeating the old error."""

from __future__ import annotations

import io
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import optuna
import pytest

from labkit.config import Experiment
from labkit.config._search import CategoricalParam, FloatParam, IntParam, SearchConfig
from labkit.errors import ConfigError
from labkit.tuning import StudyHandle
from labkit.tuning._optuna import MAX_GRID_POINTS, check_grid_size, grid_sizes, make_sampler
from labkit.tuning._tune import MAX_WORKERS, prepare_study, tune

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


# -- --trials, --workers and --study are refused by the library before anything is created -----
@pytest.mark.parametrize("trials", [0, -1, 10**6 + 1, 10**20])
def test_trials_past_the_search_bound_are_refused(load: Load, tmp_path: Path, trials: int) -> None:
    exp = load("digits_mlp_search")
    db = tmp_path / "s.db"
    with pytest.raises(ConfigError, match=rf"--trials {trials}: expected a whole number from 1 to 1,000,000"):
        prepare_study(exp, study="t", storage=f"sqlite:///{db}", trials=trials, stream=io.StringIO())
    assert not db.exists()


@pytest.mark.parametrize("workers", [0, MAX_WORKERS + 1, 100_000])
def test_too_many_workers_are_refused(load: Load, tmp_path: Path, workers: int) -> None:
    exp = load("digits_mlp_search")
    db = tmp_path / "s.db"
    with pytest.raises(ConfigError, match=rf"--workers {workers}: expected a whole number from 1 to 256"):
        tune(exp, study="w", storage=f"sqlite:///{db}", trials=1, workers=workers, stream=io.StringIO())
    assert not db.exists()


def test_too_many_array_workers_are_refused(load: Load, tmp_path: Path) -> None:
    from labkit.cluster import load_profile
    from labkit.tuning._cluster import submit_study
    from tests.conftest import REPO

    profile, path = load_profile(REPO / "cluster" / "slurm-local.yaml")
    with pytest.raises(ConfigError, match=r"--workers 1001: expected a whole number from 1 to 1,000 \(SLURM"):
        submit_study(
            load("digits_mlp_search"),
            profile,
            path,
            study="s",
            storage="sqlite:///x.db",
            trials=2,
            workers=1001,
            dry_run=True,
        )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", r"--study '': the study name is empty"),
        ("x" * 100_000, r"--study 'x{57}\.\.\.': the study name is 100,000 characters long; at most 200"),
        ("a\nb", r"--study 'a\\nb': the study name holds a control character"),
        ("../up", r"--study '\.\./up': the study name names a path"),
        ("..", r"--study '\.\.': the study name names a path"),
    ],
)
def test_a_bad_study_name_is_refused_before_the_storage_is_touched(
    load: Load, tmp_path: Path, name: str, message: str
) -> None:
    exp = load("digits_mlp_search")
    db = tmp_path / "s.db"
    with pytest.raises(ConfigError, match=message):
        prepare_study(exp, study=name, storage=f"sqlite:///{db}", trials=1, stream=io.StringIO())
    with pytest.raises(ConfigError, match=message):
        StudyHandle.load(name, f"sqlite:///{db}")
    assert not db.exists()


def test_a_leftover_queue_is_not_worked_through_by_a_small_study(load: Load, tmp_path: Path) -> None:
    from labkit.tuning._tune import _refuse_a_surplus_queue

    exp = load("digits_mlp_search")
    url = f"sqlite:///{tmp_path / 's.db'}"
    handle = StudyHandle.create(exp, "big", url)
    handle.ensure_slots(5)  # an enqueue of many more, interrupted
    message = (
        r"--trials 1: study 'big' in .* already holds 0 finished, 0 running and 5 queued trials .*4 more "
        r"than 1; run them all with --trials 5, or start a fresh study with --study big-2"
    )
    with pytest.raises(ConfigError, match=message):
        prepare_study(exp, study="big", storage=url, trials=1, stream=io.StringIO())
    _refuse_a_surplus_queue(handle, 5, url)  # the same budget resumes as before


def test_a_tiny_float_step_counts_the_true_grid_size() -> None:
    search = _unchecked_grid(
        x=FloatParam.model_construct(type="float", low=0.0, high=1.0, step=1e-300, log=False),
        y=FloatParam.model_construct(type="float", low=-1e308, high=1e308, step=1e-308, log=False),
    )
    assert grid_sizes(search)["x"] == round(Fraction(1) / Fraction(1e-300)) + 1
    with pytest.raises(ConfigError, match=r"the grid has about 10\^916 points"):
        check_grid_size(search)
