"""The physics-curve math and figures on synthetic test outputs (no training, no server)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from labkit.errors import ConfigError, DataError
from labkit.report._curves import (
    Band,
    binned_efficiency,
    cut_at_efficiency,
    ratio_to,
    rejection_curve,
    rejection_vs,
    resolution_curve,
    seed_band,
    sic_band,
    spectator_edges,
)
from labkit.report._figures import CurveGroup, physics_figures
from labkit.report._outputs import RunOutputs, check_same_task, read_outputs
from labkit.report._physics import group_by_seed, save_figures
from labkit.tracking.query import RunRecord


def _classification_npz(seed: int, n: int = 2000, shift: float = 1.0, weights: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    logit = rng.normal(shift * (2 * labels - 1), 1.0)
    p1 = 1 / (1 + np.exp(-logit))
    arrays: dict[str, np.ndarray] = {
        "task": np.array("classification"),
        "format": np.array(1),
        "probs": np.stack([1 - p1, p1], axis=1).astype(np.float32),
        "labels": labels.astype(np.int64),
        "class_names": np.array(["pion", "electron"]),
        "signal_class": np.array(1, dtype=np.int64),
        "spectator.incident_energy": rng.uniform(1, 100, n).astype(np.float32),
    }
    if weights:
        arrays["weights"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_read_outputs_types_the_arrays() -> None:
    out = read_outputs(_classification_npz(0, weights=True), run_id="r1")
    assert out.task == "classification" and out.events == 2000
    assert out.class_names == ("pion", "electron") and out.signal_class == 1
    assert out.weights is not None and out.weights.shape == (2000,)
    scores, is_signal = out.signal_scores()
    assert scores.shape == (2000,) and is_signal.dtype == bool
    assert set(out.spectators) == {"incident_energy"}


def test_read_outputs_refuses_damaged_files_and_unknown_formats() -> None:
    with pytest.raises(DataError, match=r"run r1: test_outputs.npz cannot be read"):
        read_outputs(b"not a zip", run_id="r1")
    buffer = io.BytesIO()
    np.savez(buffer, task=np.array("classification"), format=np.array(7))
    with pytest.raises(DataError, match=r"run r2: .* format 7; this labkit reads format 1"):
        read_outputs(buffer.getvalue(), run_id="r2")
    buffer = io.BytesIO()
    np.savez(buffer, task=np.array("regression"), format=np.array(1), pred=np.zeros((3, 1)))
    with pytest.raises(DataError, match=r"run r3: .* regression run lacks truth, target_names"):
        read_outputs(buffer.getvalue(), run_id="r3")


def test_multiclass_without_signal_class_is_one_line() -> None:
    out = RunOutputs(
        run_id="abc", task="classification", probs=np.full((4, 3), 1 / 3), labels=np.zeros(4, int)
    )
    with pytest.raises(DataError, match=r"run abc: a 3-class task without a signal class"):
        out.signal_scores()


def test_mixed_tasks_are_refused() -> None:
    runs = [
        RunOutputs(run_id="aaaaaaaa1", task="classification"),
        RunOutputs(run_id="bbbbbbbb2", task="anomaly"),
    ]
    with pytest.raises(ConfigError, match=r"mix task kinds \(anomaly: bbbbbbbb; classification: aaaaaaaa\)"):
        check_same_task(runs)


def test_rejection_curve_matches_a_hand_count() -> None:
    # 4 signal at 0.9, 0.8, 0.7, 0.6; 4 background at 0.85, 0.5, 0.4, 0.3
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.85, 0.5, 0.4, 0.3])
    sig = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    band = rejection_curve(scores, sig, grid=np.array([0.5, 1.0]))
    # ε_S = 0.5 (cut 0.8): one background passes: ε_B = 1/4, R = 4, σ_R = √(ε(1−ε)/4)/ε² = √(3/64)·16
    assert band.y[0] == pytest.approx(4.0)
    assert band.error[0] == pytest.approx(np.sqrt(0.25 * 0.75 / 4) / 0.25**2)
    assert band.y[1] == pytest.approx(4.0)  # ε_S = 1 (cut 0.6): still one background


def test_weighted_errors_use_the_effective_count() -> None:
    values = np.array([1.0, 1.0, 1.0, 1.0])
    passed = np.array([1, 0, 1, 0], bool)
    w = np.array([1.0, 1.0, 3.0, 3.0])
    band = binned_efficiency(values, passed, np.array([0.0, 2.0]), weights=w)
    n_eff = 8.0**2 / (1 + 1 + 9 + 9)
    assert band.y[0] == pytest.approx(0.5)
    assert band.error[0] == pytest.approx(np.sqrt(0.25 / n_eff))
    unweighted = binned_efficiency(values, passed, np.array([0.0, 2.0]))
    assert unweighted.error[0] == pytest.approx(np.sqrt(0.25 / 4))


def test_rejection_vs_a_spectator_and_empty_bins() -> None:
    values = np.array([0.5, 0.5, 1.5, 1.5])
    passed = np.array([1, 0, 0, 0], bool)
    band = rejection_vs(values, passed, np.array([0.0, 1.0, 2.0, 3.0]))
    assert band.y[0] == pytest.approx(2.0)
    assert np.isnan(band.y[1]) and np.isnan(band.y[2])  # none passes; no event


def test_seed_band_is_mean_and_sample_std() -> None:
    x = np.array([0.1, 0.2])
    a = Band(x=x, y=np.array([10.0, 4.0]), error=np.zeros(2))
    b = Band(x=x, y=np.array([14.0, 6.0]), error=np.zeros(2))
    band = seed_band([a, b])
    assert band.n == 2
    np.testing.assert_allclose(band.y, [12.0, 5.0])
    np.testing.assert_allclose(band.error, [np.std([10, 14], ddof=1), np.std([4, 6], ddof=1)])
    assert seed_band([a]) is a


def test_ratio_carries_the_curves_relative_error() -> None:
    x = np.array([0.5])
    ratio, err = ratio_to(
        Band(x, np.array([20.0]), np.array([2.0])), Band(x, np.array([10.0]), np.array([5.0]))
    )
    assert ratio[0] == pytest.approx(2.0) and err[0] == pytest.approx(0.2)


def test_working_point_keeps_the_asked_signal_fraction() -> None:
    rng = np.random.default_rng(1)
    scores = rng.uniform(size=1000)
    sig = np.ones(1000, bool)
    sig[:10] = False
    cut = cut_at_efficiency(scores, sig, 0.7)
    kept = (scores[sig] >= cut).mean()
    assert 0.7 <= kept < 0.7 + 2 / sig.sum()
    w = np.where(scores > 0.5, 3.0, 1.0)  # weights move the cut up
    assert cut_at_efficiency(scores, sig, 0.7, weights=w) > cut


def test_sic_band_and_spectator_edges() -> None:
    scores = np.array([0.9, 0.8, 0.2, 0.1])
    sig = np.array([1, 0, 1, 0], bool)
    band = sic_band(scores, sig, grid=np.array([0.5, 1.0]))
    assert band.y[0] == pytest.approx(0.5 / np.sqrt(0.5))
    edges = spectator_edges([np.array([1.0, 2.0, 3.0]), np.array([4.0])], bins=2)
    assert edges[0] == 1.0 and edges[-1] > 4.0


def test_resolution_curve_fits_a_stochastic_term() -> None:
    rng = np.random.default_rng(2)
    e = rng.uniform(10, 100, 20000)
    pred = e * (1 + rng.normal(0, 0.5 / np.sqrt(e)))
    curve = resolution_curve(e, pred)
    assert curve.fit is not None and curve.fit[0] == pytest.approx(0.5, rel=0.1)
    assert np.all(np.abs(curve.bias.y) < 3 * curve.bias.error + 1e-3)


def _record(run_id: str, seed: str, hidden: str) -> RunRecord:
    return RunRecord(
        run_id,
        "calo",
        "FINISHED",
        1,
        2,
        params={"seed": seed, "model.hidden": hidden, "tracking.uri": run_id},
    )


def test_group_by_seed_as_compare_does() -> None:
    recs = [
        _record("a", "1", "64"),
        _record("b", "2", "64"),
        _record("c", "1", "128"),
        _record("d", "2", "128"),
    ]
    assert [[r.run_id for r in g] for g in group_by_seed(recs)] == [["a", "b"], ["c", "d"]]


def test_physics_figures_and_files(tmp_path: Path) -> None:
    runs = [
        read_outputs(_classification_npz(s, shift=1.0 + 0.3 * (s // 2), weights=s == 3), run_id=f"r{s}")
        for s in range(4)
    ]
    groups = [CurveGroup("small", tuple(runs[:2])), CurveGroup("big", tuple(runs[2:]))]
    figures = physics_figures(groups, reference=0)
    assert list(figures) == ["rejection", "vs_incident_energy"]
    assert len(figures["rejection"].axes) == 2  # the ratio panel
    written = save_figures(figures, tmp_path / "out.png")
    assert [p.name for p in written] == ["out.png", "out_vs_incident_energy.png"]
    import matplotlib.image

    assert matplotlib.image.imread(written[0]).shape[2] in (3, 4)
    with pytest.raises(
        ConfigError, match=r"--spectator 'pt': run r0 stored no such spectator; it has: incident_energy"
    ):
        physics_figures(groups, spectator="pt")
    with pytest.raises(ConfigError, match=r"--working-point 1.5: give a signal efficiency between 0 and 1"):
        physics_figures(groups, working_point=1.5)
    with pytest.raises(ConfigError, match=r"-o .*out.svg: write a .png or a .pdf"):
        save_figures(figures, tmp_path / "out.svg")


def test_regression_and_anomaly_figures() -> None:
    rng = np.random.default_rng(3)
    e = rng.uniform(10, 100, (3000, 1))
    reg = RunOutputs(
        run_id="g",
        task="regression",
        pred=e * (1 + rng.normal(0, 0.05, e.shape)),
        truth=e,
        target_names=("energy",),
    )
    assert list(physics_figures([CurveGroup("g", (reg, reg))])) == ["resolution"]
    score = rng.normal(size=3000)
    is_sig = score + rng.normal(size=3000) > 1
    ano = RunOutputs(run_id="h", task="anomaly", score=score, is_signal=is_sig, weights=np.ones(3000))
    assert list(physics_figures([CurveGroup("h", (ano,))])) == ["sic"]


def test_anomaly_outputs_keep_the_signal_region() -> None:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        task=np.array("anomaly"),
        format=np.array(1),
        score=np.array([0.1, 0.9, 0.5, 0.7], np.float32),
        is_signal=np.array([0, 1, 0, 1], bool),
        in_signal_region=np.array([1, 1, 0, 1], bool),
        weights=np.array([1, 2, 3, 4], np.float32),
    )
    out = read_outputs(buffer.getvalue(), run_id="a")
    np.testing.assert_allclose(out.score, [0.1, 0.9, 0.7], rtol=1e-6)
    np.testing.assert_allclose(out.weights, [1, 2, 4])
