"""Hostile data (issue 14): values in a file never size memory, and odd files give a DataError
naming the file, the key and the problem, never a traceback."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from labkit.data._arrays import FileDataModule
from labkit.data._base import MAX_CLASSES
from labkit.data._files import read_arrays
from labkit.data._simulated import SimulatedDataModule
from labkit.errors import DataError


def _file(tmp_path: Path, y: np.ndarray, x: np.ndarray | None = None) -> Path:
    path = tmp_path / "d.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["x"] = rng.normal(size=(len(y), 3)) if x is None else x
        f["y"] = y
    return path


def _dm(path: Path, **kwargs: object) -> FileDataModule:
    return FileDataModule(path=str(path), inputs="x", targets="y", seed=0, **kwargs)  # type: ignore[arg-type]


def test_sparse_labels_are_the_distinct_values_not_a_billion_classes(tmp_path: Path) -> None:
    y = np.where(np.arange(60) % 2 == 0, 0, 10**9)
    start = time.perf_counter()
    info = _dm(_file(tmp_path, y)).info
    assert time.perf_counter() - start < 10
    assert info.num_classes == 2 and info.class_names == ("0", "1000000000")


def test_an_id_column_as_the_target_is_refused(tmp_path: Path) -> None:
    y = np.arange(5000) * 7  # one label per event
    with pytest.raises(DataError, match=r"target 'y' holds 5000 distinct labels in 5000 events.*id column"):
        _dm(_file(tmp_path, y)).setup()


def test_more_distinct_labels_than_classes_allowed_are_refused(tmp_path: Path) -> None:
    y = np.arange(3 * (MAX_CLASSES + 1)) % (MAX_CLASSES + 1)
    with pytest.raises(DataError, match=rf"holds {MAX_CLASSES + 1} distinct labels.*data.labels"):
        _dm(_file(tmp_path, y)).setup()


def test_negative_labels_are_classes_named_by_their_value(tmp_path: Path) -> None:
    info = _dm(_file(tmp_path, np.tile([-1, 1], 30))).info
    assert info.num_classes == 2 and info.class_names == ("-1", "1")


def test_labels_beyond_int64_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="labels must be integers"):
        _dm(_file(tmp_path, np.tile([0.0, 1e30], 30))).setup()


def test_a_labels_mapping_decides_the_classes(tmp_path: Path) -> None:
    info = _dm(_file(tmp_path, np.tile([0, 10**9], 30)), labels={0: "bkg", 10**9: "sig"}).info
    assert info.num_classes == 2 and info.class_names == ("bkg", "sig")


def test_huge_pixel_labels_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.h5"
    labels = np.zeros((10, 4, 4), np.int64)
    labels[0, 0, 0] = 10**9
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros((10, 4, 4), np.float32)
        f["y"] = labels
    with pytest.raises(DataError, match=rf"pixel labels are class numbers 0..K-1 with K <= {MAX_CLASSES}"):
        _dm(path, target_kind="masks").setup()


@pytest.mark.parametrize("key", ["x", "y"])
def test_a_scalar_dataset_names_the_file_the_dataset_and_its_shape(tmp_path: Path, key: str) -> None:
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros((30, 3)) if key != "x" else np.float64(1.0)
        f["y"] = np.zeros(30, np.int64) if key != "y" else np.int64(1)
    field = "data.inputs" if key == "x" else "data.targets"
    with pytest.raises(DataError, match=rf"d.h5: '{key}' \({field}\) is a single value of shape \(\)"):
        _dm(path).setup()


def test_a_null_dataset_names_the_file_and_dataset(tmp_path: Path) -> None:
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f["x"] = h5py.Empty("f8")
        f["y"] = np.zeros(30, np.int64)
    with pytest.raises(DataError, match=r"d.h5: dataset 'x' \(data.inputs\) is empty"):
        _dm(path).setup()


def test_a_file_with_no_events_says_so(tmp_path: Path) -> None:
    path = _file(tmp_path, np.zeros(0, np.int64), x=np.zeros((0, 3)))
    with pytest.raises(DataError, match=r"d.h5: 'x' holds 0 events"):
        _dm(path).setup()


def test_a_directory_as_data_path_is_not_reported_missing(tmp_path: Path) -> None:
    folder = tmp_path / "events.h5"
    folder.mkdir()
    with pytest.raises(DataError, match=r"data.path: .*events.h5 is a directory, not a file"):
        _dm(folder).setup()


def test_empty_input_or_target_lists_are_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, np.zeros(30, np.int64))
    with pytest.raises(DataError, match=r"data\.inputs names no key"):
        FileDataModule(path=str(path), inputs=[], targets="y").setup()
    with pytest.raises(DataError, match=r"data\.targets names no key"):
        FileDataModule(path=str(path), inputs="x", targets=[]).setup()


def test_a_listing_of_the_files_names_is_bounded(tmp_path: Path) -> None:
    # a file whose "header" is anything, e.g. /proc/self/environ read as CSV, is never echoed whole
    path = tmp_path / "wide.csv"
    names = [f"SECRET_{i}_" + "x" * 1000 for i in range(500)]
    path.write_text(",".join(names) + "\n" + ",".join("1" * 500) + "\n")
    with pytest.raises(
        DataError, match=r"no column 'a'; the file holds: SECRET_0_x+\.\.\., .* and 480 more$"
    ) as exc:
        read_arrays(path, ["a"])
    assert len(str(exc.value)) < 2000


def test_a_reader_error_is_one_short_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"y" * 5000)
    with pytest.raises(DataError, match=r"not a readable HDF5 file") as exc:
        read_arrays(path, ["x"])
    assert len(str(exc.value)) < 400 and "\n" not in str(exc.value)


def test_a_header_only_csv_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("a,b\n")
    with pytest.raises(DataError, match=r"h\.csv: the file has no rows, only a header \(a, b\)"):
        read_arrays(path, ["a", "b"])


@pytest.mark.parametrize(
    ("content", "what"),
    [(b"just some text\n", "not a zip archive"), (b"\x93NUMPY\x01\x00rest", "a single .npy array")],
)
def test_a_file_named_npz_that_is_not_an_archive(tmp_path: Path, content: bytes, what: str) -> None:
    path = tmp_path / "t.npz"
    path.write_bytes(content)
    with pytest.raises(
        DataError, match=rf"t\.npz: not a readable \.npz file \(it is not an \.npz archive: {what}\)"
    ) as exc:
        read_arrays(path, ["x"])
    assert "pickle" not in str(exc.value)


def test_an_npz_of_python_objects_never_suggests_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "o.npz"
    np.savez(path, x=np.array([{}, 1], dtype=object))
    with pytest.raises(DataError, match=r"array 'x' \(data\.inputs\) holds Python objects") as exc:
        read_arrays(path, ["x"], fields={"x": "data.inputs"})
    assert "pickle" not in str(exc.value)


def test_hdf5_links_and_groups_are_told_apart_from_missing_datasets(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(4.0)
        f["dangling"] = h5py.SoftLink("/nowhere")
        f["alias"] = h5py.SoftLink("/x")
        f.create_group("g")
    assert read_arrays(path, ["alias"])["alias"].tolist() == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(
        DataError, match=r"'dangling' \(data\.targets\) is a soft link to '/nowhere', an object"
    ):
        read_arrays(path, ["dangling"], fields={"dangling": "data.targets"})
    with pytest.raises(DataError, match=r"'g' is a group, not a dataset; the file's datasets: x$"):
        read_arrays(path, ["g"])


@pytest.mark.parametrize(
    ("field", "value"), [("inputs", "feilds"), ("targets", "amplitud"), ("weights", "weight")]
)
def test_a_bad_simulated_key_names_its_field(tmp_path: Path, field: str, value: str) -> None:
    args: dict[str, str] = {"inputs": "fields", "targets": "amplitude"} | {field: value}
    dm = SimulatedDataModule(
        simulator="grf",
        events=40,
        parameters={"size": 8},
        cache_dir=str(tmp_path),
        **args,  # type: ignore[arg-type]
    )
    with pytest.raises(DataError, match=rf"grf-40-.*\.h5: no dataset {value!r} \(data\.{field}\)"):
        dm.setup()
