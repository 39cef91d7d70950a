"""``labkit server start``: ``python -m mlflow server`` in a child process, in the foreground.

The child runs in its own session and process group; no mlflow is imported here. Everything it
gets is built by :func:`server_command`, a pure function of the options, the environment and the
two state files (Flask secret key, auth config), so that what reaches ``mlflow server`` can be
tested without starting it. The admin password reaches the server only through the child's
environment, and so does the backend URI (which may hold a database password): never ``argv``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO

from labkit.errors import ServerError
from labkit.tracking._provenance import redact_uri
from labkit.tracking.server._options import (
    ADMIN_USERNAME_VAR,
    ENGINES_IN_PARENT,
    ENGINES_PER_WORKER,
    ServerOptions,
    _engines,
    admin_username,
    connection_cap,
    writers_per_worker,
)

__all__ = ["AuthFiles", "ServerCommand", "prepare_state", "run_server", "server_command"]

# Variables that would change what the child serves, which processes it starts or which engines
# they open (and so the connection cap): the child never inherits them; the options decide.
# MLFLOW_SERVER_ENABLE_JOB_EXECUTION is set to false below: MLflow's job runner and its Huey
# consumers (GenAI scorers, prompt optimisation; nothing labkit uses) are 7 more processes with
# pools of their own, and their job subprocesses would make any cap a guess.
_CLEARED_ENV = (
    "MLFLOW_ARTIFACTS_DESTINATION",
    "MLFLOW_ARTIFACTS_ONLY",
    "MLFLOW_AUTH_CONFIG_PATH",
    "MLFLOW_BACKEND_STORE_URI",
    "MLFLOW_DEFAULT_ARTIFACT_ROOT",
    "MLFLOW_ENABLE_WORKSPACES",
    "MLFLOW_EXPOSE_PROMETHEUS",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "MLFLOW_GUNICORN_OPTS",
    "MLFLOW_HOST",
    "MLFLOW_PORT",
    "MLFLOW_READ_REPLICA_BACKEND_STORE_URI",
    "MLFLOW_REGISTRY_STORE_URI",
    "MLFLOW_SERVE_ARTIFACTS",
    "MLFLOW_SERVER_ALLOWED_HOSTS",
    "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS",
    "MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE",
    "MLFLOW_SQLALCHEMYSTORE_POOLCLASS",
    "MLFLOW_SQL_TRACE_ROLLUPS_ENABLED",
    "MLFLOW_STATIC_PREFIX",
    "MLFLOW_TRACE_ARCHIVAL_CONFIG",
    "MLFLOW_UVICORN_OPTS",
    "MLFLOW_WORKERS",
    "MLFLOW_WORKSPACE_STORE_URI",
)


@dataclass(frozen=True)
class AuthFiles:
    secret_key: str  #: the Flask secret key (CSRF, sessions), the same across restarts
    config: Path  #: the basic-auth ini that MLFLOW_AUTH_CONFIG_PATH points at


@dataclass(frozen=True)
class ServerCommand:
    argv: list[str]
    env: dict[str, str]  #: the child's whole environment


def auth_config_text(options: ServerOptions, state: Path, admin: str) -> str:
    """The basic-auth ini: no password in it (the admin's comes from the environment)."""
    return (
        "# Written by labkit server start at every start; edit the options, not this file.\n"
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {options.auth_db(state)}\n"
        f"admin_username = {admin}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
        "auth_cache_ttl_seconds = 60\n"
    )


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600) through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _secret_key(path: Path) -> str:
    """The Flask secret key in ``path``, generated on first use (mode 0600)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        key = path.read_text().strip()
        if not key:
            raise ServerError(f"{path} is empty; delete it to have a new secret key made") from None
        return key
    key = secrets.token_hex(32)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def prepare_state(options: ServerOptions, environ: Mapping[str, str] | None = None) -> AuthFiles | None:
    """Create the state directory (0700); with ``auth`` keep the secret key and write the ini."""
    env = os.environ if environ is None else environ
    admin = admin_username(env) if options.auth else None  # check before writing anything
    state = options.state_path(env)
    try:
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        if options.artifacts_destination is None:
            Path(options.artifacts(state)).mkdir(exist_ok=True)
        if admin is None:
            return None
        key = _secret_key(state / "secret_key")
        config = state / "basic_auth.ini"
        _write_private(config, auth_config_text(options, state, admin))
    except OSError as exc:
        raise ServerError(
            f"state directory {state}: {exc.strerror or exc}; choose another with --state-dir"
        ) from exc
    return AuthFiles(key, config)


def server_command(
    options: ServerOptions, environ: Mapping[str, str] | None = None, auth_files: AuthFiles | None = None
) -> ServerCommand:
    """The ``mlflow server`` command line and the child's environment. Pure: touches nothing."""
    env_in = os.environ if environ is None else environ
    state = options.state_path(env_in)
    argv = [sys.executable, "-m", "mlflow", "server"]
    argv += ["--host", options.host, "--port", str(options.port), "--workers", str(options.workers)]
    argv += ["--serve-artifacts", "--artifacts-destination", options.artifacts(state)]
    if options.allowed_hosts:
        argv += ["--allowed-hosts", options.allowed_hosts]
    env = {k: v for k, v in env_in.items() if k not in _CLEARED_ENV}
    env["MLFLOW_BACKEND_STORE_URI"] = options.backend(state)  # may hold a password: not in argv
    env["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"] = str(options.db_pool_size)
    env["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"] = str(options.db_max_overflow)
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # as for every labkit process (README)
    if options.auth:
        if auth_files is None:
            raise ValueError("auth needs the files from prepare_state()")
        env[ADMIN_USERNAME_VAR] = admin_username(env_in)
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(auth_files.config)
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = auth_files.secret_key
        argv += ["--app-name", "basic-auth"]
    return ServerCommand(argv, env)


def _mlflow_version() -> str:
    try:
        return version("mlflow")
    except PackageNotFoundError:
        raise ServerError(
            "mlflow is not installed in this environment (pip install 'mlflow[auth]')"
        ) from None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the server gets SIGTERM if labkit dies (even by SIGKILL) instead of running on."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _check_port_free(options: ServerOptions) -> None:
    """A server already on the port would answer /health for ours: refuse at once."""
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is fine
        try:
            sock.bind((options.host, options.port))
        except OSError as exc:
            raise ServerError(
                f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc} "
                "(another server running there?); choose another --port or --host"
            ) from None


def _health_url(options: ServerOptions) -> str:
    host = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{options.port}/health"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def run_server(
    options: ServerOptions, environ: Mapping[str, str] | None = None, out: TextIO | None = None
) -> int:
    """Run ``mlflow server`` in the foreground until it exits or is stopped; its exit code.

    SIGINT and SIGTERM are forwarded to its process group (a second one sends SIGKILL); a server
    stopped that way returns 0.
    """
    stream = out or sys.stdout
    env_in = dict(os.environ if environ is None else environ)
    mlflow_version = _mlflow_version()
    _check_port_free(options)
    auth_files = prepare_state(options, env_in)
    command = server_command(options, env_in, auth_files)
    state = options.state_path(env_in)
    url = f"http://{options.host}:{options.port}"
    cap = connection_cap(options)
    auth_engines = _engines(options)[1]
    auth = (
        f"basic-auth, admin user {command.env[ADMIN_USERNAME_VAR]!r}; add users with labkit server adduser"
        if options.auth
        else "off: anyone who reaches the port can read and write (use --auth for a group)"
    )
    lines = [
        f"labkit: MLflow {mlflow_version} tracking server on {url}",
        f"  backend    {redact_uri(options.backend(state))}",
        f"  artifacts  {options.artifacts(state)}",
        f"  auth       {auth}",
        f"  state      {state}",
        f"  database   at most {cap} database connections: "
        f"({options.workers} workers × {ENGINES_PER_WORKER} + {ENGINES_IN_PARENT}"
        + (f" + {auth_engines} auth" if auth_engines else "")
        + f" engines) × (pool {options.db_pool_size} + overflow {options.db_max_overflow})",
        f"             a worker serves {writers_per_worker(options)} simultaneous writes before some wait "
        "for a connection (30 s, then fail): size the pools for your writers (docs/server.md)",
    ]
    print("\n".join(lines), file=stream, flush=True)
    received: list[int] = []
    process: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum if len(received) == 1 else signal.SIGKILL)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        started = time.monotonic()
        process = subprocess.Popen(
            command.argv,
            env=command.env,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the labkit CLI runs no threads
        )
        if received:  # a signal came before the server existed
            os.killpg(process.pid, received[0])
        health, deadline = _health_url(options), started + 600
        while process.poll() is None and not received and time.monotonic() < deadline:
            if _answers(health):
                took = time.monotonic() - started
                print(f"labkit: ready at {url}/ after {took:.0f} s", file=stream, flush=True)
                break
            time.sleep(0.5)
        code = process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)  # workers left behind by a crashed parent
    code = 128 - code if code < 0 else code
    if received:
        print(f"labkit: server stopped ({signal.Signals(received[0]).name})", file=stream, flush=True)
        if code in (0, 128 + received[0]):
            return 0  # stopped as asked (before its own handlers were set, it dies of the signal)
    return code
