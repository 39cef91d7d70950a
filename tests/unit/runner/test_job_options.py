"""JobOptions: what a job's script tells the run, read once at the CLI edge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.runner import JobOptions, RunDir


def test_defaults_outside_a_job() -> None:
    job = JobOptions.from_environ({})
    assert (job.cluster, job.signal, job.requeue) == ("", "USR1", True)
    assert job == JobOptions()


@pytest.mark.parametrize(("value", "requeue"), [("1", True), ("0", False), ("yes", False)])
def test_from_environ_reads_the_script_variables(value: str, requeue: bool) -> None:
    env = {"LABKIT_CLUSTER": "lab-gpu", "LABKIT_SIGNAL": "USR2", "LABKIT_REQUEUE": value, "X": "y"}
    job = JobOptions.from_environ(env)
    assert (job.cluster, job.signal, job.requeue) == ("lab-gpu", "USR2", requeue)
    assert job.environ is env  # labkit.cluster reads the scheduler's variables from it


def test_to_environ_round_trips() -> None:
    job = JobOptions(cluster="site", signal="TERM", requeue=False)
    assert JobOptions.from_environ(job.to_environ()) == job


def test_scan_and_peek_read_run_json_through_rundir(tmp_path: Path) -> None:
    a = RunDir.create(tmp_path, "exp")
    a.mark("RUNNING", mlflow_run_id="abc")
    b = RunDir.create(tmp_path, "other")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "run.json").write_text("[1, 2]")
    assert {r.run_key for r in RunDir.scan(tmp_path)} == {a.run_key, b.run_key}
    assert a.mlflow_run_id == "abc" and b.mlflow_run_id is None
    assert RunDir.peek(a.path)["status"] == "RUNNING"
    assert RunDir.peek(tmp_path / "junk") == {} and RunDir.peek(tmp_path / "nowhere") == {}
    assert RunDir.peek(None) == {}
    assert RunDir.is_run_dir(a.path) and not RunDir.is_run_dir(tmp_path)
    assert json.loads((a.path / "run.json").read_text())["run_key"] == a.run_key
