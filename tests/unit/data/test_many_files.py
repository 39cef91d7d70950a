"""Several files (a list, glob patterns) read as one dataset, and the files' own train/val/test
split: HDF5 groups inside the files or files of their own."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from labkit.data._arrays import FileDataModule
from labkit.data._files import expand_paths
from labkit.errors import DataError


def write(path: Path, n: int, seed: int, group: str | None = None, dtype: str = "f8") -> Path:
    rng = np.random.default_rng(seed)
    with h5py.File(path, "a") as f:
        where = f.require_group(group) if group else f
        where["x"] = rng.normal(size=(n, 3)).astype(dtype)
        where["y"] = rng.integers(0, 2, n)
    return path


def dm(path: object, **kwargs: object) -> FileDataModule:
    return FileDataModule(path=path, inputs="x", targets="y", seed=0, **kwargs)  # type: ignore[arg-type]


def test_a_glob_over_three_files_reads_them_in_sorted_order(tmp_path: Path) -> None:
    for i, n in enumerate((50, 60, 70)):
        write(tmp_path / f"run_{i}.h5", n, seed=i)
    arrays = dm(str(tmp_path / "run_*.h5")).load()
    assert len(arrays.y) == 180 and arrays.split is None
    with h5py.File(tmp_path / "run_1.h5") as f:
        np.testing.assert_array_equal(np.asarray(arrays.x)[50:110], f["x"][()])
    info = dm(str(tmp_path / "run_*.h5")).info
    assert sum(info.sizes.values()) == 180


def test_a_list_of_paths_and_patterns_is_deduplicated(tmp_path: Path) -> None:
    for i in range(3):
        write(tmp_path / f"run_{i}.h5", 20, seed=i)
    files = expand_paths([str(tmp_path / "run_2.h5"), str(tmp_path / "run_*.h5")])
    assert [p.name for p in files] == ["run_0.h5", "run_1.h5", "run_2.h5"]
    assert len(dm((str(tmp_path / "run_2.h5"), str(tmp_path / "run_*.h5"))).load().y) == 60


def test_a_pattern_matching_nothing_names_data_path_and_the_pattern(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data.path: the pattern '.*nope_\*.h5' matches no file"):
        dm(str(tmp_path / "nope_*.h5")).load()


def test_a_file_that_differs_is_named(tmp_path: Path) -> None:
    write(tmp_path / "a.h5", 20, seed=0)
    write(tmp_path / "b.h5", 20, seed=1, dtype="f4")
    with pytest.raises(
        DataError, match=r"data.path: .*b.h5 holds 'x' as dtype float32.*a.h5 holds dtype float64"
    ):
        dm(str(tmp_path / "*.h5")).load()
    (tmp_path / "b.h5").unlink()
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f["x"] = np.zeros((5, 3))
    with pytest.raises(DataError, match=r"c.h5: no dataset 'y' \(data.targets\)"):
        dm(str(tmp_path / "*.h5")).load()


def test_groups_inside_the_file_are_its_own_split(tmp_path: Path) -> None:
    path = write(tmp_path / "given.h5", 100, seed=0, group="train")
    write(path, 40, seed=1, group="test")
    module = dm(str(path), splits={"train": "train", "test": "test"})
    arrays = module.load()
    assert arrays.split is not None
    assert (arrays.split[:100] == 0).all() and (arrays.split[100:] == 2).all()
    with h5py.File(path) as f:
        np.testing.assert_array_equal(np.asarray(arrays.x)[100:], f["test/x"][()])
    sizes = module.info.sizes
    assert sizes["test"] == 40 and sizes["train"] + sizes["val"] == 100


def test_split_files_and_globs(tmp_path: Path) -> None:
    for i in range(2):
        write(tmp_path / f"train_{i}.h5", 30, seed=i)
    write(tmp_path / "val.h5", 10, seed=5)
    write(tmp_path / "test.h5", 12, seed=6)
    module = dm(
        str(tmp_path / "train_0.h5"),
        splits={
            "train": str(tmp_path / "train_*.h5"),
            "val": str(tmp_path / "val.h5"),
            "test": str(tmp_path / "test.h5"),
        },
    )
    arrays = module.load()
    assert arrays.split is not None
    assert np.bincount(arrays.split).tolist() == [60, 10, 12]
    assert module.info.sizes == {"train": 60, "val": 10, "test": 12}


def test_a_missing_split_group_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "given.h5", 30, seed=0, group="train")
    with pytest.raises(DataError, match=r"given.h5: no dataset 'tset/x'"):
        dm(str(path), splits={"train": "train", "test": "tset"}).load()


def test_a_split_pattern_matching_nothing_names_the_split(tmp_path: Path) -> None:
    path = write(tmp_path / "a.h5", 30, seed=0)
    with pytest.raises(DataError, match=r"data.splits.test: the pattern .* matches no file"):
        dm(str(path), splits={"train": str(path), "test": str(tmp_path / "t_*.h5")}).load()


def test_a_group_split_of_a_non_hdf5_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    np.savez(path, x=np.zeros((10, 2)), y=np.zeros(10))
    with pytest.raises(DataError, match=r"data.splits.train: 'train' names an HDF5 group, but .*a.npz"):
        dm(str(path), splits={"train": "train"}).load()


def test_a_group_written_with_a_slash_is_explained(tmp_path: Path) -> None:
    path = write(tmp_path / "given.h5", 30, seed=0, group="train")
    with pytest.raises(
        DataError, match=r"data.splits.train: '/train' is not a file; an HDF5 group .* \(train\)"
    ):
        dm(str(path), splits={"train": "/train"}).load()


def test_split_files_do_not_read_data_path(tmp_path: Path) -> None:
    write(tmp_path / "tr.h5", 30, seed=0)
    module = dm(str(tmp_path / "unused_*.h5"), splits={"train": str(tmp_path / "tr.h5")})
    assert len(module.load().y) == 30
