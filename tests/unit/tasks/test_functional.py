"""The physics figures of merit, against cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.tasks._functional import binned_bias_resolution, fit_stochastic_constant, rejection_at_efficiency


def test_rejection_of_separated_scores_is_bounded_by_the_background_count() -> None:
    scores = np.r_[np.linspace(0.6, 1.0, 100), np.linspace(0.0, 0.4, 50)]
    is_signal = np.r_[np.ones(100, bool), np.zeros(50, bool)]
    assert rejection_at_efficiency(scores, is_signal, 0.9) == 50.0  # none passes: 1/(1/N_B)


def test_rejection_counts_background_above_the_cut() -> None:
    signal = np.arange(100) / 100.0  # the 90 % efficiency cut is 0.10
    background = np.r_[np.full(8, 0.5), np.full(32, 0.05)]  # 8 of 40 pass
    scores = np.r_[signal, background]
    is_signal = np.r_[np.ones(100, bool), np.zeros(40, bool)]
    assert rejection_at_efficiency(scores, is_signal, 0.9) == pytest.approx(40 / 8)


@pytest.mark.parametrize(("is_signal", "message"), [(np.ones(4, bool), "both signal and background")])
def test_rejection_needs_both_classes(is_signal: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rejection_at_efficiency(np.arange(4.0), is_signal)


def test_rejection_efficiency_range() -> None:
    with pytest.raises(ValueError, match=r"efficiency must be in \(0, 1\]"):
        rejection_at_efficiency(np.arange(4.0), np.array([1, 0, 1, 0], bool), 1.5)


def test_fit_recovers_stochastic_and_constant_terms() -> None:
    energy = np.geomspace(1, 100, 12)
    resolution = np.sqrt(0.1**2 / energy + 0.02**2)
    a, b = fit_stochastic_constant(energy, resolution)
    assert a == pytest.approx(0.1, rel=1e-6) and b == pytest.approx(0.02, rel=1e-6)


def test_fit_keeps_terms_non_negative() -> None:
    energy = np.geomspace(1, 100, 8)
    a, b = fit_stochastic_constant(energy, 0.1 / np.sqrt(energy) - 0.001)  # would need b² < 0
    assert b == 0.0 and a == pytest.approx(0.1, rel=0.05)


def test_binned_bias_and_resolution() -> None:
    rng = np.random.default_rng(0)
    true = rng.uniform(1, 100, 20000)
    pred = true * (1.02 + 0.1 / np.sqrt(true) * rng.normal(size=true.size))
    centres, bias, resolution, counts = binned_bias_resolution(true, pred, bins=5)
    assert len(centres) == 5 and counts.sum() == 20000
    assert np.allclose(bias, 0.02, atol=0.01)
    edges = np.quantile(true, np.linspace(0, 1, 6))
    index = np.clip(np.searchsorted(edges, true, side="right") - 1, 0, 4)
    expected = [np.sqrt(np.mean(0.01 / true[index == b])) for b in range(5)]  # the spread within each bin
    assert np.allclose(resolution, expected, rtol=0.05)
