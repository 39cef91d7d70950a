"""``labkit tune`` as users run it: worker processes, a resumed study, a worker killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from labkit.runner import RunDir
from labkit.tuning import StudyHandle
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEARCH = str(REPO / "experiments" / "digits_mlp_search.yaml")
QUICK = ["trainer.limit_val_batches=3", "trainer.limit_test_batches=3"]


def tune(
    *args: str, env: dict[str, str], wait: bool = True
) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "labkit", "tune", *args]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    if not wait:
        return subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env, cwd=REPO
        )
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=REPO, timeout=900)


@pytest.fixture(params=["sqlite", "postgresql"])
def study_storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A study storage URL: a SQLite file (one machine), or PostgreSQL (several machines)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 's.db'}"
    return str(request.getfixturevalue("postgres"))


def test_two_workers_exact_trials_resume_and_best(tmp_path: Path, study_storage: str) -> None:
    uri, storage = f"sqlite:///{tmp_path / 'm.db'}", study_storage
    study_name = f"demo-{tmp_path.name}"
    env = {"MLFLOW_TRACKING_URI": uri}
    args = (
        SEARCH,
        *QUICK,
        f"runs_root={tmp_path / 'runs'}",
        "--trials",
        "12",
        "--workers",
        "2",
        "--storage",
        storage,
        "--study",
        study_name,
    )
    first = tune(*args, env=env)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "12/12 finished" in first.stdout

    study = optuna.load_study(study_name=study_name, storage=storage)
    assert len(study.trials) == 12 and all(t.state.is_finished() for t in study.trials)
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 12
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert parents[0].data.tags["labkit.study"] == study_name
    assert "best_val_loss" in parents[0].data.metrics
    figures = {a.path for a in client.list_artifacts(parents[0].info.run_id, "figures")}
    assert "figures/optimization_history.png" in figures

    again = tune(*args, env=env)
    assert again.returncode == 0, again.stderr
    assert len(optuna.load_study(study_name=study_name, storage=storage).trials) == 12
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) == 13

    status = tune("status", "--study", study_name, "--storage", storage, env=env)
    assert status.returncode == 0 and "12/12 finished" in status.stdout
    best = tune(
        "best", "--study", study_name, "--storage", storage, "-o", str(tmp_path / "best.yaml"), env=env
    )
    assert best.returncode == 0, best.stderr
    rerun = subprocess.run(
        [sys.executable, "-m", "labkit", "run", str(tmp_path / "best.yaml"), *QUICK, "--progress", "none"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=tmp_path,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "test_acc" in rerun.stdout


def _still_training(trial: optuna.trial.FrozenTrial) -> bool:
    """The trial is running, has saved a checkpoint and its run directory still says RUNNING (a
    SIGKILL now hits a run that has not finished; cheap to check, so the poll does not lag)."""
    run_dir = trial.user_attrs.get("labkit.run_dir")
    if trial.state.name != "RUNNING" or not run_dir:
        return False
    if not (Path(run_dir) / "checkpoints" / "last.ckpt").is_file():
        return False
    return RunDir.peek(run_dir).get("status") == "RUNNING"


def test_sigkilled_worker_does_not_stall_the_study(tmp_path: Path, study_storage: str) -> None:
    uri, storage = f"sqlite:///{tmp_path / 'm.db'}", study_storage
    study_name = f"kill-{tmp_path.name}"
    env = {"MLFLOW_TRACKING_URI": uri, "LABKIT_HEARTBEAT_SECONDS": "1", "LABKIT_GRACE_SECONDS": "8"}
    coordinator = tune(
        SEARCH,
        *QUICK,
        f"runs_root={tmp_path / 'runs'}",
        "search.pruner=none",
        "search.params={optimizer.lr: {type: float, low: 0.001, high: 0.01}, "
        "trainer.max_epochs: {type: int, low: 16, high: 17}}",
        "--trials",
        "3",
        "--workers",
        "2",
        "--storage",
        storage,
        "--study",
        study_name,
        env=env,
        wait=False,
    )
    assert isinstance(coordinator, subprocess.Popen)
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and coordinator.poll() is None:
        time.sleep(0.5)
        try:
            trials = optuna.load_study(study_name=study_name, storage=storage).trials
        except KeyError:
            continue
        for t in trials:
            if _still_training(t):
                victim = t
                break
    if victim is None:
        coordinator.kill()
        pytest.fail("no trial reached its first checkpoint:\n" + coordinator.communicate()[0])
    os.kill(int(victim.user_attrs["labkit.worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    out, _ = coordinator.communicate(timeout=600)
    assert coordinator.returncode == 0, out

    handle = StudyHandle.load(study_name, storage)
    tally = handle.tally()
    assert tally.finished == 3 and tally.open == 0 and tally.superseded == 1
    states = [t.state.name for t in handle.trials()]
    assert "RUNNING" not in states and "WAITING" not in states
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    dead = client.get_run(victim.user_attrs["labkit.mlflow_run_id"])
    assert dead.info.status == "KILLED"
    resumed = [r for r in runs if r.data.tags.get("labkit.resumed_from")]
    assert len(resumed) == 1 and resumed[0].data.tags["labkit.trial_state"] == "COMPLETE"
    assert resumed[0].data.tags["labkit.resumed_from"].endswith("last.ckpt")


def test_offline_study_syncs_with_its_trials_linked(tmp_path: Path) -> None:
    """A study run offline (a node without a route to the server) leaves spools; `labkit sync`
    sends the study's run first, then its trials as its children."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    study_name = f"offline-{tmp_path.name}"
    args = (
        SEARCH, *QUICK, f"runs_root={tmp_path / 'runs'}", "tracking.mode=offline",
        "--trials", "2", "--workers", "1", "--storage", f"sqlite:///{tmp_path / 'optuna.db'}",
        "--study", study_name,
    )  # fmt: skip
    result = tune(*args, env={"MLFLOW_TRACKING_URI": uri})
    assert isinstance(result, subprocess.CompletedProcess)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (tmp_path / "m.db").exists()  # offline: nothing was sent
    sync = subprocess.run(
        [sys.executable, "-m", "labkit", "sync", "--all", "--runs-root", str(tmp_path / "runs")],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": uri},  # the configured store
    )  # fmt: skip
    assert sync.returncode == 0, sync.stdout + sync.stderr
    assert "3 runs" in sync.stdout
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    (parent,) = [r for r in runs if r.info.run_name == f"{study_name} (study)"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and len(runs) == 3
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert parent.data.metrics["trials_complete"] + parent.data.metrics.get("trials_pruned", 0) == 2
    assert any(k.startswith("best_") for k in parent.data.metrics)
