"""Every file format, written by the test itself, read into the same events; every bad file
gives a DataError naming the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from labkit.data._arrays import FileDataModule
from labkit.errors import DataError

N = 300
FEATURES = ["e0", "e1", "e2", "e3"]


def events(seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols = {f: rng.normal(size=N) for f in FEATURES}
    cols["energy"] = 10.0 + 2.0 * cols["e0"] - cols["e2"] + 0.1 * rng.normal(size=N)
    cols["weight"] = rng.uniform(0.5, 1.5, size=N)
    cols["label"] = (cols["e1"] > 0).astype(np.int64)
    return cols


def write(tmp_path: Path, fmt: str, cols: dict[str, np.ndarray]) -> Path:
    if fmt == "hdf5":
        path = tmp_path / "events.h5"
        with h5py.File(path, "w") as f:
            for key, value in cols.items():
                f[key] = value
    elif fmt == "npz":
        path = tmp_path / "events.npz"
        np.savez(path, **cols)  # type: ignore[arg-type]
    elif fmt in ("root", "rntuple"):
        import uproot

        path = tmp_path / "events.root"
        with uproot.recreate(path) as f:
            if fmt == "rntuple":  # uproot's default for a dict: ROOT's new RNTuple
                f["events"] = cols
            else:  # the classic TTree most files hold
                f.mktree("events", {k: v.dtype for k, v in cols.items()})
                f["events"].extend(cols)
    elif fmt == "parquet":
        path = tmp_path / "events.parquet"
        pd.DataFrame(cols).to_parquet(path)
    else:
        path = tmp_path / "events.csv"
        pd.DataFrame(cols).to_csv(path, index=False, float_format="%.17g")
    return path


FORMATS = ["hdf5", "npz", "root", "rntuple", "parquet", "csv"]


def regression(path: Path, **kwargs: object) -> FileDataModule:
    args: dict[str, object] = {
        "path": str(path),
        "inputs": FEATURES,
        "targets": ["energy"],
        "weights": "weight",
        "target_kind": "values",
    }
    return FileDataModule(**(args | kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_the_same_events(tmp_path: Path, fmt: str) -> None:
    dm = regression(write(tmp_path, fmt, events()))
    dm.setup()
    info = dm.info
    assert info.in_shape == (4,) and info.target_names == ("energy",) and info.weighted
    assert sum(info.sizes.values()) == N
    reference = regression(write(tmp_path / "..", "hdf5", events()))
    reference.setup()
    assert info.checksum == reference.info.checksum  # same numbers, same checksum, any format
    x, y, w = next(iter(dm.train_dataloader()))
    assert x.shape[1] == 4 and y.shape[1] == 1 and w.ndim == 1


def test_split_is_deterministic_and_targets_are_normalised_on_train(tmp_path: Path) -> None:
    path = write(tmp_path, "hdf5", events())
    a, b = regression(path, seed=3), regression(path, seed=3)
    a.setup()
    b.setup()
    assert all(np.array_equal(a._parts[k], b._parts[k]) for k in ("train", "val", "test"))
    ((mean, std, log),) = a.info.target_scaling
    train_energy = events()["energy"][a._parts["train"]]
    assert mean == pytest.approx(train_energy.mean()) and std == pytest.approx(train_energy.std())
    assert not log


def test_log_targets(tmp_path: Path) -> None:
    dm = regression(write(tmp_path, "hdf5", events()), log_targets=["energy"])
    dm.setup()
    assert dm.info.target_scaling[0][2] is True


def test_labels_from_a_root_tree(tmp_path: Path) -> None:
    dm = FileDataModule(
        path=str(write(tmp_path, "root", events())),
        inputs=FEATURES,
        targets="label",
        labels={0: "background", 1: "signal"},
    )
    dm.setup()
    assert dm.info.num_classes == 2 and dm.info.class_names == ("background", "signal")


# -- bad files and bad keys ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "what"),
    [
        ("hdf5", "dataset"),
        ("npz", "array"),
        ("root", r"branch \(in TTree 'events'\)"),
        ("parquet", "column"),
        ("csv", "column"),
    ],
)
def test_missing_key_names_file_field_and_what_is_there(tmp_path: Path, fmt: str, what: str) -> None:
    path = write(tmp_path, fmt, events())
    with pytest.raises(
        DataError,
        match=rf"events\.\w+: no {what} 'energi' \(data\.targets\) \(did you mean 'energy'\?\); the file holds: e0, ",
    ):
        regression(path, targets=["energi"]).setup()


@pytest.mark.parametrize("fmt", FORMATS)
def test_nan_names_file_key_and_event(tmp_path: Path, fmt: str) -> None:
    cols = events()
    cols["energy"][17] = np.nan
    with pytest.raises(
        DataError,
        match=r"events\.\w+: 'energy' \(data\.targets\) holds 1 NaN/inf values \(first in event 17\)",
    ):
        regression(write(tmp_path, fmt, cols)).setup()


def test_truncated_hdf5(tmp_path: Path) -> None:
    path = write(tmp_path, "hdf5", events())
    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.h5: not a readable HDF5 file"):
        regression(cut).setup()


def test_truncated_root_file(tmp_path: Path) -> None:
    path = write(tmp_path, "root", events())
    cut = tmp_path / "cut.root"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.root: not a readable ROOT file|cut\.root: cannot read branch"):
        regression(cut).setup()


def test_root_tree_must_be_named_when_there_are_several(tmp_path: Path) -> None:
    import uproot

    path = tmp_path / "two.root"
    with uproot.recreate(path) as f:
        for name, seed in (("signal", 1), ("background", 2)):
            cols = events(seed)
            f.mktree(name, {k: v.dtype for k, v in cols.items()})
            f[name].extend(cols)
    with pytest.raises(
        DataError, match=r"two\.root: set data\.tree to one of the file's TTrees: signal, background"
    ):
        regression(path).setup()
    with pytest.raises(DataError, match=r"no TTree 'signl' \(data\.tree\) \(did you mean 'signal'\?\)"):
        regression(path, tree="signl").setup()
    dm = regression(path, tree="background")
    dm.setup()
    assert sum(dm.info.sizes.values()) == N


def test_jagged_root_branch_is_refused(tmp_path: Path) -> None:
    import awkward as ak
    import uproot

    path = tmp_path / "jagged.root"
    with uproot.recreate(path) as f:
        f.mktree("events", {"hits": "var * float64", "energy": np.float64})
        f["events"].extend({"hits": ak.Array([[1.0, 2.0], [3.0]] * (N // 2)), "energy": np.ones(N)})
    with pytest.raises(DataError, match=r"branch 'hits' has a different length in each event"):
        FileDataModule(path=str(path), inputs="hits", targets="energy", target_kind="values").setup()


def test_non_numeric_csv_column(tmp_path: Path) -> None:
    cols = events()
    frame = pd.DataFrame(cols)
    frame["e1"] = ["x"] * N
    path = tmp_path / "text.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"text\.csv: column 'e1' is not numeric"):
        regression(path).setup()


def test_negative_weights(tmp_path: Path) -> None:
    cols = events()
    cols["weight"][3] = -1.0
    with pytest.raises(DataError, match=r"1 event weights are negative"):
        regression(write(tmp_path, "npz", cols)).setup()


def test_log_target_needs_positive_values(tmp_path: Path) -> None:
    cols = events()
    cols["energy"][0] = -5.0
    with pytest.raises(DataError, match=r"target 'energy' has values <= 0 and cannot be regressed in log"):
        regression(write(tmp_path, "npz", cols), log_targets=["energy"]).setup()


def test_unknown_suffix_lists_formats(tmp_path: Path) -> None:
    odd = tmp_path / "events.dat"
    odd.write_text("1,2\n")
    with pytest.raises(
        DataError, match=r"events\.dat: cannot tell the format from the suffix '\.dat'; use one of"
    ):
        regression(odd).setup()


def test_rows_must_match(tmp_path: Path) -> None:
    cols = events()
    path = tmp_path / "ragged.h5"
    with h5py.File(path, "w") as f:
        for key, value in cols.items():
            f[key] = value[:-1] if key == "energy" else value
    with pytest.raises(
        DataError, match=r"ragged\.h5: 'energy' \(data\.targets\) has shape \(299,\), 'e0' has 300 rows"
    ):
        regression(path).setup()
