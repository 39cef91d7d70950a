"""``load_trained``: a run trained on a file comes back with its best weights, on the CPU in eval
mode, and its data module set up as in training (the same split, the same fitted standardisation)."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from labkit.config import load_experiment
from labkit.errors import DataError
from labkit.runner import RunResult, load_trained, run
from tests.conftest import REPO

pytestmark = [pytest.mark.slow]

CONFIG = """\
name: tiny
seed: 3
task: {kind: classification}
model: {name: mlp, hidden: [8]}
data:
  name: file
  path: events.h5
  inputs: features
  targets: label
  labels: {11: electron, 211: pion}
  batch_size: 64
trainer: {max_epochs: 1, accelerator: cpu}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    """One epoch of a tiny MLP on 300 events of 4 features (means far from 0, to see the
    standardisation)."""
    root = tmp_path_factory.mktemp("trained")
    rng = np.random.default_rng(0)
    label = np.where(rng.random(300) < 0.5, 11, 211)
    features = rng.normal(5.0, 3.0, (300, 4)) + (label == 211)[:, None]
    with h5py.File(root / "events.h5", "w") as f:
        f["features"] = features.astype(np.float32)
        f["label"] = label
    (root / "tiny.yaml").write_text(CONFIG)
    exp = load_experiment(
        root / "tiny.yaml",
        [f"tracking.uri=sqlite:///{root / 'mlflow.db'}", f"runs_root={root / 'runs'}"],
        cwd=root,
    )
    result = run(exp, progress="none", source=REPO / "experiments" / "digits_mlp.yaml")
    return result, root


def test_the_run_comes_back_with_its_weights_split_and_standardisation(
    trained: tuple[RunResult, Path],
) -> None:
    result, root = trained
    assert result.run_id
    loaded = load_trained(result.run_id, runs_root=root / "runs")
    assert loaded.run_dir == result.run_dir
    assert loaded.checkpoint.name in ("best.ckpt", "last.ckpt")
    assert loaded.run_id == result.run_id and loaded.run_key == loaded.state["run_key"]
    assert loaded.git_commit  # trained from a file inside the repository's checkout
    assert not loaded.task.training
    assert {p.device.type for p in loaded.task.parameters()} == {"cpu"}
    assert loaded.info.class_names == ("electron", "pion")
    assert loaded.experiment.name == "tiny"
    state = torch.load(loaded.checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    for name, value in loaded.task.state_dict().items():
        torch.testing.assert_close(value, state[name], rtol=0, atol=0, msg=name)

    with h5py.File(root / "events.h5", "r") as f:
        features = f["features"][()]
    dm = loaded.datamodule
    train, test = dm.split_indices("train"), dm.split_indices("test")  # type: ignore[attr-defined]
    assert loaded.input_mean is not None and loaded.input_std is not None
    np.testing.assert_array_equal(loaded.input_mean, features[train].mean(axis=0))
    np.testing.assert_array_equal(loaded.input_std, features[train].std(axis=0))
    seen = torch.cat([batch[0] for batch in dm.test_dataloader()]).numpy()
    np.testing.assert_array_equal(loaded.standardise(features[test]), seen)


def test_the_run_is_found_by_key_prefix_and_by_directory(trained: tuple[RunResult, Path]) -> None:
    result, root = trained
    key = load_trained(str(result.run_dir)).run_key
    assert load_trained(key[:8], runs_root=root / "runs").run_dir == result.run_dir


def test_a_moved_training_file_is_named(trained: tuple[RunResult, Path], tmp_path: Path) -> None:
    result, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(result.run_dir, copy)
    config = copy / "config.yaml"
    content = yaml.safe_load(config.read_text())
    content["data"]["path"] = str(tmp_path / "gone.h5")
    config.write_text(yaml.safe_dump(content))
    with pytest.raises(
        DataError, match=r"gone\.h5 \(data\.path in .*config\.yaml\) is gone: predict and export"
    ):
        load_trained(str(copy))
