"""Several objectives without training: the front of a hand-made study, its files and figure,
the objective checks, the sampler, and how a trial's values are taken from what its run logged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from labkit.config import Experiment, load_experiment
from labkit.errors import ConfigError
from labkit.tuning import StudyHandle
from labkit.tuning._objective import ObjectivesCallback
from labkit.tuning._optuna import directions, make_sampler, open_storage
from labkit.tuning._pareto import (
    check_objectives,
    format_front,
    pareto_front,
    point_experiment,
    write_front,
)

Load = Callable[..., Experiment]
TWO = "search.objectives=[{metric: val_acc, direction: maximize}, {metric: parameters, direction: minimize}]"
# (val_acc, parameters) per trial: 0, 2, 3 are the front; 1 is dominated by 0, 4 by 3
POINTS = [(0.90, 1000.0), (0.85, 2000.0), (0.95, 5000.0), (0.80, 300.0), (0.70, 800.0)]
HIDDEN = [[16, 16], [64, 64], [128, 64]]
LRS = [0.1, 0.03, 0.001, 0.0003, 0.0001]


def _two(load: Load, *extra: str) -> Experiment:
    return load("digits_mlp_search", TWO, "search.pruner=none", *extra)


def _study(exp: Experiment, tmp_path: Path) -> StudyHandle:
    """A study of ``exp`` holding POINTS as complete trials (as StudyHandle.create would make it
    with directions=; made here with Optuna directly)."""
    assert exp.search is not None
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(storage=storage, study_name="two", directions=directions(exp.search))
    study.set_user_attr("labkit.experiment", json.dumps(exp.model_dump(mode="json")))
    dists = {
        "optimizer.lr": FloatDistribution(1e-4, 1e-1, log=True),
        "model.hidden": CategoricalDistribution([json.dumps(h) for h in HIDDEN]),
        "trainer.max_epochs": IntDistribution(3, 10),
    }
    for i, values in enumerate(POINTS):
        params = {
            "optimizer.lr": LRS[i],
            "model.hidden": json.dumps(HIDDEN[i % 3]),
            "trainer.max_epochs": 3 + i,
        }
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, values=list(values)))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    return StudyHandle(study, storage)


def test_the_front_is_the_non_dominated_trials(load: Load, tmp_path: Path) -> None:
    handle = _study(_two(load), tmp_path)
    front = pareto_front(handle)
    assert [p.trial for p in front] == [0, 2, 3]
    assert front[1].values == (0.95, 5000.0)
    assert front[1].params == {"optimizer.lr": 0.001, "model.hidden": [128, 64], "trainer.max_epochs": 5}
    lines = format_front(handle, front)
    assert lines[0] == "labkit: study two: Pareto front of 3 points"
    assert lines[1].split() == ["trial", "val_acc", "(max)", "parameters", "(min)", "optimizer.lr",
                                "model.hidden", "trainer.max_epochs"]  # fmt: skip
    assert lines[3].split()[:3] == ["2", "0.95", "5000"] and "[128, 64]" in lines[3]
    assert len(lines) == 5


def test_each_point_is_a_runnable_experiment(load: Load, tmp_path: Path) -> None:
    handle = _study(_two(load), tmp_path)
    written = write_front(handle, tmp_path / "front")
    assert [p.name for p in written] == ["trial-000.yaml", "trial-002.yaml", "trial-003.yaml"]
    assert (tmp_path / "front" / "pareto_front.png").stat().st_size > 1000
    text = written[1].read_text()
    assert text.splitlines()[0] == "# trial 2 of study 'two': val_acc = 0.95, parameters = 5000"
    exp = load_experiment(written[1], cwd=tmp_path)
    assert (
        exp.search is None
        and tuple(getattr(exp.model, "hidden", ())) == (128, 64)
        and exp.trainer.max_epochs == 5
    )
    assert exp.optimizer.lr == pytest.approx(0.001)
    only = write_front(handle, tmp_path / "one", trial=1)  # a dominated trial, asked for by number
    assert [p.name for p in only] == ["trial-001.yaml"]
    assert point_experiment(handle, 4).startswith("# trial 4 of study 'two': val_acc = 0.7")


def test_a_trial_that_is_not_complete_is_refused(load: Load, tmp_path: Path) -> None:
    handle = _study(_two(load), tmp_path)
    with pytest.raises(
        ConfigError, match=r"^--trial 5: study 'two' has no complete trial 5; complete trials: 0, 1, 2, 3, 4$"
    ):
        write_front(handle, tmp_path / "x", trial=5)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("objectives", "pattern"),
    [
        (
            "[{metric: val_accuracy, direction: maximize}, {metric: parameters, direction: minimize}]",
            r"^search\.objectives\.0\.metric: the classification task logs no metric 'val_accuracy' "
            r"\(did you mean 'val_acc'\?\); choose one of: .*parameters, inference_ms",
        ),
        (
            "[{metric: val_acc, direction: maximize}, {metric: params, direction: minimize}]",
            r"^search\.objectives\.1\.metric: .*'params' \(did you mean 'parameters'\?\)",
        ),
    ],
)
def test_objectives_are_checked(load: Load, objectives: str, pattern: str) -> None:
    exp = load("digits_mlp_search", f"search.objectives={objectives}", "search.pruner=none")
    with pytest.raises(ConfigError, match=pattern):
        check_objectives(exp)


def test_known_objectives_pass(load: Load) -> None:
    check_objectives(_two(load))
    check_objectives(
        load(
            "digits_mlp_search",
            "search.objectives=[{metric: test_acc, direction: maximize}, {metric: inference_ms, direction: minimize}]",
            "search.pruner=none",
        )
    )
    check_objectives(load("digits_mlp_search"))  # one metric: nothing to check here


@pytest.mark.parametrize(
    ("name", "cls"), [("nsga2", optuna.samplers.NSGAIISampler), ("nsga3", optuna.samplers.NSGAIIISampler)]
)
def test_nsga_samplers(load: Load, name: str, cls: type) -> None:
    exp = _two(load, f"search.sampler={name}")
    assert exp.search is not None
    assert isinstance(make_sampler(exp.search, 3), cls)
    assert directions(exp.search) == ["maximize", "minimize"]


class _Trial:
    def __init__(self) -> None:
        self.attrs: dict[str, object] = {}

    def set_user_attr(self, key: str, value: object) -> None:
        self.attrs[key] = value


def test_values_come_from_the_tested_checkpoint_and_the_final_metrics() -> None:
    cb = ObjectivesCallback(_Trial(), ["val_acc", "parameters", "test_acc"], "val_loss", "min")  # type: ignore[arg-type]
    cb.rows = [
        {"val_acc": 0.5, "val_loss": 1.0},
        {"val_acc": 0.7, "val_loss": 0.4},  # the best checkpoint (tested)
        {"val_acc": 0.8, "val_loss": 0.6},
    ]
    assert cb.values({"parameters": 120.0, "test_acc": 0.66}) == ([0.7, 120.0, 0.66], None)
    assert cb.values({"test_acc": 0.66}) == ([], "the run never logged 'parameters'")
    assert cb.values({"parameters": float("nan"), "test_acc": 0.6}) == ([], "parameters is nan")
    cb.monitor = "val_nothing"  # no monitored value: the last validation
    assert cb.values({"parameters": 1.0, "test_acc": 0.6})[0][0] == 0.8
    assert cb.done()


class _Trainer:
    def __init__(self, logged: dict[str, float], epoch: int = 0, sanity: bool = False) -> None:
        self.callback_metrics, self.current_epoch, self.sanity_checking = logged, epoch, sanity


def test_each_validation_is_a_row_kept_with_the_trial() -> None:
    trial = _Trial()
    cb = ObjectivesCallback(trial, ["val_acc", "parameters"], "val_loss", "min")  # type: ignore[arg-type]
    cb.on_validation_end(_Trainer({"val_acc": 0.1}, sanity=True), None)  # type: ignore[arg-type]
    cb.on_validation_end(_Trainer({"val_acc": 0.5, "val_loss": 0.9, "train_loss": 1.0}), None)  # type: ignore[arg-type]
    assert cb.rows == [{"val_acc": 0.5, "val_loss": 0.9}]
    assert json.loads(str(trial.attrs["labkit.validation"])) == cb.rows  # a retry continues from them
    with pytest.raises(FloatingPointError, match=r"^val_acc became nan at epoch 3$"):
        cb.on_validation_end(_Trainer({"val_acc": float("nan")}, epoch=3), None)  # type: ignore[arg-type]
