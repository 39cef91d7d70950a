"""``mlflow ui`` for ``labkit ui``: a local store's runs in the browser, on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from labkit._services import Service

__all__ = ["mlflow_ui"]


def mlflow_ui(uri: str, *, port: int, log: Path) -> Service | None:
    """``mlflow ui`` for the store at ``uri`` on 127.0.0.1:``port`` (run by
    :func:`labkit._services.serve`), or None for an ``http(s)://`` server: it has its own UI,
    there is nothing to start."""
    if uri.startswith(("http://", "https://")):
        return None
    base = f"http://127.0.0.1:{port}/"
    return Service(
        "mlflow ui",
        ["mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)],
        f"{base}health",
        log,
        shown=f"{base}#/?workflowType=machine_learning",
    )
