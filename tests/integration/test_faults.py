"""Faults end honestly: Ctrl-C mid-training exits 130 with the run KILLED everywhere; a disk that
fills up mid-run ends with exit 2, a message that says so, and the run FAILED everywhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import EXPERIMENTS, REPO

pytestmark = [pytest.mark.slow]

LONG = ["trainer.max_epochs=1000", "trainer.early_stopping=null"]


def start_run(tmp_path: Path, runs_root: Path, store: str, *overrides: str) -> subprocess.Popen[str]:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "labkit",
        "run",
        str(EXPERIMENTS / "digits_mlp.yaml"),
        *LONG,
        f"tracking.uri={store}",
        f"runs_root={runs_root}",
        "--progress",
        "none",
        *overrides,
    ]
    return subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run_json(runs_root: Path) -> tuple[Path | None, dict[str, object]]:
    found = sorted(runs_root.glob("*/*/run.json"))
    if not found:
        return None, {}
    try:
        return found[0], dict(json.loads(found[0].read_text()))
    except (OSError, ValueError):  # being replaced right now
        return found[0], {}


def wait_training(proc: subprocess.Popen[str], runs_root: Path, timeout: float = 120.0) -> Path:
    """Until run.json says RUNNING and a checkpoint exists (an epoch went by): training is on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the run ended before training started (exit {proc.returncode}):\n{err[-3000:]}")
        path, state = run_json(runs_root)
        if (
            path is not None
            and state.get("status") == "RUNNING"
            and any((path.parent / "checkpoints").glob("*"))
        ):
            return path
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"training did not start in {timeout:g} s")


def mlflow_status(store: str) -> str:
    client = MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return str(runs[0].info.status)


@pytest.fixture
def stopped() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test started: killed if the test fails before they end."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_mid_training_exits_130_with_the_run_killed_everywhere(
    tmp_path: Path, store: str, stopped: list[subprocess.Popen[str]]
) -> None:
    runs_root = tmp_path / "runs"
    proc = start_run(tmp_path, runs_root, store)
    stopped.append(proc)
    state_file = wait_training(proc, runs_root)
    time.sleep(0.5)  # well inside an epoch
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == 130, err[-3000:]
    assert "labkit: error: interrupted; the run is marked KILLED" in err
    assert "Traceback" not in err
    state = json.loads(state_file.read_text())
    assert state["status"] == "KILLED"
    assert state["error"].startswith("KeyboardInterrupt")
    assert mlflow_status(store) == "KILLED"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (CI runs as root) for runs_root; the tracking store stays outside it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the suite as root)")
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(directory: Path) -> None:
    """Write zeros into ``directory`` until its file system is full."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def test_disk_full_mid_run_exits_2_saying_so_with_the_run_failed_everywhere(
    tmp_path: Path, store: str, tiny_disk: Path, stopped: list[subprocess.Popen[str]]
) -> None:
    runs_root = tiny_disk / "runs"
    # a metric point every step: the run writes to its directory all the time
    proc = start_run(tmp_path, runs_root, store, "trainer.log_every_n_steps=1")
    stopped.append(proc)
    state_file = wait_training(proc, runs_root)
    fill(tiny_disk)
    _, err = proc.communicate(timeout=180)

    assert proc.returncode == 2, err[-3000:]
    assert "Traceback" not in err, err[-3000:]  # nor from the spool's shipper thread
    last = err.strip().splitlines()[-1]
    assert last.startswith("labkit: error: no space left on device writing"), err[-3000:]
    assert "free space or move runs_root" in last
    assert str(state_file.parent) in last
    assert last.endswith("the run is marked FAILED")
    state = json.loads(state_file.read_text())  # rewritten in place: still valid JSON
    assert state["status"] == "FAILED"
    assert mlflow_status(store) == "FAILED"
