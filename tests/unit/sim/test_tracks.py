"""The tracks simulator against its formulas: curvature R = pT/(0.3 B) and its sign, hit
efficiency, noise rate, the Landau-like deposits, labels and readout, layout, seeding, errors,
and the amplitude-window baseline."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from labkit import sim
from labkit.errors import ConfigError
from labkit.sim._tracks import (
    CLASS_NAMES,
    amplitude_window_iou,
    fit_amplitude_window,
    simulate_tracks,
    track_radius,
)

# tracks only, every crossed pad recorded and read out: the geometry alone
QUIET = {
    "noise_rate": 0.0,
    "showers": (0, 0),
    "pixel_noise": 0.0,
    "threshold": 0.0,
    "efficiency": 1.0,
    "vertex_spread": 0.0,
}


def _fit_circle(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Algebraic (Kåsa) circle fit: x² + y² + D x + E y + F = 0 by least squares."""
    design = np.stack([x, y, np.ones_like(x)], axis=1)
    (d, e, f), *_ = np.linalg.lstsq(design, -(x**2 + y**2), rcond=None)
    cx, cy = -d / 2, -e / 2
    return float(cx), float(cy), float(math.sqrt(cx**2 + cy**2 - f))


def _pad_centres(mask: np.ndarray, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(mask)
    return (cols + 0.5) * pitch, (rows + 0.5) * pitch


# ----------------------------------------------------------------------------- physics


@pytest.mark.parametrize(("pt", "field"), [(0.15, 2.0), (0.5, 4.0), (0.12, 1.0)])
def test_fitted_circle_radius_is_pt_over_0p3_b(pt: float, field: float) -> None:
    pitch, size = 0.01, 128
    expected = pt / (0.3 * field)
    assert float(track_radius(pt, field)) == pytest.approx(expected)
    s = simulate_tracks(
        20, seed=4, size=size, pitch=pitch, field=field, pt_range=(pt, pt), tracks=(1, 1), **QUIET
    )
    for i in range(len(s)):
        x, y = _pad_centres(s.labels[i] == 1, pitch)
        assert len(x) >= 20
        cx, cy, radius = _fit_circle(x, y)
        # pads quantise the path by at most half a pitch: the fit lands well within one pitch
        assert abs(radius - expected) < pitch, (i, radius, expected)
        # the circle passes through the vertex (the image centre, vertex_spread = 0)
        assert math.hypot(cx - size * pitch / 2, cy - size * pitch / 2) == pytest.approx(radius, abs=pitch)


def test_positive_tracks_turn_clockwise_in_a_field_along_z() -> None:
    pitch, size = 0.01, 64
    s = simulate_tracks(40, seed=5, size=size, pitch=pitch, pt_range=(0.3, 0.3), tracks=(1, 1), **QUIET)
    centre = size * pitch / 2
    for i in range(len(s)):
        cx, cy, _ = _fit_circle(*_pad_centres(s.labels[i] == 1, pitch))
        phi0, q = s.track_phi[i, 0], int(s.track_charge[i, 0])
        # the centre of curvature lies to the right of the direction of flight for q > 0:
        # direction × (centre − vertex) has a negative z component
        cross = math.cos(phi0) * (cy - centre) - math.sin(phi0) * (cx - centre)
        assert np.sign(cross) == -q, i
    assert set(np.unique(s.track_charge[:, 0])) == {-1, 1}


def test_hits_lie_on_the_ideal_circle_and_loopers_close() -> None:
    pitch, size, pt, field = 0.01, 64, 0.06, 2.0  # R = 10 cm: a looper inside the 64 cm image
    s = simulate_tracks(
        10,
        seed=6,
        size=size,
        pitch=pitch,
        field=field,
        pt_range=(pt, pt),
        tracks=(1, 1),
        landau_width=0.0,
        **QUIET,
    )
    r = pt / (0.3 * field)
    for i in range(len(s)):
        q, phi0 = int(s.track_charge[i, 0]), s.track_phi[i, 0]
        cx = size * pitch / 2 + q * r * math.sin(phi0)
        cy = size * pitch / 2 - q * r * math.cos(phi0)
        x, y = _pad_centres(s.labels[i] == 1, pitch)
        # every pad the circle crosses has its centre within a half-diagonal of the circle
        assert np.abs(np.hypot(x - cx, y - cy) - r).max() <= pitch * math.sqrt(0.5) + 1e-9
        # a full turn: the pads cover every direction seen from the centre
        angles = np.arctan2(y - cy, x - cx)
        assert np.histogram(angles, bins=12, range=(-math.pi, math.pi))[0].min() > 0
        # ... and the path through the pads adds up to the circumference (deposits ∝ path length)
        assert s.images[i].astype(np.float64).sum() * pitch == pytest.approx(2 * math.pi * r, rel=1e-6)


def test_pt_spectrum_is_log_uniform_and_track_counts_uniform() -> None:
    s = simulate_tracks(4000, seed=7, size=8, pt_range=(0.1, 10.0), tracks=(2, 5), **QUIET)
    counts = s.n_tracks
    assert set(np.unique(counts)) == {2, 3, 4, 5}
    assert np.bincount(counts)[2:] / len(counts) == pytest.approx([0.25] * 4, abs=0.03)
    present = np.arange(5)[None, :] < counts[:, None]
    pt = s.track_pt[present]
    assert np.all((pt >= 0.1) & (pt <= 10.0)) and np.all(s.track_pt[~present] == 0)
    u = np.log(pt / 0.1) / np.log(100.0)  # uniform on [0, 1] if log-uniform
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.004
    assert np.all(np.abs(s.track_charge[present]) == 1) and np.all(s.track_charge[~present] == 0)
    assert abs(s.track_charge[present].mean()) < 0.03


def test_measured_hit_efficiency_matches_the_option_and_keeps_a_subset() -> None:
    common = {**QUIET, "pt_range": (0.2, 2.0), "tracks": (3, 6)}
    full = simulate_tracks(300, seed=8, **common)
    part = simulate_tracks(300, seed=8, **{**common, "efficiency": 0.8})
    all_hits, kept = full.labels == 1, part.labels == 1
    assert not np.any(kept & ~all_hits)  # the same tracks: fewer hits, never new ones
    # pads crossed by two tracks survive if either hit does, so compare with 1 − 0.2^k ≈ 0.8 + ε
    measured = kept.sum() / all_hits.sum()
    assert measured == pytest.approx(0.8, abs=0.015)
    assert measured >= 0.8 - 0.005
    # the amplitudes of the hits that are kept are unchanged where one track crossed the pad
    assert np.median(np.abs(part.images[kept] - full.images[kept])) == 0.0


def test_noise_rate_and_noise_amplitudes() -> None:
    rate = 0.02
    s = simulate_tracks(300, seed=9, **{**QUIET, "tracks": (0, 0), "noise_rate": rate})
    noise = s.labels == 3
    assert set(np.unique(s.labels)) == {0, 3}
    # 300 × 4096 pads: the binomial error on the rate is 2.3e-4
    assert noise.mean() == pytest.approx(rate, abs=1e-3)
    a = s.images[noise]
    # a MIP-like hit: most probable value 1 (Moyal mode), mean 1 + ξ (γ_E + ln 2)
    counts, edges = np.histogram(a, bins=np.linspace(0.8, 1.6, 41))
    mode = 0.5 * (edges[np.argmax(counts)] + edges[np.argmax(counts) + 1])
    assert mode == pytest.approx(1.0, abs=0.04)
    assert a.mean() == pytest.approx(1.0 + 0.1 * (np.euler_gamma + math.log(2)), abs=0.01)
    # the Landau-like tail: more above 1.5 MIP than a Gaussian of the same core width would give
    assert (a > 1.5).mean() > 0.02


def test_showers_are_compact_and_carry_their_energy() -> None:
    s = simulate_tracks(
        200,
        seed=10,
        **{**QUIET, "tracks": (0, 0), "showers": (1, 1), "shower_energy": (40.0, 40.0)},
        shower_radius=(0.01, 0.01),
    )
    assert set(np.unique(s.labels)) <= {0, 2}
    total = s.images.astype(np.float64).sum(axis=(1, 2))
    # ceil(4 E) = 160 spots of 0.25 MIP; showers near an edge lose the spots outside the image
    assert np.all(total <= 40.0 + 1e-3)
    np.testing.assert_allclose(total / 0.25, np.round(total / 0.25), atol=1e-3)
    inside = total > 40.0 - 1e-3
    assert inside.mean() > 0.8
    # σ = 1 pad: the brightest pad holds ≈ erf(0.5/√2)² ≈ 15 % of the energy, tens of MIP
    assert np.median(s.images.max(axis=(1, 2))[inside]) > 4.0
    assert np.median((s.labels == 2).sum(axis=(1, 2))) < 40


def test_labels_follow_the_readout_and_the_largest_deposit() -> None:
    s = simulate_tracks(200, seed=11)
    assert s.labels.dtype == np.uint8 and s.images.dtype == np.float32
    assert s.images.shape == s.labels.shape == (200, 64, 64)
    assert np.array_equal(s.labels == 0, s.images == 0)  # background ⇔ nothing read out
    assert np.all(s.images[s.images != 0] > 0.25)  # zero suppression at the threshold
    assert set(np.unique(s.labels)) == {0, 1, 2, 3}
    # a pad with both a shower and a noise deposit: the bigger wins
    noisy = simulate_tracks(50, seed=12, tracks=(0, 0), showers=(3, 3), noise_rate=0.2, pixel_noise=0.0)
    only_showers = simulate_tracks(
        50, seed=12, tracks=(0, 0), showers=(3, 3), noise_rate=0.0, pixel_noise=0.0
    )
    shower = only_showers.images
    both = (shower > 0) & (noisy.labels == 3)
    assert both.any()
    assert np.all(noisy.images[both] - shower[both] > shower[both])  # noise deposit > shower's
    under = (shower > 0) & (noisy.images > shower) & (noisy.labels == 2)
    assert under.any() and np.all(noisy.images[under] - shower[under] <= shower[under])


def test_electronic_noise_above_threshold_is_labelled_noise() -> None:
    s = simulate_tracks(50, seed=13, **{**QUIET, "tracks": (0, 0), "pixel_noise": 0.1, "threshold": 0.2})
    fired = s.labels == 3
    # P(N(0, 0.1) > 0.2) = 2.28 %
    assert fired.mean() == pytest.approx(0.02275, abs=0.002)
    assert np.all(s.images[fired] > 0.2)


# ----------------------------------------------------------------------------- reproducibility, layout


def test_same_seed_gives_identical_bytes_and_another_seed_differs() -> None:
    a, b, c = (simulate_tracks(40, seed=s) for s in (5, 5, 6))
    for key in a.ARRAYS:
        assert getattr(a, key).tobytes() == getattr(b, key).tobytes(), key
    assert a.images.tobytes() != c.images.tobytes() and a.labels.tobytes() != c.labels.tobytes()


def test_write_h5_round_trip_and_attributes(tmp_path: Path) -> None:
    s = simulate_tracks(7, seed=3, size=16, pitch=0.02, field=1.5, tracks=(0, 2))
    path = s.write(tmp_path / "tracks.h5")
    with h5py.File(path, "r") as f:
        assert set(f) == set(s.ARRAYS)
        for key in s.ARRAYS:
            np.testing.assert_array_equal(f[key][()], getattr(s, key))
            assert f[key].dtype == getattr(s, key).dtype
        attrs = dict(f.attrs)
    assert attrs["simulator"] == "tracks" and attrs["seed"] == 3 and attrs["n"] == 7
    assert attrs["size"] == 16 and attrs["pitch"] == 0.02 and attrs["field"] == 1.5
    np.testing.assert_array_equal(attrs["tracks"], [0, 2])
    for option in sim.options("tracks"):
        assert option in attrs, option
    assert [str(n) for n in attrs["class_names"]] == ["background", "track", "shower", "noise"]
    assert "labkit_version" in attrs and attrs["amplitude_unit"].startswith("MIP")
    assert s.track_pt.shape == (7, 2) and s.vertex.shape == (7, 2)


def test_registered_and_written_by_the_cli(tmp_path: Path) -> None:
    assert sim.SIMULATORS["tracks"].arrays["images"] == ("n", "size", "size")
    assert sim.options("tracks")["field"] == 2.0 and sim.options("tracks")["size"] == 64
    a = sim.simulate("tracks", 3, seed=1, size=16)
    assert (
        isinstance(a, sim.TracksSample)
        and a.images.tobytes() == simulate_tracks(3, seed=1, size=16).images.tobytes()
    )
    from typer.testing import CliRunner

    from labkit.cli import app

    out = CliRunner().invoke(
        app, ["sim", "tracks", "-n", "10", "-o", str(tmp_path / "x.h5"), "size=32", "tracks=[1,3]"]
    )
    assert out.exit_code == 0, out.output
    with h5py.File(tmp_path / "x.h5", "r") as f:
        assert f["images"].shape == (10, 32, 32) and f["labels"].dtype == np.uint8
        np.testing.assert_array_equal(f.attrs["tracks"], [1, 3])


def test_class_names() -> None:
    assert CLASS_NAMES == {0: "background", 1: "track", 2: "shower", 3: "noise"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"field": 0.0}, r"field must be > 0"),
        ({"pitch": -1.0}, r"pitch must be > 0"),
        ({"size": 1}, r"size must be an integer >= 2"),
        ({"pt_range": (0.0, 1.0)}, r"pt_range must be positive GeV"),
        ({"pt_range": (2.0, 1.0)}, r"pt_range must have low <= high"),
        ({"tracks": (1.5, 3)}, r"tracks must hold integers >= 0"),
        ({"tracks": (4, 2)}, r"tracks must have low <= high"),
        ({"tracks": 3}, r"tracks must be a pair \(low, high\)"),
        ({"showers": (0, 5000)}, r"showers must be at most 1000"),
        ({"efficiency": 1.2}, r"efficiency must be a probability in \[0, 1\]"),
        ({"noise_rate": -0.1}, r"noise_rate must be >= 0"),
        ({"shower_energy": (0.0, 1.0)}, r"shower_energy must be positive MIP"),
        ({"shower_radius": (0.0, 0.01)}, r"shower_radius must be positive metres"),
        ({"landau_width": float("nan")}, r"landau_width must be a finite number"),
        ({"threshold": float("inf")}, r"threshold must be finite or -inf"),
        ({"vertex_spread": -0.1}, r"vertex_spread must be >= 0"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        simulate_tracks(2, seed=0, **options)  # type: ignore[arg-type]


def test_unknown_option_and_bad_seed() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown option 'feild' for simulator 'tracks' \(did you mean 'field'\?\)"
    ):
        sim.simulate("tracks", 2, seed=0, feild=2.0)
    with pytest.raises(ConfigError, match=r"seed must be a non-negative integer"):
        simulate_tracks(2, seed=-1)
    with pytest.raises(ConfigError, match=r"n must be an integer >= 1"):
        simulate_tracks(0, seed=1)


# ----------------------------------------------------------------------------- the baseline


def test_amplitude_window_iou_by_hand() -> None:
    amp = np.array([0.0, 0.5, 1.0, 1.2, 3.0, 9.0])
    track = np.array([False, False, True, True, False, True])
    # window [0.8, 2): calls 1.0 and 1.2 -> TP 2, FP 0, FN 1 (the 9.0 track pad)
    assert amplitude_window_iou(amp, track, 0.8, 2.0) == pytest.approx(2 / 3)
    # window [0.4, inf): calls 0.5, 1.0, 1.2, 3.0, 9.0 -> TP 3, FP 2, FN 0
    assert amplitude_window_iou(amp, track, 0.4, math.inf) == pytest.approx(3 / 5)
    # zero pads are never called, even by a window that starts below 0
    assert amplitude_window_iou(amp, track, -1.0, 0.6) == 0.0
    assert math.isnan(amplitude_window_iou(amp, np.zeros(6, bool), 20.0, 30.0))


def test_fitted_window_is_the_best_window() -> None:
    rng = np.random.default_rng(0)
    track = rng.normal(1.0, 0.1, 3000)  # tracks near 1, others at 0.5 and 3: a clean window
    other = np.r_[rng.normal(0.5, 0.05, 2000), rng.normal(3.0, 0.3, 2000)]
    amp = np.r_[track, other, np.zeros(5000)]
    is_track = np.r_[np.ones(3000, bool), np.zeros(9000, bool)]
    lo, hi = fit_amplitude_window(amp, is_track)
    assert 0.6 < lo < 0.75 and 1.3 < hi < 2.2
    best = amplitude_window_iou(amp, is_track, lo, hi)
    assert best > 0.99
    for a, b in ((0.0, math.inf), (lo + 0.1, hi), (lo, 1.1), (0.4, 5.0)):
        assert amplitude_window_iou(amp, is_track, a, b) <= best
    # and on the simulator: better than any threshold-only cut, worse than perfect
    s = simulate_tracks(200, seed=14)
    lo, hi = fit_amplitude_window(s.images, s.labels == 1)
    fitted = amplitude_window_iou(s.images, s.labels == 1, lo, hi)
    for cut in (0.2, 0.3, 0.5, 0.7):
        assert fitted >= amplitude_window_iou(s.images, s.labels == 1, cut, math.inf)
    assert 0.5 < fitted < 0.9
    with pytest.raises(ValueError, match="some track pads"):
        fit_amplitude_window(amp, np.zeros_like(is_track))
