"""Claims on PostgreSQL: workers take the head of the WAITING queue with ``FOR UPDATE SKIP
LOCKED``; no trial is claimed twice, and the study ends with exactly N COMPLETE trials."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from labkit.config import Experiment
from labkit.tuning import StudyHandle
from tests.unit.tuning.test_tune import _fast

pytestmark = [pytest.mark.integration]

Load = Callable[..., Experiment]


def test_workers_on_postgresql_claim_each_trial_once(load: Load, tmp_path: Path, postgres: str) -> None:
    n, workers = 48, 6
    name = f"claims-{tmp_path.name}"
    StudyHandle.create(_fast(load), name, postgres).ensure_slots(n)
    claimed: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def worker() -> None:  # its own storage, engine and connections, as a worker process has
        try:
            handle = StudyHandle.load(name, postgres)
            start.wait()
            while (got := handle.claim(devices=1)) is not None:
                claimed.append(got[0].number)
                handle.study.tell(got[0], float(got[0].number))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert sorted(claimed) == list(range(n)), {k: v for k, v in Counter(claimed).items() if v > 1}
    counts = StudyHandle.load(name, postgres).tally().counts
    assert counts == {"COMPLETE": n}
