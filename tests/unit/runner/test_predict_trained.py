"""``load_trained``: every reason a run cannot be loaded back is one clear line (no training here)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from labkit.errors import DataError, LabkitError
from labkit.runner import RunDir, TrainedRun, load_trained
from labkit.runner._trained import load_weights, recorded_tags

CONFIG = """\
name: t
seed: 1
task: {kind: classification}
model: {name: mlp, hidden: [8]}
data: {name: file, path: %s, inputs: x, targets: y}
"""


def _run_dir(root: Path) -> Path:
    return RunDir.create(root / "runs", "t").path


def test_an_unknown_run_is_named(tmp_path: Path) -> None:
    with pytest.raises(LabkitError, match=r"no run 'nope' under .*runs \(give an MLflow run id"):
        load_trained("nope", runs_root=tmp_path / "runs")


def test_a_run_without_config_yaml_is_refused(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path)
    with pytest.raises(LabkitError, match=r"no config\.yaml; not a labkit run directory"):
        load_trained(str(run_dir))


def test_a_run_without_checkpoint_is_refused(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path)
    (run_dir / "config.yaml").write_text(CONFIG % (tmp_path / "events.h5"))
    with pytest.raises(LabkitError, match=r"has no checkpoint \(checkpoints/best\.ckpt\)"):
        load_trained(str(run_dir))


def test_the_run_is_found_by_its_key_prefix(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path)
    key = RunDir.open(run_dir).run_key
    (run_dir / "config.yaml").write_text(CONFIG % (tmp_path / "events.h5"))
    with pytest.raises(LabkitError, match=r"has no checkpoint"):  # found: it got as far as the checkpoint
        load_trained(key[:8], runs_root=tmp_path / "runs")


def test_a_gone_training_file_names_its_path_and_why_it_is_needed(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path)
    gone = tmp_path / "moved" / "events.h5"
    (run_dir / "config.yaml").write_text(CONFIG % gone)
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"not read")
    with pytest.raises(DataError, match=rf"training file {gone} \(data.path in .*config.yaml\) is gone: predict "
                       "and export need the training file to rebuild the input normalisation"):  # fmt: skip
        load_trained(str(run_dir))


def test_weights_that_do_not_fit_the_model_name_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "best.ckpt"
    torch.save({"state_dict": {"weight": torch.zeros(3, 3)}}, path)
    with pytest.raises(
        LabkitError, match=r"best\.ckpt: the weights do not fit the model config\.yaml builds"
    ):
        load_weights(nn.Linear(2, 2), path)
    path.write_bytes(b"garbage")
    with pytest.raises(LabkitError, match=r"best\.ckpt: not a readable checkpoint"):
        load_weights(nn.Linear(2, 2), path)
    torch.save({"weights": 1}, path)
    with pytest.raises(LabkitError, match=r"best\.ckpt: not a Lightning checkpoint \(no state_dict\)"):
        load_weights(nn.Linear(2, 2), path)


def test_the_git_commit_comes_from_run_json_else_the_spool(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path)
    with sqlite3.connect(run_dir / "spool.db") as db:
        db.execute("CREATE TABLE ops (seq INTEGER PRIMARY KEY, kind TEXT, key TEXT, value TEXT)")
        db.execute("INSERT INTO ops(kind, key, value) VALUES ('tag', 'mlflow.source.git.commit', 'abc123')")
    db.close()
    assert recorded_tags(run_dir) == {"mlflow.source.git.commit": "abc123"}
    fields: dict[str, Any] = {
        "experiment": None,
        "task": None,
        "info": None,
        "datamodule": None,
        "checkpoint": run_dir,
    }
    trained = TrainedRun(run_dir=run_dir, state={"run_key": "k"}, input_mean=None, input_std=None, **fields)
    assert trained.git_commit == "abc123" and trained.run_key == "k" and trained.run_id == ""
    recorded = TrainedRun(
        run_dir=run_dir, state={"git_commit": "def"}, input_mean=None, input_std=None, **fields
    )
    assert recorded.git_commit == "def"
    assert recorded_tags(tmp_path) == {}


def test_standardise_applies_the_training_scaling_in_float32(tmp_path: Path) -> None:
    fields: dict[str, Any] = {
        "experiment": None,
        "task": None,
        "info": None,
        "datamodule": None,
        "checkpoint": tmp_path,
    }
    mean, std = np.array([1.0, 2.0], np.float32), np.array([2.0, 1.0], np.float32)
    trained = TrainedRun(run_dir=tmp_path, state={}, input_mean=mean, input_std=std, **fields)
    out = trained.standardise(np.array([[3.0, 3.0]]))
    assert out.dtype == np.float32 and out.tolist() == [[1.0, 1.0]]
    raw = TrainedRun(run_dir=tmp_path, state={}, input_mean=None, input_std=None, **fields)
    assert raw.standardise(np.array([[3.0, 3.0]])).tolist() == [[3.0, 3.0]]
