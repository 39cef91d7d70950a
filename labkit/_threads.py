"""How many CPU threads a run's torch may use (``trainer.threads``); plain Python, no torch.

``auto`` is the CPUs this process may run on (its affinity mask, ``os.cpu_count()`` where there
is none), at most the cgroup's CPU quota, the job's ``SLURM_CPUS_PER_TASK`` and an
``OMP_NUM_THREADS`` its parent set (a tuning worker's share). It depends on the machine and the
job, never on the load of the moment: the thread count changes results in the last bits, and the
same machine and job must give the same count. (What keeps threads from slowing each other down
on a busy machine is OpenMP's passive wait policy, ``OMP_WAIT_POLICY=PASSIVE``, which must be
set before torch loads.) The environment variables are read at the CLI edge
(:class:`labkit.runner.JobOptions`) and passed in.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

__all__ = ["allowed_cpus", "auto_threads", "cgroup_cpus", "resolve_threads"]


def resolve_threads(
    setting: Literal["auto"] | int,
    *,
    allowed: int,
    quota: float | None = None,
    cpus: int | None = None,
    omp: int | None = None,
) -> int:
    """The thread count for ``setting`` (``trainer.threads``): an int as given; ``auto``: the
    ``allowed`` CPUs (affinity), at most the cgroup ``quota`` (CPUs, rounded up), the job's
    ``cpus`` and ``omp`` (OMP_NUM_THREADS), and at least 1."""
    if setting != "auto":
        return int(setting)
    limit = max(1, allowed)
    if quota is not None:
        limit = min(limit, max(1, math.ceil(quota)))
    for cap in (cpus, omp):
        if cap is not None and cap > 0:
            limit = min(limit, cap)
    return limit


def allowed_cpus() -> set[int]:
    """The CPUs this process may run on (all of ``os.cpu_count()`` where there is no affinity)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return set(range(os.cpu_count() or 1))


def cgroup_cpus(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> float | None:
    """The CPUs a cgroup v2 quota grants (``quota / period``), None without a quota."""
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def auto_threads(setting: Literal["auto"] | int, *, cpus: int | None = None, omp: int | None = None) -> int:
    """:func:`resolve_threads` with what this machine says (affinity, cgroup quota)."""
    if setting != "auto":
        return int(setting)
    return resolve_threads("auto", allowed=len(allowed_cpus()), quota=cgroup_cpus(), cpus=cpus, omp=omp)
