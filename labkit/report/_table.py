"""The comparison table: one row per run (or per group of runs that differ only by seed).

Pure pandas over :class:`~labkit.tracking.query.RunRecord` objects: no mlflow, no torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

    from labkit.tracking.query import RunRecord

__all__ = [
    "HEADLINE",
    "SYSTEM_COLUMNS",
    "Filter",
    "compare_frame",
    "gpu_use",
    "higher_is_better",
    "is_study",
    "parse_filter",
    "parse_since",
    "runs_frame",
    "select",
]

#: the metrics a task family is judged by, shown for every run of that task
HEADLINE: dict[str, tuple[str, ...]] = {
    "classification": ("test_acc", "test_auc"),
    "regression": ("test_rmse",),
    "segmentation": ("test_miou", "test_iou_track", "baseline_iou_track"),
    "anomaly": ("test_max_sic", "np_max_sic", "test_auc"),
    "surrogate": ("test_classifier_auc", "reference_classifier_auc", "test_fpd"),
}
#: parameters that only choose the random numbers: runs differing only here are one result
SEED_PARAMS = ("seed", "data.sim_seed")
#: what every row has before its parameters and metrics
BASE_COLUMNS = ("run_id", "experiment", "user", "start", "status", "duration_s", "gpu_hours")
#: how well the GPUs were used, shown when a selected run logged ``gpu_util`` (its mean GPU
#: utilisation in %, from its system metrics): ``gpu_hours_idle`` = gpu_hours x (1 - gpu_util/100)
SYSTEM_COLUMNS = ("gpu_util", "gpu_hours_idle")
#: the lineage column, shown when a selected run was fine-tuned from another (``init_from``)
PARENT_COLUMN = "parent"
_PARENT_TAG = "labkit.parent_run"

_LOWER = re.compile(
    r"(loss|rmse|mse|mae|bias|fpd|sep_power|classifier_auc|time|_s$|_ms|ms_per|gpu_hours|resolution|crb)"
)


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (accuracy, AUC, IoU, SIC, rejection) or
    worse (losses, errors, resolutions, distances, times; the generated-vs-simulated classifier
    AUC, where 0.5 is perfect)."""
    return _LOWER.search(metric) is None


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``30d``, ``12h``, ``2w``, ``45m`` or an ISO date ``2026-11-01``; ``None`` stays ``None``."""
    if not text:
        return None
    now = now or datetime.now(UTC)
    usage = "use a duration (30d, 12h, 2w, 45m) or a date (2026-11-01)"
    match = re.fullmatch(r"(\d+)\s*([mhdw])", text.strip())
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match[2]]
        try:
            return now - timedelta(**{unit: int(match[1])})
        except (OverflowError, ValueError):  # beyond timedelta's 999999999 days, or before year 1
            raise ConfigError(
                f"--since {_shown(text)}: reaches back before the year 1; use a shorter duration "
                "(30d, 12h, 2w, 45m) or a date (2026-11-01), or leave out --since for every run"
            ) from None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--since: cannot read {_shown(text)}; {usage}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _shown(text: str, limit: int = 40) -> str:
    """A value as typed, cut short when it is long (a 5 000-digit number is not worth repeating)."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


@dataclass(frozen=True)
class Condition:
    key: str
    op: str
    value: str | float


Filter = tuple[Condition, ...]

_COND = re.compile(
    r"""\s*(?P<key>[A-Za-z_][\w./-]*)\s*(?P<op>!=|>=|<=|==|=|<|>)\s*
        (?P<value>'[^']*'|"[^"]*"|[^\s'"]+)\s*""",
    re.VERBOSE,
)


def parse_filter(text: str | None) -> Filter:
    """``metrics.test_acc > 0.9 and params.model.name = 'mlp'``: conditions joined by ``and``.

    Keys: ``metrics.M``, ``params.P``, ``tags.T``, or a bare name (a metric, a parameter or one of
    ``status``, ``user``, ``experiment``, ``run_id``); operators ``= != < <= > >=``."""
    if not text or not text.strip():
        return ()
    out = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _COND.fullmatch(part)
        if match is None:
            raise ConfigError(
                f"--filter: cannot read {part.strip()!r}; write conditions like "
                "\"metrics.test_acc > 0.9 and params.model.name = 'mlp'\" (operators = != < <= > >=)"
            )
        raw = match["value"]
        value: str | float
        if raw[0] in "'\"":
            value = raw[1:-1]
        else:
            try:
                value = float(raw)
            except ValueError:
                value = raw
        op = "=" if match["op"] == "==" else match["op"]
        out.append(Condition(match["key"], op, value))
    return tuple(out)


def _lookup(rec: RunRecord, key: str) -> str | float | None:
    prefix, _, rest = key.partition(".")
    if prefix in ("metrics", "metric") and rest:
        return rec.metrics.get(rest)
    if prefix in ("params", "param") and rest:
        return rec.params.get(rest)
    if prefix in ("tags", "tag") and rest:
        return rec.tags.get(rest)
    attrs = {"status": rec.status, "user": rec.user, "experiment": rec.experiment, "run_id": rec.run_id}
    if key in attrs:
        return attrs[key]
    if key in rec.metrics:
        return rec.metrics[key]
    return rec.params.get(key)


def _holds(rec: RunRecord, cond: Condition) -> bool:
    found = _lookup(rec, cond.key)
    if found is None:
        return False
    want = cond.value
    if isinstance(want, float):
        try:
            have: str | float = float(found)
        except ValueError:
            return False
    else:
        have, want = str(found), str(want)
    ops = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return bool(ops[cond.op](have, want))


def select(
    records: Sequence[RunRecord],
    *,
    since: datetime | None = None,
    users: Sequence[str] = (),
    where: Filter = (),
) -> list[RunRecord]:
    """The records started after ``since``, by one of ``users``, meeting every condition."""
    known: set[str] = set()
    for rec in records:
        known |= set(rec.metrics) | set(rec.params)
    for cond in where:
        bare = cond.key.split(".", 1)[-1] if cond.key.split(".", 1)[0] in ("metrics", "params") else cond.key
        special = cond.key in ("status", "user", "experiment", "run_id") or cond.key.startswith(
            ("tags.", "tag.")
        )
        if records and bare not in known and not special:
            raise ConfigError(
                f"--filter: no selected run has a metric or parameter {bare!r}"
                f"{did_you_mean(bare, sorted(known))}"
            )
    cutoff = int(since.timestamp() * 1000) if since else None
    return [
        r
        for r in records
        if (cutoff is None or (r.start_ms or 0) >= cutoff)
        and (not users or r.user in users)
        and all(_holds(r, c) for c in where)
    ]


#: parameters that say where a run logged or what it was called, not what it computed
_BOOKKEEPING = ("tracking.", "runs_root", "name", "search.")


def _varying(records: Sequence[RunRecord]) -> list[str]:
    """The parameters with two or more values among ``records`` (bookkeeping ones aside)."""
    keys = sorted({k for r in records for k in r.params if not k.startswith(_BOOKKEEPING)})
    return [k for k in keys if len({r.params[k] for r in records if k in r.params}) > 1]


def is_study(rec: RunRecord) -> bool:
    """The parent run of a tuning study (its trials are runs of their own)."""
    return "labkit.study" in rec.tags and "labkit.trial" not in rec.tags


def _metrics(records: Sequence[RunRecord], extra: Sequence[str]) -> list[str]:
    wanted: list[str] = []
    for rec in records:
        for name in HEADLINE.get(rec.tags.get("labkit.task", ""), ()):
            if name in rec.metrics and name not in wanted:
                wanted.append(name)
    for name in extra:
        if name not in wanted:
            wanted.append(name)
    return wanted


def gpu_use(rec: RunRecord) -> tuple[float, float]:
    """A run's mean GPU utilisation (%) and its idle GPU-hours (``gpu_hours`` x (1 - that/100));
    both NaN when it logged no ``gpu_util`` (no GPU, or system metrics off)."""
    util = rec.metrics.get("gpu_util")
    if util is None or math.isnan(util):
        return math.nan, math.nan
    return util, rec.metrics.get("gpu_hours", 0.0) * (1.0 - min(max(util, 0.0), 100.0) / 100.0)


def _system(records: Sequence[RunRecord]) -> list[str]:
    return list(SYSTEM_COLUMNS) if any("gpu_util" in r.metrics for r in records) else []


def runs_frame(records: Sequence[RunRecord], metrics: Sequence[str] = ()) -> pd.DataFrame:
    """One row per run: :data:`BASE_COLUMNS`, ``gpu_util`` and ``gpu_hours_idle``
    (:data:`SYSTEM_COLUMNS`) when a run logged its GPU utilisation, ``parent`` (the
    ``labkit.parent_run`` tag) when a run was fine-tuned from another, the parameters that vary
    among the runs (as ``params.<name>``) and the headline metrics of their tasks plus ``metrics``."""
    import pandas as pd

    varying = _varying(records)
    system = _system(records)
    shown = [m for m in _metrics(records, metrics) if m not in system]
    lineage = [PARENT_COLUMN] if any(_PARENT_TAG in r.tags for r in records) else []
    rows = []
    for rec in records:
        start = pd.Timestamp(rec.start_ms, unit="ms", tz="UTC") if rec.start_ms else pd.NaT
        duration = (rec.end_ms - rec.start_ms) / 1000 if rec.start_ms and rec.end_ms else math.nan
        row: dict[str, Any] = {
            "run_id": rec.run_id,
            "experiment": rec.experiment,
            "user": rec.user,
            "start": start,
            "status": rec.status,
            "duration_s": duration,
            "gpu_hours": rec.metrics.get("gpu_hours", 0.0),
        }
        if system:
            row["gpu_util"], row["gpu_hours_idle"] = gpu_use(rec)
        if lineage:
            row[PARENT_COLUMN] = rec.tags.get(_PARENT_TAG, "")
        row |= {f"params.{k}": rec.params.get(k) for k in varying}
        row |= {m: rec.metrics.get(m, math.nan) for m in shown}
        rows.append(row)
    columns = [
        *BASE_COLUMNS,
        *system,
        *lineage,
        *shown,
        *(f"params.{k}" for k in varying),
    ]  # metrics, then params
    return pd.DataFrame(rows, columns=columns)


def compare_frame(
    records: Sequence[RunRecord],
    *,
    metric: str | None = None,
    group_by: Sequence[str] = (),
    top: int | None = None,
    metrics: Sequence[str] = (),
    strict: bool = True,
) -> pd.DataFrame:
    """The comparison table: rows of :func:`runs_frame` grouped and sorted.

    Runs that differ only by their seed (or that share the ``group_by`` parameters) become one
    row: metrics as the mean with ``<metric>_std`` and ``n`` beside them, ``run_id`` lists the
    runs, ``gpu_hours`` and ``gpu_hours_idle`` are sums, ``duration_s`` and ``gpu_util`` means.
    Rows are sorted by ``metric``, best first (:func:`higher_is_better`); rows without a value of
    it (not logged, or NaN) sort last.
    ``strict`` (``labkit compare --metric``): a ``metric`` that no selected run logged is a
    :class:`ConfigError`; ``labkit report`` ranks by each experiment's headline metric unchecked."""
    import pandas as pd

    records = [r for r in records if not is_study(r)]
    extra = [*metrics, *([metric] if metric else [])]
    frame = runs_frame(records, extra)
    system = _system(records)
    if (
        metric
        and strict
        and records
        and metric not in system
        and not any(metric in r.metrics for r in records)
    ):
        have = sorted({k for r in records for k in r.metrics} - {metric})
        raise ConfigError(f"--metric: no selected run logged {metric!r}{did_you_mean(metric, have)}")
    params = [c for c in frame.columns if c.startswith("params.")]
    for name in group_by:
        if f"params.{name}" not in frame.columns and not any(name in r.params for r in records):
            have = sorted({k for r in records for k in r.params})
            raise ConfigError(
                f"--group-by: no parameter {name!r}{did_you_mean(name, have)} among the selected runs"
            )
    if group_by:
        keys = ["experiment", *(f"params.{g}" for g in group_by)]
        for key in keys:
            if key not in frame.columns:
                frame[key] = [r.params.get(key.removeprefix("params.")) for r in records]
    else:
        keys = ["experiment", *(p for p in params if p.removeprefix("params.") not in SEED_PARAMS)]
    lineage = [PARENT_COLUMN] if PARENT_COLUMN in frame.columns else []
    fixed = (*BASE_COLUMNS, *system, *lineage)
    shown = [c for c in frame.columns if c not in fixed and not c.startswith("params.")]
    # one vectorised pass (10 000 runs in well under a second): a group id per row, then aggregates
    group_id = frame[keys].astype(str).groupby(keys, sort=False, dropna=False).ngroup()
    g = frame.groupby(group_id, sort=False)
    out_cols: dict[str, Any] = {
        "run_id": g["run_id"].agg(" ".join),
        "experiment": g["experiment"].first(),
        "user": g["user"].agg(lambda users: ",".join(dict.fromkeys(users))),
        "start": g["start"].min(),
        "status": g["status"].first().where(g["status"].nunique() == 1, "mixed"),
        "duration_s": g["duration_s"].mean(),
        "gpu_hours": g["gpu_hours"].sum(),
        "n": g.size(),
    }
    if system:  # NaN for a group none of whose runs logged gpu_util
        out_cols["gpu_util"] = g["gpu_util"].mean()
        out_cols["gpu_hours_idle"] = g["gpu_hours_idle"].sum(min_count=1)
    if lineage:  # the parents of the group's runs, each once
        out_cols[PARENT_COLUMN] = g[PARENT_COLUMN].agg(lambda p: " ".join(dict.fromkeys(x for x in p if x)))
    out_cols |= {k: g[k].first() for k in keys if k.startswith("params.")}
    if shown:
        means, stds = g[shown].mean(), g[shown].std(ddof=1)
        for m in shown:
            out_cols[m], out_cols[f"{m}_std"] = means[m], stds[m]
    groups = pd.DataFrame(out_cols)
    group_params = [k for k in keys if k.startswith("params.")]
    columns = [
        *BASE_COLUMNS,
        *system,
        "n",
        *lineage,
        *(c for m in shown for c in (m, f"{m}_std")),
        *group_params,
    ]
    out = groups.reindex(columns=columns)
    if metric:
        out = out.sort_values(metric, ascending=not higher_is_better(metric), na_position="last")
    else:
        out = out.sort_values("start", ascending=False, na_position="last")
    out = out.reset_index(drop=True)
    return out.head(top) if top else out
