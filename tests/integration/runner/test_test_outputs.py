"""Every classification, regression and anomaly run stores its per-event test outputs:
``test_outputs.npz`` in the run directory and the MLflow artifact ``outputs/test_outputs.npz``
(the layout of /tmp/lead/outputs-contract.md, read by labkit.report), with the spectators of the
data. Trains calo_pid-, calo_energy- and dijet_anomaly-like runs for one epoch on a few hundred
events; the pure parts (the DDP order, a failed write) need no training."""

from __future__ import annotations

import errno
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from labkit._rundir import RunDir
from labkit.config import Experiment, load_experiment
from labkit.runner import RunResult, run
from labkit.runner._build import build_datamodule
from labkit.runner._outputs import loader_order, save_test_outputs
from labkit.tasks._functional import roc_auc
from tests.conftest import EXPERIMENTS

Train = Callable[..., tuple[Experiment, RunResult]]


@pytest.fixture
def train(tmp_path: Path, store: str) -> Train:
    def _train(name: str, *overrides: str) -> tuple[Experiment, RunResult]:
        base = [
            "trainer.max_epochs=1",
            "trainer.early_stopping=null",
            "optimizer.scheduler=null",
            "model.hidden=[16]",
            f"tracking.uri={store}",
            f"runs_root={tmp_path / 'runs'}",
        ]
        exp = load_experiment(EXPERIMENTS / f"{name}.yaml", [*base, *overrides], cwd=tmp_path)
        return exp, run(exp, progress="none")

    return _train


def _outputs(result: RunResult, store: str) -> dict[str, np.ndarray]:
    """The run's test_outputs.npz, after checking the artifact is the same file."""
    path = result.run_dir / "test_outputs.npz"
    assert path.is_file()
    assert result.run_id is not None
    client = MlflowClient(store)
    assert [a.path for a in client.list_artifacts(result.run_id, "outputs")] == ["outputs/test_outputs.npz"]
    logged = Path(client.download_artifacts(result.run_id, "outputs/test_outputs.npz"))
    assert logged.read_bytes() == path.read_bytes()
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _test_events(exp: Experiment, key: str) -> np.ndarray:
    """``key`` of the simulated sample for the test events, in the order of the test loader."""
    dm: Any = build_datamodule(exp)
    rows = dm.split_indices("test")
    with h5py.File(dm.cache_file()) as f:
        values: np.ndarray = f[key][()][rows]
    return values


def test_classification_regression_and_anomaly_runs_store_their_outputs(train: Train, store: str) -> None:
    pid, result = train(
        "calo_pid",
        "data.events=600",
        "data.parameters={particle: mixed, energy_range: [1.0, 100.0], layers: 3}",
    )
    out = _outputs(result, store)
    n = 90  # 15 % of 600
    assert set(out) == {
        "task",
        "format",
        "probs",
        "labels",
        "class_names",
        "signal_class",
        "spectator.incident_energy",
    }
    assert out["task"].shape == () and str(out["task"]) == "classification" and int(out["format"]) == 1
    assert out["probs"].shape == (n, 2) and out["probs"].dtype == np.float32
    np.testing.assert_allclose(out["probs"].sum(axis=1), 1.0, rtol=1e-5)
    assert out["labels"].dtype == np.int64 and set(out["labels"].tolist()) <= {0, 1}
    assert out["class_names"].tolist() == ["electron", "pion"] and int(out["signal_class"]) == 0
    np.testing.assert_array_equal(
        out["spectator.incident_energy"], _test_events(pid, "incident_energy").astype(np.float32)
    )
    particle = _test_events(pid, "particle")
    np.testing.assert_array_equal(out["labels"], (particle == 211).astype(np.int64))
    signal = out["labels"] == 0
    auc = roc_auc(out["probs"][:, 0].astype(np.float64), signal)
    assert auc == pytest.approx(result.metrics["test_auc"], abs=1e-3)  # the logged AUC, from the file

    energy, result = train(
        "calo_energy",
        "data.events=600",
        "data.parameters={particle: electron, energy_range: [1.0, 100.0], layers: 3}",
    )
    out = _outputs(result, store)
    assert set(out) == {"task", "format", "pred", "truth", "target_names", "spectator.particle"}
    assert str(out["task"]) == "regression" and out["target_names"].tolist() == ["incident_energy"]
    assert out["pred"].shape == out["truth"].shape == (n, 1) and out["pred"].dtype == np.float32
    truth = _test_events(energy, "incident_energy")
    np.testing.assert_allclose(out["truth"][:, 0], truth, rtol=1e-5)  # GeV, the log and scaling undone
    err = out["pred"][:, 0].astype(np.float64) - out["truth"][:, 0]
    metrics = result.metrics
    assert np.sqrt(np.mean(err**2)) == pytest.approx(metrics["test_rmse_incident_energy"], rel=1e-4)
    assert np.mean(err) == pytest.approx(metrics["test_bias_incident_energy"], rel=1e-3, abs=1e-3)
    np.testing.assert_array_equal(out["spectator.particle"], np.full(n, 11.0, np.float32))

    dijet, result = train(
        "dijet_anomaly", "data.events=2000", "data.parameters={signal_fraction: 0.1, mjj_range: [3.0, 4.2]}"
    )
    out = _outputs(result, store)
    spectators = {"spectator.likelihood_ratio", "spectator.log_likelihood_ratio"}
    assert set(out) == {"task", "format", "score", "is_signal", "in_signal_region"} | spectators
    assert (
        str(out["task"]) == "anomaly" and out["score"].shape == (300,) and out["is_signal"].dtype == np.bool_
    )
    np.testing.assert_array_equal(out["is_signal"], _test_events(dijet, "is_signal") > 0)
    mjj = _test_events(dijet, "features")[:, 0]
    np.testing.assert_array_equal(out["in_signal_region"], (mjj >= 3.3) & (mjj < 3.7))
    region = out["in_signal_region"]
    auc = roc_auc(out["score"][region].astype(np.float64), out["is_signal"][region])
    assert auc == pytest.approx(result.metrics["test_auc"], abs=1e-3)
    np.testing.assert_allclose(
        out["spectator.likelihood_ratio"], _test_events(dijet, "likelihood_ratio").astype(np.float32)
    )


# ------------------------------------------------------------------ the parts that need no training


def test_ddp_rows_are_put_back_in_the_order_of_the_test_loader() -> None:
    n, world = 7, 3  # DistributedSampler: 0..6 padded with 0, 1 to 9; rank r takes r, r + 3, r + 6
    gathered = np.array([0, 3, 6, 1, 4, 0, 2, 5, 1])  # rank 0's rows, then rank 1's, then rank 2's
    order = loader_order(len(gathered), n, world)
    assert order is not None
    np.testing.assert_array_equal(gathered[order], np.arange(n))
    assert loader_order(8, n, world) is None  # not what the sampler gives: no guess
    np.testing.assert_array_equal(loader_order(5, 5, 1), np.arange(5))  # type: ignore[arg-type]
    assert loader_order(4, 5, 1) is None


class _Task:
    def test_outputs(self) -> dict[str, np.ndarray]:
        return {"score": np.zeros(3, np.float32), "is_signal": np.zeros(3, bool)}


class _Tracker:
    def __init__(self, error: Exception | None = None) -> None:
        self.error, self.logged = error, []

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.error is not None:
            raise self.error
        self.logged.append((path, artifact_path))


def _save(tmp_path: Path, tracker: _Tracker) -> tuple[Path | None, str]:
    rdir = RunDir.create(tmp_path / "runs", "x")
    stream = io.StringIO()
    saved = save_test_outputs(
        task=_Task(),
        info=None,
        kind="anomaly",
        world=1,
        run_dir=rdir,
        tracker=tracker,
        stream=stream,  # type: ignore[arg-type]
    )
    return saved, stream.getvalue()


def test_a_failed_write_is_a_warning_and_a_full_disk_fails_the_run(tmp_path: Path) -> None:
    tracker = _Tracker()
    saved, log = _save(tmp_path / "ok", tracker)
    assert saved is not None and saved.name == "test_outputs.npz" and log == ""
    assert tracker.logged == [(saved, "outputs")]
    with np.load(saved) as npz:
        assert sorted(npz.files) == ["format", "is_signal", "score", "task"]

    saved, log = _save(tmp_path / "bad", _Tracker(RuntimeError("the spool is gone")))
    assert saved is None
    assert log.startswith(
        "labkit: warning: the per-event test outputs were not saved (RuntimeError: the spool is gone)"
    )
    assert not list((tmp_path / "bad").rglob(".test_outputs*"))  # no temporary file left

    with pytest.raises(OSError, match="No space left"):
        _save(tmp_path / "full", _Tracker(OSError(errno.ENOSPC, "No space left on device")))
