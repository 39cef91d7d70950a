"""Real services for integration tests, started and stopped by fixtures, bound to 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait until ``url``/health answers 200; False if ``proc`` exits or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


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
    if not wait_healthy(url, proc, timeout=90):
        os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
        pytest.fail(f"mlflow server did not start (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
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


@pytest.fixture(scope="session")
def pg_mlflow(postgres: str) -> str:
    """The URL of the ``mlflow`` database of the :func:`postgres` cluster (shared by the session's
    tests: give experiments unique names)."""
    return postgres.rsplit("/", 1)[0] + "/mlflow"


#: The admin password of every ``LabkitServer(auth=True)`` (user ``admin``).
ADMIN_PASSWORD = "labkit-admin-password-for-tests"


def _processes() -> Iterator[tuple[int, str, int, int]]:
    """(pid, state, ppid, pgrp) of every process, from /proc."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        yield int(stat.parent.name), fields[0], int(fields[1]), int(fields[2])


def _children_groups(pid: int) -> set[int]:
    """Process groups of the children of ``pid`` (``mlflow server`` runs in a session of its own)."""
    return {pgrp for _, _, ppid, pgrp in _processes() if ppid == pid}


def _live_groups(groups: set[int]) -> set[int]:
    """Those of ``groups`` that still have a process that is not a zombie."""
    return {pgrp for _, state, _, pgrp in _processes() if pgrp in groups and state != "Z"}


class LabkitServer:
    """``labkit server start`` as a subprocess on a fixed 127.0.0.1 port.

    ``stop()`` then ``start()`` brings it back on the same port with the same backend, artifacts
    and state directory (users, secret key). The backend URI reaches the server through
    ``MLFLOW_BACKEND_STORE_URI``; with ``auth`` the admin is ``admin`` / :data:`ADMIN_PASSWORD`.
    """

    def __init__(
        self,
        root: Path,
        *,
        backend_uri: str | None = None,
        auth: bool = False,
        workers: int = 2,
        db_pool_size: int = 5,
        db_max_overflow: int = 10,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.port = port or free_port()
        self.backend_uri = backend_uri or f"sqlite:///{root / 'mlflow.db'}"
        self.artifacts = root / "artifacts"
        self.state_dir = root / "state"
        self.log = root / "server.log"
        self.auth = auth
        self.workers = workers
        self.db_pool_size = db_pool_size
        self.db_max_overflow = db_max_overflow
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self._groups: set[int] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def options(self) -> Any:
        """The :class:`labkit.tracking.server.ServerOptions` it runs with."""
        from labkit.tracking.server import ServerOptions

        return ServerOptions(
            port=self.port,
            backend_store_uri=self.backend_uri,
            artifacts_destination=str(self.artifacts),
            auth=self.auth,
            workers=self.workers,
            db_pool_size=self.db_pool_size,
            db_max_overflow=self.db_max_overflow,
            state_dir=self.state_dir,
        )

    @property
    def connection_cap(self) -> int:
        """The most database connections this server can hold (``labkit server start`` prints it)."""
        from labkit.tracking.server import connection_cap

        return connection_cap(self.options)

    def client_env(self, user: str = "admin", password: str = ADMIN_PASSWORD) -> dict[str, str]:
        """Environment for a client of this server (credentials only with ``auth``), failing fast."""
        env = {
            "MLFLOW_TRACKING_URI": self.url,
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
        }
        if self.auth:
            env |= {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}
        return env

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 120) -> LabkitServer:
        """Start it and wait until ``/health`` answers (≈10 s)."""
        if self.running:
            return self
        cmd = [
            sys.executable, "-m", "labkit", "server", "start",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--state-dir", str(self.state_dir), "--artifacts-destination", str(self.artifacts),
            "--workers", str(self.workers),
            "--db-pool-size", str(self.db_pool_size), "--db-max-overflow", str(self.db_max_overflow),
            *(["--auth"] if self.auth else []), *self.extra_args,
        ]  # fmt: skip
        from tests.conftest import REPO

        env = {
            **os.environ,
            "MLFLOW_BACKEND_STORE_URI": self.backend_uri,
            "PYTHONPATH": str(REPO),
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
        with self.log.open("ab") as out:  # appended: a restart keeps the first run's log
            self.process = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.root, start_new_session=True
            )
        if not wait_healthy(self.url, self.process, timeout):
            code = self.process.poll()
            self.stop()
            raise RuntimeError(f"labkit server did not start (exit {code}):\n{self.log_tail()}")
        self._groups = _children_groups(self.process.pid)
        return self

    def stop(self, timeout: float = 30) -> None:
        """Stop it (SIGTERM, which labkit forwards to the server) and every process it started."""
        process, self.process = self.process, None
        if process is None:
            return
        groups = {process.pid, *self._groups, *_children_groups(process.pid)}
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while _live_groups(groups) and time.monotonic() < deadline:
            time.sleep(0.1)
        for group in _live_groups(groups):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 10
        while _live_groups(groups) and time.monotonic() < deadline:  # SIGKILLed: gone in a moment
            time.sleep(0.05)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"


@pytest.fixture
def labkit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LabkitServer]]:
    """A factory: ``labkit_server(backend_uri=..., auth=True, workers=2, db_pool_size=...,
    db_max_overflow=..., port=..., start=True)`` → a started :class:`LabkitServer`. Every server
    it made is stopped at the end of the test."""
    made: list[LabkitServer] = []

    def make(*, start: bool = True, **kwargs: Any) -> LabkitServer:
        server = LabkitServer(tmp_path_factory.mktemp("labkit-server"), **kwargs)
        made.append(server)
        return server.start() if start else server

    yield make
    for server in made:
        server.stop()
