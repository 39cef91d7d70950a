"""``labkit report`` over an experiment whose headline metric is NaN in every run (issue 14): the
report ranks those runs last instead of failing with a ``--metric`` error that ``report`` has no
option for; ``compare --metric`` names its option and never suggests the name it was given."""

from __future__ import annotations

import math

import pytest

from labkit.errors import ConfigError
from labkit.report import compare_frame
from labkit.report._html import ReportSources, build_report
from labkit.tracking.query import RunRecord


def rec(i: int, experiment: str, task: str, metrics: dict[str, float]) -> RunRecord:
    return RunRecord(
        run_id=f"run{i:02d}",
        experiment=experiment,
        status="FINISHED",
        start_ms=1_700_000_000_000 + i,
        end_ms=1_700_000_090_000 + i,
        params={"seed": "0", "optimizer.lr": str(10.0**-i)},
        metrics=metrics,
        tags={"mlflow.user": "ana", "labkit.task": task},
    )


NAN_SIC = [rec(i, "anomaly", "anomaly", {"test_max_sic": math.nan, "test_auc": 0.5 + i / 10}) for i in (1, 2)]
ALL_NAN = [rec(i, "anomaly", "anomaly", {"test_max_sic": math.nan}) for i in (3, 4)]
GOOD = [rec(i, "digits", "classification", {"test_acc": 0.8 + i / 100}) for i in (5, 6)]
SOURCES = ReportSources(history=lambda run_id, metric: [], figures=lambda run_id: {})


def test_a_report_ranks_by_a_headline_metric_that_has_values() -> None:
    page = build_report([*NAN_SIC, *GOOD], SOURCES)
    assert "ranked by <code>test_auc</code>" in page and "ranked by <code>test_acc</code>" in page


def test_a_report_with_an_all_nan_headline_metric_still_renders_every_experiment() -> None:
    page = build_report([*ALL_NAN, *GOOD], SOURCES)  # failed before: "--metric: no selected run logged"
    assert "ranked by <code>test_max_sic</code>" in page and "ranked by <code>test_acc</code>" in page


def test_nan_rows_sort_last() -> None:
    runs = [
        rec(7, "a", "anomaly", {"test_max_sic": math.nan}),
        *(rec(i, "a", "anomaly", {"test_max_sic": i}) for i in (8, 9)),
    ]
    frame = compare_frame(runs, metric="test_max_sic", strict=False)
    assert frame.run_id.tolist() == ["run09", "run08", "run07"]
    assert sorted(compare_frame(ALL_NAN, metric="test_max_sic").run_id) == ["run03", "run04"]


def test_compare_metric_never_suggests_the_name_it_was_given() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^--metric: no selected run logged 'test_max_si' \(did you mean 'test_max_sic'\?\)$",
    ):
        compare_frame(ALL_NAN, metric="test_max_si")
    with pytest.raises(ConfigError, match=r"^--metric: no selected run logged 'nothing_like_it'$"):
        compare_frame(ALL_NAN, metric="nothing_like_it")
