"""search.objectives and search.budget: what the schema accepts and the one-line errors it gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.config import load_experiment
from labkit.errors import ConfigError
from tests.conftest import EXPERIMENTS

MLP = EXPERIMENTS / "digits_mlp.yaml"
SPACE = "params: {optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}}"
TWO = "objectives: [{metric: val_acc, direction: maximize}, {metric: parameters, direction: minimize}]"


def _load(tmp_path: Path, search: str):  # type: ignore[no-untyped-def]
    return load_experiment(MLP, [f"search={{{search}}}"], cwd=tmp_path)


def test_two_objectives_parse_and_switch_pruning_off(tmp_path: Path) -> None:
    exp = _load(tmp_path, f"{SPACE}, {TWO}, sampler: nsga2")
    assert exp.search is not None
    assert [(o.metric, o.direction) for o in exp.search.objectives or ()] == [
        ("val_acc", "maximize"),
        ("parameters", "minimize"),
    ]
    assert exp.search.pruner == "none" and exp.search.sampler == "nsga2"
    assert _load(tmp_path, f"{SPACE}, {TWO}, pruner: none").search.pruner == "none"  # said explicitly: fine


def test_budget_parses(tmp_path: Path) -> None:
    exp = _load(tmp_path, f"{SPACE}, budget: {{gpu_hours: 50}}")
    assert exp.search is not None and exp.search.budget is not None
    assert exp.search.budget.gpu_hours == 50 and exp.search.budget.wall_hours is None


@pytest.mark.parametrize(
    ("search", "pattern"),
    [
        (f"{SPACE}, {TWO}, pruner: median", r"search: pruner median: Optuna cannot prune a study of several"),
        (f"{SPACE}, {TWO}, sampler: cmaes", r"search: sampler cmaes handles one objective; .*nsga2"),
        (
            f"{SPACE}, sampler: nsga2",
            r"search: sampler nsga2 is for several objectives: name search.objectives",
        ),
        (f"{SPACE}, sampler: nsga3", r"search: sampler nsga3 is for several objectives"),
        (
            f"{SPACE}, objectives: [{{metric: val_acc, direction: maximize}}, {{metric: val_acc, direction: minimize}}]",
            r"search: objectives name a metric twice: \['val_acc', 'val_acc'\]",
        ),
        (
            f"{SPACE}, {TWO}, metric: val_acc, direction: maximize",
            r"search: give either metric and direction \(one objective\) or objectives \(several\), not both",
        ),
        (f"{SPACE}, objectives: [{{metric: val_acc, direction: maximize}}]", r"search\.objectives: "),
        (
            f"{SPACE}, objectives: [{{metric: val_acc, direction: up}}, {{metric: x, direction: minimize}}]",
            r"search\.objectives\.0: 'up' is not valid; choose one of: minimize, maximize",
        ),
        (f"{SPACE}, budget: {{}}", r"search\.budget: name gpu_hours, wall_hours or both"),
        (f"{SPACE}, budget: {{gpu_hours: 0}}", r"search\.budget\.gpu_hours: input should be greater than 0"),
    ],
)
def test_objective_and_budget_errors_name_the_field(search: str, pattern: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=pattern):
        _load(tmp_path, search)
