from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from labkit.data import ArrayDataModule
from labkit.errors import DataError


def _arrays(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 5)) + y[:, None]
    return x.astype(np.float64), y


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    x, y = _arrays()
    path = tmp_path / "d.npz"
    np.savez(path, features=x, labels=y)
    return path


@pytest.fixture
def h5(tmp_path: Path) -> Path:
    x, y = _arrays()
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f["group/x"] = x
        f["group/y"] = y
    return path


def test_npz_with_named_keys(npz: Path) -> None:
    dm = ArrayDataModule(path=str(npz), x_key="features", y_key="labels", seed=0)
    assert dm.info.in_shape == (5,)
    assert dm.info.num_classes == 3
    assert sum(dm.info.sizes.values()) == 60


def test_hdf5_with_nested_keys(h5: Path) -> None:
    dm = ArrayDataModule(path=str(h5), x_key="group/x", y_key="group/y", seed=0)
    batch = next(iter(dm.train_dataloader()))
    assert batch[0].shape[1:] == (5,)


def test_standardize_uses_training_split_only(npz: Path) -> None:
    dm = ArrayDataModule(path=str(npz), x_key="features", y_key="labels", seed=0, standardize=True)
    dm.setup()
    train = dm._splits["train"].tensors[0].numpy()
    test = dm._splits["test"].tensors[0].numpy()
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1.0, atol=1e-4)
    assert not np.allclose(test.mean(axis=0), 0.0, atol=1e-3)  # not refitted on test


# ------------------------------------------------------------------------ bad files
def _write_npz(tmp_path: Path, **arrays: np.ndarray) -> Path:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data file not found: .*nothing\.npz \(set data\.path\)"):
        ArrayDataModule(path=str(tmp_path / "nothing.npz")).setup()


def test_missing_key_lists_keys(npz: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"d\.npz: no array 'feature' \(data\.x_key\) \(did you mean 'features'\?\); the file holds: features, labels",
    ):
        ArrayDataModule(path=str(npz), x_key="feature", y_key="labels").setup()


def test_missing_key_in_hdf5(h5: Path) -> None:
    with pytest.raises(DataError, match=r"d\.h5: no dataset 'y' \(data\.y_key\)"):
        ArrayDataModule(path=str(h5), x_key="group/x", y_key="y").setup()


def test_nan_inputs(tmp_path: Path) -> None:
    x, y = _arrays()
    x[7, 2] = np.nan
    path = _write_npz(tmp_path, x=x, y=y)
    with pytest.raises(
        DataError, match=r"bad\.npz: 'x' \(data\.x_key\) holds 1 NaN/inf values \(first in event 7\)"
    ):
        ArrayDataModule(path=str(path)).setup()


def test_length_mismatch(tmp_path: Path) -> None:
    x, y = _arrays()
    with pytest.raises(DataError, match=r"bad.npz: 'y' \(data\.y_key\) has shape \(59,\), 'x' has 60 rows"):
        ArrayDataModule(path=str(_write_npz(tmp_path, x=x, y=y[:-1]))).setup()


def test_non_integer_labels(tmp_path: Path) -> None:
    x, _ = _arrays()
    with pytest.raises(DataError, match=r"labels must be integers for classification"):
        ArrayDataModule(path=str(_write_npz(tmp_path, x=x, y=np.linspace(0, 1, 60)))).setup()


def test_labels_that_are_not_0_to_k_are_classes_in_increasing_order(tmp_path: Path) -> None:
    x, y = _arrays()
    dm = ArrayDataModule(path=str(_write_npz(tmp_path, x=x, y=np.where(y > 0, 211, -11))))
    dm.setup()
    assert dm.info.num_classes == 2 and dm.info.class_names == ("-11", "211")


def test_labels_must_be_one_dimensional(tmp_path: Path) -> None:
    x, y = _arrays()
    with pytest.raises(DataError, match=r"labels must have shape \(N,\)"):
        ArrayDataModule(path=str(_write_npz(tmp_path, x=x, y=np.stack([y, y], axis=1)))).setup()


def test_truncated_hdf5(h5: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.h5"
    cut.write_bytes(h5.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"cut\.h5: not a readable HDF5 file"):
        ArrayDataModule(path=str(cut), x_key="group/x", y_key="group/y").setup()


def test_corrupt_npz(tmp_path: Path) -> None:
    bad = tmp_path / "junk.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match=r"junk\.npz: not a readable \.npz file"):
        ArrayDataModule(path=str(bad)).setup()


def test_unknown_suffix(tmp_path: Path) -> None:
    odd = tmp_path / "data.bin"
    odd.write_bytes(b"")
    with pytest.raises(DataError, match=r"cannot tell the format from the suffix '\.bin'.*data\.format"):
        ArrayDataModule(path=str(odd)).setup()
