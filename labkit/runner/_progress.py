"""Progress output: Rich bars on a terminal, plain periodic lines in logs (SLURM, CI, pipes)."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar

__all__ = ["PlainProgress", "progress_callback"]


def progress_callback(mode: str, stream: TextIO | None = None) -> ProgressBar | None:
    """``auto`` picks Rich bars on a TTY and plain lines elsewhere; ``none`` prints nothing."""
    stream = stream or sys.stderr
    if mode == "auto":
        mode = "rich" if stream.isatty() else "plain"
    if mode == "rich":
        return _rich_bar()
    if mode == "plain":
        return PlainProgress(stream)
    return None


def _rich_bar() -> ProgressBar:
    from lightning.pytorch.callbacks import RichProgressBar

    class RichBar(RichProgressBar):
        def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
            metrics = super().get_metrics(trainer, pl_module)
            metrics.pop("v_num", None)  # the MLflow run id's tail: noise beside the metrics
            return metrics

    return RichBar(leave=True)


class PlainProgress(ProgressBar):
    """One line per epoch with the epoch's metrics, plus a line every ``interval`` seconds
    inside long epochs. Made for log files: no carriage returns, no colours."""

    def __init__(self, stream: TextIO, interval: float = 30.0) -> None:
        super().__init__()
        self.stream = stream
        self.interval = interval
        self._enabled = True
        self._start = self._last = time.monotonic()

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _print(self, text: str) -> None:
        if self._enabled:
            elapsed = time.monotonic() - self._start
            print(f"[{elapsed:8.1f}s] {text}", file=self.stream, flush=True)

    @staticmethod
    def _metrics(trainer: pl.Trainer, prefixes: tuple[str, ...]) -> str:
        items = []
        for key, value in sorted(trainer.callback_metrics.items()):
            if key.startswith(prefixes):
                items.append(f"{key} {float(value):.4g}")
        return "  ".join(items)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._last = time.monotonic()
        self._print(f"training: up to {trainer.max_epochs} epochs of {self.total_train_batches} batches")

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            loss = trainer.callback_metrics.get("train_loss")
            extra = f"  train_loss {float(loss):.4g}" if loss is not None else ""
            self._print(
                f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  "
                f"batch {batch_idx + 1}/{self.total_train_batches}{extra}"
            )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last = time.monotonic()
        self._print(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  step {trainer.global_step}  "
            + self._metrics(trainer, ("train_", "val_"))
        )

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print("test: " + self._metrics(trainer, ("test_",)))
