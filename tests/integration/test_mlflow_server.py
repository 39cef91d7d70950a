"""``labkit run`` against a real ``mlflow server``, read back with a plain MLflow client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO
from tests.integration.conftest import MlflowServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def labkit_run(uri: str, tmp_path: Path, *overrides: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``labkit run digits_mlp.yaml`` (3 epochs) as a user would, tracking to ``uri``."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "labkit",
            "run",
            str(REPO / "experiments" / "digits_mlp.yaml"),
            "trainer.max_epochs=3",
            f"runs_root={tmp_path / 'runs'}",
            *overrides,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(REPO), **env},
        cwd=REPO,
        timeout=600,
    )


def test_run_reads_back_through_the_server(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    result = labkit_run(mlflow_server.url, tmp_path, "tracking.experiment=server-it", "seed=11")
    assert result.returncode == 0, result.stderr
    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name("server-it")
    assert experiment is not None
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # proxied, not a local path
    (run,) = client.search_runs([experiment.experiment_id])
    run_id = run.info.run_id
    assert f"{mlflow_server.url}/#/experiments/{experiment.experiment_id}/runs/{run_id}" in result.stdout

    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.max_epochs"] == "3"
    assert run.data.params["seed"] == "11"
    assert run.data.tags["mlflow.runName"] == "digits_mlp"
    assert run.data.tags["mlflow.user"]
    for key in ("train_loss", "val_loss", "val_acc", "test_loss", "test_acc", "test_auc"):
        assert key in run.data.metrics
    history = client.get_metric_history(run_id, "val_loss")
    assert [m.step for m in history] == sorted({m.step for m in history}) and len(history) == 3

    local = Path(client.download_artifacts(run_id, "config.yaml", str(tmp_path)))
    assert "max_epochs: 3" in local.read_text()
    names = {a.path for a in client.list_artifacts(run_id, "figures")}
    assert names == {"figures/confusion_matrix.png"}
    assert (mlflow_server.artifacts).is_dir()  # the bytes went to the server's store


@pytest.mark.traceback_expected  # a crash in the user's own model: its traceback is kept
def test_failed_run_is_failed_on_the_server(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    result = labkit_run(
        mlflow_server.url,
        tmp_path,
        "tracking.experiment=server-fail",
        "model={class_path: tests.user_models.Exploding}",
    )
    assert result.returncode == 1
    assert "RuntimeError: exploded after 3 batches" in result.stderr  # the traceback of the user's code
    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name("server-fail")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["labkit.error"] == "RuntimeError: exploded after 3 batches"


def test_unreachable_server_in_online_mode_is_a_clear_error(tmp_path: Path) -> None:
    from tests.integration.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = labkit_run(url, tmp_path, "tracking.mode=online", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    assert result.returncode == 2
    assert (
        f"cannot start a run in MLflow experiment 'digits': MLflow at {url} cannot be reached"
        in result.stderr
    )
    assert "tracking.mode: auto logs to the run's spool instead" in result.stderr
    assert "Traceback" not in result.stderr


def test_spooled_points_reach_the_server_as_logged(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """The shipper posts log_batch JSON itself (not through MLflow's protobuf client): values,
    NaN and infinities, steps, timestamps, params and tags arrive as MLflow's own client sends them."""
    from labkit.tracking import RunClient

    client = RunClient(mlflow_server.url, "server-json", tmp_path / "run")
    run_id = client.start("r", {"lr": "0.001"}, {"note": "ünïcode ✓"})
    assert run_id is not None
    for step in range(2500):
        client.log_values({"loss": 1.0 / (step + 1)}, step)
    client.log_values({"nan": float("nan"), "inf": float("inf")}, 7)
    report = client.finish()
    assert report is not None and report.pending.total == 0
    mlflow = MlflowClient(mlflow_server.url)
    run = mlflow.get_run(run_id)
    assert run.data.params == {"lr": "0.001"} and run.data.tags["note"] == "ünïcode ✓"
    assert run.data.metrics["nan"] != run.data.metrics["nan"] and run.data.metrics["inf"] > 1e300
    history = sorted(mlflow.get_metric_history(run_id, "loss"), key=lambda m: m.step)
    assert [m.step for m in history] == list(range(2500))
    assert [m.value for m in history] == [1.0 / (s + 1) for s in range(2500)]
    assert all(m.timestamp > 1_600_000_000_000 for m in history)
