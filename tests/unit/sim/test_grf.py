"""The grf simulator against its own conventions: spectrum, symmetry, Fisher bound, layout, errors."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from labkit.errors import ConfigError
from labkit.sim._grf import fisher_bound, fisher_matrix, power_spectrum, simulate_grf, wavenumbers


def _fixed(n: int, seed: int, amplitude: float, tilt: float, size: int = 32) -> np.ndarray:
    s = simulate_grf(n, seed=seed, size=size, amplitude_range=(amplitude, amplitude), tilt_range=(tilt, tilt))
    return s.fields.astype(np.float64)


def _power(fields: np.ndarray) -> np.ndarray:
    """|δ̃_m|² with the unitary DFT, per field, flattened over the grid."""
    return (np.abs(np.fft.fft2(fields, norm="ortho")) ** 2).reshape(len(fields), -1)


# ----------------------------------------------------------------------------- reproducibility, layout


def test_same_seed_gives_identical_bytes_and_another_seed_differs() -> None:
    a, b, c = (simulate_grf(30, seed=s) for s in (5, 5, 6))
    for key in ("fields", "amplitude", "tilt"):
        assert getattr(a, key).tobytes() == getattr(b, key).tobytes()
        assert getattr(a, key).tobytes() != getattr(c, key).tobytes()


def test_shapes_dtypes_and_priors() -> None:
    s = simulate_grf(3000, seed=1, size=8)
    assert s.fields.shape == (3000, 8, 8) and s.fields.dtype == np.float32
    assert s.amplitude.dtype == np.float64 and s.tilt.dtype == np.float64 and len(s) == 3000
    assert np.all((s.amplitude >= 0.1) & (s.amplitude <= 10.0))
    assert np.all((s.tilt >= -3.0) & (s.tilt <= -1.0))
    u = np.log(s.amplitude / 0.1) / np.log(100.0)  # uniform on [0, 1] if log-uniform
    assert abs(u.mean() - 0.5) < 0.02 and abs(u.var() - 1 / 12) < 0.006
    assert abs(s.tilt.mean() + 2.0) < 0.04
    assert simulate_grf(2, seed=1).fields.shape == (2, 32, 32)


def test_write_h5_layout_and_attributes(tmp_path: Path) -> None:
    s = simulate_grf(7, seed=3, size=16, amplitude_range=(1.0, 2.0), tilt_range=(-2.5, -1.5))
    path = s.write(tmp_path / "grf.h5")
    with h5py.File(path, "r") as f:
        assert set(f) == {"fields", "amplitude", "tilt"}
        assert f["fields"].shape == (7, 16, 16) and f["fields"].dtype == np.float32
        np.testing.assert_array_equal(f["fields"][()], s.fields)
        np.testing.assert_array_equal(f["amplitude"][()], s.amplitude)
        np.testing.assert_array_equal(f["tilt"][()], s.tilt)
        attrs = dict(f.attrs)
    assert attrs["simulator"] == "grf" and attrs["seed"] == 3 and attrs["n"] == 7 and attrs["size"] == 16
    np.testing.assert_array_equal(attrs["amplitude_range"], [1.0, 2.0])
    np.testing.assert_array_equal(attrs["tilt_range"], [-2.5, -1.5])
    assert attrs["amplitude_prior"] == "log-uniform" and attrs["tilt_prior"] == "uniform"
    assert "normalisation" in attrs and "k_unit" in attrs and "labkit_version" in attrs


# ----------------------------------------------------------------------------- the field


def test_fields_are_real_with_zero_mean() -> None:
    fields = _fixed(50, 2, amplitude=3.0, tilt=-2.0)
    assert np.isrealobj(fields)
    assert np.abs(fields.mean(axis=(1, 2))).max() < 1e-6 * fields.std()
    assert np.abs(np.fft.fft2(fields, norm="ortho")[:, 0, 0]).max() < 1e-4


def test_measured_power_spectrum_follows_a_k_to_the_n() -> None:
    amplitude, tilt, size = 2.0, -2.0, 32
    mean_power = _power(_fixed(400, 3, amplitude, tilt, size)).mean(axis=0)
    k = wavenumbers(size).ravel()
    edges = np.linspace(0.0, math.pi * math.sqrt(2) + 1e-9, 17)
    which = np.digitize(k, edges)
    ratios, k_mid, p_mid = [], [], []
    for b in range(1, len(edges)):
        modes = (which == b) & (k > 0)
        if modes.sum() < 16:
            continue
        expected = power_spectrum(k[modes], amplitude, tilt).mean()  # exact mean over the bin's modes
        ratios.append(mean_power[modes].mean() / expected)
        k_mid.append(np.exp(np.log(k[modes]).mean()))
        p_mid.append(mean_power[modes].mean())
    # ≥ 16 modes × 400 fields per bin: relative error of each bin ≤ 1/sqrt(16·400/2) ≈ 2 %
    np.testing.assert_allclose(ratios, 1.0, atol=0.06)
    # Slope and amplitude of a straight-line fit in log-log space (the bin means of k^n are not
    # exactly k_mid^n, hence the tolerance)
    slope, intercept = np.polyfit(np.log(k_mid), np.log(p_mid), 1)
    assert slope == pytest.approx(tilt, abs=0.05)
    assert math.exp(intercept) == pytest.approx(amplitude, rel=0.06)


def test_hermitian_symmetry_and_self_conjugate_modes() -> None:
    size, amplitude, tilt = 8, 1.0, -1.0
    modes = np.fft.fft2(_fixed(4000, 4, amplitude, tilt, size), norm="ortho")
    half = size // 2
    p = power_spectrum(wavenumbers(size), amplitude, tilt)
    # a ±m pair: real and imaginary parts each with variance P/2, δ̃_{−m} = conj(δ̃_m)
    pair = modes[:, 1, 2]
    np.testing.assert_allclose(modes[:, -1, -2], np.conj(pair), atol=1e-5)
    assert pair.real.var() == pytest.approx(p[1, 2] / 2, rel=0.08)
    assert pair.imag.var() == pytest.approx(p[1, 2] / 2, rel=0.08)
    # self-conjugate modes: real, variance P
    for m in ((half, 0), (0, half), (half, half)):
        assert np.abs(modes[:, m[0], m[1]].imag).max() < 1e-5
        assert modes[:, m[0], m[1]].real.var() == pytest.approx(p[m], rel=0.08)


# ----------------------------------------------------------------------------- Fisher bound


def test_fisher_bound_matches_the_maximum_likelihood_scatter() -> None:
    size, amplitude, tilt = 16, 1.5, -2.0
    power = _power(_fixed(3000, 5, amplitude, tilt, size))[:, 1:]  # drop m = 0
    ln_k = np.log(wavenumbers(size).ravel()[1:])
    m = ln_k.size
    # ML: Â(n) = Σ|δ̃|² k^-n / M; the profile −ln L is convex in n, solved with Newton steps.
    n_hat = np.full(len(power), tilt)
    for _ in range(20):
        w = power * np.exp(-n_hat[:, None] * ln_k)
        mean1 = (w * ln_k).sum(1) / w.sum(1)
        mean2 = (w * ln_k**2).sum(1) / w.sum(1)
        n_hat -= (ln_k.sum() - m * mean1) / (m * (mean2 - mean1**2))
    a_hat = (power * np.exp(-n_hat[:, None] * ln_k)).sum(1) / m
    sigma_a, sigma_n = fisher_bound(size, amplitude, tilt)
    # 3000 fields: the scatter is known to 1.3 %; the ML estimator is efficient to ~1 % at M = 255
    assert a_hat.std() == pytest.approx(float(sigma_a), rel=0.06)
    assert n_hat.std() == pytest.approx(float(sigma_n), rel=0.06)
    assert a_hat.mean() == pytest.approx(amplitude, rel=0.02)
    assert n_hat.mean() == pytest.approx(tilt, abs=0.03)


def test_amplitude_alone_reaches_sqrt_2_over_modes() -> None:
    size, amplitude, tilt = 16, 0.7, -2.5
    dof = size * size - 1
    f = fisher_matrix(size, amplitude, tilt)
    assert f.shape == (2, 2) and f[0, 1] == f[1, 0]
    assert 1 / math.sqrt(f[0, 0]) == pytest.approx(amplitude * math.sqrt(2 / dof), rel=1e-12)
    # Monte Carlo: Â = Σ |δ̃|²/k^n / M with n known
    power = _power(_fixed(3000, 6, amplitude, tilt, size))[:, 1:]
    a_hat = (power / power_spectrum(wavenumbers(size).ravel()[1:], 1.0, tilt)).mean(axis=1)
    assert a_hat.std() / amplitude == pytest.approx(math.sqrt(2 / dof), rel=0.05)
    # the marginal bound (n unknown too) is larger
    assert float(fisher_bound(size, amplitude, tilt)[0]) > amplitude * math.sqrt(2 / dof)


def test_fisher_bound_scales_as_one_over_size_and_vectorises() -> None:
    a32, n32 = fisher_bound(32, 1.0, -2.0)
    a64, n64 = fisher_bound(64, 1.0, -2.0)
    assert 64 * a64 / (32 * a32) == pytest.approx(1.0, abs=0.03)
    assert 64 * n64 / (32 * n32) == pytest.approx(1.0, abs=0.03)
    amplitude = np.array([0.5, 1.0, 4.0])
    sigma_a, sigma_n = fisher_bound(32, amplitude, -2.0)
    assert sigma_a.shape == sigma_n.shape == (3,)
    np.testing.assert_allclose(sigma_a / amplitude, float(a32))  # σ(A) ∝ A
    np.testing.assert_allclose(sigma_n, float(n32))  # σ(n) independent of A and n
    sigma_a, sigma_n = fisher_bound(32, 2.0, np.array([[-3.0], [-1.0]]))
    assert sigma_a.shape == sigma_n.shape == (2, 1)
    assert fisher_matrix(32, amplitude, -2.0).shape == (3, 2, 2)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, r"n must be an integer >= 1, got 0"),
        ({"seed": -3}, r"seed must be a non-negative integer"),
        ({"size": 1}, r"size must be an integer >= 2, got 1"),
        ({"size": 32.0}, r"size must be an integer"),
        ({"amplitude_range": (0.0, 1.0)}, r"amplitude_range must be positive"),
        ({"amplitude_range": (2.0, 1.0)}, r"amplitude_range must have low <= high"),
        ({"amplitude_range": 1.0}, r"amplitude_range must be a pair"),
        ({"tilt_range": (float("nan"), 1.0)}, r"tilt_range\[0\] must be a finite number"),
        ({"tilt_range": ("a", "b")}, r"tilt_range\[0\] must be a finite number"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"n": 2, "seed": 0, **kwargs}
    with pytest.raises(ConfigError, match=match):
        simulate_grf(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((1, 1.0, -2.0), r"size must be an integer >= 2"),
        ((32, -1.0, -2.0), r"amplitude must be positive and finite"),
        ((32, np.array([1.0, 0.0]), -2.0), r"amplitude must be positive and finite"),
        ((32, 1.0, float("inf")), r"tilt must be finite"),
        (
            (32, [1.0, 2.0], [1.0, 2.0, 3.0]),
            r"amplitude and tilt must be numbers or arrays of the same shape",
        ),
        ((32, "x", -2.0), r"amplitude and tilt must be numbers or arrays"),
    ],
)
def test_fisher_bound_errors(args: tuple[object, object, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        fisher_bound(*args)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=match):
        fisher_matrix(*args)  # type: ignore[arg-type]
