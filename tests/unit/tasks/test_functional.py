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


# ----------------------------------------------------------------------------- AUC and SIC (anomaly task)

# scores from high to low, and which are signal: S = 3, B = 5
SIC_SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
SIC_TRUTH = np.array([1, 1, 0, 1, 0, 0, 0, 0], bool)


def test_roc_auc_counts_signal_background_pairs_and_ties() -> None:
    from labkit.tasks._functional import roc_auc

    # 0.9 and 0.8 beat all 5 background scores, 0.6 beats 4 of them: 14 of 15 pairs
    assert roc_auc(SIC_SCORES, SIC_TRUTH) == pytest.approx(14 / 15)
    assert roc_auc(np.exp(1e2 * SIC_SCORES), SIC_TRUTH) == pytest.approx(14 / 15)  # only the order counts
    # a tie between a signal and a background event counts one half: (0.5 + 1 + 0 + 0.5) / 4
    assert roc_auc(np.array([1.0, 1.0, 0.0, 0.0]), np.array([1, 0, 1, 0], bool)) == 0.5


def test_roc_auc_agrees_with_scikit_learn() -> None:
    from sklearn.metrics import roc_auc_score

    from labkit.tasks._functional import roc_auc

    rng = np.random.default_rng(1)
    truth = rng.random(500) < 0.3
    scores = np.round(rng.normal(truth.astype(float), 1.0), 1)  # with many ties
    assert roc_auc(scores, truth) == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)


def test_sic_curve_by_hand() -> None:
    from labkit.tasks._functional import sic_curve

    eff_s, eff_b, sic = sic_curve(SIC_SCORES, SIC_TRUTH, min_background=1)
    # the cuts at 0.9 and 0.8 pass no background and are left out
    np.testing.assert_allclose(eff_s, [2 / 3, 1, 1, 1, 1, 1])
    np.testing.assert_allclose(eff_b, [1 / 5, 1 / 5, 2 / 5, 3 / 5, 4 / 5, 1])
    np.testing.assert_allclose(sic, eff_s / np.sqrt(eff_b))
    eff_s, eff_b, _ = sic_curve(SIC_SCORES, SIC_TRUTH, min_background=3)
    np.testing.assert_allclose(eff_b, [3 / 5, 4 / 5, 1])
    # equal scores are one cut: (1, 1 | 0, 0) with truth (S, B | S, B) has two cuts
    eff_s, eff_b, sic = sic_curve(np.array([1.0, 1.0, 0.0, 0.0]), np.array([1, 0, 1, 0], bool))
    np.testing.assert_allclose(eff_s, [0.5, 1.0])
    np.testing.assert_allclose(sic, [0.5 / np.sqrt(0.5), 1.0])


def test_max_sic_with_the_minimum_background_rule() -> None:
    from labkit.tasks._functional import max_sic

    assert max_sic(SIC_SCORES, SIC_TRUTH, 1) == pytest.approx(np.sqrt(5))  # 1 / sqrt(1/5) at 0.6
    assert max_sic(SIC_SCORES, SIC_TRUTH, 2) == pytest.approx(np.sqrt(5 / 2))  # 1 / sqrt(2/5) at 0.5
    assert max_sic(SIC_SCORES, SIC_TRUTH, 5) == 1.0  # only the loosest cut: no selection
    with pytest.raises(ValueError, match="fewer than min_background=6 background events"):
        max_sic(SIC_SCORES, SIC_TRUTH, 6)
    # a perfect separation is bounded by the rule: ε_S = 1 at ε_B = k/N_B gives sqrt(N_B/k)
    truth = np.r_[np.ones(50, bool), np.zeros(1000, bool)]
    scores = np.r_[np.full(50, 2.0), np.linspace(0.0, 1.0, 1000)]
    assert max_sic(scores, truth, 10) == pytest.approx(np.sqrt(1000 / 10))


@pytest.mark.parametrize(
    ("scores", "truth", "message"),
    [
        (np.arange(4.0), np.ones(4, bool), "both signal and background"),
        (np.arange(4.0), np.zeros(4, bool), "both signal and background"),
        (np.array([0.1, np.nan]), np.array([1, 0], bool), "1 scores are NaN"),
        (np.arange(3.0), np.array([1, 0], bool), "3 scores but 2 labels"),
    ],
)
def test_sic_and_auc_refuse_undefined_cases(scores: np.ndarray, truth: np.ndarray, message: str) -> None:
    from labkit.tasks._functional import max_sic, roc_auc

    with pytest.raises(ValueError, match=message):
        max_sic(scores, truth)
    with pytest.raises(ValueError, match=message):
        roc_auc(scores, truth)
