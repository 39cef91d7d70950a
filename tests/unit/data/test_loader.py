"""The batched data path: batches by index, the same events every epoch, an order fixed by the
seed and the epoch (so a resumed run sees the same batches), named inputs and weights kept
together, each rank's share under data parallelism."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.fabric.utilities.data import _set_sampler_epoch
from torch.utils.data import BatchSampler, DataLoader

from labkit.data import DigitsDataModule
from labkit.data._loader import BatchLoader, EpochOrder, TensorSplit, _as_batch, _Rows, batch_loader


def _split(n: int = 103) -> TensorSplit:
    x = {
        "features": torch.arange(n, dtype=torch.float32)[:, None] * torch.ones(1, 3),
        "mask": torch.arange(n) % 2 == 0,
    }
    return TensorSplit((x, torch.arange(n), torch.arange(n, dtype=torch.float32) / 10))


def _ids(loader: object) -> list[int]:
    return [int(i) for batch in loader for i in batch[1]]  # type: ignore[attr-defined]


def test_every_event_once_per_epoch_in_an_order_fixed_by_seed_and_epoch() -> None:
    loader = batch_loader(_split(), batch_size=10, shuffle=True, seed=4)
    assert isinstance(loader, BatchLoader)
    assert len(loader) == 11
    first, second = _ids(loader), _ids(loader)
    assert sorted(first) == sorted(second) == list(range(103))
    assert first != second  # reshuffled each epoch
    again = batch_loader(_split(), batch_size=10, shuffle=True, seed=4)
    assert _ids(again) == first
    other = batch_loader(_split(), batch_size=10, shuffle=True, seed=5)
    assert _ids(other) != first


def test_lightning_sets_the_epoch_so_a_resumed_run_sees_the_same_batches() -> None:
    loader = batch_loader(_split(), batch_size=10, shuffle=True, seed=4)
    orders = [_ids(loader) for _ in range(3)]
    resumed = batch_loader(_split(), batch_size=10, shuffle=True, seed=4)
    _set_sampler_epoch(resumed, 2)  # what Lightning's fit loop does before each epoch
    assert _ids(resumed) == orders[2]


def test_unshuffled_batches_keep_the_order_and_named_inputs_and_weights_stay_together() -> None:
    loader = batch_loader(_split(), batch_size=25, shuffle=False)
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [25, 25, 25, 25, 3]
    assert _ids(loader) == list(range(103))
    for x, y, w in batches:
        assert torch.equal(x["features"][:, 0], y.float())
        assert torch.equal(x["mask"], y % 2 == 0)
        assert torch.allclose(w, y.float() / 10)


def test_each_rank_takes_an_equal_share() -> None:
    shares = [
        _ids(batch_loader(_split(), batch_size=8, shuffle=True, seed=1, rank=r, world_size=2))
        for r in range(2)
    ]
    assert len(shares[0]) == len(shares[1]) == 52
    assert set(shares[0]) | set(shares[1]) == set(range(103))


def test_the_worker_path_serves_the_same_batches() -> None:
    split = _split()
    order = EpochOrder(len(split), shuffle=True, seed=4)
    loader = DataLoader(
        _Rows(split.tensors),
        batch_sampler=BatchSampler(order, batch_size=10, drop_last=False),
        collate_fn=_as_batch,
    )
    assert _ids(loader) == _ids(batch_loader(split, batch_size=10, shuffle=True, seed=4))
    assert isinstance(batch_loader(split, batch_size=10, shuffle=True, num_workers=1), DataLoader)


def test_digits_serve_batches_by_index_and_stay_on_the_host_without_an_accelerator() -> None:
    dm = DigitsDataModule(seed=2, batch_size=100)
    dm.trainer = SimpleNamespace(  # type: ignore[assignment]
        global_rank=0, world_size=1, strategy=SimpleNamespace(root_device=torch.device("cpu"))
    )
    loader = dm.train_dataloader()
    assert isinstance(loader, BatchLoader)
    seen = torch.cat([y for _, y in loader])
    assert len(seen) == dm.info.sizes["train"]
    train = dm._splits["train"].tensors[1]
    assert isinstance(train, torch.Tensor)
    assert np.array_equal(np.sort(seen.numpy()), np.sort(train.numpy()))
    assert dm._placed == {}


def _on(device: str) -> SimpleNamespace:
    return SimpleNamespace(
        global_rank=0, world_size=1, strategy=SimpleNamespace(root_device=torch.device(device))
    )


def test_on_device_auto_places_the_data_once_when_it_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    import labkit.data._base as base

    moved: list[str] = []

    def to_device(tensors: tuple[object, ...], device: torch.device) -> tuple[object, ...]:
        moved.append(device.type)
        return tensors

    monkeypatch.setattr(base, "to_device", to_device)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10**6, 10**9))  # 1 MB free
    dm = DigitsDataModule(seed=2, on_device="auto")
    dm.trainer = _on("cuda")  # type: ignore[assignment]
    dm.train_dataloader()
    assert moved == [] and dm._placed == {}  # 1797 digits (0.5 MB) take more than a quarter of 1 MB
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10**9, 10**9))
    dm.train_dataloader()
    dm.val_dataloader()
    assert moved == ["cuda"] * 3 and set(dm._placed) == {"train", "val", "test"}  # each split once
    dm.trainer = None  # type: ignore[assignment]
    assert dm._device_split("test", None) is dm._splits["test"]


def test_on_device_false_keeps_the_data_on_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10**12, 10**12))
    dm = DigitsDataModule(seed=2, on_device=False)
    dm.trainer = _on("cuda")  # type: ignore[assignment]
    dm.train_dataloader()
    assert dm._placed == {}
