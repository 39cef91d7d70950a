"""Compound HDF5 datasets laid out like ATLAS flavour-tagging dumps: ``jets`` with named fields
(pt, eta, mass, ntracks, flavour) and ``tracks`` (N, 40) with a ``valid`` flag."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from labkit.data._arrays import FileDataModule
from labkit.data._files import count_rows, event_nbytes, read_arrays
from labkit.errors import DataError

N, M = 200, 40
JET = np.dtype([("pt", "f4"), ("eta", "f4"), ("mass", "f4"), ("ntracks", "i4"), ("flavour", "i4")])
TRACK = np.dtype(
    [("d0", "f4"), ("z0", "f4"), ("pt_frac", "f4"), ("deta", "f4"), ("dphi", "f4"), ("valid", "?")]
)


def ftag_file(path: Path, n: int = N, seed: int = 0, group: str | None = None) -> Path:
    """A file shaped like a flavour-tagging training dump (written by the test)."""
    rng = np.random.default_rng(seed)
    jets = np.zeros(n, JET)
    jets["flavour"] = rng.integers(0, 2, n)
    jets["pt"] = rng.exponential(50.0, n) + 20.0
    jets["eta"] = rng.uniform(-2.5, 2.5, n)
    jets["mass"] = rng.exponential(10.0, n)
    jets["ntracks"] = rng.integers(1, M + 1, n)
    tracks = np.zeros((n, M), TRACK)
    for field in ("d0", "z0", "pt_frac", "deta", "dphi"):
        tracks[field] = rng.normal(size=(n, M))
    tracks["d0"] += 2.0 * jets["flavour"][:, None]  # b jets: displaced tracks
    tracks["valid"] = np.arange(M)[None, :] < jets["ntracks"][:, None]
    for field in ("d0", "z0", "pt_frac", "deta", "dphi"):
        tracks[field][~tracks["valid"]] = np.nan  # padding, as real dumps write it
    with h5py.File(path, "a") as f:
        where = f.require_group(group) if group else f
        where["jets"] = jets
        where["tracks"] = tracks
    return path


def test_a_field_of_a_compound_dataset_is_read_by_dataset_dot_field(tmp_path: Path) -> None:
    path = ftag_file(tmp_path / "ftag.h5")
    found = read_arrays(path, ["jets.pt", "jets.flavour"])
    with h5py.File(path) as f:
        jets = f["jets"][()]
    np.testing.assert_array_equal(found["jets.pt"], jets["pt"])
    assert found["jets.flavour"].dtype == np.int32 and found["jets.pt"].shape == (N,)


def test_a_field_inside_a_group_and_a_row_range(tmp_path: Path) -> None:
    path = ftag_file(tmp_path / "ftag.h5", group="train")
    whole = read_arrays(path, ["train/jets.eta"])["train/jets.eta"]
    part = read_arrays(path, ["train/jets.eta", "train/jets.pt"], rows=slice(10, 30))
    np.testing.assert_array_equal(part["train/jets.eta"], whole[10:30])
    assert part["train/jets.pt"].shape == (20,)


def test_rows_slice_every_format(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    np.savez(path, x=np.arange(10.0))
    np.testing.assert_array_equal(read_arrays(path, ["x"], rows=slice(2, 5))["x"], [2.0, 3.0, 4.0])


def test_counting_rows_and_bytes_per_event_reads_no_data(tmp_path: Path) -> None:
    path = ftag_file(tmp_path / "ftag.h5")
    assert count_rows(path, "jets.pt") == N
    assert count_rows(path, "tracks") == N
    assert event_nbytes(path, ["jets.pt", "jets.ntracks"]) == 8
    assert event_nbytes(path, ["tracks"]) == M * TRACK.itemsize
    npz = tmp_path / "a.npz"
    np.savez(npz, x=np.zeros((7, 3)))
    assert count_rows(npz, "x") == 7 and event_nbytes(npz, ["x"]) == 24


def test_an_unknown_field_lists_the_fields(tmp_path: Path) -> None:
    path = ftag_file(tmp_path / "ftag.h5")
    with pytest.raises(
        DataError, match=r"compound dataset 'jets' has no field 'ptt'.*did you mean 'pt'.*pt, eta, mass"
    ):
        read_arrays(path, ["jets.ptt"], fields={"jets.ptt": "data.inputs"})


def test_a_slash_before_a_field_says_to_write_a_dot(tmp_path: Path) -> None:
    path = ftag_file(tmp_path / "ftag.h5")
    with pytest.raises(
        DataError,
        match=r"'jets/pt' \(data.inputs\) names field 'pt' of the compound dataset 'jets'; write it jets.pt",
    ):
        read_arrays(path, ["jets/pt"], fields={"jets/pt": "data.inputs"})


def test_a_missing_key_suggests_a_compound_field(tmp_path: Path) -> None:
    path = ftag_file(tmp_path / "ftag.h5")
    with pytest.raises(DataError, match=r"no dataset 'jets.eat'|no field 'eat'"):
        read_arrays(path, ["jets.eat"])
    with pytest.raises(DataError, match=r"no dataset 'pt'.*dataset.field, e.g. jets.pt"):
        read_arrays(path, ["pt"])


def test_jet_features_train_from_named_fields(tmp_path: Path) -> None:
    path = ftag_file(tmp_path / "ftag.h5")
    dm = FileDataModule(
        path=str(path), inputs=["jets.pt", "jets.eta", "jets.mass"], targets="jets.flavour", seed=0
    )
    arrays = dm.load()
    assert np.asarray(arrays.x).shape == (N, 3)
    assert arrays.input_names == ("jets.pt", "jets.eta", "jets.mass")
    assert sorted(np.unique(arrays.y).tolist()) == [0, 1]


def test_a_compound_dataset_alone_is_its_numeric_fields_but_the_target(tmp_path: Path) -> None:
    path = ftag_file(tmp_path / "ftag.h5")
    arrays = FileDataModule(path=str(path), inputs="jets", targets="jets.flavour", seed=0).load()
    assert arrays.input_names == ("jets.pt", "jets.eta", "jets.mass", "jets.ntracks")
    assert np.asarray(arrays.x).shape == (N, 4)


def test_a_compound_target_named_whole_is_refused_with_its_fields(tmp_path: Path) -> None:
    path = ftag_file(tmp_path / "ftag.h5")
    with pytest.raises(DataError, match=r"'jets' \(data.targets\) is a compound dataset.*jets.flavour"):
        FileDataModule(path=str(path), inputs="jets.pt", targets="jets", seed=0).load()


TRACKS = {"dataset": "tracks", "fields": ["d0", "z0", "pt_frac", "deta", "dphi"], "valid": "valid", "max": 30}


def test_constituents_arrive_as_a_padded_array_and_a_mask(tmp_path: Path) -> None:
    path = ftag_file(tmp_path / "ftag.h5")
    dm = FileDataModule(
        path=str(path),
        inputs=["jets.pt", "jets.eta"],
        targets="jets.flavour",
        constituents={"tracks": TRACKS},
        seed=0,
    )
    arrays = dm.load()
    assert isinstance(arrays.x, dict)
    assert set(arrays.x) == {"features", "tracks", "tracks_valid"}
    assert arrays.x["features"].shape == (N, 2)
    assert arrays.x["tracks"].shape == (N, 30, 5) and arrays.x["tracks"].dtype == np.float32
    assert arrays.x["tracks_valid"].shape == (N, 30) and arrays.x["tracks_valid"].dtype == np.bool_
    with h5py.File(path) as f:
        tracks, jets = f["tracks"][()], f["jets"][()]
    np.testing.assert_array_equal(arrays.x["tracks_valid"], tracks["valid"][:, :30])
    assert np.isfinite(arrays.x["tracks"]).all()  # NaN padding became zeros
    assert (arrays.x["tracks"][~arrays.x["tracks_valid"]] == 0).all()
    real = tracks["valid"][:, :30]
    np.testing.assert_array_equal(arrays.x["tracks"][..., 0][real], tracks["d0"][:, :30][real])
    assert arrays.constituents == {"tracks": ("d0", "z0", "pt_frac", "deta", "dphi")}
    np.testing.assert_array_equal(arrays.y, jets["flavour"])


def test_constituents_without_a_valid_field_are_all_real(tmp_path: Path) -> None:
    path = ftag_file(tmp_path / "ftag.h5")
    spec = {"dataset": "tracks", "fields": ["d0"], "valid": None, "max": None}
    dm = FileDataModule(
        path=str(path), inputs="jets.pt", targets="jets.flavour", constituents={"t": spec}, seed=0
    )
    with pytest.raises(DataError, match=r"data.constituents.t holds NaN/inf in valid entries.*data.nan"):
        dm.load()  # the NaN padding counts as real without a valid field
    dm.nan = {"t": "fill"}
    arrays = dm.load()
    assert isinstance(arrays.x, dict)
    assert arrays.x["t"].shape == (N, M, 1) and arrays.x["t_valid"].all()
    assert np.isfinite(arrays.x["t"]).all()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"dataset": "trk", "fields": ["d0"]}, r"no dataset 'trk' \(data.constituents.tracks.dataset\)"),
        (
            {"dataset": "tracks", "fields": ["d00"]},
            r"compound dataset 'tracks' has no field 'd00' \(data.constituents.tracks.fields\).*d0, z0",
        ),
        (
            {"dataset": "tracks", "fields": ["d0"], "valid": "isvalid"},
            r"no field 'isvalid' \(data.constituents.tracks.valid\)",
        ),
        (
            {"dataset": "plain", "fields": ["d0"]},
            r"'plain' \(data.constituents.tracks.dataset\) has shape.*compound",
        ),
    ],
)
def test_constituent_mistakes_name_the_field(tmp_path: Path, spec: dict[str, object], match: str) -> None:
    path = ftag_file(tmp_path / "ftag.h5")
    with h5py.File(path, "a") as f:
        f["plain"] = np.zeros((N, 4, 2))
    dm = FileDataModule(
        path=str(path), inputs="jets.pt", targets="jets.flavour", constituents={"tracks": spec}, seed=0
    )
    with pytest.raises(DataError, match=match):
        dm.load()


def test_constituents_from_npz_are_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    np.savez(path, x=np.zeros(10), y=np.zeros(10))
    dm = FileDataModule(path=str(path), inputs="x", targets="y", constituents={"t": TRACKS}, seed=0)
    with pytest.raises(DataError, match=r"constituents are read from HDF5 compound datasets, ROOT jagged"):
        dm.load()


def jagged(n: int = 60, seed: int = 0) -> tuple[dict[str, object], list[np.ndarray]]:
    import awkward as ak

    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 12, n)
    pt = [rng.exponential(5.0, c).astype(np.float32) for c in counts]
    columns: dict[str, object] = {
        "jet_pt": rng.exponential(50.0, n),
        "label": rng.integers(0, 2, n),
        "pfcand_pt": ak.Array(pt),
        "pfcand_eta": ak.Array([rng.normal(size=c).astype(np.float32) for c in counts]),
    }
    return columns, pt


@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_jagged_constituents_are_padded_to_max(tmp_path: Path, fmt: str) -> None:
    import awkward as ak

    columns, pt = jagged()
    if fmt == "root":
        import uproot

        path = tmp_path / "j.root"
        with uproot.recreate(path) as f:
            f["events"] = columns
    else:
        path = tmp_path / "j.parquet"
        ak.to_parquet(ak.Array(columns), path)
    spec = {"dataset": "pfcand", "fields": ["pt", "eta"], "valid": None, "max": 8}
    module = FileDataModule(
        path=str(path), inputs=["jet_pt", "jet_pt"], targets="label", constituents={"pf": spec}, seed=0
    )
    arrays = module.load()
    assert isinstance(arrays.x, dict)
    assert arrays.x["pf"].shape == (60, 8, 2) and arrays.x["pf_valid"].shape == (60, 8)
    for i in (0, 1, 2):
        k = min(len(pt[i]), 8)
        assert arrays.x["pf_valid"][i].sum() == k
        np.testing.assert_allclose(arrays.x["pf"][i, :k, 0], pt[i][:k])
        assert (arrays.x["pf"][i, k:] == 0).all()
    spec_no_max = spec | {"max": None}
    with pytest.raises(DataError, match=r"data.constituents.pf.max: give the number of entries"):
        FileDataModule(
            path=str(path), inputs="jet_pt", targets="label", constituents={"pf": spec_no_max}
        ).load()
    bad = spec | {"fields": ["pt", "phi"]}
    with pytest.raises(DataError, match=r"no branch pfcand_phi \(data.constituents.pf.fields\).*pfcand_eta"):
        FileDataModule(path=str(path), inputs="jet_pt", targets="label", constituents={"pf": bad}).load()
