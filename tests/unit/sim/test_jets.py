"""The jets simulator: seeded, its layout (a compound ``tracks`` dataset with a valid flag), its
physics (the d0 lifetime tail of b-jets), and the exact likelihood ratio recomputed with scipy."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy import stats

from labkit import sim
from labkit.errors import ConfigError
from labkit.sim._jets import TRACK_FIELDS, simulate_jets


@pytest.fixture(scope="module")
def jets() -> sim.JetsSample:
    return simulate_jets(4000, seed=5)


def test_same_seed_same_jets_other_seed_other_jets() -> None:
    a, b = simulate_jets(50, seed=1), simulate_jets(50, seed=1)
    for key in a.as_arrays():
        assert getattr(a, key).tobytes() == getattr(b, key).tobytes()
    assert simulate_jets(50, seed=2).pt.tobytes() != a.pt.tobytes()


def test_layout_and_padding(jets: sim.JetsSample) -> None:
    n = len(jets)
    assert list(jets.as_arrays()) == list(sim.SIMULATORS["jets"].arrays)
    assert jets.tracks.shape == (n, 40)
    assert jets.tracks.dtype.names == (*TRACK_FIELDS, "valid")
    valid = jets.tracks["valid"]
    np.testing.assert_array_equal(valid.sum(axis=1), jets.ntracks)
    assert (valid[:, :-1] | ~valid[:, 1:]).all()  # valid entries first, then padding
    for name in TRACK_FIELDS:
        assert (jets.tracks[name][~valid] == 0).all()
    frac = jets.tracks["pt_frac"]
    has = jets.ntracks > 0
    np.testing.assert_allclose(frac[has].sum(axis=1), 1.0, rtol=1e-5)
    assert (np.diff(frac[has], axis=1)[valid[has][:, 1:]] <= 0).all()  # hardest first
    assert (jets.ntracks == 0).any()  # empty jets exist: models must cope
    assert jets.flavour.sum() == 2000
    assert (jets.pt >= 20).all() and (jets.pt <= 250).all() and (jets.mass > 0).all()


def test_b_jets_have_a_positive_d0_tail(jets: sim.JetsSample) -> None:
    valid, d0 = jets.tracks["valid"], jets.tracks["d0"]
    b = valid & (jets.flavour == 1)[:, None]
    light = valid & (jets.flavour == 0)[:, None]
    assert np.mean(d0[b] > 3) > 0.1  # about 0.35 x 0.9 x P(E + G > 3)
    assert np.mean(d0[light] > 3) < 0.02
    assert np.mean(d0[b] > 3) > 5 * np.mean(d0[b] < -3)  # lifetime-signed: mostly positive


def test_jet_level_variables_overlap_tracks_separate(jets: sim.JetsSample) -> None:
    y = jets.flavour
    auc = {k: _auc(getattr(jets, k), y) for k in ("pt", "eta", "mass", "ntracks")}
    assert max(auc.values()) < 0.7 and abs(auc["pt"] - 0.5) < 0.05
    assert _auc(jets.jet_log_likelihood_ratio, y) < 0.7
    assert _auc(jets.log_likelihood_ratio, y) > 0.8


def test_likelihood_ratio_matches_scipy(jets: sim.JetsSample) -> None:
    rows = np.arange(40)
    pt, mass, n, t = jets.pt[rows], jets.mass[rows], jets.ntracks[rows], jets.tracks[rows]
    o = sim.options("jets")
    f_b, tail, f_fake = o["b_decay_fraction"], o["decay_significance"], o["fake_fraction"]
    log_p = []
    for flavour, (a, slope, mass_over_pt) in enumerate([(3.0, 0.02, 0.08), (4.0, 0.02, 0.09)]):
        mean = a + slope * pt
        counts = np.where(n < 40, stats.poisson.logpmf(n, mean), stats.poisson.logsf(39, mean))
        masses = stats.gamma.logpdf(mass, 3.0, scale=mass_over_pt * pt / 3.0)
        d0, z0 = t["d0"].astype(float), t["z0"].astype(float)
        prompt = stats.norm.pdf(d0) * stats.norm.pdf(z0)
        if flavour:
            emg = 0.9 * stats.exponnorm.pdf(d0, tail) + 0.1 * stats.exponnorm.pdf(-d0, tail)
            track = (1 - f_b) * prompt + f_b * emg * stats.norm.pdf(z0, scale=2.0)
        else:
            track = (1 - f_fake) * prompt + f_fake * stats.norm.pdf(d0, scale=4.0) * stats.norm.pdf(z0)
        log_p.append(counts + masses + np.where(t["valid"], np.log(track), 0.0).sum(axis=1))
    np.testing.assert_allclose(jets.log_likelihood_ratio[rows], log_p[1] - log_p[0], rtol=1e-6, atol=1e-6)


def test_written_file_holds_a_compound_tracks_dataset(jets: sim.JetsSample, tmp_path: Path) -> None:
    small = simulate_jets(30, seed=3, max_tracks=12)
    path = sim.write_h5(small, tmp_path / "jets.h5")
    with h5py.File(path, "r") as f:
        assert f["tracks"].shape == (30, 12)
        assert f["tracks"].dtype.names == (*TRACK_FIELDS, "valid")
        np.testing.assert_array_equal(f["tracks"][()], small.tracks)
        np.testing.assert_array_equal(f["flavour"][()], small.flavour)
        assert f.attrs["simulator"] == "jets" and f.attrs["max_tracks"] == 12


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_tracks": 0}, r"max_tracks must be an integer >= 1"),
        ({"max_tracks": 10**6}, r"max_tracks must be an integer <= 1_000"),
        ({"b_fraction": 1.5}, r"b_fraction must lie in \[0, 1\], got 1.5"),
        ({"pt_range": (0.0, 10.0)}, r"pt_range must satisfy 0 < low < high"),
        ({"decay_significance": 0}, r"decay_significance must be > 0"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        sim.simulate("jets", 5, seed=0, **options)


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    ranks = stats.rankdata(score)
    pos = y == 1
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


def test_simulated_jets_serve_features_and_constituents(tmp_path: Path) -> None:
    from labkit.data._simulated import SimulatedDataModule

    tracks = {"dataset": "tracks", "fields": ["d0", "z0"], "valid": "valid", "max": 12}
    dm = SimulatedDataModule(
        simulator="jets",
        events=300,
        inputs=["pt", "mass", "ntracks"],
        targets="flavour",
        labels={0: "light", 1: "b"},
        constituents={"tracks": tracks},
        cache_dir=str(tmp_path),
    )
    info = dm.info
    assert info.input_shapes == {"features": (3,), "tracks": (12, 2), "tracks_valid": (12,)}
    assert info.in_shape == (3,) and info.constituents == {"tracks": ("d0", "z0")}
    assert info.class_names == ("light", "b")
    assert set(info.reference_metrics) == {"np_auc", "np_auc_jet_level"}
    x, y = next(iter(dm.train_dataloader()))[:2]
    assert (
        set(x) == {"features", "tracks", "tracks_valid"}
        and x["tracks_valid"].dtype.is_floating_point is False
    )
    assert x["tracks"].shape[1:] == (12, 2) and len(y) == len(x["features"])
    plain = SimulatedDataModule(
        simulator="jets",
        events=300,
        inputs=["pt", "mass", "ntracks"],
        targets="flavour",
        cache_dir=str(tmp_path),
    )
    assert plain.info.input_shapes == {} and plain.info.reference_metrics == info.reference_metrics
