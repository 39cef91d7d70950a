from __future__ import annotations

import numpy as np
import torch

from labkit.data import DigitsDataModule


def _labels(dm: DigitsDataModule, split: str) -> np.ndarray:
    return dm._splits[split].tensors[1].numpy()


def test_digits_info_and_split_sizes() -> None:
    dm = DigitsDataModule(seed=0)
    info = dm.info
    assert info.in_shape == (1, 8, 8)
    assert info.num_classes == 10
    assert info.sizes == {"test": 270, "val": 270, "train": 1257}
    x, _ = dm._splits["train"].tensors
    assert x.dtype == torch.float32 and float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_split_is_deterministic_and_disjoint() -> None:
    a, b = DigitsDataModule(seed=3), DigitsDataModule(seed=3)
    a.setup(), b.setup()
    for split in ("train", "val", "test"):
        assert torch.equal(a._splits[split].tensors[0], b._splits[split].tensors[0])
    flat = {s: {row.tobytes() for row in a._splits[s].tensors[0].numpy()} for s in ("train", "val", "test")}
    # digits has a few duplicate images; the splits share (almost) none
    assert len(flat["train"] & flat["test"]) <= 2


def test_other_seed_other_split() -> None:
    a, b = DigitsDataModule(seed=1), DigitsDataModule(seed=2)
    a.setup()
    b.setup()
    assert not np.array_equal(_labels(a, "test"), _labels(b, "test"))


def test_train_loader_shuffles_reproducibly() -> None:
    first = next(iter(DigitsDataModule(seed=5, batch_size=16).train_dataloader()))[1]
    again = next(iter(DigitsDataModule(seed=5, batch_size=16).train_dataloader()))[1]
    assert torch.equal(first, again)
