"""Tracking helpers that run a subprocess: git for the source state, a fresh interpreter for
MLflow's telemetry switch."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from labkit.tracking import git_state


def test_git_state(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    assert git_state(tmp_path) is None
    git("init", "-q")
    git("config", "user.email", "t@example.invalid")
    git("config", "user.name", "t")
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("commit", "-qm", "first")
    clean = git_state(tmp_path / "a.txt")
    assert clean is not None and not clean.dirty and len(clean.commit) == 40 and clean.patch == ""
    (tmp_path / "a.txt").write_text("two\n")
    (tmp_path / "new.txt").write_text("untracked\n")
    dirty = git_state(tmp_path)
    assert dirty is not None and dirty.dirty and dirty.commit == clean.commit
    assert "+two" in dirty.patch and "#   new.txt" in dirty.patch


@pytest.mark.parametrize(("before", "after"), [(None, "true"), ("false", "false")])
def test_mlflow_telemetry_off_unless_opted_in(before: str | None, after: str) -> None:
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
    if before is not None:
        env["MLFLOW_DISABLE_TELEMETRY"] = before
    code = (
        "import os; from labkit.tracking.write._shipper import mlflow_client; mlflow_client('sqlite://'); "
        "print(os.environ['MLFLOW_DISABLE_TELEMETRY'])"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == after
