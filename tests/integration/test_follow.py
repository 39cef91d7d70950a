"""The login-node relay on a real SLURM job and a real ``labkit server``: a job that trains with
``tracking.mode=offline`` (sending nothing itself) is live on the server through
``labkit sync --follow``, which is killed -9 and started again mid-job while the server is
restarted once; in the end the server holds every point of the spool exactly once and the run
is FINISHED."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from labkit.cluster._slurm import query
from tests.conftest import EXPERIMENTS, REPO

pytestmark = [pytest.mark.slurm, pytest.mark.integration, pytest.mark.slow]

PROFILE = "cluster/slurm-local.yaml"
TRAIN_S = 60  # trainer.max_time: the job trains this long (1 CPU), then tests and finishes


@pytest.fixture
def site(tmp_path: Path, slurm: None) -> Path:
    shutil.copytree(EXPERIMENTS, tmp_path / "experiments")
    shutil.copytree(REPO / "cluster", tmp_path / "cluster")
    (tmp_path / "runs").mkdir()
    return tmp_path


def until(what: str, check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout:g} s")


def follower(site: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "labkit", "sync", "--follow", "--runs-root", "runs", "--interval", "1"]
    with log.open("ab") as out:
        return subprocess.Popen(cmd, cwd=site, env=env, stdout=out, stderr=subprocess.STDOUT)


def state(job: str) -> str | None:
    info = query([job]).get(job)
    return info.state if info else None


def the_run(client: MlflowClient, job: str) -> Any:
    exp = client.get_experiment_by_name("digits")
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`slurm.job_id` = '{job}'")
    return runs[0] if runs else None


def points_on_server(client: MlflowClient, run_id: str, key: str = "train_loss") -> int:
    return len(client.get_metric_history(run_id, key))


def test_offline_job_is_live_through_the_relay_across_restarts(site: Path, labkit_server: Any) -> None:
    server = labkit_server(workers=1)
    client = MlflowClient(server.url)
    logs = [site / "follow-1.log", site / "follow-2.log"]
    relay = follower(site, server.url, logs[0])
    try:
        out = subprocess.run(
            [
                sys.executable, "-m", "labkit", "submit", "experiments/digits_mlp.yaml",
                f'trainer.max_time="00:00:00:{TRAIN_S}"', "trainer.max_epochs=100000",
                "trainer.early_stopping=null", "trainer.log_every_n_steps=5",
                "tracking.mode=offline", f"tracking.uri={server.url}", "--cluster", PROFILE,
            ],
            cwd=site, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        job = out.stdout.strip()

        # live: the job sends nothing, yet its points reach the server while it runs
        run = until("the job's run on the server", lambda: the_run(client, job), timeout=120)
        run_id = run.info.run_id
        seen = until("points on the server", lambda: points_on_server(client, run_id), timeout=60)
        assert state(job) == "RUNNING"
        assert client.get_run(run_id).info.status == "RUNNING"

        # the relay killed -9 mid-job, then started again: it goes on from the spool's marks
        relay.send_signal(signal.SIGKILL)
        relay.wait()
        time.sleep(2)
        relay = follower(site, server.url, logs[1])
        grown = until("more points", lambda: points_on_server(client, run_id) > seen, timeout=60)
        assert grown and state(job) == "RUNNING"

        # the server restarted (same port, same store) while the job trains
        seen = points_on_server(client, run_id)
        assert state(job) == "RUNNING", "the job ended before the server's restart: train longer"
        server.stop()
        time.sleep(3)
        server.start()
        until("more points after the restart", lambda: points_on_server(client, run_id) > seen, timeout=60)

        until("the job's end", lambda: state(job) in ("COMPLETED", "FAILED", "CANCELLED"), timeout=240)
        job_log = next((site / "runs" / "digits_mlp").glob(f"*/slurm-{job}.out"))
        assert state(job) == "COMPLETED", job_log.read_text()[-3000:]
        until(
            "the relay's last line for the run",
            lambda: "no longer followed" in logs[1].read_text(),
            timeout=60,
        )
    finally:
        if relay.poll() is None:
            relay.send_signal(signal.SIGTERM)
            relay.wait(timeout=60)
    assert relay.returncode == 0
    said = logs[1].read_text()
    assert said.splitlines()[-1].startswith("labkit sync --follow: stopped after")
    assert "cannot be reached" in said and "the MLflow server answers again" in said, said
    assert "FINISHED digits_mlp" in said and "no longer followed" in said, said

    # exactly once: the server's history of every metric is the spool's points
    spool = job_log.parent / "spool.db"
    with sqlite3.connect(f"file:{spool}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT key, step, ts, num, value FROM ops WHERE kind = 'metric'").fetchall()
    logged: dict[str, Counter[tuple[int, int, float]]] = {}
    for key, step, ts, num, text in rows:  # a value that is not finite is stored as text
        logged.setdefault(key, Counter())[(step, ts, round(float(text if num is None else num), 6))] += 1
    finished = client.get_run(run_id)
    assert finished.info.status == "FINISHED"
    assert set(finished.data.metrics) == set(logged)
    assert sum(logged["train_loss"].values()) > 20
    for key, points in logged.items():
        history = Counter(
            (m.step, m.timestamp, round(m.value, 6)) for m in client.get_metric_history(run_id, key)
        )
        assert history == points, f"{key}: the server's history is not the spool's points, once each"
