"""A trained run, loaded back: its experiment, its best weights, its data as at training.

:func:`load_trained` is what ``labkit predict`` and ``labkit export`` start from: the task with
the run's best checkpoint (else its last), on the CPU in eval mode, and the data module set up
exactly as in training (the same split from the same seed, the same fitted input
standardisation and target scaling), so that raw inputs can be turned into what the network saw.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit._rundir import RunDir
from labkit.errors import DataError, LabkitError

if TYPE_CHECKING:
    import lightning.pytorch as pl

    from labkit.config import Experiment
    from labkit.data import DataInfo

__all__ = ["TrainedRun", "checkpoint_of", "config_of", "load_trained", "recorded_tags"]


@dataclass(frozen=True)
class TrainedRun:
    """A finished (or at least checkpointed) run, ready to score events."""

    run_dir: Path
    experiment: Experiment  #: the run's ``config.yaml``, loaded with ``load_experiment``
    task: pl.LightningModule  #: best checkpoint (else last), eval mode, on the CPU
    info: DataInfo  #: as at training: class names, input names, target scaling
    datamodule: pl.LightningDataModule  #: set up: the same split and normalisation as training
    checkpoint: Path
    state: dict[str, Any]  #: the run's ``run.json``
    input_mean: np.ndarray | None  #: the fitted input standardisation (None when it is off)
    input_std: np.ndarray | None  #: the divisor (a feature with std 0 is divided by 1)

    @property
    def run_id(self) -> str:
        """The MLflow run id (empty before the run reached MLflow)."""
        return str(self.state.get("mlflow_run_id") or "")

    @property
    def run_key(self) -> str:
        return str(self.state.get("run_key") or "")

    @property
    def git_commit(self) -> str:
        """The commit the run was trained from, as recorded (empty when unknown)."""
        recorded = self.state.get("git_commit")
        if recorded:
            return str(recorded)
        return recorded_tags(self.run_dir).get("mlflow.source.git.commit", "")

    def standardise(self, x: np.ndarray) -> np.ndarray:
        """Raw inputs ``(N, ...)`` as the network saw them in training (float32)."""
        x = np.asarray(x, dtype=np.float32)
        if self.input_mean is None or self.input_std is None:
            return x
        scaled: np.ndarray = (x - self.input_mean) / self.input_std
        return scaled


def config_of(run_dir: Path) -> Path:
    """The run's ``config.yaml``; LabkitError when it is missing."""
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise LabkitError(f"{run_dir}: no config.yaml; not a labkit run directory (or it never started)")
    return config


def checkpoint_of(run_dir: Path) -> Path:
    """``checkpoints/best.ckpt``, else ``checkpoints/last.ckpt``; LabkitError when neither exists."""
    for path in (run_dir / "checkpoints" / "best.ckpt", run_dir / "checkpoints" / "last.ckpt"):
        if path.is_file():
            return path
    raise LabkitError(f"run {run_dir} has no checkpoint (checkpoints/best.ckpt): did it finish an epoch?")


def load_trained(ref: str, *, runs_root: str | os.PathLike[str] = "runs") -> TrainedRun:
    """The run ``ref`` names (an MLflow run id, a run key or its first 8 characters, or a run
    directory), with its best weights and its data module set up as in training."""
    from labkit.config import load_experiment
    from labkit.runner._generate import find_run_dir

    run_dir = find_run_dir(ref, runs_root)
    config = config_of(run_dir)
    checkpoint = checkpoint_of(run_dir)
    exp = load_experiment(config, cwd=run_dir)
    _check_data_file(exp, config)
    from labkit.runner._build import build_datamodule, build_task, data_info

    datamodule = build_datamodule(exp)
    info = data_info(datamodule, exp)
    task = build_task(exp, info)
    load_weights(task, checkpoint)
    task.eval()
    scaling = getattr(datamodule, "input_scaling", None)
    mean, std = scaling if scaling is not None else (None, None)
    return TrainedRun(
        run_dir=run_dir,
        experiment=exp,
        task=task,
        info=info,
        datamodule=datamodule,
        checkpoint=checkpoint,
        state=RunDir.open(run_dir).state(),
        input_mean=mean,
        input_std=std,
    )


def load_weights(task: Any, checkpoint: Path) -> dict[str, Any]:
    """Load the ``state_dict`` of the Lightning checkpoint into ``task`` (on the CPU); the
    checkpoint's contents are returned."""
    import pickle

    import torch

    try:
        content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise LabkitError(
            f"{checkpoint}: not a readable checkpoint ({type(exc).__name__}: {first})"
        ) from None
    state = content.get("state_dict") if isinstance(content, dict) else None
    if not isinstance(state, dict):
        raise LabkitError(f"{checkpoint}: not a Lightning checkpoint (no state_dict)")
    try:
        task.load_state_dict(state)
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise LabkitError(
            f"{checkpoint}: the weights do not fit the model config.yaml builds ({first}); "
            "was config.yaml or the model's code changed since training?"
        ) from None
    task.to("cpu")
    return dict(content)


def _check_data_file(exp: Experiment, config: Path) -> None:
    """The file the run trained on must still be there: the split and the input
    standardisation are rebuilt from it."""
    path = getattr(exp.data, "path", None)
    if not isinstance(path, str):
        return
    if not Path(path).expanduser().is_file():
        raise DataError(
            f"the run's training file {path} (data.path in {config}) is gone: predict and export "
            "need the training file to rebuild the input normalisation and the split; put it back "
            "at that path"
        )


def recorded_tags(run_dir: Path) -> dict[str, str]:
    """The tags the run logged, read from its spool (``spool.db`` in the run directory),
    read-only; empty when there is none."""
    from labkit.tracking import SPOOL_FILE

    spool = run_dir / SPOOL_FILE
    if not spool.is_file():
        return {}
    try:
        with contextlib.closing(
            sqlite3.connect(spool.resolve().as_uri() + "?mode=ro", uri=True, timeout=5)
        ) as db:
            rows = db.execute("SELECT key, value FROM ops WHERE kind='tag' ORDER BY seq").fetchall()
    except sqlite3.Error:
        return {}
    return {str(k): str(v) for k, v in rows if v is not None}
