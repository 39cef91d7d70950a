"""``search.budget``: the GPU-hour arithmetic, the stop rule and where it is recorded (no training:
trials are claimed and told by hand on a SQLite study)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from labkit.config import BudgetConfig, Experiment
from labkit.tuning import StudyHandle
from labkit.tuning._budget import (
    DEVICES,
    STARTED,
    STOPPED,
    Spent,
    budget_lines,
    counted_devices,
    spent,
    stop_reason,
    trial_gpu_hours,
)
from labkit.tuning._tune import study_report
from tests.unit.tuning.test_tune import _fast

Load = Callable[..., Experiment]
NOW = datetime(2026, 12, 7, 12, 0, 0)


def _trial(
    state: TrialState, hours: float | None, devices: object = None, *, ended: bool = True
) -> FrozenTrial:
    start = NOW - timedelta(hours=hours) if hours is not None else None
    return FrozenTrial(
        number=0,
        state=state,
        value=1.0 if state == TrialState.COMPLETE else None,
        datetime_start=start,
        datetime_complete=NOW if state.is_finished() and ended else None,
        params={},
        distributions={},
        user_attrs={} if devices is None else {DEVICES: devices},
        system_attrs={},
        intermediate_values={},
        trial_id=0,
    )


def test_gpu_hours_are_hours_times_devices_and_cpu_counts_as_one() -> None:
    assert trial_gpu_hours(_trial(TrialState.COMPLETE, 2.0, 4), NOW) == 8.0
    assert trial_gpu_hours(_trial(TrialState.PRUNED, 1.5, 0), NOW) == 1.5  # CPU: one device
    assert trial_gpu_hours(_trial(TrialState.FAIL, 0.5), NOW) == 0.5  # devices unknown: one
    assert trial_gpu_hours(_trial(TrialState.RUNNING, 0.25, 2), NOW) == 0.5  # so far
    assert trial_gpu_hours(_trial(TrialState.WAITING, None), NOW) == 0.0
    assert [counted_devices(v) for v in (None, 0, 1, 8, True, "2")] == [1, 1, 1, 8, 1, 1]


def test_spent_sums_finished_and_running_trials_and_the_wall_hours() -> None:
    trials = [
        _trial(TrialState.COMPLETE, 2.0, 1),
        _trial(TrialState.RUNNING, 1.0, 2),
        _trial(TrialState.WAITING, None),
    ]
    now = NOW.timestamp()
    used = spent(trials, now - 3 * 3600, now=now)
    assert used == Spent(gpu_hours=4.0, wall_hours=3.0, running=1)
    assert spent([], None, now=now).wall_hours is None


def test_stop_rule_at_the_budget_not_before() -> None:
    budget = BudgetConfig(gpu_hours=50)
    assert stop_reason(budget, Spent(49.9, 1.0)) is None
    assert stop_reason(budget, Spent(50.1, 1.0)) == "budget: 50.1 of 50 GPU-hours spent"
    wall = BudgetConfig(wall_hours=2)
    assert stop_reason(wall, Spent(100.0, 1.9)) is None
    assert stop_reason(wall, Spent(0.0, 2.5)) == "budget: 2.5 of 2 wall hours since the study began"
    assert stop_reason(None, Spent(1e9, 1e9)) is None
    both = BudgetConfig(gpu_hours=10, wall_hours=5)
    assert budget_lines(both, Spent(4.0, 1.0)) == [
        "4 of 10 GPU-hours spent, 6 left",
        "1 of 5 wall hours spent, 4 left",
    ]
    assert budget_lines(None, None) == []


def test_a_spent_budget_stops_claims_and_is_recorded(load: Load, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    exp = _fast(load, "search.budget={gpu_hours: 1.0e-9}")  # the first trial spends it
    handle = StudyHandle.create(exp, "b", url)
    handle.ensure_slots(4)
    claimed = handle.claim(devices=0)
    assert claimed is not None
    trial, trial_id = claimed
    assert handle.storage.get_trial(trial_id).user_attrs[DEVICES] == 0  # written with the claim
    other = StudyHandle.load("b", url)  # another worker (on another node of the array)
    assert other.claim() is None  # the running trial alone has spent it
    handle.study.tell(trial, 1.0)
    assert handle.claim() is None and other.claim() is None
    assert handle.stopped is not None and handle.stopped.startswith("budget: ")
    assert "of 1e-09 GPU-hours spent" in handle.stopped
    states = [t.state for t in handle.trials()]
    assert states.count(TrialState.COMPLETE) == 1 and states.count(TrialState.WAITING) == 3

    report = study_report(handle)
    assert report.stopped == handle.stopped and report.spent is not None
    assert report.budget_lines()[0].startswith(
        f"{report.spent.gpu_hours:.4g} of 1e-09 GPU-hours spent, 0 left"
    )

    # a new session with a larger budget: allowed (not "another search"), and the workers go on
    more = StudyHandle.create(_fast(load, "search.budget={gpu_hours: 10}"), "b", url)
    assert more.stopped is None
    assert more.claim() is not None


def test_wall_hours_count_from_the_study_start(load: Load, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    handle = StudyHandle.create(_fast(load, "search.budget={wall_hours: 1}"), "w", url)
    started = handle.started_at
    assert started is not None and abs(started - time.time()) < 60
    handle.ensure_slots(2)
    assert handle.claim() is not None
    handle.study.set_user_attr(STARTED, time.time() - 2 * 3600)  # the study began 2 h ago
    assert handle.claim() is None
    assert handle.study.user_attrs[STOPPED].startswith("budget: 2 of 1 wall hours")
    # the start is kept when the study is resumed
    again = StudyHandle.create(_fast(load, "search.budget={wall_hours: 1}"), "w", url)
    assert again.started_at is not None and again.started_at < time.time() - 3600


def test_no_budget_means_no_limit_and_no_record(load: Load, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    handle = StudyHandle.create(_fast(load), "n", url)
    handle.ensure_slots(2)
    for _ in range(2):
        claimed = handle.claim()
        assert claimed is not None
        handle.study.tell(claimed[0], 1.0)
    assert handle.claim() is None and handle.stopped is None
    assert study_report(handle).budget_lines() == []
    assert all(t.state == TrialState.COMPLETE for t in optuna.load_study(study_name="n", storage=url).trials)


def test_the_coordinator_starts_no_worker_once_the_budget_is_spent(load: Load, tmp_path: Path) -> None:
    import io

    from labkit.tuning._tune import _drive

    url = f"sqlite:///{tmp_path / 's.db'}"
    handle = StudyHandle.create(_fast(load, "search.budget={wall_hours: 1}"), "d", url)
    handle.ensure_slots(3)
    handle.study.set_user_attr(STARTED, time.time() - 2 * 3600)
    out = io.StringIO()
    never = ["/nonexistent/labkit-worker"]  # starting it would fail the test
    _drive(handle, "d", url, 2, tmp_path / "logs", out, command=never)
    assert out.getvalue().splitlines() == [
        "labkit tune: 0 finished (0 complete, 0 pruned, 0 failed), 0 running, 3 waiting; "
        f"no more trials ({handle.stopped})"
    ]
    assert handle.stopped is not None and handle.stopped.startswith("budget: 2 of 1 wall hours")
