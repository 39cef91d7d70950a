"""The group's MLflow tracking server behind ``labkit server start | adduser | grant``.

``start`` runs ``python -m mlflow server`` in a child process (its own session and process group)
and imports no mlflow here; :func:`add_user` and :func:`grant` import mlflow's auth client when
called. Everything the child gets is built by :func:`server_command`, a pure function of the
options, the environment and the two state files (Flask secret key, auth config), so that what
reaches ``mlflow server`` can be tested without starting it.

Secrets: the admin password is read from ``MLFLOW_AUTH_ADMIN_PASSWORD`` and reaches the server
only through the child's environment, never a file or a command line. The backend URI (which may
hold a database password) also travels in the environment (``MLFLOW_BACKEND_STORE_URI``), not in
``argv`` where any user of the machine could read it with ``ps``.

Database connections: every SQLAlchemy engine the server creates has a pool of at most
``pool_size + max_overflow`` connections (MLflow reads ``MLFLOW_SQLALCHEMYSTORE_POOL_SIZE`` and
``MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW``), so :func:`connection_cap` counts engines; which processes
create which engines is written next to :data:`ENGINES_PER_WORKER`.
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from labkit.errors import ServerError, did_you_mean
from labkit.tracking._provenance import redact_uri

__all__ = [
    "ENGINES_IN_PARENT",
    "ENGINES_PER_WORKER",
    "PERMISSIONS",
    "AuthFiles",
    "ServerCommand",
    "ServerError",
    "ServerOptions",
    "add_user",
    "admin_username",
    "check_admin",
    "connection_cap",
    "default_state_dir",
    "grant",
    "prepare_state",
    "run_server",
    "server_command",
    "writers_per_worker",
]

PERMISSIONS = ("READ", "EDIT", "MANAGE")
MIN_PASSWORD_LENGTH = 12  # MLflow's own rule for every basic-auth password
ADMIN_PASSWORD_VAR = "MLFLOW_AUTH_ADMIN_PASSWORD"
ADMIN_USERNAME_VAR = "MLFLOW_AUTH_ADMIN_USERNAME"
CLIENT_USERNAME_VAR = "MLFLOW_TRACKING_USERNAME"
CLIENT_PASSWORD_VAR = "MLFLOW_TRACKING_PASSWORD"

#: SQLAlchemy engines (one connection pool each) that one uvicorn worker of ``mlflow server`` may
#: create on the backend database: the tracking store, the model-registry store and the job store
#: (created by the prompt-optimization job endpoints, which any logged-in user can call). Traced
#: by wrapping ``sqlalchemy.create_engine`` in every process of a loaded server (mlflow 3.17).
ENGINES_PER_WORKER = 3
#: Engines the ``mlflow server`` process itself keeps for its lifetime: the tracking and
#: model-registry stores it opens to create or check the schema before starting its workers.
#: (A third one, for the trace-rollup check, is disposed of before any worker exists.)
ENGINES_IN_PARENT = 2
#: SQLAlchemy's own defaults, which MLflow uses when the variables are unset.
DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 10

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

_DATABASES = ("sqlite", "postgresql", "mysql")


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/labkit/server``, else ``~/.local/share/labkit/server``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "share")
    return Path(base).expanduser() / "labkit" / "server"


def _check_db_uri(uri: str, option: str) -> None:
    scheme = urlsplit(uri).scheme if "://" in uri else ""
    if scheme.split("+")[0] not in _DATABASES:
        raise ServerError(
            f"{option} {redact_uri(uri)!r}: not a database URL; use postgresql://USER@HOST/DB "
            f"(a group's server) or sqlite:///PATH (one machine); supported: {', '.join(_DATABASES)}"
        )


@dataclass(frozen=True)
class ServerOptions:
    """What ``labkit server start`` was asked for; ``None`` means "under the state directory"."""

    host: str = "127.0.0.1"
    port: int = 5000
    backend_store_uri: str | None = None  #: default ``sqlite:///<state>/mlflow.db``
    artifacts_destination: str | None = None  #: default ``<state>/artifacts``
    auth: bool = False
    auth_db_uri: str | None = None  #: default ``sqlite:///<state>/basic_auth.db`` (with ``auth``)
    workers: int = 2
    db_pool_size: int = DEFAULT_POOL_SIZE
    db_max_overflow: int = DEFAULT_MAX_OVERFLOW
    state_dir: Path | None = None  #: default :func:`default_state_dir`
    allowed_hosts: str | None = None  #: Host names a reverse proxy sends (comma-separated)

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise ServerError("--host: give an address to listen on, e.g. 127.0.0.1")
        if not 1 <= self.port <= 65535:
            raise ServerError(f"--port {self.port}: choose a port between 1 and 65535")
        if self.workers < 1:
            raise ServerError(f"--workers {self.workers}: give 1 or more worker processes")
        if self.db_pool_size < 1:
            raise ServerError(
                f"--db-pool-size {self.db_pool_size}: give 1 or more (MLflow ignores 0 and opens "
                f"SQLAlchemy's default of {DEFAULT_POOL_SIZE})"
            )
        if self.db_max_overflow < 1:
            raise ServerError(
                f"--db-max-overflow {self.db_max_overflow}: give 1 or more (MLflow ignores 0 and "
                f"allows SQLAlchemy's default of {DEFAULT_MAX_OVERFLOW} more)"
            )
        if self.backend_store_uri is not None:
            _check_db_uri(self.backend_store_uri, "--backend-store-uri")
        if self.auth_db_uri is not None:
            if not self.auth:
                raise ServerError("--auth-db-uri goes with --auth (it is where the users are kept)")
            _check_db_uri(self.auth_db_uri, "--auth-db-uri")
        if self.artifacts_destination is not None and not self.artifacts_destination.strip():
            raise ServerError("--artifacts-destination: give a directory or an s3:// (gs://, ...) URI")

    def state_path(self, environ: Mapping[str, str] | None = None) -> Path:
        return (self.state_dir or default_state_dir(environ)).expanduser().absolute()

    def backend(self, state: Path) -> str:
        return self.backend_store_uri or f"sqlite:///{state / 'mlflow.db'}"

    def artifacts(self, state: Path) -> str:
        dest = self.artifacts_destination
        if dest is None:
            return str(state / "artifacts")
        return dest if "://" in dest else str(Path(dest).expanduser().absolute())

    def auth_db(self, state: Path) -> str:
        return self.auth_db_uri or f"sqlite:///{state / 'basic_auth.db'}"


def _engines(options: ServerOptions) -> tuple[int, int]:
    """Engines on the backend database, and on the auth database when that is not SQLite."""
    backend = options.workers * ENGINES_PER_WORKER + ENGINES_IN_PARENT
    auth_db = options.auth_db_uri or ""
    return backend, (
        options.workers + 1 if options.auth and auth_db and not auth_db.startswith("sqlite") else 0
    )


def connection_cap(options: ServerOptions) -> int:
    """The most database connections the server started with ``options`` can hold at once.

    Every engine's pool holds at most ``db_pool_size + db_max_overflow`` connections (SQLAlchemy's
    ``QueuePool``, the one MLflow uses; the child never sees ``MLFLOW_SQLALCHEMYSTORE_POOLCLASS``).
    Engines: :data:`ENGINES_PER_WORKER` in each worker, :data:`ENGINES_IN_PARENT` in the
    ``mlflow server`` process, and with ``auth`` on a database server (not SQLite) one auth-store
    engine per worker plus one in the ``mlflow server`` process. No other process connects:
    MLflow's job runner is switched off. Measured on PostgreSQL (docs/server.md): the count of
    connections stays under this.
    """
    backend, auth = _engines(options)
    return (backend + auth) * (options.db_pool_size + options.db_max_overflow)


def writers_per_worker(options: ServerOptions) -> int:
    """Simultaneous requests one worker serves without risk of waiting for a connection.

    MLflow's ``log_batch`` holds two connections of the tracking pool at once (a session for the
    run, and one for the metrics or params inside it). With ``pool_size + max_overflow - 1``
    requests or fewer, one can always get its second connection; with more, all may hold one
    and wait for another until SQLAlchemy's 30 s pool timeout fails some of them (measured).
    """
    return options.db_pool_size + options.db_max_overflow - 1


def admin_username(environ: Mapping[str, str]) -> str:
    """The admin's name for ``--auth``; checks that the admin password is set and long enough."""
    password = environ.get(ADMIN_PASSWORD_VAR)
    if not password:
        raise ServerError(
            f"--auth needs the admin password: set {ADMIN_PASSWORD_VAR} (at least {MIN_PASSWORD_LENGTH} "
            "characters) in the environment of labkit server start; it is never written to a file"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ServerError(
            f"{ADMIN_PASSWORD_VAR} is {len(password)} characters long; set it to at least "
            f"{MIN_PASSWORD_LENGTH} characters"
        )
    return environ.get(ADMIN_USERNAME_VAR) or "admin"


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


# --------------------------------------------------------------------------- users and grants


def _check_url(url: str | None) -> str:
    if not url:
        raise ServerError("no server: give --url http://HOST:PORT or set MLFLOW_TRACKING_URI")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServerError(f"--url {redact_uri(url)!r}: give the server's http:// or https:// address")
    if parts.username or parts.password:
        raise ServerError(
            f"--url {redact_uri(url)!r}: no credentials in URLs; set {CLIENT_USERNAME_VAR} and "
            f"{CLIENT_PASSWORD_VAR} instead"
        )
    return url.rstrip("/")


def check_admin(url: str | None) -> str:
    """The server's URL, checked, once the admin credentials are known to be in the environment."""
    server = _check_url(url)
    _check_admin_credentials()
    return server


def _auth_client(server: str) -> Any:
    import warnings

    with warnings.catch_warnings():  # mlflow.server's import chain warns about Starlette's WSGI
        warnings.filterwarnings("ignore", message=".*starlette.middleware.wsgi is deprecated")
        from mlflow.server.auth.client import AuthServiceClient

    return AuthServiceClient(server)


def _check_admin_credentials() -> None:
    missing = [v for v in (CLIENT_USERNAME_VAR, CLIENT_PASSWORD_VAR) if not os.environ.get(v)]
    if missing:
        raise ServerError(
            f"set {' and '.join(missing)} to an admin's user name and password (the server's first "
            f"admin is {ADMIN_USERNAME_VAR}, default 'admin', with {ADMIN_PASSWORD_VAR})"
        )


@contextlib.contextmanager
def _server_errors(url: str) -> Iterator[None]:
    """MLflow's REST errors → ServerError with what to do about them."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        code = str(getattr(exc, "error_code", ""))
        text = str(exc)
        if "UNAUTHENTICATED" in code or " 401" in text:
            raise ServerError(
                f"{url} refused the credentials in {CLIENT_USERNAME_VAR}/{CLIENT_PASSWORD_VAR}"
            ) from None
        if "PERMISSION_DENIED" in code or " 403" in text:
            raise ServerError(
                f"{url}: user {os.environ.get(CLIENT_USERNAME_VAR)!r} may not do this (it needs an admin)"
            ) from None
        if "ENDPOINT_NOT_FOUND" in code or " 404" in text:
            raise ServerError(
                f"{url} has no user management: start it with labkit server start --auth"
            ) from None
        if "Failed to establish a new connection" in text or "Max retries exceeded" in text:
            raise ServerError(f"cannot reach {url}: is the server running, and is the URL right?") from None
        raise ServerError(f"{url}: {text.splitlines()[0] if text else type(exc).__name__}") from None
    except OSError as exc:  # requests' ConnectionError is one
        raise ServerError(f"cannot reach {url}: {exc}") from None


def add_user(url: str | None, name: str, password: str) -> None:
    """Create user ``name`` on the server at ``url`` (admin credentials from the environment)."""
    server = _check_url(url)
    if not name or name != name.strip() or ":" in name:
        raise ServerError(f"user name {name!r}: give a name without spaces at its ends or ':'")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ServerError(
            f"the password for {name!r} is {len(password)} characters long; MLflow needs at least "
            f"{MIN_PASSWORD_LENGTH}"
        )
    _check_admin_credentials()
    from mlflow.exceptions import MlflowException

    client = _auth_client(server)
    with _server_errors(server):
        try:
            client.create_user(name, password)
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" in str(getattr(exc, "error_code", "")):
                raise ServerError(f"user {name!r} exists already on {server}") from None
            raise


def _permission(permission: str) -> str:
    value = permission.strip().upper()
    if value not in PERMISSIONS:
        hint = did_you_mean(value, PERMISSIONS)
        raise ServerError(f"permission {permission!r}{hint}: choose one of {', '.join(PERMISSIONS)}")
    return value


def _experiment_id(server: str, experiment: str) -> str:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=server)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return str(found.experiment_id)
    if experiment.isdigit():
        try:
            return str(client.get_experiment(experiment).experiment_id)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" not in str(getattr(exc, "error_code", "")):
                raise
    names = [e.name for e in client.search_experiments(max_results=1000)]
    shown = ", ".join(sorted(names)[:20]) + (", ..." if len(names) > 20 else "")
    raise ServerError(
        f"no experiment {experiment!r} on {server}{did_you_mean(experiment, names)}; "
        f"experiments: {shown or '(none yet)'}"
    )


def grant(url: str | None, name: str, experiment: str, permission: str) -> str:
    """Give user ``name`` ``permission`` (READ, EDIT or MANAGE) on ``experiment`` (a name or an id).

    Creates the grant, or changes it if the user has one on that experiment. Returns
    ``"created"`` or ``"updated"``.
    """
    server = _check_url(url)
    level = _permission(permission)
    _check_admin_credentials()
    from mlflow.exceptions import MlflowException

    def exists(exc: MlflowException) -> bool:
        return "RESOURCE_ALREADY_EXISTS" in str(getattr(exc, "error_code", ""))

    client = _auth_client(server)
    with _server_errors(server):
        try:
            client.get_user(name)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")):
                raise ServerError(
                    f"no user {name!r} on {server}; create it with: labkit server adduser {name}"
                ) from None
            raise
        experiment_id = _experiment_id(server, experiment)
        if hasattr(client, "grant_user_permission"):  # newer MLflow (3.17): one API for all resources
            try:
                client.grant_user_permission(name, "experiment", experiment_id, level)
                return "created"
            except MlflowException as exc:
                if not exists(exc):
                    raise
            # no update call for a user's own grant: replace it (in between, the default READ holds)
            client.revoke_user_permission(name, "experiment", experiment_id)
            client.grant_user_permission(name, "experiment", experiment_id, level)
            return "updated"
        legacy: Any = client  # older MLflow: per-resource endpoints
        try:
            legacy.create_experiment_permission(experiment_id, name, level)
            return "created"
        except MlflowException as exc:
            if not exists(exc):
                raise
        legacy.update_experiment_permission(experiment_id, name, level)
        return "updated"
