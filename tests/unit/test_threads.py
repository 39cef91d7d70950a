"""trainer.threads: the count ``auto`` resolves to (pure, no torch), and where its inputs come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit._threads import busy_cpus, cgroup_cpus, resolve_threads
from labkit.runner import JobOptions


def test_a_count_is_taken_as_given() -> None:
    assert resolve_threads(3, allowed=2, cpus=1, omp=1, busy=2.0) == 3


def test_auto_is_the_cpus_this_process_may_use() -> None:
    assert resolve_threads("auto", allowed=8) == 8


@pytest.mark.parametrize(
    ("caps", "expected"),
    [
        ({"quota": 2.5}, 3),  # a cgroup quota of 2.5 CPUs
        ({"cpus": 4}, 4),  # SLURM_CPUS_PER_TASK
        ({"omp": 2}, 2),  # a tuning worker's OMP_NUM_THREADS
        ({"cpus": 4, "omp": 6, "quota": 16.0}, 4),
        ({"cpus": 0}, 8),  # no count: no cap
    ],
)
def test_auto_is_capped_by_the_quota_the_job_and_omp(caps: dict[str, float], expected: int) -> None:
    assert resolve_threads("auto", allowed=8, **caps) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("busy", "expected"), [(0.0, 2), (0.4, 2), (1.0, 1), (2.0, 1), (1.97, 1)])
def test_auto_leaves_the_cpus_other_work_keeps_busy(busy: float, expected: int) -> None:
    assert resolve_threads("auto", allowed=2, busy=busy) == expected


def test_auto_is_at_least_one_thread() -> None:
    assert resolve_threads("auto", allowed=4, busy=7.5, omp=1) == 1


def test_the_job_says_its_cpus_and_omp_threads() -> None:
    job = JobOptions.from_environ({"SLURM_CPUS_PER_TASK": "6", "OMP_NUM_THREADS": "3"})
    assert (job.cpus, job.omp_threads) == (6, 3)
    assert (JobOptions.from_environ({}).cpus, JobOptions.from_environ({}).omp_threads) == (None, None)
    odd = JobOptions.from_environ({"SLURM_CPUS_PER_TASK": "x", "OMP_NUM_THREADS": "4,2"})
    assert (odd.cpus, odd.omp_threads) == (None, None)


def test_cgroup_quota(tmp_path: Path) -> None:
    quota = tmp_path / "cpu.max"
    quota.write_text("250000 100000\n")
    assert cgroup_cpus(quota) == 2.5
    quota.write_text("max 100000\n")
    assert cgroup_cpus(quota) is None
    assert cgroup_cpus(tmp_path / "missing") is None


def test_busy_cpus_reads_proc_stat(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  1 1 1 1 1 1 1 1\ncpu0 100 0 0 100 0 0 0 0\ncpu1 0 0 0 200 0 0 0 0\nintr 5\n")
    assert busy_cpus({0, 1}, seconds=0.0, stat=stat) == 0.0  # unchanged between the two reads
    assert busy_cpus({0}, seconds=0.0, stat=tmp_path / "missing") == 0.0
