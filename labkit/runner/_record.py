"""What a run records besides its metrics: its provenance tags, the ratios to the Cramér–Rao
bound, its artifacts; and how a DDP rank leaves once rank 0 has recorded everything."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from labkit._rundir import RunDir
from labkit.config import Experiment
from labkit.tracking import git_state, software_versions, user

if TYPE_CHECKING:
    from labkit.tracking import Tracker

__all__ = ["Attempt", "bound_ratios", "leave_process_group", "run_tags", "upload"]


def run_tags(exp: Experiment, run_dir: RunDir, source: Path | None, command: str | None) -> dict[str, str]:
    """The tags a new run starts with: who, where, which code (writing ``git.diff`` for a dirty
    checkout), which software, and the experiment's own ``tracking.tags``."""
    import platform

    tags = {
        "mlflow.user": user(),
        "mlflow.source.name": str(source) if source else "labkit",
        "mlflow.source.type": "LOCAL",
        "labkit.run_key": run_dir.run_key,
        "labkit.run_dir": str(run_dir.path),
        "labkit.host": platform.node(),
        "labkit.command": command or "",
        "labkit.task": exp.task.kind,
    }
    tags.update({f"labkit.{name}_version": v for name, v in software_versions().items()})
    tags["labkit.version"] = tags.pop("labkit.labkit_version")
    git = git_state(*([source] if source else []), Path.cwd())
    if git is not None:
        tags["mlflow.source.git.commit"] = git.commit
        tags["labkit.git_dirty"] = str(git.dirty).lower()
        if git.branch:
            tags["mlflow.source.git.branch"] = git.branch
        if git.remote:
            tags["mlflow.source.git.repoURL"] = git.remote
        if git.dirty:
            (run_dir.path / "git.diff").write_text(git.patch)
    else:
        tags["labkit.git_dirty"] = "unknown"
    tags.update(exp.tracking.tags)
    return tags


def bound_ratios(reference: dict[str, float], metrics: dict[str, float]) -> dict[str, float]:
    """``test_rmse_T / crb_T`` for each Cramér–Rao bound the data gives: 1 is the best an unbiased
    estimator can do on these test samples."""
    out = {}
    for name, bound in reference.items():
        target = name.removeprefix("crb_")
        if name.startswith("crb_") and f"test_rmse_{target}" in metrics and bound > 0:
            out[f"rmse_over_crb_{target}"] = metrics[f"test_rmse_{target}"] / bound
    return out


def leave_process_group() -> None:
    """DDP: wait until rank 0 has logged everything, then tear the process group down. A rank
    that simply exits aborts in gloo's threads, and srun --kill-on-bad-exit then kills rank 0
    in the middle of its uploads."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def upload(exp: Experiment, tracker: Tracker, run_dir: RunDir, best: Path | None) -> None:
    """The run's config, its uncommitted changes, its figures and (if asked) its best checkpoint."""
    tracker.log_artifact(run_dir.config_file)
    if (run_dir.path / "git.diff").is_file():
        tracker.log_artifact(run_dir.path / "git.diff")
    if run_dir.figures.is_dir():
        tracker.log_artifact(run_dir.figures, "figures")
    if best is not None and exp.tracking.log_checkpoint:
        tracker.log_artifact(best, "checkpoints")


@dataclass
class Attempt:
    """This process's share of the run's wall time (a requeued run has several attempts)."""

    previous_s: float = 0.0  #: wall time of earlier attempts (run.json ``elapsed_s``)
    gpus: int = 0  #: GPUs this attempt trains on (all ranks)
    started: float = field(default_factory=time.monotonic)

    def total_s(self) -> float:
        return self.previous_s + time.monotonic() - self.started

    def gpu_hours(self) -> float:
        return self.total_s() * self.gpus / 3600.0
