"""Streaming under a real Lightning Trainer: every train event once per epoch, a new order each
epoch, and the same order after resuming from a checkpoint at an epoch boundary."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn

from labkit.data._arrays import FileDataModule, assemble, keys_of
from labkit.data._base import Arrays
from labkit.data._blocks import Part, StreamSource, files_reader
from labkit.data._stream import StreamingDataModule

N = 2000


#: once FileDataModule streams by itself it is a StreamingDataModule already
_BASES = (
    (FileDataModule,)
    if issubclass(FileDataModule, StreamingDataModule)
    else (StreamingDataModule, FileDataModule)
)


class _Files(*_BASES):  # type: ignore[misc]
    def stream_source(self) -> StreamSource:
        read, layout = files_reader(self.format, self.tree, self.fields())

        def rows(found: Mapping[str, np.ndarray], where: str) -> Arrays:
            return assemble(found, self.inputs, self.targets, self.weights, where, fields=self.fields())

        keys = tuple(keys_of(self.inputs, self.targets, self.weights))
        return StreamSource((Part(self.path),), keys, rows, read=read, layout=layout)


class _Task(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
        self.seen: dict[int, list[int]] = {}

    def training_step(self, batch: Any, _: int) -> torch.Tensor:
        x, y = batch
        self.seen.setdefault(self.current_epoch, []).extend(x[:, 0].round().long().tolist())
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch: Any, _: int) -> None:
        self.log("val_loss", nn.functional.cross_entropy(self.net(batch[0]), batch[1]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _trainer(tmp_path: Path, epochs: int) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )


def test_streamed_fit_and_resume(tmp_path: Path) -> None:
    path = tmp_path / "events.h5"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 3))
    x[:, 0] = np.arange(N)  # each event's number, served unscaled
    with h5py.File(path, "w") as f:
        f["x"], f["y"] = x.astype(np.float32), (x[:, 1] > 0).astype(np.int64)

    def module() -> _Files:
        return _Files(
            path=str(path), inputs="x", targets="y", memory_limit=1000, shuffle_buffer=300, batch_size=64
        )

    pl.seed_everything(0, verbose=False)
    whole, task = module(), _Task()
    _trainer(tmp_path, 2).fit(task, datamodule=whole)
    assert whole.streaming() is not None
    train = set(whole.split_indices("train").tolist())
    for epoch in (0, 1):
        assert sorted(task.seen[epoch]) == sorted(train)  # every train event once per epoch
    assert task.seen[0] != task.seen[1]  # a new order each epoch

    pl.seed_everything(0, verbose=False)
    first, stopped = module(), _Task()
    trainer = _trainer(tmp_path, 1)
    trainer.fit(stopped, datamodule=first)
    assert stopped.seen[0] == task.seen[0]  # (seed, epoch) fixes the order
    trainer.save_checkpoint(tmp_path / "epoch1.ckpt")
    resumed = _Task()
    _trainer(tmp_path, 2).fit(resumed, datamodule=module(), ckpt_path=tmp_path / "epoch1.ckpt")
    assert list(resumed.seen) == [1] and resumed.seen[1] == task.seen[1]  # as if never stopped
