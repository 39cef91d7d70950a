"""Zero-loss logging against a real ``labkit server`` (MLflow on a real PostgreSQL): a server that
stops mid-run, a training process SIGKILLed, 16 concurrent writers, a run with no server at all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from labkit.tracking import Spool

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WRITER = Path(__file__).with_name("spool_writer.py")
REPO = Path(__file__).resolve().parents[2]


def writer(
    run_dir: Path, uri: str, points: int, *, interval: float = 0.0, name: str = "writer", **kw: Any
) -> subprocess.Popen[str]:
    env = {**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    cmd = [
        sys.executable,
        str(WRITER),
        str(run_dir),
        uri,
        "--points",
        str(points),
        "--interval",
        str(interval),
        "--name",
        name,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


def report_of(proc: subprocess.Popen[str], timeout: float = 300) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return dict(json.loads(out.strip().splitlines()[-1]))


def steps(url: str, run_id: str, key: str = "x") -> list[int]:
    return [m.step for m in MlflowClient(url).get_metric_history(run_id, key)]


def assert_each_point_once(url: str, run_id: str, points: int) -> None:
    found = steps(url, run_id)
    assert len(found) == points, f"{len(found)} points on the server, {points} logged"
    assert sorted(found) == list(range(points))  # every step, none twice


def test_server_stopped_for_20_s_mid_run_loses_nothing(
    labkit_server: Any, pg_mlflow: str, tmp_path: Path
) -> None:
    server = labkit_server(backend_uri=pg_mlflow)
    proc = writer(tmp_path / "run", server.url, 6000, interval=0.008)  # ≈50 s of logging
    time.sleep(8)
    server.stop()
    down = time.monotonic()
    time.sleep(20)
    server.start()  # same port, same database; ≈10 s until it answers
    report = report_of(proc)
    assert time.monotonic() - down > 20
    assert report["pending"] == 0 and report["run_id"]
    assert_each_point_once(server.url, report["run_id"], 6000)
    assert MlflowClient(server.url).get_run(report["run_id"]).info.status == "FINISHED"


def test_sigkilled_process_points_arrive_with_the_next_sync(
    labkit_server: Any, pg_mlflow: str, tmp_path: Path
) -> None:
    server = labkit_server(backend_uri=pg_mlflow, start=False)  # not up yet: all stays in the spool
    proc = writer(tmp_path / "run", server.url, 100_000, interval=0.0005)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("logged 3000"):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    spool = Spool(tmp_path / "run" / "spool.db")
    logged = spool.last_steps()["x"] + 1
    assert logged >= 3000
    server.start()
    # to the URI it recorded, named again: labkit sync sends a spool only where the user says
    sync = [sys.executable, "-m", "labkit", "sync", "--uri", server.url, str(tmp_path / "run")]
    first = subprocess.run(sync, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    run_id = spool.dest_meta(server.url)["run_id"]
    assert_each_point_once(server.url, run_id, logged)
    again = subprocess.run(sync, capture_output=True, text=True, timeout=300)
    assert "in sync" in again.stdout and "0 items uploaded" in again.stdout


def test_16_writers_exact_counts_within_the_connection_cap(
    labkit_server: Any, pg_mlflow: str, tmp_path: Path
) -> None:
    import psycopg

    # a tight cap: 8 connections per pool, fewer than 16 writers need at once (each write holds
    # two); requests that time out waiting for one (HTTP 400 QueuePool) are retried by labkit
    server = labkit_server(backend_uri=pg_mlflow, workers=2, db_pool_size=4, db_max_overflow=4)
    cap = server.connection_cap
    dsn = pg_mlflow.replace("postgresql+psycopg://", "postgresql://")
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not done.is_set():
                (n,) = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'mlflow' AND pid <> pg_backend_pid()"
                ).fetchone()  # type: ignore[misc]
                peak[0] = max(peak[0], int(n))
                time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        procs = [writer(tmp_path / f"w{i:02d}", server.url, 5000, name=f"w{i:02d}") for i in range(16)]
        reports = [report_of(p, timeout=600) for p in procs]
    finally:
        done.set()
        watcher.join()
    assert {r["pending"] for r in reports} == {0}
    assert len({r["run_id"] for r in reports}) == 16
    for r in reports:
        assert_each_point_once(server.url, r["run_id"], 5000)
    print(f"16 writers: peak {peak[0]} database connections, cap {cap}")
    assert 0 < peak[0] <= cap, f"{peak[0]} database connections, cap {cap}"


def test_run_against_a_closed_port_then_sync_all(labkit_server: Any, pg_mlflow: str, tmp_path: Path) -> None:
    """The acceptance path: no server → the run exits 0 with its points spooled; a server starts;
    `labkit sync --all` uploads them; a second sync uploads nothing; each point is there once."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:1", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    cmd = [
        sys.executable,
        "-m",
        "labkit",
        "run",
        str(REPO / "experiments" / "digits_mlp.yaml"),
        "trainer.max_epochs=2",
        "trainer.early_stopping=null",
        "--progress",
        "none",
    ]
    ran = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "Connection refused; the run goes on offline" in ran.stderr
    assert "not yet on the MLflow server" in ran.stderr and "labkit sync" in ran.stderr
    (spool_path,) = (tmp_path / "runs").rglob("spool.db")
    spool = Spool(spool_path)
    logged = {k: v + 1 for k, v in spool.last_steps().items()}
    assert spool.pending().counts["metric"] > 0

    server = labkit_server(backend_uri=pg_mlflow)
    env["MLFLOW_TRACKING_URI"] = server.url
    sync = [sys.executable, "-m", "labkit", "sync", "--all", "--uri", server.url]
    first = subprocess.run(sync, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "uploaded" in first.stdout
    second = subprocess.run(sync, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and "0 items uploaded" in second.stdout, second.stdout

    run_id = spool.dest_meta(server.url)["run_id"]
    client = MlflowClient(server.url)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["labkit.run_key"] == spool.meta()["run_key"]
    rows = spool.db.execute("SELECT key, step FROM ops WHERE kind = 'metric'").fetchall()
    for key in {k for k, _ in rows}:
        on_server = sorted(m.step for m in client.get_metric_history(run_id, key))
        assert on_server == sorted(s for k, s in rows if k == key), key  # each point once
    assert "test_acc" in run.data.metrics and logged
    assert {a.path for a in client.list_artifacts(run_id)} >= {"config.yaml", "checkpoints", "figures"}
