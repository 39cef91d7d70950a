"""Fine-tuning lineage without training: finding the parent run, copying its weights, refusing
another architecture in one line, freezing submodules by name, and the ``parent`` column."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from labkit.config import Experiment, dump_experiment
from labkit.data import DataInfo
from labkit.errors import ConfigError
from labkit.runner import RunDir
from labkit.runner._build import build_task
from labkit.runner._init_from import (
    Parent,
    find_parent,
    first_mismatch,
    freeze_submodules,
    load_parent_weights,
    mismatch_message,
    model_root,
)

Load = Callable[..., Experiment]
DIGITS = DataInfo(in_shape=(64,), num_classes=10)


class Tower(nn.Module):
    """A plain module with named parts, as a user's model might have."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8))
        self.head = nn.Linear(8, 2)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.act(self.encoder(x)))
        return out


# ------------------------------------------------------------------------ freeze
def test_freeze_turns_off_the_named_submodules_only() -> None:
    model = Tower()
    frozen = freeze_submodules(model, ["encoder.0", "head"])
    assert frozen == 4 * 8 + 8 + 8 * 2 + 2
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        "encoder.2.weight",
        "encoder.2.bias",
    ]


def test_nothing_to_freeze_changes_nothing() -> None:
    model = Tower()
    assert freeze_submodules(model, []) == 0
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(
    ("names", "pattern"),
    [
        (
            ["encodr"],
            r"^freeze: the model \(Tower\) has no submodule 'encodr' \(did you mean 'encoder'\?\); its submodules: encoder, head, act$",
        ),
        (["encoder.5"], r"^freeze: encoder \(Sequential\) has no submodule '5'.*; its submodules: 0, 1, 2$"),
        (["head.weight"], r"^freeze: head \(Linear\) has no submodule 'weight'.*; its submodules: none$"),
        (
            ["act"],
            r"^freeze: act \(ReLU\) has no parameters to freeze; submodules with parameters: encoder\.0, encoder\.2, head$",
        ),
        (
            ["encoder", "head"],
            r"^freeze: \['encoder', 'head'\] freezes every parameter of Tower; nothing is left to train",
        ),
    ],
)
def test_freeze_mistakes_are_one_line(names: list[str], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        freeze_submodules(Tower(), names)


def test_freeze_acts_on_a_labkit_tasks_model(load: Load) -> None:
    task = build_task(load("digits_mlp"), DIGITS)
    root = model_root(task)
    assert root is task.model  # type: ignore[comparison-overlap]
    freeze_submodules(root, ["net.1"])
    trainable = [n for n, p in task.named_parameters() if p.requires_grad]
    assert "model.net.1.weight" not in trainable and "model.net.3.weight" in trainable
    with pytest.raises(
        ConfigError, match=r"the model \(MLP\) has no submodule 'encoder'.*its submodules: net$"
    ):
        freeze_submodules(root, ["encoder"])


# ------------------------------------------------------------------------ mismatches
def test_first_mismatch_in_this_runs_order_then_the_parents() -> None:
    ours = {"a": (2, 3), "b": (4,), "c": (1,)}
    assert first_mismatch(dict(ours), ours) is None
    assert first_mismatch({"a": (2, 3), "b": (5,), "c": (9,)}, ours) == ("b", (5,), (4,))
    assert first_mismatch({"a": (2, 3), "c": (1,)}, ours) == ("b", None, (4,))
    assert first_mismatch({**ours, "z": (7, 7)}, ours) == ("z", (7, 7), None)


def test_mismatch_message_names_the_parameter_both_shapes_and_the_fields() -> None:
    theirs = {"name": "mlp", "hidden": [16, 16], "activation": "relu"}
    ours = {"name": "mlp", "hidden": [32, 32], "activation": "relu"}
    text = mismatch_message("3f2a9c1e", "model.net.1.weight", (16, 64), (32, 64), theirs, ours)
    assert text == (
        "init_from 3f2a9c1e: parameter model.net.1.weight has shape (16, 64) in that run and (32, 64) "
        "here (that run vs this one: model.hidden: [16, 16] vs [32, 32])"
    )
    text = mismatch_message("r", "model.net.5.bias", None, (10,), {**theirs, "hidden": [16]}, theirs)
    assert "parameter model.net.5.bias (shape (10,)) is in this run's model but not in that run's" in text
    assert "model.hidden: [16] vs [16, 16]" in text
    text = mismatch_message("r", "x", (3,), None, {"name": "cnn", "channels": [8]}, {"name": "mlp"})
    assert "is in that run's model but not in this run's" in text
    assert "model.name: cnn vs mlp; model.channels: [8] vs unset" in text
    assert "the data gives another input shape" in mismatch_message("r", "x", (3,), (4,), ours, ours)
    assert "\n" not in text


# ------------------------------------------------------------------------ the parent run
def _parent_run(exp: Experiment, state: dict[str, torch.Tensor], *, run_id: str | None = "f" * 32) -> RunDir:
    rdir = RunDir.create(exp.runs_root, exp.name)
    rdir.config_file.write_text(dump_experiment(exp))
    rdir.update(mlflow_run_id=run_id)
    rdir.checkpoints.mkdir()
    torch.save({"state_dict": state, "epoch": 0}, rdir.checkpoints / "best.ckpt")
    return rdir


def test_find_parent_by_key_prefix_id_and_directory(load: Load) -> None:
    exp = load("digits_mlp")
    rdir = _parent_run(exp, {})
    for ref in (rdir.run_key[:8], rdir.run_key, "f" * 32, str(rdir.path)):
        parent = find_parent(ref, exp.runs_root)
        assert parent.run_dir == rdir.path.resolve() and parent.checkpoint.name == "best.ckpt"
        assert parent.tag == "f" * 32 and parent.model_section["hidden"] == [16, 16]
    record = find_parent(rdir.run_key[:8], exp.runs_root).record()
    assert record["run_key"] == rdir.run_key and json.dumps(record)


def test_a_parent_only_in_its_spool_is_tagged_by_its_run_key(load: Load) -> None:
    exp = load("digits_mlp")
    rdir = _parent_run(exp, {}, run_id=None)
    assert find_parent(rdir.run_key[:8], exp.runs_root).tag == rdir.run_key


def test_unknown_parent_and_parent_without_checkpoint(load: Load) -> None:
    exp = load("digits_mlp")
    with pytest.raises(ConfigError, match=r"^init_from: no run 'nosuchrun' under .*runs_root names where"):
        find_parent("nosuchrun", exp.runs_root)
    rdir = RunDir.create(exp.runs_root, exp.name)
    with pytest.raises(ConfigError, match=r"^init_from: run .* has no checkpoint \(checkpoints/best\.ckpt"):
        find_parent(rdir.run_key, exp.runs_root)


def test_weights_are_copied_into_the_model_not_the_tasks_own_state(load: Load) -> None:
    exp = load("digits_mlp")
    torch.manual_seed(1)
    donor = build_task(exp, DIGITS)
    rdir = _parent_run(exp, donor.state_dict())
    torch.manual_seed(2)
    task = build_task(exp, DIGITS)
    assert not torch.equal(task.state_dict()["model.net.1.weight"], donor.state_dict()["model.net.1.weight"])
    load_parent_weights(task, find_parent(rdir.run_key, exp.runs_root), exp.to_dict()["model"])
    for key, value in donor.state_dict().items():
        assert torch.equal(task.state_dict()[key], value), key


def test_another_architecture_is_refused_naming_the_first_parameter(load: Load) -> None:
    parent_exp = load("digits_mlp")
    rdir = _parent_run(parent_exp, build_task(parent_exp, DIGITS).state_dict())
    exp = load("digits_mlp", "model.hidden=[32,32]")
    with pytest.raises(ConfigError) as info:
        load_parent_weights(
            build_task(exp, DIGITS), find_parent(rdir.run_key, exp.runs_root), exp.to_dict()["model"]
        )
    assert str(info.value) == (
        f"init_from {rdir.run_key}: parameter model.net.1.weight has shape (16, 64) in that run and (32, 64) "
        "here (that run vs this one: model.hidden: [16, 16] vs [32, 32])"
    )


def test_a_user_module_is_loaded_whole_and_strictly(tmp_path: Path) -> None:
    donor, target = Tower(), Tower()
    path = tmp_path / "best.ckpt"
    torch.save({"state_dict": donor.state_dict()}, path)
    parent = Parent("p", tmp_path, "k", None, path, {"class_path": "x.Tower"})
    load_parent_weights(target, parent, {"class_path": "x.Tower"})
    assert all(torch.equal(target.state_dict()[k], v) for k, v in donor.state_dict().items())
    path.write_text("not a checkpoint")
    with pytest.raises(ConfigError, match=r"^init_from p: cannot read the weights in .*best\.ckpt"):
        load_parent_weights(target, parent, {})


# ------------------------------------------------------------------------ lineage in compare
def test_compare_shows_the_parent_column_only_when_a_run_has_one() -> None:
    from labkit.report import compare_frame
    from labkit.report._table import runs_frame
    from labkit.tracking.query import RunRecord

    def rec(i: int, parent: str | None, seed: int = 0) -> RunRecord:
        tags = {"mlflow.user": "ana", "labkit.task": "classification"}
        if parent:
            tags["labkit.parent_run"] = parent
        return RunRecord(
            run_id=f"run{i}",
            experiment="digits",
            status="FINISHED",
            start_ms=1_000 + i,
            end_ms=2_000 + i,
            params={"seed": str(seed)},
            metrics={"test_acc": 0.9},
            tags=tags,
        )

    assert "parent" not in runs_frame([rec(0, None), rec(1, None)]).columns
    frame = runs_frame([rec(0, None), rec(1, "run0")])
    assert frame["parent"].tolist() == ["", "run0"]
    assert list(frame.columns).index("parent") == list(frame.columns).index("gpu_hours") + 1
    grouped = compare_frame([rec(0, "p1", seed=0), rec(1, "p1", seed=1), rec(2, "p2", seed=2)])
    assert grouped["parent"].tolist() == ["p1 p2"]  # differing only by seed: one row
    assert "parent_std" not in grouped.columns
