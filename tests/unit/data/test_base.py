"""What ArraySplitDataModule gives the newer task families: pixel masks, per-event extras for the
test split, and the column names of table inputs."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from labkit.data import FileDataModule
from labkit.errors import DataError

LABELS = {0: "background", 1: "track", 2: "shower"}


def _images(path: Path, n: int = 40, labels: np.ndarray | None = None) -> Path:
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 3, (n, 8, 8)) if labels is None else labels
    with h5py.File(path, "w") as f:
        f["images"] = rng.normal(size=(n, 8, 8)).astype(np.float32) + masks
        f["labels"] = masks
    return path


def _masks(path: Path, **kwargs: object) -> FileDataModule:
    args: dict[str, object] = {
        "inputs": "images",
        "targets": "labels",
        "labels": LABELS,
        "standardize": False,
    }
    return FileDataModule(path=str(path), target_kind="masks", seed=0, **(args | kwargs))


def test_masks_keep_one_label_per_pixel(tmp_path: Path) -> None:
    dm = _masks(_images(tmp_path / "t.h5"))
    info = dm.info
    assert info.in_shape == (8, 8)
    assert info.num_classes == 3
    assert info.class_names == ("background", "track", "shower")
    x, y = next(iter(dm.test_dataloader()))
    assert y.shape == x.shape and y.dtype.is_floating_point is False


def test_masks_without_names_are_numbered(tmp_path: Path) -> None:
    info = _masks(_images(tmp_path / "t.h5"), labels={}).info
    assert info.class_names == ("0", "1", "2")


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.zeros((40, 4, 4)), r"one label per pixel: labels of shape \(N, \.\.\.\) matching the inputs"),
        (np.full((40, 8, 8), 0.5), "pixel labels must be integers"),
        (np.full((40, 8, 8), -1), "pixel labels must be >= 0"),
        (np.full((40, 8, 8), 5), r"pixel labels \[5\] are not in data.labels"),
    ],
    ids=["shape", "fraction", "negative", "unnamed"],
)
def test_bad_masks_name_the_problem(tmp_path: Path, labels: np.ndarray, match: str) -> None:
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((40, 8, 8), np.float32)
        f["labels"] = labels
    with pytest.raises(DataError, match=match):
        _masks(path).setup()


def test_mask_classes_must_be_numbered_from_zero(tmp_path: Path) -> None:
    path = _images(tmp_path / "t.h5", labels=np.ones((40, 8, 8), np.int64))
    with pytest.raises(DataError, match=r"data.labels: pixel classes must be numbered 0..K-1, got \[1, 2\]"):
        _masks(path, labels={1: "track", 2: "shower"}).setup()


def _table(path: Path, n: int = 50) -> Path:
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        f["features"] = rng.normal(size=(n, 3))
        f["features"].attrs["columns"] = np.array(["mjj", "mj1", "tau21"], dtype=h5py.string_dtype())
        f["is_signal"] = rng.integers(0, 2, n)
        f["ratio"] = np.arange(n, dtype=np.float64)
    return path


def test_extras_come_for_the_test_split_in_loader_order(tmp_path: Path) -> None:
    dm = FileDataModule(
        path=str(_table(tmp_path / "d.h5")), inputs="features", targets="is_signal", extras=("ratio",), seed=3
    )
    info = dm.info
    assert info.input_names == ("mjj", "mj1", "tau21")
    ratio = info.extras["ratio"]
    assert len(ratio) == info.sizes["test"]
    with h5py.File(tmp_path / "d.h5") as f:
        features = f["features"][()]
    # the extras follow the rows of the test loader: row i of the test split is event ratio[i]
    x = next(iter(dm.test_dataloader()))[0].numpy()
    first = min(len(x), len(ratio))
    np.testing.assert_allclose(x[:first], features[ratio[:first].astype(int)].astype(np.float32), rtol=1e-5)


def test_a_missing_extra_names_the_key_and_what_the_file_holds(tmp_path: Path) -> None:
    dm = FileDataModule(
        path=str(_table(tmp_path / "d.h5")), inputs="features", targets="is_signal", extras=("lr",), seed=0
    )
    with pytest.raises(DataError, match=r"no dataset 'lr'.*the file holds: features, is_signal, ratio"):
        dm.setup()


def test_columns_given_one_key_each_are_named_by_their_keys(tmp_path: Path) -> None:
    path = tmp_path / "d.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["a"], f["b"], f["y"] = rng.normal(size=30), rng.normal(size=30), rng.integers(0, 2, 30)
    dm = FileDataModule(path=str(path), inputs=["a", "b"], targets="y", seed=0)
    assert dm.info.input_names == ("a", "b")
