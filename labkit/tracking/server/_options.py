"""What ``labkit server start`` is asked for (:class:`ServerOptions`), the state directory, the
admin's name, and how many database connections the server may hold.

Database connections: every SQLAlchemy engine the server creates has a pool of at most
``pool_size + max_overflow`` connections (MLflow reads ``MLFLOW_SQLALCHEMYSTORE_POOL_SIZE`` and
``MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW``), so :func:`connection_cap` counts engines; which processes
create which engines is written next to :data:`ENGINES_PER_WORKER`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from labkit.errors import ServerError
from labkit.tracking._provenance import redact_uri

__all__ = [
    "ENGINES_IN_PARENT",
    "ENGINES_PER_WORKER",
    "PERMISSIONS",
    "ServerOptions",
    "admin_username",
    "connection_cap",
    "default_state_dir",
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
