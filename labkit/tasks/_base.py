"""What every labkit task shares: the optimiser set-up and the diagnostic-figure hook."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import lightning.pytorch as pl
import torch
from torch import nn

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

    from labkit.config import OptimizerConfig, TaskSpec
    from labkit.data import DataInfo

__all__ = ["Task", "build_optimizer", "unpack_batch"]


class Task(pl.LightningModule):
    """A LightningModule wrapping a plain ``nn.Module``; it owns loss, metrics and figures.

    Tasks only call ``self.log``; they never talk to a tracker. After testing, the runner asks
    :meth:`figures` for diagnostic figures and :meth:`test_outputs` for the per-event outputs,
    and stores them with the run.
    """

    #: metrics logged during fit that checkpointing, early stopping and schedulers may monitor
    monitorable: ClassVar[tuple[str, ...]] = ("train_loss", "val_loss")

    # -- from the experiment's options and the data, before the task is built ---------------
    # The runner calls these on the class named by the spec's ``target`` (a spec is only a
    # schema): they turn what the data module found into the model's size and the task's
    # arguments, so that mistakes surface before any training.
    @classmethod
    def model_outputs(cls, spec: TaskSpec, info: DataInfo) -> tuple[int, dict[str, Any]]:
        """The model's number of outputs and the task's keyword arguments taken from the data."""
        raise NotImplementedError

    @classmethod
    def model_args(cls, spec: TaskSpec, info: DataInfo) -> dict[str, Any]:
        """What the model is built from besides its output size and its own options: the shape of
        one input sample (a task may feed the model only part of the inputs, or more), and with
        named inputs (jet features and constituents) the shape of each (``input_shapes``)."""
        args: dict[str, Any] = {"in_shape": tuple(info.in_shape)}
        if info.input_shapes:
            args["input_shapes"] = {k: tuple(v) for k, v in info.input_shapes.items()}
        return args

    @classmethod
    def extras(cls, spec: TaskSpec) -> tuple[str, ...]:
        """Per-event arrays of the data the task needs for its test metrics, besides inputs and
        targets (they reach it as ``DataInfo.extras``, test split only)."""
        return ()

    def __init__(self, model: nn.Module, optimizer: OptimizerConfig) -> None:
        super().__init__()
        self.model = model
        self.optimizer_config = optimizer

    def forward(self, x: Any) -> torch.Tensor:  # a tensor, or a dict of tensors (named inputs)
        out: torch.Tensor = self.model(x)
        return out

    def _loss(self, out: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        """The loss of the model's output ``out`` against targets ``y`` (with event weights ``w``)."""
        raise NotImplementedError(f"{type(self).__name__} defines no loss")

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y, w = unpack_batch(batch)
        loss = self._loss(self.model(x), y, w)
        self.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(y))
        return loss

    def configure_optimizers(self) -> Any:
        max_epochs = self.trainer.max_epochs if self._trainer is not None else None
        return build_optimizer(self.parameters(), self.optimizer_config, max(1, max_epochs or 1))

    def figures(self) -> dict[str, Figure]:
        """Diagnostic figures from the last test, by file stem (``confusion_matrix``...)."""
        return {}

    def test_outputs(self) -> dict[str, np.ndarray]:
        """The last test's per-event outputs, one row per test event in the order the test step
        saw them (all DDP ranks' rows, rank by rank): the arrays of ``test_outputs.npz`` (class
        probabilities, predictions in physical units, anomaly scores, weights...). Empty for a
        task that keeps none; the runner adds the spectators and writes the file."""
        return {}

    def gather_rows(self, t: torch.Tensor) -> torch.Tensor:
        """The rows of ``t`` from every DDP rank (each tested a share of the data), or ``t``."""
        if self._trainer is None or self.trainer.world_size == 1:
            return t
        out = self.all_gather(t)
        assert isinstance(out, torch.Tensor)
        return out.reshape(-1, *t.shape[1:])


def build_optimizer(params: Any, cfg: OptimizerConfig, max_epochs: int = 1) -> Any:
    """The optimiser (and scheduler, if any) in the form ``configure_optimizers`` returns.

    Schedulers step once per epoch; ``cosine`` decays to ``min_lr`` over ``max_epochs``.
    """
    if cfg.name == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    else:
        cls = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
        opt = cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = cfg.scheduler
    if sched is None:
        return opt
    scheduler: Any
    if sched.name == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_epochs, eta_min=sched.min_lr)
        return {"optimizer": opt, "lr_scheduler": scheduler}
    if sched.name == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=sched.step_size, gamma=sched.gamma)
        return {"optimizer": opt, "lr_scheduler": scheduler}
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=sched.gamma, patience=sched.patience, min_lr=sched.min_lr
    )
    return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "monitor": sched.monitor}}


def unpack_batch(batch: Any) -> tuple[Any, torch.Tensor, torch.Tensor | None]:
    """A batch of labkit's data modules: ``(x, y)``, or ``(x, y, weights)`` with event weights;
    ``x`` is a tensor, or a dict of tensors for named inputs (features and constituents)."""
    if len(batch) == 3:
        return batch[0], batch[1], batch[2]
    return batch[0], batch[1], None
