"""Claims: the head of the WAITING queue, one row in one transaction, Optuna's cache kept right
(SQLite here; PostgreSQL's SKIP LOCKED in tests/integration/tuning/test_claims.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import TrialState

from labkit.config import Experiment
from labkit.tuning import StudyHandle
from labkit.tuning._budget import DEVICES
from tests.unit.tuning.test_tune import _fast

Load = Callable[..., Experiment]


def test_claims_take_the_queue_in_order_and_the_cache_follows(load: Load, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = StudyHandle.create(_fast(load, "search.sampler=random"), "q", url)
    first.ensure_slots(3)
    second = StudyHandle.load("q", url)
    assert [t.state for t in second.trials()] == [TrialState.WAITING] * 3  # second's cache read them
    a, b = first.claim(devices=2), second.claim(devices=1)
    assert a is not None and b is not None
    assert (a[0].number, b[0].number) == (0, 1)
    # each process's Optuna cache sees the other's claim, and its own trial takes parameters
    assert [t.state for t in second.trials()] == [TrialState.RUNNING, TrialState.RUNNING, TrialState.WAITING]
    assert 1e-4 <= b[0].suggest_float("optimizer.lr", 1e-4, 1e-1, log=True) <= 1e-1
    second.study.tell(b[0], 0.5)
    assert [t.state for t in first.trials()][1] == TrialState.COMPLETE
    assert first.storage.get_trial(a[1]).user_attrs[DEVICES] == 2
    assert first.trials()[0].datetime_start is not None  # Optuna's start time, as its own claims set


def test_a_retried_trial_is_claimed_with_this_workers_devices(load: Load, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    handle = StudyHandle.create(_fast(load), "r", url)
    # a retry copies the dead attempt's user attrs, this one included
    handle.study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, user_attrs={DEVICES: 8}))
    claimed = handle.claim(devices=1)
    assert claimed is not None
    assert handle.storage.get_trial(claimed[1]).user_attrs[DEVICES] == 1
    assert handle.claim() is None


def test_a_worker_that_has_read_nothing_yet_claims_and_then_sees_everything(
    load: Load, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    StudyHandle.create(_fast(load, "search.sampler=random"), "fresh", url).ensure_slots(3)
    other = StudyHandle.load("fresh", url)
    done = other.claim()
    assert done is not None
    other.study.tell(done[0], 1.0)
    worker = StudyHandle.load("fresh", url)  # its Optuna cache is empty: claim() adds one trial
    claimed = worker.claim()
    assert claimed is not None and claimed[0].number == 1
    assert 1e-4 <= claimed[0].suggest_float("optimizer.lr", 1e-4, 1e-1, log=True) <= 1e-1
    assert [t.state for t in worker.trials()] == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING]
    worker.study.tell(claimed[0], 2.0)
    assert [t.state for t in worker.trials()][1] == TrialState.COMPLETE
