from __future__ import annotations

from pathlib import Path

import pytest

from labkit.config import load_experiment
from labkit.errors import ConfigError
from tests.conftest import EXPERIMENTS

MLP = EXPERIMENTS / "digits_mlp.yaml"
LR = "optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}"


def _search(tmp_path: Path, params: str, *extra: str):  # type: ignore[no-untyped-def]
    return load_experiment(MLP, [f"search={{params: {{{params}}}}}", *extra], cwd=tmp_path)


def test_search_section_parses(tmp_path: Path) -> None:
    exp = _search(
        tmp_path,
        LR + ", model.hidden: {type: categorical, choices: [[16, 16], [64, 64]]},"
        " trainer.max_epochs: {type: int, low: 2, high: 5}",
        "search.trials=7",
        "search.sampler=random",
    )
    assert exp.search is not None
    assert exp.search.trials == 7 and exp.search.sampler == "random"
    assert set(exp.search.params) == {"optimizer.lr", "model.hidden", "trainer.max_epochs"}


@pytest.mark.parametrize(
    ("params", "extra", "pattern"),
    [
        (
            "optimizer.lr: {type: float, low: 0.1, high: 0.01}",
            [],
            r"search\.params\.optimizer\.lr: empty range: low \(0\.1\) must be below high \(0\.01\)",
        ),
        (
            "trainer.max_epochs: {type: int, low: 5, high: 5}",
            [],
            r"search\.params\.trainer\.max_epochs: empty range",
        ),
        (
            "optimizer.lr: {type: float, low: 0.0, high: 0.1, log: true}",
            [],
            r"search\.params\.optimizer\.lr: log: true needs low > 0",
        ),
        ("optimizer.lr: {type: float, low: -1, high: 0.1, log: true}", [], r"a log range cannot reach -1"),
        (
            "optimizer.lrr: {type: float, low: 0.01, high: 0.1}",
            [],
            r"search\.params\.optimizer\.lrr: no key 'lrr' in optimizer \(did you mean 'lr'\?\)",
        ),
        (
            "modle.hidden: {type: categorical, choices: [[8]]}",
            [],
            r"no key 'modle' in the experiment \(did you mean 'model'\?\)",
        ),
        (
            "model.hidden: {type: categorical, choices: [[16], [0]]}",
            [],
            r"search\.params\.model\.hidden: the value \[0\] is not valid there: model\.hidden\.0: input should be greater than 0",
        ),
        ("tracking.experiment: {type: categorical, choices: [a, b]}", [], r"'tracking' cannot be searched"),
        (
            "x: {type: floaty, low: 0, high: 1}",
            [],
            r"search\.params\.x\.type: unknown type 'floaty' \(did you mean 'float'\?\)",
        ),
        (LR, ["search.sampler=bayes"], r"search\.sampler: 'bayes' is not valid"),
        (LR, ["search.pruner=asa"], r"search\.pruner: 'asa' is not valid \(did you mean 'asha'\?\)"),
        (LR, ["search.sampler=grid"], r"sampler grid needs a step for the float parameter 'optimizer\.lr'"),
        (LR, ["search.trials=0"], r"search\.trials: input should be greater than 0"),
    ],
)
def test_bad_search_spaces_name_the_field(
    params: str, extra: list[str], pattern: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        _search(tmp_path, params, *extra)


def test_grid_values(tmp_path: Path) -> None:
    exp = _search(
        tmp_path,
        "optimizer.lr: {type: float, low: 0.01, high: 0.03, step: 0.01},"
        " trainer.max_epochs: {type: int, low: 2, high: 6, step: 2}",
        "search.sampler=grid",
    )
    assert exp.search is not None
    grid = exp.search.grid()
    assert grid["trainer.max_epochs"] == [2, 4, 6]
    assert grid["optimizer.lr"] == pytest.approx([0.01, 0.02, 0.03])


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        (
            "optimizer.lr: {low: 1, high: 2}",
            r"search\.params\.optimizer\.lr: give a 'type': float, int or categorical",
        ),
        (
            "optimizer.lr: {type: float, low: 0.1}",
            r"search\.params\.optimizer\.lr\.high: required, but missing",
        ),
        (
            "optimizer.lr: {type: float, low: 0.1, high: 0.2, logg: true}",
            r"search\.params\.optimizer\.lr\.logg: unknown key \(did you mean 'log'\?\); valid keys here: high, log, low, step, type",
        ),
    ],
)
def test_parameter_errors_name_the_key(params: str, pattern: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=pattern):
        _search(tmp_path, params)
