"""Real jobs on a real one-node SLURM cluster (the `slurm` fixture): submit, shell safety,
requeue and resume, DDP, cancel, and a tuning study as a job array."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from labkit.cluster._slurm import JobInfo, query
from tests.conftest import EXPERIMENTS, REPO

pytestmark = [pytest.mark.slurm, pytest.mark.integration, pytest.mark.slow]

PROFILE = "cluster/slurm-local.yaml"


@pytest.fixture
def site(tmp_path: Path, slurm: None) -> Path:
    """A working directory laid out as a user's clone: experiments/ and cluster/."""
    shutil.copytree(EXPERIMENTS, tmp_path / "experiments")
    shutil.copytree(REPO / "cluster", tmp_path / "cluster")
    return tmp_path


def labkit(site: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args], cwd=site, capture_output=True, text=True, timeout=timeout
    )


def submit(site: Path, *args: str) -> str:
    out = labkit(site, "submit", "experiments/digits_mlp.yaml", *args, "--cluster", PROFILE)
    assert out.returncode == 0, out.stderr
    job = out.stdout.strip()
    assert job.isdigit(), out.stdout
    return job


def wait_for(job: str, states: set[str], timeout: float = 300) -> JobInfo:
    deadline = time.monotonic() + timeout
    info = None
    while time.monotonic() < deadline:
        info = query([job]).get(job)
        if info is not None and info.state in states:
            return info
        time.sleep(1)
    pytest.fail(f"job {job} did not reach {states} in {timeout} s (last: {info})")


def job_log(site: Path, job: str, timeout: float = 60) -> Path:
    """The job's ``slurm-<id>.out`` in its run directory: slurmd creates it as the job starts,
    which can come a moment after squeue already says RUNNING."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = next((site / "runs" / "digits_mlp").glob(f"*/slurm-{job}.out"), None)
        if found is not None:
            return found
        time.sleep(0.5)
    pytest.fail(f"job {job} wrote no slurm-{job}.out under {site / 'runs' / 'digits_mlp'} in {timeout} s")


def wait_for_line(log: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.is_file() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.5)
    pytest.fail(
        f"{text!r} never appeared in {log}:\n{log.read_text()[-2000:] if log.is_file() else '(no log)'}"
    )


def requeue_now(job: str) -> None:
    """An admin's requeue: SIGTERM to the job; it goes back to the queue with a start-time hold
    of about two minutes, which ``StartTime=now`` lifts."""
    subprocess.run(["scontrol", "requeue", job], check=True, capture_output=True)
    release(job)


def release(job: str) -> None:
    wait_for(job, {"PENDING"}, timeout=60)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, capture_output=True)


def client(site: Path) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{site / 'mlflow.db'}")


def runs_of_job(site: Path, job: str) -> list[Any]:
    c = client(site)
    exp = c.get_experiment_by_name("digits")
    return list(c.search_runs([exp.experiment_id], filter_string=f"tags.`slurm.job_id` = '{job}'"))


def assert_continuous(site: Path, run: Any) -> None:
    """No (key, step) twice; the epoch never goes back as the step grows, and none is missing."""
    c = client(site)
    for key in run.data.metrics:
        steps = Counter(m.step for m in c.get_metric_history(run.info.run_id, key))
        assert [s for s, n in steps.items() if n > 1] == [], f"{key} logged twice at the same step"
    history = sorted(c.get_metric_history(run.info.run_id, "epoch"), key=lambda m: m.step)
    epochs = [int(m.value) for m in history]
    assert epochs == sorted(epochs), "the epoch went back after the restart"
    assert sorted(set(epochs)) == list(range(max(epochs) + 1))
    val_steps = [m.step for m in c.get_metric_history(run.info.run_id, "val_loss")]
    assert len(val_steps) == len(set(val_steps)) == int(run.data.metrics["epochs_trained"])


def test_dry_run_prints_a_valid_script_and_submits_nothing(site: Path) -> None:
    out = labkit(site, "submit", "experiments/digits_mlp.yaml", "--cluster", PROFILE, "--dry-run")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("#!/bin/bash\n") and "#SBATCH --partition=debug" in out.stdout
    script = site / "job.sh"
    script.write_text(out.stdout)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert not (site / "runs").exists()


def test_submitted_run_completes_with_its_job_id_status_and_log(site: Path) -> None:
    job = submit(site, "trainer.max_epochs=2")
    info = wait_for(job, {"COMPLETED", "FAILED", "CANCELLED"})
    log = next((site / "runs" / "digits_mlp").glob(f"*/slurm-{job}.out"))
    assert info.state == "COMPLETED", log.read_text()[-3000:]
    (run,) = runs_of_job(site, job)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["slurm.job_id"] == job
    assert tags["slurm.cluster"] == "slurm-local"
    assert tags["slurm.nodelist"] and tags["labkit.gpu_model"] == "none"
    assert run.data.metrics["gpu_hours"] == 0.0  # elapsed x GPUs, on a CPU
    assert "job.sh" in {a.path for a in client(site).list_artifacts(run.info.run_id)}

    status = labkit(site, "status", job)
    assert (
        status.returncode == 0 and "COMPLETED" in status.stdout and "GPU-hours so far: 0.00" in status.stdout
    )
    mine = labkit(site, "status")  # no job given: the jobs submitted from here
    assert job in mine.stdout
    unknown = labkit(site, "status", "999999")
    assert unknown.returncode == 0 and "NOT FOUND" in unknown.stdout
    logs = labkit(site, "logs", job)
    assert logs.returncode == 0 and "labkit: run finished" in logs.stdout
    follow = labkit(site, "logs", job, "-f")  # the job has ended: prints all of it, then stops
    assert follow.returncode == 0 and follow.stdout.endswith(f"labkit: job {job} completed\n")


def test_shell_metacharacters_in_names_and_overrides_run_nothing(site: Path) -> None:
    canary = Path("/tmp/labkit-pwned")
    canary.unlink(missing_ok=True)
    name = "x$(touch /tmp/labkit-pwned)y"
    note = "a`touch /tmp/labkit-pwned`b 'quoted' \"double\"\nsecond line"
    job = submit(site, "trainer.max_epochs=1", f"tracking.run_name={name}", f"tracking.tags.note={note}")
    info = wait_for(job, {"COMPLETED", "FAILED", "CANCELLED"})
    assert info.state == "COMPLETED"
    assert not canary.exists(), "a shell ran a user's string"
    (run,) = runs_of_job(site, job)
    assert run.info.run_name == name
    assert run.data.tags["note"] == note


@pytest.mark.parametrize("how", ["admin-requeue", "time-limit-signal"])
def test_requeued_job_resumes_into_the_same_run(site: Path, how: str) -> None:
    job = submit(site, "trainer.max_epochs=60", "trainer.early_stopping=null")
    wait_for(job, {"RUNNING"})
    log = job_log(site, job)
    wait_for_line(log, "epoch 5/60")
    if how == "admin-requeue":  # SIGTERM: checkpoint, then SLURM requeues the job
        requeue_now(job)
    else:  # the profile's USR1 before the time limit: checkpoint, then the job requeues itself
        subprocess.run(["scancel", "--signal=USR1", job], check=True)
        release(job)
    info = wait_for(job, {"COMPLETED", "FAILED", "CANCELLED"}, timeout=400)
    text = log.read_text()
    assert info.state == "COMPLETED", text[-3000:]
    assert "preempted.ckpt" in text and "labkit: resumes" in text
    (run,) = runs_of_job(site, job)  # one MLflow run for the job, across both starts
    assert run.info.status == "FINISHED"
    assert run.data.tags["slurm.restarts"] == "1"
    assert run.data.tags["labkit.resumed_from"].endswith("preempted.ckpt")
    assert_continuous(site, run)
    assert run.data.metrics["epoch"] == 60


def test_ddp_job_with_two_tasks_logs_one_run(site: Path) -> None:
    job = submit(site, "trainer.max_epochs=2", "--slurm", "tasks_per_node=2")
    info = wait_for(job, {"COMPLETED", "FAILED", "CANCELLED"})
    log = next((site / "runs" / "digits_mlp").glob(f"*/slurm-{job}.out")).read_text()
    assert info.state == "COMPLETED", log[-3000:]
    assert "Starting with 2 processes" in log and "distributed_backend=gloo" in log
    (run,) = runs_of_job(site, job)  # rank 1 did not create a run of its own
    assert run.info.status == "FINISHED"
    assert run.data.tags["slurm.ntasks"] == "2"
    assert run.data.params["trainer.strategy"] == "ddp" and run.data.params["trainer.devices"] == "2"
    assert "test_acc" in run.data.metrics


def test_cancel_stops_the_job_and_marks_its_run_killed(site: Path) -> None:
    job = submit(site, "trainer.max_epochs=500", "trainer.early_stopping=null")
    wait_for(job, {"RUNNING"})
    log = job_log(site, job)
    wait_for_line(log, "epoch 2/500")
    out = labkit(site, "cancel", job)
    assert out.returncode == 0, out.stderr
    wait_for(job, {"CANCELLED"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and runs_of_job(site, job)[0].info.status == "RUNNING":
        time.sleep(1)
    (run,) = runs_of_job(site, job)
    assert run.info.status == "KILLED"
    assert "SIGTERM" in run.data.tags["labkit.error"]
    assert (log.parent / "checkpoints" / "preempted.ckpt").is_file()  # enough to go on from


def test_tune_on_the_cluster_returns_at_once_and_finishes_the_study(site: Path) -> None:
    start = time.monotonic()
    out = labkit(
        site,
        "tune",
        "experiments/digits_mlp_search.yaml",
        "trainer.max_epochs=2",
        "--cluster",
        PROFILE,
        "--workers",
        "2",
        "--trials",
        "6",
    )
    elapsed = time.monotonic() - start
    assert out.returncode == 0, out.stderr
    assert elapsed < 10, f"labkit tune --cluster took {elapsed:.1f} s"
    array = out.stdout.strip()
    assert "summary job" in out.stderr
    wait_for(f"{array}_0", {"COMPLETED"}, timeout=400)
    wait_for(f"{array}_1", {"COMPLETED"}, timeout=400)
    storage = f"sqlite:///{site / 'runs' / 'optuna.db'}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = labkit(site, "tune", "status", "--study", "digits_mlp_search", "--storage", storage)
        if "6/6 finished" in status.stdout:
            break
        time.sleep(2)
    assert "6/6 finished" in status.stdout, status.stdout + status.stderr
    workers = {r.data.tags.get("slurm.job_id") for r in _trial_runs(site)}
    assert workers == {f"{array}_0", f"{array}_1"}  # both array tasks took trials

    # the summary job ends the study's parent run after the array
    c = client(site)
    exp = c.get_experiment_by_name("digits-search")
    deadline = time.monotonic() + 180
    parent = None
    while time.monotonic() < deadline:
        (parent,) = c.search_runs(
            [exp.experiment_id],
            filter_string="tags.`labkit.study` = 'digits_mlp_search' and attributes.run_name LIKE '%(study)%'",
        )
        if parent.info.status != "RUNNING":
            break
        time.sleep(2)
    assert parent is not None and parent.info.status == "FINISHED"
    assert "best_val_loss" in parent.data.metrics


def _trial_runs(site: Path) -> list[Any]:
    c = client(site)
    exp = c.get_experiment_by_name("digits-search")
    return [r for r in c.search_runs([exp.experiment_id]) if "labkit.trial" in r.data.tags]


def test_requeued_tuning_worker_resumes_its_trial(site: Path) -> None:
    out = labkit(
        site,
        "tune",
        "experiments/digits_mlp_search.yaml",
        "trainer.max_epochs=60",
        "search.params={optimizer.lr: {type: float, low: 1.0e-3, high: 2.0e-3}}",
        "search.pruner=none",
        "--cluster",
        PROFILE,
        "--workers",
        "1",
        "--trials",
        "1",
        "--study",
        "requeue",
    )
    assert out.returncode == 0, out.stderr
    task = f"{out.stdout.strip()}_0"
    wait_for(task, {"RUNNING"})
    log = next(
        (site / "runs" / "digits_mlp_search" / "studies" / "requeue").glob(f"slurm-*/slurm-{task}.out")
    )
    wait_for_line(log, "epoch 5/")
    subprocess.run(["scancel", "--signal=USR1", task], check=True)
    release(task)
    info = wait_for(task, {"COMPLETED", "FAILED", "CANCELLED"}, timeout=400)
    text = log.read_text()
    assert info.state == "COMPLETED", text[-3000:]
    assert f"job {task} resumes trial 0" in text
    storage = f"sqlite:///{site / 'runs' / 'optuna.db'}"
    status = labkit(site, "tune", "status", "--study", "requeue", "--storage", storage)
    assert "1/1 finished: 1 complete" in status.stdout, status.stdout
    (run,) = _trial_runs(site)  # the same MLflow run before and after the requeue
    assert run.info.status == "FINISHED" and run.data.tags["slurm.restarts"] == "1"
    assert_continuous(site, run)
