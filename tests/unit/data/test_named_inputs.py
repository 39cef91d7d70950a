"""ArraySplitDataModule with named inputs (jet features + constituents with a mask) and with the
files' own train/val/test split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labkit.data import ArraySplitDataModule
from labkit.data._base import Arrays
from labkit.errors import DataError


class _Named(ArraySplitDataModule):
    def __init__(self, arrays: Arrays, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.arrays = arrays

    def load(self) -> Arrays:
        return self.arrays


def _jets(n: int = 200, m: int = 6, seed: int = 0, split: np.ndarray | None = None) -> Arrays:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, m + 1, size=n)
    valid = np.arange(m)[None, :] < counts[:, None]
    tracks = rng.normal(5.0, 3.0, size=(n, m, 3)).astype(np.float32)
    tracks[~valid] = np.nan  # padding may hold anything
    features = rng.normal(100.0, 20.0, size=(n, 2))
    x = {"features": features, "tracks": tracks, "tracks_valid": valid}
    y = rng.integers(0, 2, size=n)
    return Arrays(x=x, y=y, constituents={"tracks": ("pt", "eta", "phi")}, split=split, source="jets.h5")


def test_named_inputs_are_split_and_standardised_over_real_entries() -> None:
    dm = _Named(_jets(), standardize=True, seed=3, batch_size=32)
    dm.setup()
    info = dm.info
    assert info.in_shape == (2,)
    assert info.input_shapes == {"features": (2,), "tracks": (6, 3), "tracks_valid": (6,)}
    assert info.constituents == {"tracks": ("pt", "eta", "phi")}
    x = dm._splits["train"].tensors[0]
    assert isinstance(x, dict)
    assert x["tracks_valid"].dtype == torch.bool
    tracks, valid = x["tracks"].numpy(), x["tracks_valid"].numpy()
    real = tracks[valid]
    assert np.allclose(real.mean(axis=0), 0.0, atol=1e-4)
    assert np.allclose(real.std(axis=0), 1.0, atol=1e-3)
    assert np.all(tracks[~valid] == 0.0)
    assert np.allclose(x["features"].numpy().mean(axis=0), 0.0, atol=1e-4)
    assert set(dm.input_scalings) == {"features", "tracks"}
    assert dm.input_scaling is dm.input_scalings["features"]
    batch = next(iter(dm.train_dataloader()))
    bx, by = batch
    assert set(bx) == {"features", "tracks", "tracks_valid"}
    assert len(bx["tracks"]) == len(bx["features"]) == len(by) == 32


def test_nan_in_a_real_constituent_entry_is_refused() -> None:
    arrays = _jets()
    tracks = arrays.x["tracks"]  # type: ignore[index]
    tracks[4, 0, 1] = np.nan  # the first entry is always real
    with pytest.raises(DataError, match=r"jets.h5: real entries of 'tracks' hold 1 NaN/inf"):
        _Named(arrays).setup()


def test_a_mask_must_be_bool() -> None:
    arrays = _jets()
    x = dict(arrays.x)  # type: ignore[arg-type]
    x["tracks_valid"] = x["tracks_valid"].astype(np.int8)
    with pytest.raises(DataError, match=r"mask 'tracks_valid' must be bool"):
        _Named(Arrays(x=x, y=arrays.y)).setup()


def test_the_files_own_split_is_used_as_given() -> None:
    codes = np.array([0] * 120 + [1] * 30 + [2] * 50, dtype=np.int8)
    dm = _Named(_jets(split=codes), seed=1)
    assert np.array_equal(dm.split_indices("val"), np.arange(120, 150))
    assert np.array_equal(dm.split_indices("test"), np.arange(150, 200))
    train = dm.split_indices("train")
    assert sorted(train.tolist()) == list(range(120))
    assert train.tolist() != list(range(120))  # permuted by the seed
    again = _Named(_jets(split=codes), seed=1).split_indices("train")
    assert np.array_equal(train, again)


def test_val_is_drawn_from_train_when_the_files_give_none() -> None:
    codes = np.array([0] * 150 + [2] * 50, dtype=np.int8)
    dm = _Named(_jets(split=codes), seed=1, val_fraction=0.2)
    val, train = dm.split_indices("val"), dm.split_indices("train")
    assert len(val) == 30 and len(train) == 120
    assert np.all(np.diff(val) > 0)  # in the files' order
    assert set(val.tolist()) | set(train.tolist()) == set(range(150))
    assert np.array_equal(dm.split_indices("test"), np.arange(150, 200))


def test_an_empty_train_split_is_refused() -> None:
    codes = np.array([1] * 100 + [2] * 100, dtype=np.int8)
    with pytest.raises(DataError, match=r"data\.splits: jets\.h5 leaves no events for the train split"):
        _Named(_jets(split=codes)).setup()
