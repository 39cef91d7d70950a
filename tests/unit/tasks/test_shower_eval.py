"""The CaloChallenge-style shower evaluation: the new high-level features on showers worked out by
hand, the kernel and Fréchet distances, the two classifier tests on small samples, the errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labkit.errors import DataError
from labkit.tasks._generative import frechet_distance, shower_features, two_sample_split
from labkit.tasks._showers import evaluate_showers, kernel_distance, ll_inputs

EDGES = (0.0, 0.1, 0.3, 0.6)  # three radial bins, centres 0.05, 0.2, 0.45


# --------------------------------------------------------------------------- features


def test_new_features_of_two_cells_by_hand() -> None:
    showers = np.zeros((1, 3, 3, 4))
    # layer 1: 3 GeV at radius 0.2, azimuth π/4; 1 GeV at radius 0.2, azimuth 5π/4 (opposite)
    showers[0, 1, 1, 0] = 3.0
    showers[0, 1, 1, 2] = 1.0
    # layer 2: 2 GeV at radius 0.45
    showers[0, 2, 2, 1] = 2.0
    f = shower_features(showers, np.array([12.0]), EDGES, layer_thickness=2.0)
    c = 0.2 * math.cos(math.pi / 4)  # x and y of the first cell; the second is at (-c, -c)
    x_centre = (3 * c - c) / 4
    assert f["x_centre_01"][0] == pytest.approx(x_centre)
    assert f["x_width_01"][0] == pytest.approx(math.sqrt(c * c - x_centre**2))
    assert f["y_width_01"][0] == pytest.approx(math.sqrt(c * c - x_centre**2))
    assert f["x_width_02"][0] == pytest.approx(0.0, abs=1e-9)  # one cell: no width
    assert f["nhit_00"][0] == 0 and f["nhit_01"][0] == 2 and f["nhit_02"][0] == 1 and f["nhit"][0] == 3
    assert f["emax_over_einc"][0] == pytest.approx(3.0 / 12.0)
    assert f["emax_01_over_einc"][0] == pytest.approx(0.25) and f["emax_02_over_einc"][0] == pytest.approx(
        2 / 12
    )
    assert f["emax_00_over_einc"][0] == 0.0
    assert f["emax_layer"][0] == 1.0 and f["emax_r"][0] == pytest.approx(0.2)
    assert f["eratio"][0] == pytest.approx((3 - 2) / (3 + 2))
    # layer energies 0, 4, 2 at depths 1, 3, 5 X0
    assert f["depth_centre"][0] == pytest.approx((4 * 3 + 2 * 5) / 6)
    mean = (4 * 3 + 2 * 5) / 6
    assert f["depth_width"][0] == pytest.approx(math.sqrt((4 * 9 + 2 * 25) / 6 - mean**2))
    thick = shower_features(showers, np.array([12.0]), EDGES, layer_thickness=1.0)
    assert thick["depth_centre"][0] == pytest.approx(mean / 2)


def test_features_of_empty_showers_are_zero_not_nan() -> None:
    showers = np.zeros((2, 2, 3, 4))
    showers[1, 0, 0, 0] = 1.0  # one cell: eratio 0, no second cell
    f = shower_features(showers, np.array([1.0, 2.0]), EDGES)
    for name, values in f.items():
        assert np.all(np.isfinite(values)), name
        assert values[0] == 0.0, name
        assert values.dtype == np.float64
    assert f["eratio"][1] == 0.0 and f["nhit"][1] == 1 and f["emax_over_einc"][1] == 0.5


def test_existing_feature_names_keep_their_place() -> None:
    f = shower_features(np.ones((1, 2, 3, 4)), np.ones(1), EDGES)
    names = list(f)
    assert names[:11] == [
        "etot_over_einc",
        "elayer_00_over_einc",
        "elayer_01_over_einc",
        "r_centre_00",
        "r_centre_01",
        "r_width_00",
        "r_width_01",
        "x_centre_00",
        "x_centre_01",
        "y_centre_00",
        "y_centre_01",
    ]
    assert names[-7:] == [
        "nhit",
        "emax_over_einc",
        "emax_layer",
        "emax_r",
        "eratio",
        "depth_centre",
        "depth_width",
    ]
    assert len(names) == 1 + 9 * 2 + 7


# --------------------------------------------------------------------------- distances


def test_kernel_distance_of_identical_and_shifted_gaussians() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(1500, 4)), rng.normal(size=(1500, 4))
    same = kernel_distance(a, b, subsets=3)
    shifted = kernel_distance(a, b + 0.5, subsets=3)
    assert abs(same) < 0.01
    assert shifted > 0.1 and shifted > 20 * abs(same)
    assert frechet_distance(a, b) < 0.05
    assert frechet_distance(a, b + 0.5) == pytest.approx(4 * 0.25, rel=0.15)


def test_kernel_distance_uses_blocks_and_checks_shapes() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 3))
    assert math.isfinite(kernel_distance(a, a[::-1], block=20, subsets=2))
    with pytest.raises(ValueError, match="3 and 2 features"):
        kernel_distance(a, a[:, :2])


def test_two_sample_split_keeps_pairs_together() -> None:
    a = np.arange(20.0)[:, None]
    train_x, train_y, test_x, test_y = two_sample_split(a, a + 100, test_fraction=0.4, seed=3)
    assert len(test_x) == 16 and test_y.sum() == 8 and len(train_x) == 24 and train_y.sum() == 12
    assert sorted(test_x[test_y == 0, 0] + 100) == sorted(test_x[test_y == 1, 0])


def test_ll_inputs_log_of_cells_over_energy() -> None:
    showers = np.zeros((1, 1, 1, 2))
    showers[0, 0, 0, 0] = 10.0
    x = ll_inputs(showers, np.array([100.0]))
    assert x[0].tolist() == pytest.approx([math.log10(0.1 + 1e-6), -6.0, 2.0])
    assert ll_inputs(showers, np.array([100.0]), "linear")[0].tolist() == pytest.approx([0.1, 0.0, 2.0])


# --------------------------------------------------------------------------- the evaluation


def _showers(n: int, seed: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Toy showers (n, 3 layers, 3 radial, 4 angular): energy falls with depth and radius."""
    rng = np.random.default_rng(seed)
    energy = np.exp(rng.uniform(0.0, math.log(100.0), n))
    shape = np.array([0.3, 0.5, 0.2])[:, None, None] * np.array([0.6, 0.3, 0.1])[None, :, None] / 4
    cells = energy[:, None, None, None] * shape[None] * rng.gamma(20.0, 1 / 20.0, size=(n, 3, 3, 4))
    return cells * scale, energy


def test_same_distribution_gives_auc_near_half_and_a_floor() -> None:
    gen, e_gen = _showers(400, 1)
    ref, e_ref = _showers(400, 2)
    ref2, e_ref2 = _showers(300, 3)
    r = evaluate_showers(
        gen, ref, energy_generated=e_gen, energy_reference=e_ref, radial_edges=EDGES,
        reference_2=ref2, energy_reference_2=e_ref2, low_level=False, energy_bins=(1, 10, 100),
    )  # fmt: skip
    m = r.metrics()
    assert abs(m["hl_classifier_auc"] - 0.5) < 0.1 and abs(m["reference_hl_classifier_auc"] - 0.5) < 0.1
    assert m["hl_gap"] == pytest.approx(m["hl_classifier_auc"] - m["reference_hl_classifier_auc"])
    assert "ll_classifier_auc" not in m and "ll_gap" not in m
    assert {
        "fpd",
        "kpd",
        "sep_power_mean",
        "reference_fpd",
        "reference_kpd",
        "reference_sep_power_mean",
    } <= set(m)
    assert "sep_power_eratio" in m and "reference_sep_power_eratio" not in m
    assert r.n_showers == {"generated": 400, "reference": 400, "reference_2": 300}
    assert set(r.features) == {"generated", "reference", "reference_2"}
    assert len(r.generated.separation_by_energy["etot_over_einc"]) == 2
    assert all(k.startswith("test_") for k in r.metrics("test_"))


def test_a_distorted_energy_scale_is_found_by_both_classifiers() -> None:
    gen, e_gen = _showers(300, 1, scale=1.3)
    ref, e_ref = _showers(300, 2)
    r = evaluate_showers(
        gen, ref, energy_generated=e_gen, energy_reference=e_ref, radial_edges=EDGES, energy_bins=(1, 100)
    )
    assert r.generated.hl_auc > 0.95 and r.generated.ll_auc > 0.9
    assert r.floor is None and math.isnan(r.hl_gap)
    assert r.generated.separation["etot_over_einc"] > 0.5
    assert r.worst_features(1)[0][1] == max(r.generated.separation.values())
    assert r.generated.kpd > 0.05


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"generated": np.zeros((30, 3, 3))}, "generated: showers must be"),
        ({"energy_reference": np.ones(29)}, r"reference: 30 showers but incident energies of shape \(29,\)"),
        ({"energy_generated": np.full(30, np.nan)}, "generated: incident energies must be finite"),
        ({"reference": np.full((30, 3, 3, 4), np.inf)}, "reference: 30 showers hold non-finite"),
        (
            {"reference_2": np.zeros((30, 3, 2, 4)), "energy_reference_2": np.ones(30)},
            "reference_2: showers of shape",
        ),
        ({"reference_2": np.zeros((30, 3, 3, 4))}, "reference_2: give both"),
        ({"radial_edges": (0.0, 1.0)}, "radial_edges: 3 radial bins need 4 edges"),
    ],
)
def test_errors_name_the_sample_and_the_problem(change: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "generated": np.ones((30, 3, 3, 4)),
        "reference": np.ones((30, 3, 3, 4)),
        "energy_generated": np.ones(30),
        "energy_reference": np.ones(30),
        "radial_edges": EDGES,
    }
    with pytest.raises(DataError, match=match):
        evaluate_showers(**(args | change))  # type: ignore[arg-type]
