"""The surrogate's figures of merit, against cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labkit.tasks._generative import (
    classifier_two_sample_auc,
    feature_edges,
    frechet_distance,
    frechet_distance_gaussians,
    separation_power,
    shower_features,
)

EDGES = (0.0, 0.1, 0.3, 0.6)  # three radial bins, centres 0.05, 0.2, 0.45


# --------------------------------------------------------------------------- separation power


def test_separation_power_of_identical_samples_is_zero() -> None:
    a = np.random.default_rng(0).normal(size=1000)
    assert separation_power(a, a.copy()) == 0.0


def test_separation_power_of_samples_without_a_common_bin_is_one() -> None:
    edges = np.linspace(0.0, 4.0, 5)
    assert separation_power(np.full(10, 0.5), np.full(7, 3.5), edges) == pytest.approx(1.0)


def test_separation_power_by_hand() -> None:
    # h_a = (1/2, 1/2), h_b = (1, 0): S = 1/2 [(1/2)^2 / (3/2) + (1/2)^2 / (1/2)] = 1/3
    edges = np.array([0.0, 1.0, 2.0])
    assert separation_power(np.array([0.5, 1.5]), np.array([0.2, 0.7, 0.9]), edges) == pytest.approx(1 / 3)


def test_values_outside_the_edges_count_in_the_end_bins() -> None:
    edges = np.array([0.0, 1.0, 2.0])
    assert separation_power(np.array([-5.0, 9.0]), np.array([0.5, 1.5]), edges) == 0.0


def test_edges_span_the_reference_and_survive_a_constant_sample() -> None:
    edges = feature_edges(np.linspace(0.0, 1.0, 1001), bins=10)
    assert len(edges) == 11 and edges[0] == pytest.approx(0.005) and edges[-1] == pytest.approx(0.995)
    constant = feature_edges(np.zeros(50), bins=4)
    assert constant[0] < 0.0 < constant[-1]
    assert separation_power(np.zeros(50), np.zeros(20), constant) == 0.0


# --------------------------------------------------------------------------- Fréchet distance


@pytest.mark.parametrize("mu", [0.0, 0.5, 2.0])
def test_frechet_distance_of_unit_gaussians_is_the_squared_shift(mu: float) -> None:
    assert frechet_distance_gaussians([0.0], [[1.0]], [mu], [[1.0]]) == pytest.approx(mu**2, abs=1e-12)


def test_frechet_distance_of_centred_gaussians_is_the_squared_width_difference() -> None:
    assert frechet_distance_gaussians([0.0], [[4.0]], [0.0], [[1.0]]) == pytest.approx((2.0 - 1.0) ** 2)
    # independent dimensions add up: shift 1 in x, widths 1 and 3 in y
    value = frechet_distance_gaussians([0.0, 0.0], np.diag([1.0, 1.0]), [1.0, 0.0], np.diag([1.0, 9.0]))
    assert value == pytest.approx(1.0 + 4.0)


def test_frechet_distance_of_samples() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20000, 1)), rng.normal(2.0, 1.0, size=(20000, 1))
    assert frechet_distance(a, b, standardize=False) == pytest.approx(4.0, abs=0.1)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # standardised with the reference's mean and width: the units drop out
    c = rng.normal(0.3, 1.0, size=(5000, 2))
    assert frechet_distance(1e3 * a[:5000].repeat(2, 1), 1e3 * c) == pytest.approx(
        frechet_distance(a[:5000].repeat(2, 1), c)
    )


# --------------------------------------------------------------------------- classifier test


def test_classifier_cannot_tell_one_distribution_from_itself() -> None:
    rng = np.random.default_rng(2)
    auc = classifier_two_sample_auc(rng.normal(size=(800, 5)), rng.normal(size=(800, 5)), hidden=(32,))
    assert abs(auc - 0.5) < 0.06  # σ of the AUC of 400 vs 400 events: 0.02


def test_classifier_separates_disjoint_samples() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.0, 1.0, size=(400, 3)), rng.uniform(2.0, 3.0, size=(400, 3))
    assert classifier_two_sample_auc(a, b, hidden=(32,)) == 1.0


def test_classifier_reaches_the_optimal_auc_of_shifted_gaussians() -> None:
    # N(0, 1) vs N(1, 1): the best classifier (a cut on x) has AUC Φ(1/√2) = 0.760
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.0, 1.0, (2000, 1)), rng.normal(1.0, 1.0, (2000, 1))
    auc = classifier_two_sample_auc(a, b, hidden=(16,), max_epochs=20)
    assert auc == pytest.approx(0.5 * (1 + math.erf(0.5)), abs=0.03)  # σ of the AUC here: 0.01


def test_classifier_needs_matching_features_and_enough_events() -> None:
    with pytest.raises(ValueError, match="3 and 2 features"):
        classifier_two_sample_auc(np.zeros((20, 3)), np.zeros((20, 2)))
    with pytest.raises(ValueError, match="at least 8 events"):
        classifier_two_sample_auc(np.zeros((5, 2)), np.zeros((20, 2)))


# --------------------------------------------------------------------------- features


def test_features_of_a_single_cell() -> None:
    showers = np.zeros((1, 2, 3, 4))
    showers[0, 0, 1, 0] = 5.0  # layer 0, radius 0.2, azimuth π/4 (the middle of bin 0 of 4)
    f = shower_features(showers, np.array([10.0]), EDGES)
    assert f["etot_over_einc"][0] == pytest.approx(0.5) and f["elayer_00_over_einc"][0] == pytest.approx(0.5)
    assert f["elayer_01_over_einc"][0] == 0.0
    assert f["r_centre_00"][0] == pytest.approx(0.2) and f["r_width_00"][0] == pytest.approx(0.0, abs=1e-7)
    assert f["x_centre_00"][0] == pytest.approx(0.2 * math.cos(math.pi / 4))
    assert f["y_centre_00"][0] == pytest.approx(0.2 * math.sin(math.pi / 4))
    # an empty layer has centre and width 0
    assert f["r_centre_01"][0] == 0.0 and f["r_width_01"][0] == 0.0 and f["x_centre_01"][0] == 0.0


def test_radial_centre_and_width_of_two_equal_cells() -> None:
    showers = np.zeros((1, 1, 3, 4))
    showers[0, 0, 0, 1] = showers[0, 0, 2, 3] = 1.0  # radii 0.05 and 0.45, opposite azimuths
    f = shower_features(showers, np.array([4.0]), EDGES)
    assert f["r_centre_00"][0] == pytest.approx(0.25) and f["r_width_00"][0] == pytest.approx(0.2)
    assert f["etot_over_einc"][0] == pytest.approx(0.5)
    assert len(f) == 1 + 9 * 1 + 7


def test_features_check_shapes() -> None:
    with pytest.raises(ValueError, match="4 radial edges"):
        shower_features(np.zeros((1, 2, 3, 4)), np.ones(1), (0.0, 1.0))
    with pytest.raises(ValueError, match="must have shape"):
        shower_features(np.zeros((1, 3, 4)), np.ones(1), EDGES)
