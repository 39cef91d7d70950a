"""`labkit sync` on planted spools (a shared runs root someone else can write into): nothing is
uploaded, the command exits 2 with one line naming the reason."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from labkit.tracking import Spool

REPO = Path(__file__).resolve().parents[2]


def labkit_sync(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mine.db'}",  # the user's configured store
        "MLFLOW_TRACKING_USERNAME": "me",
        "MLFLOW_TRACKING_PASSWORD": "secret",
    }
    cmd = [sys.executable, "-m", "labkit", "sync", *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def plant(tmp_path: Path, name: str, uri: str) -> Spool:
    spool = Spool.create(tmp_path / "runs" / name / "spool.db", uri=uri, experiment="x", run_name=name)
    spool.log_params({"lr": "0.1"})
    return spool


def test_planted_spools_upload_nothing_and_exit_2(tmp_path: Path) -> None:
    mine, theirs = f"sqlite:///{tmp_path / 'mine.db'}", f"sqlite:///{tmp_path / 'collector.db'}"
    secret = tmp_path / "netrc"
    secret.write_text("machine example.org login me password secret\n")

    plant(tmp_path, "repointed", theirs)
    outside = plant(tmp_path, "outside", mine)
    outside.log_artifact(Path("/etc/hostname"))
    linked = plant(tmp_path, "linked", mine)
    (linked.path.parent / "model.ckpt").symlink_to(secret)
    linked.db.execute(
        "INSERT INTO ops(kind, key) VALUES ('artifact', ?)", (str(linked.path.parent / "model.ckpt"),)
    )
    for spool in (outside, linked):
        spool.close()

    cases = {
        "repointed": r"started with the tracking URI sqlite:///.*collector.db, not the configured one",
        "outside": r"artifact /etc/hostname resolves outside the run directory",
        "linked": r"artifact .*model.ckpt resolves outside the run directory \(to .*netrc\)",
    }
    for name, reason in cases.items():
        result = labkit_sync(tmp_path, f"runs/{name}")
        assert result.returncode == 2, result.stdout + result.stderr
        (line,) = result.stderr.strip().splitlines()  # one line, no traceback
        assert line.startswith("labkit: error: refusing to sync ")
        assert "nothing was sent" in line
        assert re.search(reason, line), line
    # --all: each refused, named on its own line; still nothing anywhere
    result = labkit_sync(tmp_path, "--all")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.count("  refused  ") == 3 and "0 items uploaded" in result.stdout
    assert "3 of 3 runs refused" in result.stderr
    # naming the collector with --uri accepts the URI, not a file outside the run directory
    result = labkit_sync(tmp_path, "--uri", theirs, "runs/outside")
    assert result.returncode == 2 and "/etc/hostname" in result.stderr
    assert not (tmp_path / "mine.db").exists() and not (tmp_path / "collector.db").exists()
    assert not (tmp_path / "mlruns").exists()


def test_a_spool_of_another_schema_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "runs" / "r").mkdir(parents=True)
    (tmp_path / "runs" / "r" / "spool.db").write_text("hello\n" * 200)
    result = labkit_sync(tmp_path, "runs/r")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "it is not a labkit spool (SQLite: file is not a database)" in line
