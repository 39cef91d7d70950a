"""How many CPU threads a run's torch may use (``trainer.threads``); plain Python, no torch.

``auto`` is the CPUs this process may run on (its affinity mask, ``os.cpu_count()`` where there
is none), at most the cgroup's CPU quota, the job's ``SLURM_CPUS_PER_TASK`` and an
``OMP_NUM_THREADS`` its parent set (a tuning worker's share), and no more than the CPUs that are
idle right now: on a machine where other processes keep CPUs busy, threads that wait on each
other for a CPU make a fit many times slower than one thread does. The environment variables are
read at the CLI edge (:class:`labkit.runner.JobOptions`) and passed in.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Literal

__all__ = ["allowed_cpus", "auto_threads", "busy_cpus", "cgroup_cpus", "resolve_threads"]

#: how long :func:`busy_cpus` watches the CPUs
SAMPLE_S = 0.1


def resolve_threads(
    setting: Literal["auto"] | int,
    *,
    allowed: int,
    quota: float | None = None,
    cpus: int | None = None,
    omp: int | None = None,
    busy: float = 0.0,
) -> int:
    """The thread count for ``setting`` (``trainer.threads``): an int as given; ``auto``: the
    ``allowed`` CPUs (affinity), at most the cgroup ``quota`` (CPUs, rounded up), the job's
    ``cpus`` and ``omp`` (OMP_NUM_THREADS), less the CPUs other processes keep ``busy`` (rounded
    to the nearest), and at least 1."""
    if setting != "auto":
        return int(setting)
    limit = max(1, allowed)
    if quota is not None:
        limit = min(limit, max(1, math.ceil(quota)))
    for cap in (cpus, omp):
        if cap is not None and cap > 0:
            limit = min(limit, cap)
    idle = allowed - busy
    return max(1, min(limit, math.floor(idle + 0.5)))


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


def busy_cpus(cpus: set[int], seconds: float = SAMPLE_S, stat: Path = Path("/proc/stat")) -> float:
    """How many of ``cpus`` other work keeps busy: their non-idle share over ``seconds``, summed
    (this process sleeps meanwhile). 0 where ``/proc/stat`` cannot be read (not Linux)."""
    before = _cpu_times(stat, cpus)
    if not before:
        return 0.0
    time.sleep(seconds)
    after = _cpu_times(stat, cpus)
    busy = 0.0
    for cpu, (idle0, total0) in before.items():
        if cpu not in after:
            continue
        idle1, total1 = after[cpu]
        if total1 > total0:
            busy += 1.0 - (idle1 - idle0) / (total1 - total0)
    return busy


def auto_threads(setting: Literal["auto"] | int, *, cpus: int | None = None, omp: int | None = None) -> int:
    """:func:`resolve_threads` with what this machine says now (affinity, cgroup quota, load)."""
    if setting != "auto":
        return int(setting)
    allowed = allowed_cpus()
    return resolve_threads(
        "auto", allowed=len(allowed), quota=cgroup_cpus(), cpus=cpus, omp=omp, busy=busy_cpus(allowed)
    )


def _cpu_times(stat: Path, cpus: set[int]) -> dict[int, tuple[int, int]]:
    """Per CPU of ``cpus``: (idle + iowait, total) clock ticks from ``/proc/stat``."""
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return {}
    times: dict[int, tuple[int, int]] = {}
    for line in lines:
        parts = line.split()
        if not parts or not parts[0].startswith("cpu") or parts[0] == "cpu":
            continue
        name, fields = parts[0], parts[1:]
        try:
            cpu, ticks = int(name[3:]), [int(v) for v in fields[:8]]
        except ValueError:
            continue
        if cpu in cpus and len(ticks) >= 5:
            times[cpu] = (ticks[3] + ticks[4], sum(ticks))
    return times
