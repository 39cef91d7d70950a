"""``labkit server``'s foreground process (a child process standing in for mlflow) and the
imports of the server commands (a subprocess each). The rest is in tests/unit/tracking/test_server.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from labkit.tracking.server import (
    ServerOptions,
    run_server,
)
from labkit.tracking.server import _process as _server
from tests.conftest import REPO
from tests.unit.tracking.test_server import DB_PASSWORD, PASSWORD, PG, free_port


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), "PATH": "/usr/bin", "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD}


# ---------------------------------------------------------------------------- the foreground process


def test_run_server_prints_the_cap_and_returns_the_exit_code(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = _server.ServerCommand([sys.executable, "-c", "import sys; sys.exit(3)"], dict(os.environ))
    monkeypatch.setattr(_server, "server_command", lambda *a, **k: fake)
    code = run_server(ServerOptions(port=free_port(), state_dir=tmp_path, backend_store_uri=PG), env)
    assert code == 3
    out = capsys.readouterr().out
    assert "at most 120 database connections" in out
    assert "postgresql://mlflow:***@db.example.org:5432/mlflow" in out and DB_PASSWORD not in out


def test_run_server_forwards_sigterm_to_the_server_group(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "got"
    script = (
        "import os, signal, subprocess, sys, time\n"
        # a grandchild in the same group, as uvicorn's workers are
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"signal.signal(signal.SIGTERM, lambda *a: (open({str(marker)!r}, 'w').write(str(os.getpgrp() == os.getpid())), sys.exit(0)))\n"
        "time.sleep(60)\n"
    )
    fake = _server.ServerCommand([sys.executable, "-c", script], dict(os.environ))
    monkeypatch.setattr(_server, "server_command", lambda *a, **k: fake)
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        code = run_server(ServerOptions(port=free_port(), state_dir=tmp_path), env)
    finally:
        timer.cancel()
    assert code == 0
    assert marker.read_text() == "True"  # it ran as the leader of its own process group
    assert "server stopped (SIGTERM)" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) is before  # restored


def test_a_server_killed_by_the_forwarded_signal_counts_as_stopped(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _server.ServerCommand([sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ))
    monkeypatch.setattr(_server, "server_command", lambda *a, **k: fake)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        assert run_server(ServerOptions(port=free_port(), state_dir=tmp_path), env) == 0
    finally:
        timer.cancel()


# ---------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    "args",
    [
        ("server", "--help"),
        ("server", "start", "--help"),
        ("server", "start", "--auth", "--state-dir", "{tmp}"),
    ],
)
def test_server_commands_import_nothing_heavy(args: tuple[str, ...], tmp_path: Path) -> None:
    """``labkit server start`` runs MLflow in a child process: labkit itself stays light."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_AUTH_ADMIN_PASSWORD"}
    argv = [a.format(tmp=tmp_path) for a in args]
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "labkit", *argv],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    assert out.returncode == (2 if "--auth" in args else 0)
    modules = {
        line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")
    }
    assert "labkit.cli" in modules
    assert not sorted(m for m in modules if m.split(".")[0] in ("mlflow", "torch", "lightning"))
