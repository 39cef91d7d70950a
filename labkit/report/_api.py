"""The notebook API: the runs of the group as pandas DataFrames.

>>> import labkit
>>> df = labkit.runs(experiment="digits", since="30d", filter="test_acc > 0.9")
>>> curve = labkit.history(df.run_id[0], "val_loss")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from labkit.report._table import parse_filter, parse_since, runs_frame, select

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["default_uri", "history", "runs"]


def default_uri(uri: str | None = None) -> str:
    """``uri``, else ``$MLFLOW_TRACKING_URI``, else the embedded store ``./mlflow.db`` (as ``labkit run``)."""
    from labkit.config import default_tracking_uri

    return default_tracking_uri(uri)


def runs(
    experiment: str | Sequence[str] | None = None,
    *,
    since: str | None = None,
    user: str | Sequence[str] | None = None,
    filter: str | None = None,
    metrics: Sequence[str] = (),
    uri: str | None = None,
    refresh: str = "auto",
) -> pd.DataFrame:
    """One row per run, with the columns of ``labkit compare`` (before grouping by seed):
    ``run_id, experiment, user, start, status, duration_s, gpu_hours``, then ``gpu_util`` (the
    run's mean GPU utilisation, %) and ``gpu_hours_idle`` (``gpu_hours`` x (1 - gpu_util/100))
    when a run logged its system metrics on a GPU, the parameters that vary (``params.<name>``),
    the headline metrics of each task and ``metrics``.

    ``since``: ``30d``, ``12h`` or a date; ``filter``: ``"test_acc > 0.9 and params.model.name = 'mlp'"``.
    """
    from labkit._cache import default_cache_dir
    from labkit.tracking import fetch_runs

    names = [experiment] if isinstance(experiment, str) else list(experiment or [])
    users = [user] if isinstance(user, str) else list(user or [])
    records = fetch_runs(default_uri(uri), names, cache_dir=default_cache_dir(), refresh=refresh)  # type: ignore[arg-type]
    chosen = select(records, since=parse_since(since), users=users, where=parse_filter(filter))
    return runs_frame(chosen, metrics)


def history(run_id: str, metric: str, *, uri: str | None = None) -> pd.DataFrame:
    """Every logged point of ``metric`` in run ``run_id``: columns ``step``, ``time`` (UTC), ``value``."""
    import pandas as pd

    from labkit.tracking import fetch_history

    points = fetch_history(default_uri(uri), run_id, metric)
    frame = pd.DataFrame(points, columns=["step", "time", "value"])
    frame["time"] = pd.to_datetime(frame["time"], unit="ms", utc=True)
    return frame
