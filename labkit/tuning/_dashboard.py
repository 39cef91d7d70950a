"""``optuna-dashboard`` for a study storage, as a service for ``labkit ui`` (no optuna import:
the dashboard is its own program)."""

from __future__ import annotations

from pathlib import Path

from labkit._services import Service
from labkit.config import default_storage
from labkit.errors import LabkitError

__all__ = ["dashboard_ui"]


def dashboard_ui(storage: str | None, *, port: int, log: Path) -> Service:
    """The dashboard of ``storage`` (default: the study database under ``./runs``) on
    127.0.0.1:``port``, its output going to ``log``. A SQLite storage must exist already."""
    url = storage or default_storage()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise LabkitError(f"--storage: no study database at {url} (run labkit tune first)")
    return Service(
        "optuna-dashboard",
        ["optuna-dashboard", url, "--host", "127.0.0.1", "--port", str(port)],
        f"http://127.0.0.1:{port}/",
        log,
    )
