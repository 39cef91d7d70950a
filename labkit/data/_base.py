"""The DataModule every labkit dataset builds on: check, split, normalise, serve."""

from __future__ import annotations

from dataclasses import dataclass, field

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from labkit.errors import DataError

__all__ = ["ArraySplitDataModule", "DataInfo"]


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about the data before it is built."""

    in_shape: tuple[int, ...]
    num_classes: int | None = None
    class_names: tuple[str, ...] = ()
    sizes: dict[str, int] = field(default_factory=dict)


class ArraySplitDataModule(pl.LightningDataModule):
    """Holds samples ``x`` and labels ``y`` in memory and splits them deterministically.

    Subclasses implement :meth:`load`. The split is a permutation drawn from ``seed``, so the
    same seed always gives the same train/val/test samples; normalisation (``standardize``) is
    fitted on the training split only.
    """

    source = "data"  #: how error messages name where the data came from

    def __init__(
        self,
        *,
        batch_size: int = 64,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        num_workers: int = 0,
        seed: int = 0,
        standardize: bool = False,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.num_workers = num_workers
        self.seed = seed
        self.standardize = standardize
        self._splits: dict[str, TensorDataset] = {}
        self._info: DataInfo | None = None

    # -- to implement ----------------------------------------------------------------------
    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Return all samples ``x`` (N, ...) and integer labels ``y`` (N,)."""
        raise NotImplementedError

    def class_names(self, num_classes: int) -> tuple[str, ...]:
        return tuple(str(i) for i in range(num_classes))

    # -- Lightning ---------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return  # idempotent: labkit sets up once before building the model
        x, y = self.load()
        x, y = self._check(x, y)
        n = len(x)
        order = np.random.default_rng(self.seed).permutation(n)
        n_test = max(1, round(self.test_fraction * n))
        n_val = max(1, round(self.val_fraction * n))
        parts = {
            "test": order[:n_test],
            "val": order[n_test : n_test + n_val],
            "train": order[n_test + n_val :],
        }
        if len(parts["train"]) == 0:
            raise DataError(f"{self.source}: {n} samples leave no training data after the split")
        if self.standardize:
            mean = x[parts["train"]].mean(axis=0)
            std = x[parts["train"]].std(axis=0)
            x = (x - mean) / np.where(std > 0, std, 1.0)
        xt, yt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y)
        self._splits = {k: TensorDataset(xt[idx], yt[idx]) for k, idx in parts.items()}
        num_classes = int(y.max()) + 1
        self._info = DataInfo(
            in_shape=tuple(x.shape[1:]),
            num_classes=num_classes,
            class_names=self.class_names(num_classes),
            sizes={k: len(v) for k, v in parts.items()},
        )

    @property
    def info(self) -> DataInfo:
        self.setup()
        assert self._info is not None
        return self._info

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            self._splits[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    # -- checks ------------------------------------------------------------------------------
    def _check(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        src = self.source
        if x.ndim < 2:
            raise DataError(f"{src}: inputs must have shape (N, ...) with one row per sample, got {x.shape}")
        if y.ndim != 1:
            raise DataError(f"{src}: labels must have shape (N,), got {y.shape}")
        if len(x) != len(y):
            raise DataError(f"{src}: {len(x)} input samples but {len(y)} labels")
        if len(x) < 3:
            raise DataError(f"{src}: {len(x)} samples are too few to split into train/val/test")
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise DataError(f"{src}: inputs must be real numbers, got dtype {x.dtype}")
        bad = ~np.isfinite(x)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DataError(f"{src}: inputs hold {int(bad.sum())} NaN/inf values (first at index {first})")
        if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise DataError(f"{src}: labels must be integers 0..K-1 for classification, got dtype {y.dtype}")
        if y.min() < 0:
            raise DataError(f"{src}: labels must be integers 0..K-1, found {int(y.min())}")
        return x.astype(np.float32, copy=False), y.astype(np.int64)
