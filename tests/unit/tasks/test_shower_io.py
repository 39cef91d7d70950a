"""Reading showers in the calo layout for ``labkit evaluate``: what a file must hold, the one-line
errors naming the file and the field, and the grid check between files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from labkit import sim
from labkit.errors import DataError
from labkit.tasks._shower_io import FIGURE_GROUPS, read_calo_file
from labkit.tasks._showers import evaluate_showers


def _write(path: Path, *, showers: object = None, energy: object = None, **attrs: object) -> Path:
    with h5py.File(path, "w") as f:
        if showers is not None:
            f["showers"] = showers
        if energy is not None:
            f["incident_energy"] = energy
        for key, value in attrs.items():
            f.attrs[key] = value
    return path


def test_reads_a_file_of_labkit_sim(tmp_path: Path) -> None:
    sample = sim.simulate("calo", 5, seed=1)
    path = sim.write_h5(sample, tmp_path / "s.h5")
    got = read_calo_file(path)
    assert got.showers.shape == (5, 12, 9, 8) and got.showers.dtype == np.float32
    np.testing.assert_array_equal(got.incident_energy, sample.incident_energy)
    np.testing.assert_allclose(got.radial_edges, sample.radial_edges)
    assert got.layer_thickness == 2.0
    got.check_same_grid(got)


def test_falls_back_to_the_grid_attributes(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "g.h5",
        showers=np.zeros((3, 2, 2, 4)),
        energy=np.ones(3),
        radial_edges_rm=[0.0, 1.0, 2.0],
        layer_edges_x0=[0.0, 1.5, 3.0],
    )
    got = read_calo_file(path)
    assert got.layer_thickness == 1.5 and got.radial_edges.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            {"energy": np.ones(3)},
            r"g\.h5: no dataset 'showers' \(datasets: incident_energy\); is it a calo file\?",
        ),
        ({"showers": np.zeros((3, 2, 2, 4))}, r"no dataset 'incident_energy' \(datasets: showers\)"),
        ({"showers": np.zeros((3, 2, 2)), "energy": np.ones(3)}, r"dataset 'showers' has shape \(3, 2, 2\)"),
        (
            {"showers": np.zeros((3, 2, 2, 4)), "energy": np.ones(4)},
            r"'incident_energy' has shape \(4,\); expected \(3,\)",
        ),
        ({"showers": np.zeros((3, 2, 2, 4)), "energy": np.ones(3)}, r"g\.h5: no attribute 'radial_edges'"),
        (
            {"showers": np.zeros((3, 2, 2, 4)), "energy": np.ones(3), "radial_edges": [0.0, 1.0]},
            r"attribute 'radial_edges' has 2 edges for 2 radial bins",
        ),
        (
            {"showers": np.zeros((3, 2, 2, 4)), "energy": np.ones(3), "radial_edges": [0.0, 1.0, 2.0]},
            r"g\.h5: no attribute 'layer_thickness'",
        ),
    ],
)
def test_errors_name_the_file_and_the_field(tmp_path: Path, content: dict[str, object], match: str) -> None:
    path = _write(tmp_path / "g.h5", **content)
    with pytest.raises(DataError, match=match):
        read_calo_file(path)


def test_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"none\.h5: no such file"):
        read_calo_file(tmp_path / "none.h5")
    text = tmp_path / "notes.h5"
    text.write_text("not HDF5")
    with pytest.raises(DataError, match=r"notes\.h5: not an HDF5 file"):
        read_calo_file(text)


def test_files_on_other_grids_are_refused(tmp_path: Path) -> None:
    base = {"showers": np.zeros((3, 2, 2, 4)), "energy": np.ones(3)}
    a = read_calo_file(_write(tmp_path / "a.h5", **base, radial_edges=[0.0, 1.0, 2.0], layer_thickness=2.0))
    b = read_calo_file(_write(tmp_path / "b.h5", **base, radial_edges=[0.0, 1.0, 3.0], layer_thickness=2.0))
    c = read_calo_file(_write(tmp_path / "c.h5", **base, radial_edges=[0.0, 1.0, 2.0], layer_thickness=1.0))
    d = read_calo_file(
        _write(
            tmp_path / "d.h5",
            showers=np.zeros((3, 2, 2, 8)),
            energy=np.ones(3),
            radial_edges=[0, 1, 2],
            layer_thickness=2,
        )
    )
    with pytest.raises(DataError, match=r"b\.h5: radial_edges \[0.0, 1.0, 3.0\] differ from .*a\.h5's"):
        a.check_same_grid(b)
    with pytest.raises(DataError, match=r"c\.h5: layer_thickness 1 differs from .*a\.h5's 2"):
        a.check_same_grid(c)
    with pytest.raises(DataError, match=r"d\.h5: showers of shape \(2, 2, 8\) per shower"):
        a.check_same_grid(d)


def test_every_feature_is_in_one_figure() -> None:
    showers = np.random.default_rng(0).gamma(1.0, size=(40, 3, 2, 4))
    r = evaluate_showers(
        showers[:20], showers[20:], energy_generated=np.full(20, 10.0), energy_reference=np.full(20, 10.0),
        radial_edges=(0.0, 1.0, 2.0), low_level=False, energy_bins=(1, 100),
    )  # fmt: skip
    names = list(r.features["reference"])
    groups = [[n for n in names if n.startswith(prefixes)] for _, prefixes in FIGURE_GROUPS.values()]
    assert sorted(n for g in groups for n in g) == sorted(names)
