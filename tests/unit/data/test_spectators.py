"""``data.spectators`` in the data modules: read with the data, kept for the test split in the
order of the test loader, named in ``DataInfo.spectators``; a missing one names the file's columns."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from labkit.data import FileDataModule, SimulatedDataModule
from labkit.errors import DataError


def _table(path: Path, n: int = 60) -> Path:
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        f["x"] = rng.normal(size=(n, 3))
        f["y"] = rng.integers(0, 2, n)
        f["pt"] = np.arange(n, dtype=np.float64)  # the event's row: tells where each test event came from
        f["eta"] = np.where(np.arange(n) % 7 == 0, np.nan, rng.normal(size=n))  # NaN: never seen by the model
        f["flag"] = np.arange(n) % 2 == 0
        f["vec"] = rng.normal(size=(n, 2))
    return path


def test_spectators_follow_the_test_loader(tmp_path: Path) -> None:
    path = _table(tmp_path / "d.h5")
    dm = FileDataModule(path=str(path), inputs="x", targets="y", spectators=("pt", "eta", "flag"), seed=4)
    info = dm.info
    assert info.spectators == ("pt", "eta", "flag")
    assert info.in_shape == (3,)  # the model sees the inputs only
    rows = dm.split_indices("test")
    np.testing.assert_array_equal(info.extras["pt"], rows.astype(np.float64))
    with h5py.File(path) as f:
        np.testing.assert_array_equal(info.extras["eta"], f["eta"][()][rows])  # NaN kept as it is
        x = f["x"][()]
    served = np.concatenate([b[0].numpy() for b in dm.test_dataloader()])
    np.testing.assert_allclose(served, x[info.extras["pt"].astype(int)].astype(np.float32), rtol=1e-5)


def test_spectators_from_a_csv_file(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame(
        {"a": np.arange(30.0), "b": np.ones(30), "y": np.arange(30) % 2, "pt": np.arange(30.0) * 2}
    ).to_csv(path, index=False)
    dm = FileDataModule(path=str(path), inputs=["a", "b"], targets="y", spectators=("pt",), seed=0)
    np.testing.assert_array_equal(dm.info.extras["pt"], 2.0 * dm.split_indices("test"))


def test_a_missing_spectator_names_the_columns_the_file_holds(tmp_path: Path) -> None:
    dm = FileDataModule(
        path=str(_table(tmp_path / "d.h5")), inputs="x", targets="y", spectators=("phi",), seed=0
    )
    with pytest.raises(
        DataError, match=r"no dataset 'phi' \(data\.spectators\); the file holds: eta, flag, pt, vec, x, y$"
    ):
        dm.setup()


def test_a_spectator_holds_one_number_per_event(tmp_path: Path) -> None:
    dm = FileDataModule(
        path=str(_table(tmp_path / "d.h5")), inputs="x", targets="y", spectators=("vec",), seed=0
    )
    with pytest.raises(
        DataError, match=r"'vec' \(data\.spectators\) has shape \(60, 2\); a spectator is one number"
    ):
        dm.setup()


def test_simulated_spectators_default_to_the_per_event_values_the_model_does_not_see(tmp_path: Path) -> None:
    common = {"simulator": "calo", "events": 40, "cache_dir": str(tmp_path), "seed": 0}
    options = {"particle": "mixed", "layers": 2}
    pid = SimulatedDataModule(inputs="showers", targets="particle", parameters=options, **common)  # type: ignore[arg-type]
    assert pid.default_spectators() == ("incident_energy",)
    info = pid.info
    assert info.spectators == ("incident_energy",)
    with h5py.File(pid.cache_file()) as f:
        energy = f["incident_energy"][()]
    np.testing.assert_array_equal(info.extras["incident_energy"], energy[pid.split_indices("test")])
    energy_task = SimulatedDataModule(
        inputs="showers",
        targets="incident_energy",
        parameters=options,
        target_kind="values",
        **common,  # type: ignore[arg-type]
    )
    assert energy_task.default_spectators() == ("particle",)
    named = SimulatedDataModule(
        inputs="showers",
        targets="particle",
        parameters=options,
        spectators=("incident_energy",),
        **common,  # type: ignore[arg-type]
    )
    assert named.info.spectators == ("incident_energy",)
    dijet = SimulatedDataModule(
        simulator="dijet", inputs="features", targets="is_signal", events=10, cache_dir=str(tmp_path)
    )
    assert dijet.default_spectators() == ("likelihood_ratio", "log_likelihood_ratio")
    tracks = SimulatedDataModule(
        simulator="tracks", inputs="images", targets="labels", events=10, cache_dir=str(tmp_path)
    )
    assert tracks.default_spectators() == ("n_tracks",)
    fields = SimulatedDataModule(
        simulator="grf", inputs="fields", targets=["amplitude", "tilt"], cache_dir=str(tmp_path)
    )
    assert fields.default_spectators() == ()
