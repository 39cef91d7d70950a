"""Real services for integration tests, started and stopped by fixtures, bound to 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class MlflowServer:
    url: str
    backend_uri: str
    artifacts: Path
    log: Path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """``mlflow server`` on a free local port: SQLite backend, proxied artifacts (--serve-artifacts)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    backend = f"sqlite:///{root / 'backend.db'}"
    artifacts = root / "artifacts"
    log = root / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend,
        "--serve-artifacts",
        "--artifacts-destination",
        str(artifacts),
    ]
    with log.open("w") as out:
        # its own process group: the server forks workers; teardown stops them all
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
            pytest.fail(f"mlflow server did not start (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    try:
        yield MlflowServer(url, backend, artifacts, log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


SERVICES = Path(__file__).resolve().parents[1] / "services"


def _unavailable(reason: str) -> None:
    """Skip where a service truly cannot run here; in CI, where everything is installed, fail."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run this test)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL 15 cluster on a free local port (Debian's package, installed by
    the script if missing); yields the URL of its ``optuna`` database."""
    if os.geteuid() != 0:
        _unavailable("PostgreSQL fixture needs root (runs the server as user postgres, may apt-get install)")
    import shutil
    import tempfile

    # not under pytest's tmp (mode 0700): the server runs as user postgres and must reach it
    state = Path(tempfile.mkdtemp(prefix="labkit-services-"))
    state.chmod(0o755)
    port = free_port()
    env = {**os.environ, "LABKIT_SERVICES_DIR": str(state), "LABKIT_PG_PORT": str(port)}
    up = subprocess.run(
        ["bash", str(SERVICES / "pg-up.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    if up.returncode != 0:
        _unavailable(f"PostgreSQL could not start: {(up.stderr or up.stdout).strip()[-1500:]}")
    try:
        yield f"postgresql+psycopg://exp:exp-pw@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run(["bash", str(SERVICES / "pg-down.sh")], env=env, capture_output=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)


def _slurm_up() -> bool:
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
        info = subprocess.run(
            ["sinfo", "-h", "-p", "debug", "-o", "%T"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "is UP" in ping.stdout and any(
        s.startswith(("idle", "mixed", "alloc")) for s in info.stdout.split()
    )


@pytest.fixture(scope="session")
def slurm() -> Iterator[None]:
    """A one-node SLURM cluster with partition ``debug`` (cluster/slurm-local.yaml): the running
    one, else started by tests/services/slurm-up.sh (root: it may apt-get install slurm-wlm and
    munge, and writes /etc/slurm/slurm.conf) and stopped at the end."""
    if _slurm_up():
        yield
        return
    if os.geteuid() != 0:
        _unavailable(
            "no SLURM cluster is running here and starting one needs root (tests/services/slurm-up.sh)"
        )
    up = subprocess.run(["bash", str(SERVICES / "slurm-up.sh")], capture_output=True, text=True, timeout=900)
    if up.returncode != 0 or not _slurm_up():
        _unavailable(f"SLURM could not start: {(up.stderr or up.stdout).strip()[-1500:]}")
    try:
        yield
    finally:
        subprocess.run(["bash", str(SERVICES / "slurm-down.sh")], capture_output=True, timeout=120)
