"""``labkit server`` for real: basic-auth, users and grants through the CLI, stop and restart.

On PostgreSQL (the ``mlflow`` database of the ``postgres`` fixture) where it can run, else SQLite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from base64 import b64encode
from collections.abc import Callable

import pytest
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tests.conftest import REPO
from tests.integration.conftest import ADMIN_PASSWORD, LabkitServer, _live_groups

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALICE_PASSWORD = "alice-password-for-tests"


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str | None:
    """PostgreSQL's ``mlflow`` database where PostgreSQL can run here, else None (SQLite)."""
    try:
        return str(request.getfixturevalue("pg_mlflow"))
    except pytest.skip.Exception:
        return None


def status(url: str, user: str | None = None, password: str | None = None, body: dict | None = None) -> int:
    """The HTTP status of a GET (or a POST of ``body``) as ``user``, or anonymously."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    if user:
        request.add_header("Authorization", "Basic " + b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def labkit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        timeout=300,
    )


def as_user(monkeypatch: pytest.MonkeyPatch, server: LabkitServer, user: str, password: str) -> MlflowClient:
    for key, value in server.client_env(user, password).items():
        monkeypatch.setenv(key, value)
    return MlflowClient(server.url)


def test_auth_users_and_grants(
    labkit_server: Callable[..., LabkitServer], backend: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = labkit_server(backend_uri=backend, auth=True)
    assert "at most 120 database connections" in server.log.read_text()
    url = server.url

    # no credentials: nothing, neither the REST API nor the artifacts
    assert status(f"{url}/api/2.0/mlflow/experiments/search?max_results=1") == 401
    assert status(f"{url}/api/2.0/mlflow-artifacts/artifacts") == 401
    assert status(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", "admin", "wrong-password!") == 401

    # the admin can do everything
    assert status(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", "admin", ADMIN_PASSWORD) == 200
    assert status(f"{url}/api/2.0/mlflow-artifacts/artifacts", "admin", ADMIN_PASSWORD) == 200
    admin = as_user(monkeypatch, server, "admin", ADMIN_PASSWORD)
    name = f"server-it-{uuid.uuid4().hex[:8]}"  # the PostgreSQL database is shared by the session
    experiment_id = admin.create_experiment(name)
    run_id = admin.create_run(experiment_id).info.run_id
    admin.log_metric(run_id, "loss", 0.5)

    # users and grants through the CLI, with the admin's credentials in the environment
    admin_env = {**server.client_env(), "LABKIT_NEW_USER_PASSWORD": ALICE_PASSWORD}
    added = labkit("server", "adduser", "alice", env=admin_env)
    assert added.returncode == 0, added.stderr
    assert "created user 'alice'" in added.stdout
    again = labkit("server", "adduser", "alice", env=admin_env)
    assert again.returncode == 2 and "user 'alice' exists already" in again.stderr
    granted = labkit("server", "grant", "alice", name, "read", "--url", url, env=server.client_env())
    assert granted.returncode == 0, granted.stderr
    assert f"created READ for 'alice' on experiment '{name}'" in granted.stdout
    unknown = labkit("server", "grant", "alice", name + "x", "READ", env=server.client_env())
    assert unknown.returncode == 2 and f"no experiment '{name}x'" in unknown.stderr
    not_admin = labkit(
        "server", "adduser", "bob", env={**admin_env, **server.client_env("alice", ALICE_PASSWORD)}
    )
    assert not_admin.returncode == 2 and "may not do this (it needs an admin)" in not_admin.stderr

    # alice reads the experiment, but may not write to it
    alice = as_user(monkeypatch, server, "alice", ALICE_PASSWORD)
    assert alice.get_run(run_id).data.metrics == {"loss": 0.5}
    assert [r.info.run_id for r in alice.search_runs([experiment_id])] == [run_id]
    with pytest.raises(MlflowException, match=r"403|PERMISSION_DENIED|Permission denied"):
        alice.log_metric(run_id, "loss", 0.4)
    with pytest.raises(MlflowException, match=r"403|PERMISSION_DENIED|Permission denied"):
        alice.log_batch(run_id, metrics=[Metric("loss", 0.3, int(time.time() * 1000), 1)])
    batch = {"run_id": run_id, "metrics": [{"key": "loss", "value": 0.3, "timestamp": 1, "step": 1}]}
    assert status(f"{url}/api/2.0/mlflow/runs/log-batch", "alice", ALICE_PASSWORD, batch) == 403
    assert admin.get_metric_history(run_id, "loss")[-1].value == 0.5  # nothing got through

    # a second grant changes the first: EDIT lets her write
    edit = labkit("server", "grant", "alice", experiment_id, "EDIT", env=server.client_env())
    assert edit.returncode == 0, edit.stderr
    assert "updated EDIT" in edit.stdout
    assert status(f"{url}/api/2.0/mlflow/runs/log-batch", "alice", ALICE_PASSWORD, batch) == 200


def test_stop_and_start_again_on_the_same_port(
    labkit_server: Callable[..., LabkitServer], backend: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = labkit_server(backend_uri=backend, auth=True, workers=1, db_pool_size=2, db_max_overflow=2)
    client = as_user(monkeypatch, server, "admin", ADMIN_PASSWORD)
    name = f"restart-it-{uuid.uuid4().hex[:8]}"
    run_id = client.create_run(client.create_experiment(name)).info.run_id
    port, groups = server.port, {server.process.pid, *server._groups}  # type: ignore[union-attr]

    server.stop()
    assert not _answers(server.url)
    assert not _live_groups(groups), "labkit server left processes behind"
    if backend:
        deadline = time.monotonic() + 10  # PostgreSQL's backends end a moment after their clients
        while _connections(backend) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _connections(backend) == 0

    server.start()
    assert server.port == port
    assert client.get_run(run_id).info.experiment_id == client.get_experiment_by_name(name).experiment_id
    # labkit polls the health URL every 0.5 s and then prints "ready": the fixture may see the
    # server answer (and the client work) a moment before the line is written
    deadline = time.monotonic() + 10
    while server.log.read_text().count("labkit: ready at") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.log.read_text().count("labkit: ready at") == 2


def test_the_server_stops_when_labkit_is_killed(labkit_server: Callable[..., LabkitServer]) -> None:
    server = labkit_server(workers=1)
    assert server.process is not None
    groups = {server.process.pid, *server._groups}
    os.kill(server.process.pid, signal.SIGKILL)  # no chance to forward anything
    deadline = time.monotonic() + 30
    while _live_groups(groups) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _live_groups(groups), "mlflow server outlived labkit"
    assert not _answers(server.url)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2):
            return True
    except OSError:
        return False


def _connections(pg_url: str) -> int:
    import psycopg

    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'mlflow' AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0
