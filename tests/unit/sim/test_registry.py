"""The simulator registry and the public entry points of labkit.sim."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from labkit import sim
from labkit.errors import ConfigError


def test_registry_knows_each_simulator_its_arrays_and_options() -> None:
    assert {"calo", "grf"} <= set(sim.SIMULATORS)
    calo, grf = sim.SIMULATORS["calo"], sim.SIMULATORS["grf"]
    assert calo.name == "calo" and grf.name == "grf" and calo.summary and grf.summary
    assert calo.arrays == {
        "incident_energy": ("n",),
        "showers": ("n", "layers", "radial_bins", "angular_bins"),
        "particle": ("n",),
    }
    assert grf.arrays == {"fields": ("n", "size", "size"), "amplitude": ("n",), "tilt": ("n",)}
    assert grf.option_names() == ("size", "amplitude_range", "tilt_range")
    assert "particle" in calo.option_names() and "n" not in calo.option_names()
    assert "seed" not in calo.option_names()


def test_options_are_read_from_the_signature_with_defaults() -> None:
    assert sim.options("grf") == {"size": 32, "amplitude_range": (0.1, 10.0), "tilt_range": (-3.0, -1.0)}
    calo = sim.options("calo")
    assert calo["particle"] == "electron" and calo["energy_range"] == (1.0, 100.0)
    assert calo["layers"] == 12 and calo["sampling"] == 0.10 and calo["material"] == "pb_lar"


def test_simulate_by_name_equals_the_direct_call() -> None:
    a = sim.simulate("calo", 6, seed=2, particle="mixed", energy_range=(2.0, 4.0))
    b = sim.simulate_calo(6, seed=2, particle="mixed", energy_range=(2.0, 4.0))
    assert isinstance(a, sim.CaloSample)
    assert a.showers.tobytes() == b.showers.tobytes() and a.particle.tobytes() == b.particle.tobytes()
    g = sim.simulate("grf", 4, seed=2, size=8)
    assert isinstance(g, sim.GRFSample)
    assert g.fields.tobytes() == sim.simulate_grf(4, seed=2, size=8).fields.tobytes()
    assert sim.SIMULATORS["grf"](4, seed=2, size=8).fields.tobytes() == g.fields.tobytes()


@pytest.mark.parametrize("name", ["calo", "grf"])
def test_as_arrays_and_write_h5_use_the_same_keys(name: str, tmp_path: Path) -> None:
    options = {"energy_range": (2.0, 3.0)} if name == "calo" else {"size": 8}
    sample = sim.simulate(name, 5, seed=1, **options)
    arrays = sim.as_arrays(sample)
    assert list(arrays) == list(sim.SIMULATORS[name].arrays)
    for key, array in arrays.items():
        assert array is getattr(sample, key)  # no copies
        assert len(array) == 5 and array.ndim == len(sim.SIMULATORS[name].arrays[key])
    path = sim.write_h5(sample, tmp_path / f"{name}.h5")
    with h5py.File(path, "r") as f:
        assert set(f) == set(arrays)
        for key, array in arrays.items():
            np.testing.assert_array_equal(f[key][()], array)
        assert f.attrs["simulator"] == name and f.attrs["seed"] == 1
    other = sample.write(tmp_path / "again.h5")
    with h5py.File(other, "r") as f:
        assert set(f) == set(arrays)


def test_writing_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "f.h5"
    path.write_text("not hdf5")
    sim.simulate("grf", 2, seed=0, size=4).write(path)
    with h5py.File(path, "r") as f:
        assert f["fields"].shape == (2, 4, 4)


def test_unknown_simulator_lists_the_valid_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown simulator 'cal' \(did you mean 'calo'\?\); valid simulators: calo, grf"
    ):
        sim.simulate("cal", 3, seed=0)
    with pytest.raises(ConfigError, match=r"unknown simulator 'lattice'; valid simulators: calo, grf, dijet"):
        sim.options("lattice")


def test_unknown_option_lists_the_valid_ones() -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown option 'partcle' for simulator 'calo' \(did you mean 'particle'\?\); valid options: particle, energy_range",
    ):
        sim.simulate("calo", 3, seed=0, partcle="pion")
    with pytest.raises(
        ConfigError,
        match=r"unknown option 'sigma' for simulator 'grf'; valid options: size, amplitude_range, tilt_range$",
    ):
        sim.simulate("grf", 3, seed=0, sigma=1.0)


def test_non_samples_are_refused() -> None:
    with pytest.raises(
        ConfigError,
        match=r"not a simulator sample: dict \(expected one of CaloSample, GRFSample, DijetSample",
    ):
        sim.as_arrays({"x": np.zeros(3)})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"not a simulator sample: int"):
        sim.write_h5(3, "x.h5")  # type: ignore[arg-type]
