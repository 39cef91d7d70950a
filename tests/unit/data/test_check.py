"""``check_data``: the files of a ``data: {name: file}`` section checked without torch, in chunks,
each problem naming the YAML field, the file and (for values) the first bad event."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from labkit.config import FileSpec
from labkit.data._check import check_data
from labkit.errors import DataError
from tests.unit.data.test_compound import TRACKS, ftag_file

N = 3000


def events_file(tmp_path: Path, *, nan_at: int | None = None, name: str = "ev.h5") -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 4))
    if nan_at is not None:
        x[nan_at, 2] = np.nan
    path = tmp_path / name
    with h5py.File(path, "w") as f:
        f["x"], f["y"], f["w"] = x, rng.integers(0, 3, N), rng.uniform(0.5, 1.5, N)
    return path


def spec(path: Path | str, **kwargs: Any) -> FileSpec:
    fields: dict[str, Any] = {"name": "file", "path": str(path), "inputs": "x", "targets": "y"}
    return FileSpec(**(fields | kwargs))


def test_a_good_file_gives_a_summary(tmp_path: Path) -> None:
    summary = check_data(spec(events_file(tmp_path), weights="w"))
    assert summary.events == N and summary.sizes == {"train": 2100, "val": 450, "test": 450}
    assert summary.classes == ("0", "1", "2") and summary.inputs == ("x",)
    text = "\n".join(summary.lines())
    assert "splits: train 2100, val 450, test 450 (seeded random split)" in text
    assert "classes: 3 (0, 1, 2)" in text


@pytest.mark.parametrize("chunk_bytes", [2**30, 1000])  # whole file, and chunks of a few events
def test_nan_names_the_field_the_file_and_the_event(tmp_path: Path, chunk_bytes: int) -> None:
    path = events_file(tmp_path, nan_at=1234)
    with pytest.raises(
        DataError, match=r"ev.h5: 'x' \(data.inputs\) holds 1 NaN/inf values \(first in event 1234\)"
    ):
        check_data(spec(path), chunk_bytes=chunk_bytes)


def test_nan_drop_is_counted_in_the_summary(tmp_path: Path) -> None:
    summary = check_data(spec(events_file(tmp_path, nan_at=1234), nan="drop"), chunk_bytes=1000)
    assert summary.events == N - 1


def test_negative_weights_name_the_event(tmp_path: Path) -> None:
    path = events_file(tmp_path)
    with h5py.File(path, "a") as f:
        w = f["w"][()]
        w[2500] = -1.0
        f["w"][...] = w
    with pytest.raises(
        DataError, match=r"'w' \(data.weights\) holds 1 negative weights \(first in event 2500\)"
    ):
        check_data(spec(path, weights="w"), chunk_bytes=1000)


def test_labels_outside_data_labels_are_named(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"'y' \(data.targets\) holds label 2 .*which data.labels does not name"
    ):
        check_data(spec(events_file(tmp_path), labels={0: "a", 1: "b"}))


def test_more_classes_than_num_classes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"holds 3 classes \(0, 1, 2\), more than task.num_classes: 2"):
        check_data(spec(events_file(tmp_path)), num_classes=2)


def test_fractional_labels(tmp_path: Path) -> None:
    path = events_file(tmp_path)
    with h5py.File(path, "a") as f:
        f["yf"] = np.linspace(0, 1, N)
    with pytest.raises(
        DataError, match=r"'yf' \(data.targets\) holds .* in event 1; class labels must be integers"
    ):
        check_data(spec(path, targets="yf"))
    assert check_data(spec(path, targets="yf"), target_kind="values").classes == ()


def test_a_missing_key_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no dataset 'z' \(data.targets\)"):
        check_data(spec(events_file(tmp_path), targets="z"))


def test_a_glob_with_a_file_that_differs(tmp_path: Path) -> None:
    events_file(tmp_path, name="a.h5")
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["x"], f["y"] = np.zeros((10, 5)), np.zeros(10, int)
    with pytest.raises(
        DataError, match=r"data.path: .*b.h5 holds 'x' as dtype float64, per-event shape \(5,\)"
    ):
        check_data(spec(str(tmp_path / "*.h5")))


def test_given_splits_and_constituents(tmp_path: Path) -> None:
    path = ftag_file(tmp_path / "ftag.h5", n=100, group="train")
    ftag_file(path, n=30, seed=1, group="test")
    summary = check_data(
        spec(
            path,
            inputs="jets",
            targets="jets.flavour",
            splits={"train": "train", "test": "test"},
            constituents={"tracks": TRACKS},
        ),
        chunk_bytes=5000,
    )
    assert summary.sizes == {"train": 85, "val": 15, "test": 30} and summary.given_split
    assert summary.inputs == ("jets.pt", "jets.eta", "jets.mass", "jets.ntracks")
    assert summary.constituents == {"tracks": (30, ("d0", "z0", "pt_frac", "deta", "dphi"))}
    assert any("constituents tracks: up to 30 per event" in line for line in summary.lines())


def test_the_first_chunk_only(tmp_path: Path) -> None:
    summary = check_data(spec(events_file(tmp_path, nan_at=2999)), chunk_bytes=1000, scan_bytes=10_000)
    assert summary.partial is not None and summary.partial < N
    with pytest.raises(DataError, match=r"first in event 2999"):
        check_data(spec(events_file(tmp_path, nan_at=2999)), chunk_bytes=1000, scan_bytes=10**9)


def test_a_root_file_is_read_in_chunks_too(tmp_path: Path) -> None:
    import uproot

    rng = np.random.default_rng(0)
    a = rng.normal(size=N)
    a[1234] = np.inf
    path = tmp_path / "ev.root"
    with uproot.recreate(path) as f:
        f.mktree("events", {"a": "f8", "b": "f8", "y": "i8"})
        f["events"].extend({"a": a, "b": rng.normal(size=N), "y": rng.integers(0, 2, N)})
    with pytest.raises(DataError, match=r"ev.root: 'a' \(data.inputs\) .*first in event 1234"):
        check_data(spec(path, inputs=["a", "b"]), chunk_bytes=1000)
    summary = check_data(spec(path, inputs=["b"]), chunk_bytes=1000, scan_bytes=0)
    assert summary.partial == 62 and summary.events == 62  # 1000 bytes / 16 bytes per event (b, y)
