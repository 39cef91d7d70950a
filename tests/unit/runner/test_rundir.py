from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.errors import LabkitError
from labkit.runner import RunDir


def test_create_and_reopen(tmp_path: Path) -> None:
    run_dir = RunDir.create(tmp_path / "runs", "exp")
    assert run_dir.path.parent == tmp_path / "runs" / "exp"
    assert run_dir.path.name.endswith(run_dir.run_key[:8])
    assert RunDir.open(run_dir.path) == run_dir
    assert run_dir.state()["status"] == "CREATED"


def test_update_merges_state(tmp_path: Path) -> None:
    run_dir = RunDir.create(tmp_path, "exp")
    run_dir.update(mlflow_run_id="abc")
    run_dir.mark("RUNNING")
    state = json.loads((run_dir.path / "run.json").read_text())
    assert state["mlflow_run_id"] == "abc" and state["status"] == "RUNNING"
    assert state["run_key"] == run_dir.run_key


def test_two_runs_two_directories(tmp_path: Path) -> None:
    assert RunDir.create(tmp_path, "exp").path != RunDir.create(tmp_path, "exp").path


def test_open_non_run_directory(tmp_path: Path) -> None:
    with pytest.raises(LabkitError, match=r"is not a labkit run directory"):
        RunDir.open(tmp_path)


def test_unwritable_root(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(LabkitError, match=r"cannot create the run directory .* \(runs_root\)"):
        RunDir.create(tmp_path / "file", "exp")
