"""The one owner of store URIs: where runs are tracked and studies are stored by default, how a
URI is shown without its password, and what can name an MLflow store (checked without importing
MLflow).

One check for every place a URI comes in: ``tracking.uri`` in an experiment (a run may create a
new SQLite file) and ``--tracking-uri`` of ``labkit compare``/``reproduce`` (which read runs, so
the store must already be there).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from labkit.errors import did_you_mean

__all__ = [
    "DEFAULT_STORE",
    "STORE_SCHEMES",
    "default_storage",
    "default_tracking_uri",
    "redact_uri",
    "tracking_uri_problem",
]

#: the MLflow store a run logs to when nothing else is configured, in the working directory
DEFAULT_STORE = "mlflow.db"

#: the stores MLflow's own client reads (a plain path or ``file:`` is its file store); plug-ins
#: that register a scheme under the ``mlflow.tracking_store`` entry point are accepted too
STORE_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "file", "databricks")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_USE = (
    "use http(s)://HOST:PORT (an MLflow server), sqlite:///path/to/mlflow.db, postgresql://..., "
    "mysql://..., mssql://..., file:///path/to/mlruns or databricks"
)


def default_tracking_uri(
    uri: str | None = None, environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> str:
    """``uri``, else ``$MLFLOW_TRACKING_URI``, else :data:`DEFAULT_STORE` in ``cwd``; a relative
    SQLite path made absolute (jobs and later commands run elsewhere)."""
    env = os.environ if environ is None else environ
    where = cwd or Path.cwd()
    uri = uri or env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{where / DEFAULT_STORE}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{(where / uri.removeprefix('sqlite:///')).resolve()}"
    return uri


def default_storage(runs_root: str | os.PathLike[str] = "runs") -> str:
    """The study database in the runs root: fine for several processes on one machine."""
    return f"sqlite:///{Path(runs_root).resolve() / 'optuna.db'}"


def redact_uri(uri: str) -> str:
    """``scheme://user:secret@host/path`` → ``scheme://user:***@host/path``; others unchanged."""
    try:
        parts = urlsplit(uri)
        if parts.password is None:
            return uri
        port = parts.port
    except ValueError:
        return uri
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{port}" if port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def tracking_uri_problem(uri: str, *, must_exist: bool) -> str | None:
    """Why ``uri`` cannot be an MLflow tracking store (None if it can).

    Refused: a NUL byte or control character, no ``scheme://`` (a plain path is MLflow's retired
    file store; ``::::`` would make ``./mlruns``), an unknown scheme, and an SQLite URI whose path
    is a directory, not a regular file, or a file that is not an SQLite database. A missing SQLite
    file is fine for a run (it creates it); with ``must_exist`` (reading runs) it is refused too.
    """
    if "\x00" in uri or not uri.isprintable():
        return "holds a NUL byte or a control character"
    if uri.strip().lower() == "databricks":
        return None
    if "://" not in uri:
        return f"not a URI (no scheme://); {_USE}"
    scheme = uri.partition("://")[0].split("+")[0].lower()
    if scheme not in STORE_SCHEMES and scheme not in _plugin_schemes():
        return f"unknown scheme {scheme!r}{did_you_mean(scheme, STORE_SCHEMES)}; {_USE}"
    if scheme != "sqlite" or uri.partition("://")[2] in ("", "/"):  # sqlite:// is an in-memory store
        return None
    path = Path(uri.partition("://")[2][1:].split("?")[0])
    try:
        if path.is_dir():
            return f"{path} is a directory, not an SQLite database file"
        if path.exists() and not path.is_file():
            return f"{path} is not a regular file, so not an SQLite database"
        if not path.is_file():
            if not must_exist:
                return None
            return (
                f"no tracking store at {path} (no such file): nothing was logged there; "
                "give the store your runs went to, e.g. --tracking-uri sqlite:///path/to/mlflow.db"
            )
        with path.open("rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        return f"cannot read {path} ({exc.strerror or exc})"
    if head and head != _SQLITE_MAGIC:
        return f"{path} is not an SQLite database (an MLflow store is, e.g. mlflow.db)"
    return None


def _plugin_schemes() -> set[str]:
    from importlib.metadata import entry_points

    return {e.name for e in entry_points(group="mlflow.tracking_store")}
