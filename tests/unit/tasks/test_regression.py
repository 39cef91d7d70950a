"""The regression task's errors, found before training (the training runs are in
tests/integration/tasks/test_regression.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from labkit.config import Experiment, load_experiment
from labkit.errors import ConfigError, DataError
from labkit.runner import run
from tests.conftest import EXPERIMENTS

Load = Callable[..., Experiment]


def write_events(path: Path, n: int = 2000, seed: int = 0) -> Path:
    """A toy calorimeter: four layer sums whose total measures the energy with 10 %/sqrt(E)."""
    rng = np.random.default_rng(seed)
    energy = np.exp(rng.uniform(np.log(1.0), np.log(100.0), n))
    measured = energy * (1 + 0.1 / np.sqrt(energy) * rng.normal(size=n))
    share = rng.dirichlet([4, 3, 2, 1], size=n)
    with h5py.File(path, "w") as f:
        f["layers"] = measured[:, None] * share
        f["energy"] = energy
        f["angle"] = rng.uniform(-1, 1, n)
    return path


def experiment(tmp_path: Path, store: str, *overrides: str) -> Experiment:
    text = f"""
name: toy_energy
seed: 1
task: {{kind: regression, resolution_fit: [energy]}}
model: {{name: mlp, hidden: [32, 32]}}
data: {{name: file, path: {write_events(tmp_path / "toy.h5")}, inputs: layers, targets: [energy], batch_size: 64}}
optimizer: {{name: adam, lr: 3.0e-3}}
trainer: {{max_epochs: 12, accelerator: cpu}}
tracking: {{uri: "{store}"}}
runs_root: {tmp_path / "runs"}
"""
    path = tmp_path / "toy.yaml"
    path.write_text(text)
    return load_experiment(path, list(overrides), cwd=tmp_path)


def test_resolution_fit_of_an_unknown_target(tmp_path: Path, store: str) -> None:
    with pytest.raises(
        ConfigError,
        match=r"task\.resolution_fit: no target 'energi' \(did you mean 'energy'\?\); the targets are: energy",
    ):
        run(experiment(tmp_path, store, "task.resolution_fit=[energi]"), progress="none")


def test_regression_on_digits_is_refused(load: Load) -> None:
    with pytest.raises(DataError, match=r"digits holds class labels"):
        run(load("digits_mlp", "task={kind: regression}", "trainer.early_stopping=null"), progress="none")


def test_unknown_loss_lists_the_losses(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"task\.loss: 'huber' is not valid; choose one of: mse, mae, gaussian_nll"
    ):
        load_experiment(
            EXPERIMENTS / "digits_mlp.yaml", ["task={kind: regression, loss: huber}"], cwd=tmp_path
        )
