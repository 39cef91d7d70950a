"""The HTML report's GPU-use figure: drawn when a run logged ``gpu_util``, absent otherwise."""

from __future__ import annotations

from labkit.report import ReportSources, build_report
from labkit.tracking.query import RunRecord


def rec(i: int, util: float | None) -> RunRecord:
    metrics = {"test_acc": 0.9, "gpu_hours": 1.0}
    if util is not None:
        metrics["gpu_util"] = util
    return RunRecord(
        run_id=f"run{i:02d}abcdef",
        experiment="digits",
        status="FINISHED",
        start_ms=1_000 + i,
        end_ms=2_000 + i,
        params={"seed": str(i)},
        metrics=metrics,
        tags={"mlflow.user": "ana", "labkit.task": "classification"},
    )


def _sources() -> ReportSources:
    return ReportSources(history=lambda run, metric: [], figures=lambda run: {})


def test_the_report_plots_gpu_use_per_run() -> None:
    page = build_report([rec(0, 35.0), rec(1, None), rec(2, 90.0)], _sources())
    assert page.count('alt="GPU use"') == 1 and "<h3>GPU use</h3>" in page
    assert "<th>gpu_util</th><th>gpu_hours_idle</th>" in page  # and the table has the columns


def test_no_gpu_util_no_figure() -> None:
    page = build_report([rec(0, None), rec(1, None)], _sources())
    assert "GPU use" not in page and "gpu_util" not in page
