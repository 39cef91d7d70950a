"""Stopping a run whose training loss is no longer a finite number.

A loss that became NaN or infinite stays so: every further step burns accelerator time for
nothing. :class:`NanStop` looks at the loss after each training step and stops training at the
first non-finite one (on every rank at the same step under DDP), saving nothing: the run keeps
its last good checkpoint and ends FAILED with a one-line reason and the tag ``labkit.failure``
= ``nan``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from labkit.errors import TrainingDiverged

__all__ = ["NanStop"]


class NanStop(Callback):
    """Raises a :class:`~labkit.errors.TrainingDiverged` at the first training step whose loss is NaN or
    infinite; :attr:`reason` then says where (step, epoch, batch) and which checkpoint is the
    last good one."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor):
            value = loss.detach()
            bad = not bool(torch.isfinite(value).all())
        elif isinstance(loss, (int, float)):
            value = torch.tensor(float(loss))
            bad = not bool(torch.isfinite(value))
        else:  # manual optimisation or a step that returned nothing: nothing to look at
            return
        here = bad
        if trainer.world_size > 1:  # every rank stops at the same step, or the collectives hang
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            return
        shown = (
            f"{float(value.float().mean()):g}" if here and value.numel() else "not finite (on another rank)"
        )
        self.reason = (
            f"the training loss is {shown} at step {trainer.global_step} (epoch {trainer.current_epoch}, "
            f"batch {batch_idx}): training stopped, the run is marked FAILED; {_last_good(trainer)}"
        )
        raise TrainingDiverged(self.reason)


def _last_good(trainer: pl.Trainer) -> str:
    """The newest checkpoint saved before the loss went bad (nothing is saved at the bad step)."""
    callback = trainer.checkpoint_callback
    paths = [getattr(callback, "last_model_path", ""), getattr(callback, "best_model_path", "")]
    for path in paths:
        if path and Path(path).is_file():
            return f"the last good checkpoint is {path}"
    return "no checkpoint was saved before (the loss went bad before the first validation)"
