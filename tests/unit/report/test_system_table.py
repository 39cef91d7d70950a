"""``gpu_util`` and ``gpu_hours_idle`` in the comparison table (runs with system metrics)."""

from __future__ import annotations

import math

import pytest

from labkit.errors import ConfigError
from labkit.report import compare_frame, format_table
from labkit.report._table import gpu_use, runs_frame
from labkit.tracking.query import RunRecord


def rec(
    i: int, *, seed: int = 0, hours: float = 2.0, util: float | None = None, hidden: str = "[32]"
) -> RunRecord:
    metrics = {"test_acc": 0.9, "gpu_hours": hours}
    if util is not None:
        metrics["gpu_util"] = util
    return RunRecord(
        run_id=f"run{i:02d}",
        experiment="digits",
        status="FINISHED",
        start_ms=1_000 + i,
        end_ms=2_000 + i,
        params={"seed": str(seed), "model.hidden": hidden},
        metrics=metrics,
        tags={"mlflow.user": "ana", "labkit.task": "classification"},
    )


def test_idle_gpu_hours_are_the_unused_share() -> None:
    assert gpu_use(rec(0, hours=2.0, util=25.0)) == (25.0, pytest.approx(1.5))
    assert gpu_use(rec(0, hours=0.0, util=25.0)) == (25.0, 0.0)
    util, idle = gpu_use(rec(0))  # no system metrics: unknown, not 0
    assert math.isnan(util) and math.isnan(idle)


def test_columns_follow_gpu_hours_when_a_run_logged_gpu_util() -> None:
    frame = runs_frame([rec(0, util=80.0), rec(1, hidden="[64]")])
    columns = list(frame.columns)
    assert columns[columns.index("gpu_hours") + 1 : columns.index("gpu_hours") + 3] == [
        "gpu_util",
        "gpu_hours_idle",
    ]
    assert frame["gpu_util"].tolist()[0] == 80.0 and math.isnan(frame["gpu_util"].tolist()[1])
    assert frame["gpu_hours_idle"].tolist()[0] == pytest.approx(0.4)
    assert math.isnan(frame["gpu_hours_idle"].tolist()[1])  # empty, not 0: not measured


def test_no_gpu_util_no_columns() -> None:
    assert "gpu_util" not in runs_frame([rec(0), rec(1, hidden="[64]")]).columns
    assert "gpu_hours_idle" not in compare_frame([rec(0)]).columns


def test_seeds_group_idle_hours_add_and_utilisation_is_the_mean() -> None:
    frame = compare_frame([rec(0, seed=0, util=20.0), rec(1, seed=1, util=60.0), rec(2, hidden="[64]")])
    row = frame[frame["n"] == 2].iloc[0]
    assert row["gpu_util"] == pytest.approx(40.0)
    assert row["gpu_hours_idle"] == pytest.approx(1.6 + 0.8)
    alone = frame[frame["n"] == 1].iloc[0]
    assert math.isnan(alone["gpu_util"]) and math.isnan(alone["gpu_hours_idle"])
    assert "gpu_util_std" not in frame.columns
    text = format_table(frame, "md")
    assert "| gpu_util | gpu_hours_idle |" in text and "40 %" in text and "2.40" in text


def test_sort_by_gpu_util_or_idle_hours() -> None:
    runs = [rec(0, util=20.0, hidden="[8]"), rec(1, util=90.0, hidden="[16]"), rec(2, hidden="[32]")]
    assert compare_frame(runs, metric="gpu_util")["gpu_util"].tolist()[:2] == [90.0, 20.0]
    idle = compare_frame(runs, metric="gpu_hours_idle")["gpu_hours_idle"].tolist()
    assert idle[:2] == [pytest.approx(0.2), pytest.approx(1.6)]  # fewer idle hours first
    assert math.isnan(idle[2])
    with pytest.raises(ConfigError, match="no selected run logged 'gpu_hours_idle'"):
        compare_frame([rec(0)], metric="gpu_hours_idle")
