from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from labkit.errors import ConfigError
from labkit.report import compare_frame, format_table, higher_is_better, parse_filter, parse_since, select
from labkit.report._table import runs_frame
from labkit.tracking.query import RunRecord

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def rec(
    i: int, *, seed: int = 0, hidden: str = "[32]", acc: float = 0.9, user: str = "ana", days: int = 0
) -> RunRecord:
    start = int((NOW - timedelta(days=days)).timestamp() * 1000) + i
    return RunRecord(
        run_id=f"run{i:02d}",
        experiment="digits",
        status="FINISHED",
        start_ms=start,
        end_ms=start + 90_000,
        params={"seed": str(seed), "model.hidden": hidden, "optimizer.lr": "0.001"},
        metrics={"test_acc": acc, "test_auc": 0.99, "test_loss": 1 - acc, "gpu_hours": 0.5},
        tags={"mlflow.user": user, "labkit.task": "classification"},
    )


def test_direction_per_metric() -> None:
    assert higher_is_better("test_acc") and higher_is_better("test_max_sic") and higher_is_better("test_miou")
    assert not higher_is_better("val_loss") and not higher_is_better("test_rmse_energy")
    assert not higher_is_better("test_classifier_auc") and not higher_is_better("gen_ms_per_shower_b1")


def test_one_row_per_run_with_varying_params_and_headline_metrics() -> None:
    frame = runs_frame([rec(0, hidden="[32]"), rec(1, hidden="[64]", seed=1)])
    assert list(frame.columns) == [
        "run_id",
        "experiment",
        "user",
        "start",
        "status",
        "duration_s",
        "gpu_hours",
        "test_acc",
        "test_auc",
        "params.model.hidden",
        "params.seed",
    ]
    assert frame["duration_s"].tolist() == [90.0, 90.0]  # optimizer.lr is the same: not shown


def test_runs_differing_only_by_seed_are_one_row_with_mean_and_std() -> None:
    runs = [rec(i, seed=i, acc=acc) for i, acc in enumerate((0.90, 0.92, 0.94))]
    runs.append(rec(9, hidden="[64]", acc=0.97))
    frame = compare_frame(runs, metric="test_acc")
    assert frame["n"].tolist() == [1, 3]
    assert frame["params.model.hidden"].tolist() == ["[64]", "[32]"]  # best first
    assert frame.loc[1, "test_acc"] == pytest.approx(0.92)
    assert frame.loc[1, "test_acc_std"] == pytest.approx(0.02)
    assert math.isnan(frame.loc[0, "test_acc_std"])
    assert frame.loc[1, "gpu_hours"] == pytest.approx(1.5)  # GPU-hours add up
    assert "0.92 ± 0.02 (3)" in format_table(frame, "md")


def test_lower_is_better_metrics_sort_ascending_and_top_keeps_the_best() -> None:
    runs = [rec(i, hidden=f"[{8 * (i + 1)}]", acc=0.8 + 0.05 * i) for i in range(4)]
    frame = compare_frame(runs, metric="test_loss", top=2)
    assert frame["test_loss"].tolist() == pytest.approx([0.05, 0.10])


def test_group_by_a_parameter() -> None:
    runs = [rec(0, hidden="[32]"), rec(1, hidden="[64]"), rec(2, hidden="[64]", seed=3)]
    frame = compare_frame(runs, group_by=["model.hidden"], metric="test_acc")
    assert sorted(frame["n"].tolist()) == [1, 2]


def test_csv_parses_with_pandas_and_keeps_full_run_ids() -> None:
    frame = compare_frame([rec(0), rec(1, seed=1)], metric="test_acc")
    back = pd.read_csv(io.StringIO(format_table(frame, "csv")))
    assert {"run_id", "user", "start", "status", "duration_s", "gpu_hours", "test_acc", "n"} <= set(
        back.columns
    )
    assert back.loc[0, "run_id"] == "run00 run01"
    assert pd.read_json(io.StringIO(format_table(frame, "json"))).shape[0] == 1


def test_since_user_and_filter_select_runs() -> None:
    runs = [rec(0, days=40, user="bo"), rec(1, days=2, acc=0.95), rec(2, days=1, acc=0.85, hidden="[64]")]
    since = parse_since("30d", now=NOW)
    assert [r.run_id for r in select(runs, since=since)] == ["run01", "run02"]
    assert [r.run_id for r in select(runs, users=["bo"])] == ["run00"]
    where = parse_filter("metrics.test_acc > 0.9 and params.model.hidden = '[32]'")
    assert [r.run_id for r in select(runs, where=where)] == ["run01"]
    assert [r.run_id for r in select(runs, where=parse_filter("test_acc<=0.85"))] == ["run02"]


def test_since_accepts_dates() -> None:
    assert parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2w", now=NOW) == NOW - timedelta(weeks=2)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: parse_since("last week"), r"--since: cannot read 'last week'; use a duration \(30d"),
        (lambda: parse_filter("test_acc >"), r"--filter: cannot read 'test_acc >'"),
        (
            lambda: select([rec(0)], where=parse_filter("test_accc > 1")),
            r"no selected run .* 'test_accc' \(did you mean 'test_acc'",
        ),
        (
            lambda: compare_frame([rec(0)], metric="test_accc"),
            r"--metric: no selected run logged 'test_accc' \(did you mean",
        ),
        (
            lambda: compare_frame([rec(0)], group_by=["model.hiden"]),
            r"--group-by: no parameter 'model.hiden' \(did you mean 'model.hidden'",
        ),
    ],
    ids=["since", "filter-syntax", "filter-unknown", "metric", "group-by"],
)
def test_bad_options_name_the_option_and_the_choices(call: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        call()  # type: ignore[operator]
