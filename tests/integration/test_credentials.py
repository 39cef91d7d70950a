"""Credentials come from the environment and go nowhere else: not into params, tags, artifacts,
logs, the spool, run.json or a rendered sbatch script."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_credentials_appear_nowhere(
    labkit_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labkit.tracking.server import add_user, grant

    server = labkit_server(auth=True)
    admin = server.client_env()
    for key, value in admin.items():
        monkeypatch.setenv(key, value)
    password = f"pw-{uuid.uuid4().hex}"  # in no source file, so a git.diff cannot hold it
    add_user(server.url, "carol", password)
    MlflowClient(server.url).create_experiment("cred-scan")
    grant(server.url, "carol", "cred-scan", "EDIT")

    env = {
        **os.environ,
        **server.client_env("carol", password),
        "PYTHONPATH": str(REPO),
    }
    run = subprocess.run(
        [
            sys.executable, "-m", "labkit", "run", str(REPO / "experiments" / "digits_mlp.yaml"),
            "trainer.max_epochs=2", "trainer.early_stopping=null", "tracking.experiment=cred-scan",
            f"runs_root={tmp_path / 'runs'}", "--progress", "plain",
        ],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    submit = subprocess.run(
        [
            sys.executable, "-m", "labkit", "submit", str(REPO / "experiments" / "digits_mlp.yaml"),
            "--cluster", str(REPO / "cluster" / "slurm-local.yaml"), "--dry-run",
        ],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert submit.returncode == 0, submit.stderr
    assert "#SBATCH" in submit.stdout

    secret = password.encode()
    places: dict[str, bytes] = {
        "labkit run stdout": run.stdout.encode(),
        "labkit run stderr": run.stderr.encode(),
        "sbatch script": submit.stdout.encode(),
        "server log": server.log.read_bytes(),
    }
    (run_dir,) = (tmp_path / "runs" / "digits_mlp").iterdir()
    for path in run_dir.rglob("*"):  # spool.db (and its WAL), run.json, config, checkpoints, figures
        if path.is_file():
            places[str(path)] = path.read_bytes()

    client = MlflowClient(server.url)
    experiment = client.get_experiment_by_name("cred-scan")
    assert experiment is not None
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.status == "FINISHED"
    places["params"] = repr(found.data.params).encode()
    places["tags"] = repr(found.data.tags).encode()
    downloaded = Path(client.download_artifacts(found.info.run_id, "", str(tmp_path / "artifacts")))
    files = [p for p in downloaded.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"config.yaml", "best.ckpt", "confusion_matrix.png"}
    for path in files:
        places[f"artifact {path.relative_to(downloaded)}"] = path.read_bytes()

    leaks = [where for where, data in places.items() if secret in data]
    assert leaks == [], f"the password appears in {leaks}"
