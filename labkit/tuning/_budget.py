"""``search.budget``: what a study has spent, and when it stops claiming new trials.

GPU-hours are counted as a run counts its ``gpu_hours`` (``labkit.runner``'s ``Attempt``: wall
time x the GPUs it trains on), per trial: from the moment a worker claims it (Optuna's
``datetime_start``) to the moment it ends (``datetime_complete``), or to now while it runs, times
the devices recorded on the trial when it was claimed (the user attr ``labkit.devices``). A trial
that trains on no GPU counts as **one device**: a run on CPU logs ``gpu_hours`` 0, but a budget
that a CPU study could never reach would not bound anything. Wall hours count from the study's
first ``labkit tune`` (the study user attr ``labkit.started_at``). Every worker, on any machine
of a SLURM array, reads the same trials from the shared storage before it claims one, and claims
nothing once the sum reaches the budget; running trials finish.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from labkit.config import BudgetConfig, Experiment

__all__ = [
    "DEVICES",
    "STARTED",
    "STOPPED",
    "Spent",
    "budget_lines",
    "counted_devices",
    "spent",
    "stop_reason",
    "trial_devices",
    "trial_gpu_hours",
]

DEVICES = "labkit.devices"  #: trial user attr: the GPUs the trial trains on (0: none, on CPU)
STARTED = "labkit.started_at"  #: study user attr: when the study began (Unix time, seconds)
STOPPED = "labkit.stopped"  #: study user attr: why workers stopped claiming ("" or absent: they did not)


def counted_devices(recorded: object) -> int:
    """The devices a trial's hours are multiplied by: its GPUs, or 1 on CPU (or when unknown)."""
    if isinstance(recorded, bool) or not isinstance(recorded, int):
        return 1
    return max(1, recorded)


@dataclass(frozen=True)
class Spent:
    """What a study has used so far: GPU-hours of its finished and running trials, and wall
    hours since it began (None: the start was not recorded)."""

    gpu_hours: float
    wall_hours: float | None
    running: int = 0  #: trials still running (their hours grow)


def trial_gpu_hours(trial: FrozenTrial, now: datetime) -> float:
    """One trial's GPU-hours: (end or ``now``) - start, times :func:`counted_devices`. Both
    times are Optuna's (naive local time), as is ``now``."""
    start = trial.datetime_start
    if start is None or trial.state == TrialState.WAITING:
        return 0.0
    end = trial.datetime_complete if trial.state.is_finished() else None
    seconds = max(0.0, ((end or now) - start).total_seconds())
    return seconds * counted_devices(trial.user_attrs.get(DEVICES)) / 3600.0


def spent(trials: Iterable[FrozenTrial], started_at: float | None, *, now: float | None = None) -> Spent:
    """The GPU-hours of ``trials`` (every attempt, retried ones too: each used its devices) and
    the wall hours since ``started_at``; ``now``: Unix time (default: the clock)."""
    now = time.time() if now is None else now
    moment = datetime.fromtimestamp(now)
    trials = list(trials)
    gpu = sum(trial_gpu_hours(t, moment) for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    wall = max(0.0, now - started_at) / 3600.0 if started_at is not None else None
    return Spent(gpu_hours=gpu, wall_hours=wall, running=running)


def stop_reason(budget: BudgetConfig | None, used: Spent) -> str | None:
    """Why no further trial may be claimed (the text ``tune status`` shows), or None."""
    if budget is None:
        return None
    if budget.gpu_hours is not None and used.gpu_hours >= budget.gpu_hours:
        return f"budget: {used.gpu_hours:.4g} of {budget.gpu_hours:g} GPU-hours spent"
    if budget.wall_hours is not None and used.wall_hours is not None and used.wall_hours >= budget.wall_hours:
        return f"budget: {used.wall_hours:.4g} of {budget.wall_hours:g} wall hours since the study began"
    return None


def budget_lines(budget: BudgetConfig | None, used: Spent | None) -> list[str]:
    """Spent and remaining, one line per limit (``tune status``)."""
    if budget is None or used is None:
        return []
    lines = []
    if budget.gpu_hours is not None:
        left = max(0.0, budget.gpu_hours - used.gpu_hours)
        lines.append(f"{used.gpu_hours:.4g} of {budget.gpu_hours:g} GPU-hours spent, {left:.4g} left")
    if budget.wall_hours is not None and used.wall_hours is not None:
        left = max(0.0, budget.wall_hours - used.wall_hours)
        lines.append(f"{used.wall_hours:.4g} of {budget.wall_hours:g} wall hours spent, {left:.4g} left")
    return lines


def trial_devices(exp: Experiment) -> int:
    """The GPUs a trial of ``exp`` trains on in this process, as the run counts them (CUDA
    devices x nodes; 0 on CPU or MPS). Imports torch: called by workers, which train anyway."""
    t = exp.trainer
    if t.accelerator in ("cpu", "mps"):
        return 0
    import torch

    if not torch.cuda.is_available():
        return 0
    if t.devices == "auto":
        per_node = torch.cuda.device_count()
    elif isinstance(t.devices, int):
        per_node = t.devices
    else:
        per_node = len(t.devices)
    return per_node * t.num_nodes
