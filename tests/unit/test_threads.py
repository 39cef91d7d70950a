"""trainer.threads: the count ``auto`` resolves to (pure, no torch), and where its inputs come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit._threads import cgroup_cpus, resolve_threads
from labkit.runner import JobOptions


def test_a_count_is_taken_as_given() -> None:
    assert resolve_threads(3, allowed=2, cpus=1, omp=1) == 3


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


def test_auto_is_at_least_one_thread() -> None:
    assert resolve_threads("auto", allowed=0) == 1


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
