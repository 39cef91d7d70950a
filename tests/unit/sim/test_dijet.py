"""The dijet simulator against its formulas: the dijet function, the jet-mass and τ21 densities,
the signal peaks, and the exact likelihood ratio recomputed here with scipy."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy import integrate, stats

from labkit import sim
from labkit.data._files import column_names
from labkit.errors import ConfigError
from labkit.sim._dijet import COLUMNS, DijetModel, dijet_function, simulate_dijet

SQRT_S = 13.0
P1, P2, P3 = 10.0, 5.0, 0.2  # the defaults


def f_dijet(mjj: float, lo: float = 2.5, hi: float = 6.0) -> float:
    """The dijet function as a density in m_jj, normalised here by adaptive quadrature."""

    def raw(m: float) -> float:
        x = m / SQRT_S
        return float((1 - x) ** P1 / x ** (P2 + P3 * math.log(x)))

    return raw(mjj) / integrate.quad(raw, lo, hi, epsabs=0, epsrel=1e-12)[0]


def log_p_independent(
    features: np.ndarray, lo: float = 2.5, hi: float = 6.0
) -> tuple[np.ndarray, np.ndarray]:
    """ln p_bkg and ln p_sig of the module docstring, written out again with scipy.stats."""
    mjj, m1, m2, t1, t2 = features.T

    def raw(m: float) -> float:
        x = m / SQRT_S
        return float((1 - x) ** P1 / x ** (P2 + P3 * math.log(x)))

    norm = integrate.quad(raw, lo, hi, epsabs=0, epsrel=1e-12)[0]
    x = mjj / SQRT_S
    f_b = (1 - x) ** P1 / x ** (P2 + P3 * np.log(x)) / norm
    theta = 0.1 * (mjj / 3.5) ** 0.3
    g_b = stats.gamma(1.5, scale=theta)
    p_bkg = f_b * 2 * g_b.pdf(m1) * g_b.pdf(m2) * stats.beta(6, 4).pdf(t1) * stats.beta(6, 4).pdf(t2)
    f_s = stats.truncnorm((lo - 3.5) / 0.15, (hi - 3.5) / 0.15, loc=3.5, scale=0.15).pdf(mjj)
    g_x = stats.truncnorm(-0.5 / 0.05, np.inf, loc=0.5, scale=0.05)
    g_y = stats.truncnorm(-0.1 / 0.01, np.inf, loc=0.1, scale=0.01)
    masses = g_x.pdf(m1) * g_y.pdf(m2) + g_y.pdf(m1) * g_x.pdf(m2)
    p_sig = f_s * masses * stats.beta(4, 6).pdf(t1) * stats.beta(4, 6).pdf(t2)
    with np.errstate(divide="ignore"):
        return np.log(p_bkg), np.log(p_sig)


@pytest.fixture(scope="module")
def background() -> np.ndarray:
    return simulate_dijet(100_000, seed=11, signal_fraction=0.0).features


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    return simulate_dijet(20_000, seed=12, signal_fraction=1.0).features


# ----------------------------------------------------------------------------- reproducibility, layout


def test_same_seed_gives_identical_bytes_and_another_seed_differs() -> None:
    a, b, c = (simulate_dijet(500, seed=s, signal_fraction=0.1) for s in (3, 3, 4))
    for key in ("features", "is_signal", "likelihood_ratio", "log_likelihood_ratio"):
        assert getattr(a, key).tobytes() == getattr(b, key).tobytes()
        assert getattr(a, key).tobytes() != getattr(c, key).tobytes()


def test_shapes_columns_and_exact_signal_fraction() -> None:
    s = simulate_dijet(2001, seed=1, signal_fraction=0.1)
    assert s.features.shape == (2001, 5) and s.features.dtype == np.float64 and len(s) == 2001
    assert s.is_signal.dtype == np.int64 and int(s.is_signal.sum()) == round(0.1 * 2001)
    assert s.columns == COLUMNS == ("mjj", "mj1", "mj2", "tau21_1", "tau21_2")
    assert np.all(s.column("mj1") >= s.column("mj2")) and np.all(s.column("mj2") > 0)
    assert np.all((s.column("mjj") >= 2.5) & (s.column("mjj") <= 6.0))
    assert np.all((s.features[:, 3:] > 0) & (s.features[:, 3:] < 1))
    positions = np.flatnonzero(s.is_signal)
    assert positions.min() < 200 and positions.max() > 1800  # spread over the file, not a block
    assert simulate_dijet(10, seed=1, signal_fraction=0.0).is_signal.sum() == 0
    assert simulate_dijet(10, seed=1, signal_fraction=1.0).is_signal.sum() == 10
    with pytest.raises(KeyError, match="no column 'mjj2'"):
        s.column("mjj2")


def test_signal_positions_are_independent_of_the_data_split_with_the_same_seed() -> None:
    """labkit's data modules split with ``default_rng(seed).permutation``; the simulator runs with
    the same seed by default, and must not put its signal events in the same order."""
    for seed in (0, 3):
        s = simulate_dijet(20_000, seed=seed, signal_fraction=0.05)
        test = np.random.default_rng(seed).permutation(20_000)[:3000]
        assert abs(s.is_signal[test].mean() - 0.05) < 0.02


def test_write_round_trip_with_column_names(tmp_path: Path) -> None:
    s = simulate_dijet(50, seed=2, signal_fraction=0.2, mjj_range=(3.0, 4.0))
    path = sim.write_h5(s, tmp_path / "dijet.h5")
    with h5py.File(path, "r") as f:
        assert set(f) == {"features", "is_signal", "likelihood_ratio", "log_likelihood_ratio"}
        for key in f:
            np.testing.assert_array_equal(f[key][()], getattr(s, key))
        attrs = dict(f.attrs)
    assert column_names(path, "features") == COLUMNS
    assert attrs["simulator"] == "dijet" and attrs["seed"] == 2 and attrs["n"] == 50
    assert attrs["n_signal"] == 10 and attrs["signal_fraction"] == 0.2 and attrs["mass_unit"] == "TeV"
    np.testing.assert_array_equal(attrs["mjj_range"], [3.0, 4.0])
    np.testing.assert_array_equal(attrs["dijet_parameters"], [P1, P2, P3])
    assert sim.options("dijet")["signal_mass"] == 3.5 and "dijet" in sim.SIMULATORS


# ----------------------------------------------------------------------------- background


def test_background_mjj_follows_the_dijet_function(background: np.ndarray) -> None:
    mjj = background[:, 0]
    edges = np.linspace(2.5, 6.0, 36)
    expected = np.array(
        [integrate.quad(f_dijet, a, b, epsrel=1e-10)[0] for a, b in itertools.pairwise(edges)]
    )
    assert abs(expected.sum() - 1.0) < 1e-9
    counts, _ = np.histogram(mjj, edges)
    ok = expected * len(mjj) > 5
    chi2 = float(np.sum((counts[ok] - len(mjj) * expected[ok]) ** 2 / (len(mjj) * expected[ok])))
    assert stats.chi2(int(ok.sum()) - 1).sf(chi2) > 1e-3, chi2
    # KS against the CDF, at a subsample (the CDF is a quadrature per event)
    sub = np.sort(mjj[:2000])
    cdf = np.cumsum(
        [0.0] + [integrate.quad(f_dijet, a, b)[0] for a, b in itertools.pairwise(np.r_[2.5, sub])]
    )[1:]
    assert stats.kstest(sub, lambda v: np.interp(v, sub, cdf)).pvalue > 1e-3


def test_dijet_density_is_normalised_and_matches_the_formula() -> None:
    model = DijetModel()
    m = np.array([2.5, 3.0, 3.5, 4.7, 6.0])
    np.testing.assert_allclose(np.exp(model.log_mjj_background(m)), [f_dijet(v) for v in m], rtol=1e-10)
    assert np.all(np.isneginf(model.log_mjj_background(np.array([2.4, 6.1]))))
    np.testing.assert_allclose(dijet_function(0.3, P1, P2, P3), 0.7**P1 / 0.3 ** (P2 + P3 * math.log(0.3)))
    total = integrate.quad(lambda v: math.exp(model.log_mjj_background(np.array([v]))[0]), 2.5, 6.0)[0]
    assert abs(total - 1.0) < 1e-8


def test_background_jet_masses_and_tau21_follow_their_densities(background: np.ndarray) -> None:
    mjj, m1, m2, t1, t2 = background[:20_000].T
    cdf = stats.gamma(1.5, scale=0.1 * (mjj / 3.5) ** 0.3).cdf
    # jet 1 is the heavier of two i.i.d. jets: F(m1)² and 1 − (1 − F(m2))² are uniform
    assert stats.kstest(cdf(m1) ** 2, "uniform").pvalue > 1e-3
    assert stats.kstest(1 - (1 - cdf(m2)) ** 2, "uniform").pvalue > 1e-3
    assert stats.kstest(t1, stats.beta(6, 4).cdf).pvalue > 1e-3
    assert stats.kstest(t2, stats.beta(6, 4).cdf).pvalue > 1e-3
    # the mass scale grows with m_jj as (m_jj / 3.5 TeV)^0.3
    low, high = mjj < 2.7, mjj > 3.6
    ratio = m2[high].mean() / m2[low].mean()
    expected = np.mean((mjj[high] / 3.5) ** 0.3) / np.mean((mjj[low] / 3.5) ** 0.3)
    assert abs(ratio / expected - 1) < 0.03


# ----------------------------------------------------------------------------- signal


def test_signal_peaks_sit_at_the_w_x_and_y_masses(signal: np.ndarray) -> None:
    mjj, m1, m2, t1, t2 = signal.T
    peak = stats.truncnorm((2.5 - 3.5) / 0.15, (6.0 - 3.5) / 0.15, loc=3.5, scale=0.15)
    assert abs(mjj.mean() - 3.5) < 3 * 0.15 / math.sqrt(len(mjj))
    assert abs(mjj.std() / 0.15 - 1) < 0.02
    assert stats.kstest(mjj, peak.cdf).pvalue > 1e-3
    # the X (0.5 TeV, 10 % resolution) is the heavier jet, the Y (0.1 TeV) the lighter
    assert abs(m1.mean() - 0.5) < 0.002 and abs(m1.std() / 0.05 - 1) < 0.03
    assert abs(m2.mean() - 0.1) < 0.0004 and abs(m2.std() / 0.01 - 1) < 0.03
    assert stats.kstest(t1, stats.beta(4, 6).cdf).pvalue > 1e-3
    assert stats.kstest(t2, stats.beta(4, 6).cdf).pvalue > 1e-3


def test_signal_width_option_narrows_the_peak() -> None:
    s = simulate_dijet(5000, seed=4, signal_fraction=1.0, signal_width=0.05, signal_mass=4.0)
    assert abs(s.column("mjj").mean() - 4.0) < 0.005 and abs(s.column("mjj").std() / 0.05 - 1) < 0.05


# ----------------------------------------------------------------------------- the likelihood ratio


def test_likelihood_ratio_is_the_ratio_of_the_densities_recomputed_with_scipy() -> None:
    s = simulate_dijet(4000, seed=5, signal_fraction=0.3)
    log_bkg, log_sig = log_p_independent(s.features)
    finite = np.isfinite(log_sig)  # scipy's pdf underflows to 0 far from the peaks
    assert finite.mean() > 0.5
    np.testing.assert_allclose(s.log_likelihood_ratio[finite], (log_sig - log_bkg)[finite], rtol=0, atol=1e-7)
    np.testing.assert_allclose(s.likelihood_ratio, np.exp(s.log_likelihood_ratio), rtol=1e-12)
    model = s.model
    np.testing.assert_allclose(model.log_background(s.features), log_bkg, rtol=1e-9)
    # the LR separates: signal events have LR >> 1, background events LR << 1 (mostly)
    sig = s.is_signal == 1
    assert np.median(s.log_likelihood_ratio[sig]) > 5 > -5 > np.median(s.log_likelihood_ratio[~sig])


def test_likelihood_ratio_is_the_bayes_posterior_odds(signal: np.ndarray, background: np.ndarray) -> None:
    """Among events with LR in a bin, the signal share is f·LR/(f·LR + 1 − f) for a mixture of
    signal fraction f: the LR is calibrated, not only a ranking."""
    model = DijetModel()
    f = len(signal) / (len(signal) + len(background))
    lr = np.r_[model.log_likelihood_ratio(signal), model.log_likelihood_ratio(background)]
    is_sig = np.r_[np.ones(len(signal)), np.zeros(len(background))]
    for lo, hi in [(-3, -1), (-1, 1), (1, 3)]:
        sel = (lr > lo) & (lr < hi)
        predicted = np.mean(f * np.exp(lr[sel]) / (f * np.exp(lr[sel]) + 1 - f))
        observed, n = is_sig[sel].mean(), sel.sum()
        assert n > 200 and abs(observed - predicted) < 4 * math.sqrt(predicted * (1 - predicted) / n) + 0.01


def test_densities_are_zero_off_the_support() -> None:
    model = DijetModel()
    rows = np.array([[3.5, 0.1, 0.5, 0.4, 0.4], [2.0, 0.5, 0.1, 0.4, 0.4], [3.5, 0.5, 0.1, 1.2, 0.4]])
    assert np.all(np.isneginf(model.log_background(rows))) and np.all(np.isneginf(model.log_signal(rows)))
    with pytest.raises(ValueError, match=r"shape \(N, 5\)"):
        model.log_background(np.zeros((3, 4)))


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"signal_fraction": 1.5}, "signal_fraction must be in"),
        ({"signal_fraction": -0.1}, "signal_fraction must be >= 0"),
        ({"mjj_range": (4.0, 3.0)}, "mjj_range must have low <= high"),
        ({"mjj_range": (3.0, 14.0)}, "mjj_range must satisfy 0 < low < high < sqrt_s"),
        ({"mjj_range": (3.0,)}, "mjj_range must be a pair"),
        ({"sqrt_s": 0.0}, "sqrt_s must be > 0"),
        ({"dijet_parameters": (1.0, 2.0)}, "dijet_parameters must be three numbers"),
        ({"dijet_parameters": (-1.0, 2.0, 0.0)}, r"dijet_parameters\[0\] \(p1\) must be >= 0"),
        ({"signal_mass": 7.0}, "signal_mass must lie in mjj_range"),
        ({"signal_width": 0.0}, "signal_width must be > 0"),
        ({"x_mass": -0.5}, "x_mass must be > 0"),
        ({"y_mass": "heavy"}, "y_mass must be a finite number"),
        ({"jet_mass_resolution": 0}, "jet_mass_resolution must be > 0"),
        ({"jet_mass_slope": float("nan")}, "jet_mass_slope must be a finite number"),
    ],
)
def test_bad_options_raise_config_errors_naming_them(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        simulate_dijet(10, seed=0, **options)  # type: ignore[arg-type]


def test_bad_count_seed_and_unknown_option() -> None:
    with pytest.raises(ConfigError, match="n must be an integer >= 1"):
        simulate_dijet(0, seed=0)
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        simulate_dijet(5, seed=-1)
    with pytest.raises(
        ConfigError, match=r"unknown option 'signal_fractoin'.*did you mean 'signal_fraction'"
    ):
        sim.simulate("dijet", 5, seed=0, signal_fractoin=0.1)
