"""Cleaning options: ``nan: error|drop|fill`` (one policy or per input) and string class labels
mapped through ``labels:``."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from labkit.data._arrays import FileDataModule
from labkit.errors import DataError

N = 50


def nan_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=N), rng.normal(size=N)
    a[[3, 7]] = np.nan
    b[11] = np.inf
    path = tmp_path / "nan.h5"
    with h5py.File(path, "w") as f:
        f["a"], f["b"], f["y"] = a, b, rng.integers(0, 2, N)
    return path


def dm(path: Path, **kwargs: object) -> FileDataModule:
    return FileDataModule(path=str(path), inputs=["a", "b"], targets="y", seed=0, **kwargs)  # type: ignore[arg-type]


def test_nan_error_names_the_field_the_file_and_the_first_event(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"nan.h5: 'a' \(data.inputs\) holds 2 NaN/inf values \(first in event 3\); set data.nan",
    ):
        dm(nan_file(tmp_path)).load()


def test_nan_drop_removes_the_events_and_says_how_many(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="labkit.data"):
        arrays = dm(nan_file(tmp_path), nan="drop").load()
    assert len(arrays.y) == N - 3 and np.isfinite(np.asarray(arrays.x)).all()
    assert "dropped 3 of 50 events" in caplog.text


def test_nan_fill_writes_the_fill_value(tmp_path: Path) -> None:
    x = np.asarray(dm(nan_file(tmp_path), nan="fill", fill_value=-5.0).load().x)
    assert x.shape == (N, 2) and x[3, 0] == -5.0 and x[11, 1] == -5.0


def test_a_policy_per_input(tmp_path: Path) -> None:
    arrays = dm(nan_file(tmp_path), nan={"a": "drop", "b": "fill"}).load()
    assert len(arrays.y) == N - 2 and np.isfinite(np.asarray(arrays.x)).all()
    with pytest.raises(DataError, match=r"'b' \(data.inputs\) holds 1 NaN/inf values \(first in event 11\)"):
        dm(nan_file(tmp_path), nan={"a": "drop"}).load()


def test_a_policy_for_a_key_that_is_not_an_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data.nan: 'y' is not an input; name a key of data.inputs"):
        dm(nan_file(tmp_path), nan={"y": "drop"}).load()


def test_nan_in_a_target_stays_an_error(tmp_path: Path) -> None:
    path = nan_file(tmp_path)
    with pytest.raises(DataError, match=r"'b' \(data.targets\) holds 1 NaN/inf values \(first in event 11\)"):
        FileDataModule(path=str(path), inputs="a", targets="b", nan="drop", target_kind="values").load()


def test_every_event_dropped_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "all.h5"
    with h5py.File(path, "w") as f:
        f["a"], f["y"] = np.full(5, np.nan), np.zeros(5, int)
    with pytest.raises(DataError, match=r"every event holds NaN/inf in an input"):
        FileDataModule(path=str(path), inputs="a", targets="y", nan="drop").load()


def flavour_files(tmp_path: Path) -> list[Path]:
    flavour = np.array(["b", "light", "light", "b"] * 10)
    x = np.arange(40.0)
    h5 = tmp_path / "s.h5"
    with h5py.File(h5, "w") as f:
        f["x"], f["x2"] = x, -x
        f["flavour"] = flavour.astype("S")
    vlen = tmp_path / "v.h5"
    with h5py.File(vlen, "w") as f:
        f["x"], f["x2"] = x, -x
        f.create_dataset("flavour", data=flavour.tolist(), dtype=h5py.string_dtype())
    pq = tmp_path / "s.parquet"
    pd.DataFrame({"x": x, "x2": -x, "flavour": flavour}).to_parquet(pq)
    csv = tmp_path / "s.csv"
    pd.DataFrame({"x": x, "x2": -x, "flavour": flavour}).to_csv(csv, index=False)
    npz = tmp_path / "s.npz"
    np.savez(npz, x=x, x2=-x, flavour=flavour)
    return [h5, vlen, pq, csv, npz]


@pytest.mark.parametrize("which", range(5), ids=["hdf5", "hdf5-vlen", "parquet", "csv", "npz"])
def test_string_labels_map_through_labels(tmp_path: Path, which: int) -> None:
    path = flavour_files(tmp_path)[which]
    module = FileDataModule(
        path=str(path), inputs=["x", "x2"], targets="flavour", labels={0: "b", 1: "light"}
    )
    arrays = module.load()
    assert arrays.y.tolist()[:4] == [0, 1, 1, 0]
    assert module.info.class_names == ("b", "light")


def test_string_labels_without_labels_show_how_to_write_them(tmp_path: Path) -> None:
    path = flavour_files(tmp_path)[0]
    with pytest.raises(
        DataError,
        match=r"'flavour' \(data.targets\) holds strings \(b, light\), not class numbers; .*labels: \{0: b, 1: light\}",
    ):
        FileDataModule(path=str(path), inputs="x", targets="flavour").load()


def test_a_string_label_missing_from_labels_is_named(tmp_path: Path) -> None:
    path = flavour_files(tmp_path)[0]
    with pytest.raises(DataError, match=r"holds light, which data.labels does not name \(it names: b, c\)"):
        FileDataModule(path=str(path), inputs="x", targets="flavour", labels={0: "b", 1: "c"}).load()
