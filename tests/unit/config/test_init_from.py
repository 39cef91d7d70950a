"""``init_from`` and ``freeze`` in the experiment file: what the schema accepts and refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.config import dump_experiment, flatten, load_experiment
from labkit.errors import ConfigError
from tests.conftest import EXPERIMENTS

MLP = EXPERIMENTS / "digits_mlp.yaml"


def test_defaults_are_no_parent_and_nothing_frozen(tmp_path: Path) -> None:
    exp = load_experiment(MLP, cwd=tmp_path)
    assert exp.init_from is None and exp.freeze == ()
    shown = dump_experiment(exp)  # what labkit check prints
    assert "init_from: null\n" in shown and "freeze: []\n" in shown


def test_overrides_set_both_and_check_shows_them(tmp_path: Path) -> None:
    exp = load_experiment(MLP, ["init_from=3f2a9c1e", "freeze=[net.1, encoder]"], cwd=tmp_path)
    assert exp.init_from == "3f2a9c1e"
    assert exp.freeze == ("net.1", "encoder")
    shown = dump_experiment(exp)
    assert "init_from: 3f2a9c1e\n" in shown and "freeze: [net.1, encoder]\n" in shown
    params = flatten(exp.to_dict())
    assert params["init_from"] == "3f2a9c1e" and params["freeze"] == '["net.1", "encoder"]'
    out = tmp_path / "resolved.yaml"
    out.write_text(shown)
    assert load_experiment(out, cwd=tmp_path) == exp  # config.yaml of a fine-tuned run repeats it


def test_a_single_name_needs_no_brackets(tmp_path: Path) -> None:
    assert load_experiment(MLP, ["freeze=net"], cwd=tmp_path).freeze == ("net",)


def test_a_run_directory_is_accepted_as_written(tmp_path: Path) -> None:
    ref = "runs/digits_mlp/20261207-114512-3f2a9c1e"
    assert load_experiment(MLP, [f"init_from={ref}"], cwd=tmp_path).init_from == ref


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["init_from=12345678"], r'init_from: write the run in quotes, e\.g\. init_from: "12345678"'),
        (["init_from=''"], r"init_from: name a run: an MLflow run id, a run key"),
        (["init_from=' '"], r"init_from: name a run: an MLflow run id, a run key"),
        (["init_from=[a]"], r"init_from: input should be a valid string"),
        (["freeze=[net, net]"], r"freeze: 'net' is listed twice"),
        (
            ["freeze=[net.1, net]"],
            r"freeze: 'net\.1' lies inside 'net', which is frozen whole; list only 'net'",
        ),
        (["freeze=[net, net.1]"], r"freeze: 'net\.1' lies inside 'net', which is frozen whole"),
        (["freeze=['net 1']"], r"freeze: 'net 1' is not a submodule name; write names such as encoder"),
        (["freeze=['']"], r"freeze: '' is not a submodule name"),
        (["freeze=[net..1]"], r"freeze: 'net\.\.1' is not a submodule name"),
        (["freeze=[3]"], r"freeze\.0: input should be a valid string"),
        (["freeze={a: 1}"], r"freeze: input should be a valid tuple"),
    ],
)
def test_mistakes_name_the_field(tmp_path: Path, overrides: list[str], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_experiment(MLP, overrides, cwd=tmp_path)


def test_net_prefix_is_not_inside_network(tmp_path: Path) -> None:
    # ``net`` and ``network`` are different submodules: one is not inside the other
    exp = load_experiment(MLP, ["freeze=[net, network]"], cwd=tmp_path)
    assert exp.freeze == ("net", "network")
