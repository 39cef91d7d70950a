"""``labkit ui`` starts optuna-dashboard and mlflow ui on 127.0.0.1 and stops them again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import optuna
import pytest

from tests.conftest import REPO
from tests.integration.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_ui_serves_both_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="seen", storage=storage)
    p1, p2 = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labkit",
            "ui",
            "--storage",
            storage,
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--optuna-port",
            str(p1),
            "--mlflow-port",
            str(p2),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C stops them" in line or len(lines) > 50:
            break
    text = "".join(lines)
    assert f"optuna-dashboard http://127.0.0.1:{p1}/" in text, text
    assert f"mlflow ui        http://127.0.0.1:{p2}/" in text, text
    with urllib.request.urlopen(f"http://127.0.0.1:{p1}/api/studies", timeout=10) as r:
        assert b"seen" in r.read()
    with urllib.request.urlopen(f"http://127.0.0.1:{p2}/health", timeout=10) as r:
        assert r.status == 200
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    for port in (p1, p2):
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3)


def test_ui_without_a_study_database_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "labkit", "ui", "--no-mlflow"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        "--storage: no study database at sqlite:///" in result.stderr
        and "run labkit tune first" in result.stderr
    )
