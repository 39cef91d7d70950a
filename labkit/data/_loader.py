"""The batched data path: in-memory tensors served a batch at a time.

Each step takes a slice of a seeded permutation and indexes every tensor once (no per-item
``__getitem__``, no per-item collate). The order of an epoch depends only on the seed and the
epoch number, so a run resumed at an epoch boundary sees the same batches as one that never
stopped. With ``num_workers > 0`` the same batches come through a plain ``DataLoader`` (its
workers index the tensors a batch at a time).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

__all__ = ["BatchLoader", "EpochOrder", "TensorSplit", "batch_loader", "nbytes", "take", "to_device"]

#: a batch's inputs: one tensor, or named tensors (``Arrays.x`` as a mapping)
Inputs = torch.Tensor | dict[str, torch.Tensor]


@dataclass(frozen=True)
class TensorSplit:
    """One split's tensors, ``(x, y)`` or ``(x, y, w)``, with ``x`` a tensor or named tensors;
    every tensor has one row per event."""

    tensors: tuple[Inputs, ...]

    def __len__(self) -> int:
        first = self.tensors[0]
        return len(next(iter(first.values())) if isinstance(first, dict) else first)


def take(tensors: Sequence[Inputs], idx: torch.Tensor) -> tuple[Inputs, ...]:
    """The rows ``idx`` of every tensor (one indexing operation each)."""
    return tuple({k: v[idx] for k, v in t.items()} if isinstance(t, dict) else t[idx] for t in tensors)


def to_device(tensors: Sequence[Inputs], device: torch.device) -> tuple[Inputs, ...]:
    return tuple(
        {k: v.to(device) for k, v in t.items()} if isinstance(t, dict) else t.to(device) for t in tensors
    )


def nbytes(tensors: Sequence[Inputs]) -> int:
    """The bytes the tensors hold."""
    total = 0
    for t in tensors:
        for v in t.values() if isinstance(t, dict) else (t,):
            total += v.element_size() * v.nelement()
    return total


class EpochOrder(Sampler[int]):
    """The event order of one epoch: a permutation drawn from ``(seed, epoch)`` when
    ``shuffle``, else ``0..n-1``; with ``world_size > 1`` this rank's share (every
    ``world_size``-th event from ``rank``, padded by wrapping round so that every rank takes as
    many events). Lightning calls :meth:`set_epoch` before each epoch; used on its own, each new
    pass takes the next epoch."""

    def __init__(self, n: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> np.ndarray:
        if self.shuffle:
            order = np.random.default_rng((self.seed, self.epoch)).permutation(self.n)
        else:
            order = np.arange(self.n)
        if self.world_size > 1:
            total = math.ceil(self.n / self.world_size) * self.world_size
            order = np.resize(order, total)[self.rank :: self.world_size]
        return order

    def __len__(self) -> int:
        return math.ceil(self.n / self.world_size) if self.world_size > 1 else self.n

    def __iter__(self) -> Iterator[int]:
        order = self.order()
        self.epoch += 1
        return iter(order.tolist())


class BatchLoader:
    """Batches of ``tensors`` in the order of ``order``: ``len()`` batches of ``batch_size``
    events (the last one shorter), each taken with one indexing operation per tensor; the
    batches live where the tensors do (on the accelerator when they were placed there)."""

    def __init__(self, tensors: Sequence[Inputs], *, batch_size: int, order: EpochOrder) -> None:
        self.tensors = tuple(tensors)
        self.batch_size = batch_size
        self.sampler = order  # where Lightning finds set_epoch
        self.batch_sampler = None
        self._device = _device_of(self.tensors)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Inputs, ...]]:
        order = torch.from_numpy(self.sampler.order())
        self.sampler.epoch += 1
        if order.device != self._device:
            order = order.to(self._device)
        for start in range(0, len(order), self.batch_size):
            yield take(self.tensors, order[start : start + self.batch_size])


class _Rows(Dataset[tuple[Inputs, ...]]):
    """The tensors for a ``DataLoader`` whose batch sampler hands over a batch of indices at once."""

    def __init__(self, tensors: Sequence[Inputs]) -> None:
        self.tensors = tuple(tensors)

    def __len__(self) -> int:
        return len(TensorSplit(self.tensors))

    def __getitem__(self, index: int) -> tuple[Inputs, ...]:
        return take(self.tensors, torch.tensor([index]))

    def __getitems__(self, indices: list[int]) -> tuple[Inputs, ...]:
        return take(self.tensors, torch.tensor(indices))


def _as_batch(batch: Any) -> Any:
    return batch  # already a batch: __getitems__ indexed every tensor at once


def batch_loader(
    split: TensorSplit,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> BatchLoader | DataLoader[Any]:
    """The loader of ``split``: a :class:`BatchLoader`, or with ``num_workers > 0`` (and the
    tensors in host memory) a ``DataLoader`` whose workers take whole batches. ``rank`` and
    ``world_size``: this process's share under data parallelism (the ``DataLoader`` leaves that
    to Lightning, which puts a distributed sampler under its batch sampler)."""
    on_host = _device_of(split.tensors).type == "cpu"
    if num_workers > 0 and on_host:
        order = EpochOrder(len(split), shuffle=shuffle, seed=seed)
        return DataLoader(
            _Rows(split.tensors),
            batch_sampler=BatchSampler(order, batch_size=batch_size, drop_last=False),
            collate_fn=_as_batch,
            num_workers=num_workers,
            persistent_workers=True,
        )
    order = EpochOrder(len(split), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)
    return BatchLoader(split.tensors, batch_size=batch_size, order=order)


def _device_of(tensors: Sequence[Inputs]) -> torch.device:
    first = tensors[0]
    return next(iter(first.values())).device if isinstance(first, Mapping) else first.device
