"""Local services the benchmarks start (bound to 127.0.0.1), shared by the benchmark scripts.

The benchmarks do not import the test suite; ``tests/integration/conftest.py`` has the fixtures
doing the same for the tests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["free_port", "mlflow_server"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mlflow_server(
    folder: Path, backend: str | None = None, workers: int = 2, timeout: float = 180
) -> Iterator[str]:
    """``mlflow server`` on a free local port (SQLite in ``folder`` unless ``backend`` names a
    store), proxied artifacts under ``folder``; yields its URL once ``/health`` answers."""
    port = free_port()
    backend = backend or f"sqlite:///{folder / 'mlflow.db'}"
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--backend-store-uri", backend,
        "--serve-artifacts", "--artifacts-destination", str(folder / "artifacts"),
    ]  # fmt: skip
    log = (folder / "server.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"mlflow server did not start: see {folder / 'server.log'}") from None
            time.sleep(0.5)
    try:
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
