"""Event weights (``data.weights``) in every task's loss and test metrics: the functional twins
against hand computations, the tasks' weighted test metrics against the twins, and the refusals."""

from __future__ import annotations

import itertools

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from labkit.config import OptimizerConfig, SurrogateSpec
from labkit.data import DataInfo
from labkit.errors import ConfigError
from labkit.models import MLP
from labkit.tasks import ClassificationTask, RegressionTask, SegmentationTask, SurrogateTask
from labkit.tasks._functional import (
    accuracy,
    binned_bias_resolution,
    confusion_counts,
    dice_per_class,
    iou_per_class,
    max_sic,
    rejection_at_efficiency,
    roc_auc,
    sic_curve,
    weighted_mean_std,
    weighted_quantile,
)


def _hand_auc(scores: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> float:
    """The weighted fraction of (signal, background) pairs ranked correctly, ties counting half."""
    correct = total = 0.0
    for i, j in itertools.product(np.flatnonzero(truth), np.flatnonzero(~truth)):
        pair = weights[i] * weights[j]
        total += pair
        correct += pair * (1.0 if scores[i] > scores[j] else 0.5 if scores[i] == scores[j] else 0.0)
    return correct / total


# three signal events, three background ones (one tied with a signal score)
SCORES = np.array([0.9, 0.8, 0.1, 0.5, 0.3, 0.8])
TRUTH = np.array([1, 1, 1, 0, 0, 0], bool)
FLIP = np.array([1.0, 1.0, 10.0, 1.0, 1.0, 0.5])  # the badly scored signal event weighs 10


def test_weights_flip_the_auc_and_match_the_hand_computation() -> None:
    plain = roc_auc(SCORES, TRUTH)
    weighted = roc_auc(SCORES, TRUTH, weights=FLIP)
    assert plain == pytest.approx(_hand_auc(SCORES, TRUTH, np.ones(6))) == pytest.approx(5.5 / 9)
    assert weighted == pytest.approx(_hand_auc(SCORES, TRUTH, FLIP), abs=1e-12)
    # by hand: W_S W_B = 12 × 2.5 = 30; correct pairs 2.5 (0.9) + 2 + 0.5·0.5 (0.8) + 0 (0.1)
    assert weighted == pytest.approx(4.75 / 30)
    assert plain > 0.5 > weighted


def test_weighted_auc_agrees_with_scikit_learn_and_with_repeated_events() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    scores = np.round(rng.normal(size=300), 1)  # many ties
    truth = rng.random(300) < 0.4
    weights = rng.integers(1, 5, 300).astype(float)
    auc = roc_auc(scores, truth, weights=weights)
    assert auc == pytest.approx(roc_auc_score(truth, scores, sample_weight=weights), abs=1e-12)
    repeats = weights.astype(int)  # integer weights count like repeated events
    assert auc == pytest.approx(roc_auc(np.repeat(scores, repeats), np.repeat(truth, repeats)), abs=1e-12)


def test_negative_weights_are_allowed_in_the_auc() -> None:
    weights = np.array([1.0, 1.0, -0.5, 1.0, 2.0, 1.0])
    assert roc_auc(SCORES, TRUTH, weights=weights) == pytest.approx(_hand_auc(SCORES, TRUTH, weights))


def test_weights_of_one_change_nothing() -> None:
    rng = np.random.default_rng(2)
    scores, truth, ones = rng.normal(size=200), rng.random(200) < 0.3, np.ones(200)
    assert roc_auc(scores, truth, weights=ones) == roc_auc(scores, truth)
    assert max_sic(scores, truth, 5, weights=ones) == pytest.approx(max_sic(scores, truth, 5))
    for a, b in zip(sic_curve(scores, truth, 3, weights=ones), sic_curve(scores, truth, 3), strict=True):
        np.testing.assert_allclose(a, b)
    assert rejection_at_efficiency(scores, truth, 0.5, weights=ones) == rejection_at_efficiency(
        scores, truth, 0.5
    )
    true = rng.uniform(1, 10, 500)
    pred = true * (1 + 0.1 * rng.normal(size=500))
    for a, b in zip(
        binned_bias_resolution(true, pred, 4, weights=np.ones(500)),
        binned_bias_resolution(true, pred, 4),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    labels, guess = rng.integers(0, 3, (5, 4, 4)), rng.integers(0, 3, (5, 4, 4))
    np.testing.assert_array_equal(
        confusion_counts(guess, labels, 3, weights=np.ones(5)), confusion_counts(guess, labels, 3)
    )
    np.testing.assert_allclose(
        iou_per_class(guess, labels, 3, weights=np.ones(5)), iou_per_class(guess, labels, 3)
    )


def test_weighted_sic_rejection_and_accuracy_by_hand() -> None:
    # cuts from the top: 0.9 (S 1), 0.8 (S 1 + B 0.5), 0.5 (B 1), 0.3 (B 1), 0.1 (S 10); W_S 12, W_B 2.5
    eff_s, eff_b, sic = sic_curve(SCORES, TRUTH, 1, weights=FLIP)
    np.testing.assert_allclose(eff_s, [2 / 12, 2 / 12, 2 / 12, 1.0])
    np.testing.assert_allclose(eff_b, [0.5 / 2.5, 1.5 / 2.5, 1.0, 1.0])
    np.testing.assert_allclose(sic, eff_s / np.sqrt(eff_b))
    assert max_sic(SCORES, TRUTH, 1, weights=FLIP) == 1.0  # no cut beats keeping everything here
    # 90 % of the signal weight needs the loosest cut, which every background event passes
    assert rejection_at_efficiency(SCORES, TRUTH, 0.9, weights=FLIP) == pytest.approx(1.0)
    # 1/12 of the signal weight: the cut at 0.9, no background passes -> 1/(1/N_B) = 3
    assert rejection_at_efficiency(SCORES, TRUTH, 1 / 12, weights=FLIP) == 3.0
    assert accuracy(np.array([0, 1, 1]), np.array([0, 1, 0]), weights=np.array([1.0, 2.0, 5.0])) == 3 / 8


def test_weighted_mean_std_and_quantile_by_hand() -> None:
    mean, std = weighted_mean_std(np.array([1.0, 3.0]), weights=np.array([1.0, 3.0]))
    assert mean == 2.5
    n_eff = 16 / 10
    assert std == pytest.approx(np.sqrt((1 * 1.5**2 + 3 * 0.5**2) / 4 * n_eff / (n_eff - 1)))
    # negative weights: means are fine
    assert weighted_mean_std(np.array([1.0, 2.0, 3.0]), weights=np.array([2.0, -1.0, 1.0]))[
        0
    ] == pytest.approx(1.5)
    assert weighted_quantile(np.array([1.0, 2.0, 3.0, 4.0]), 0.5) == np.median([1.0, 2.0, 3.0, 4.0])
    assert weighted_quantile(np.array([1.0, 2.0, 9.0]), 0.5, weights=np.array([1.0, 0.0, 1.0])) == 5.0


def test_weighted_binned_bias_resolution() -> None:
    rng = np.random.default_rng(3)
    true = rng.uniform(1, 100, 4000)
    pred = true * (1.0 + 0.05 * rng.normal(size=true.size))
    weights = rng.uniform(0.5, 2.0, true.size)
    pred[:100] = true[:100] * 3.0  # outliers of weight 0 do not move the weighted numbers
    weights[:100] = 0.0
    centres, bias, resolution, n_eff = binned_bias_resolution(true, pred, 4, weights=weights)
    assert len(centres) == 4
    assert np.allclose(bias, 0.0, atol=0.01) and np.allclose(resolution, 0.05, rtol=0.1)
    assert np.all(n_eff < 1000) and n_eff.dtype == np.float64


def test_per_image_weights_broadcast_over_pixels() -> None:
    true = np.array([[[0, 1], [1, 1]], [[0, 0], [0, 1]]])
    pred = np.array([[[0, 1], [0, 1]], [[1, 0], [0, 1]]])
    c = confusion_counts(pred, true, 2, weights=np.array([2.0, 0.5]))
    np.testing.assert_allclose(c, [[2.0 + 1.0, 0.5], [2.0, 4.0 + 0.5]])
    np.testing.assert_allclose(iou_per_class(pred, true, 2, weights=np.array([2.0, 0.5])), [3 / 5.5, 4.5 / 7])
    np.testing.assert_allclose(
        dice_per_class(pred, true, 2, weights=np.array([2.0, 0.5])), [6 / 8.5, 9 / 11.5]
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: weighted_quantile(np.arange(3.0), 0.5, weights=np.array([1.0, -1.0, 1.0])),
            r"1 weights are negative",
        ),
        (
            lambda: binned_bias_resolution(np.arange(1.0, 5.0), np.arange(1.0, 5.0), 2, weights=-np.ones(4)),
            r"binned_bias_resolution: 4 weights are negative; the bin centres are weighted medians",
        ),
        (lambda: roc_auc(SCORES, TRUTH, weights=np.ones(5)), r"weights: 5 weights for 6 events"),
        (lambda: roc_auc(SCORES, TRUTH, weights=np.r_[1, 1, -3, 1, 1, 1.0]), r"the signal weights sum to -1"),
        (lambda: max_sic(SCORES, TRUTH, weights=np.r_[1, 1, 1, np.nan, 1, 1]), r"1 weights are NaN"),
        (lambda: accuracy(np.zeros(2), np.zeros(2), weights=np.array([1.0, -1.0])), r"the weights sum to 0"),
        (
            lambda: confusion_counts(np.zeros((2, 3)), np.zeros((2, 3)), 2, weights=np.ones(3)),
            r"give one per image \(2,\) or one per pixel \(2, 3\)",
        ),
    ],
)
def test_refusals(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_the_surrogate_refuses_event_weights() -> None:
    info = DataInfo(in_shape=(12, 9, 8), target_names=("incident_energy",), simulator="calo", weighted=True)
    with pytest.raises(ConfigError, match=r"data.weights: task surrogate takes no event weights"):
        SurrogateTask.model_outputs(SurrogateSpec(kind="surrogate"), info)


# ----------------------------------------------------------------------------- the tasks' test metrics


def _trainer() -> pl.Trainer:
    return pl.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )


def test_weighted_classification_metrics_are_the_twins_on_the_test_events() -> None:
    torch.manual_seed(0)
    x = torch.randn(120, 3)
    y = (x[:, 0] + 0.8 * torch.randn(120) > 0).long()
    w = torch.where(x[:, 1] > 0, 5.0, 0.2)
    task = ClassificationTask(MLP((3,), 2, hidden=(4,)), OptimizerConfig(), num_classes=2)
    (result,) = _trainer().test(task, DataLoader(TensorDataset(x, y, w), batch_size=32), verbose=False)
    with torch.no_grad():
        probs = torch.softmax(task.model(x), dim=1).double().numpy()
    weights, truth = w.double().numpy(), y.numpy() == 1
    assert result["test_auc"] == pytest.approx(roc_auc(probs[:, 1], truth, weights=weights), rel=1e-6)
    assert result["test_auc"] != pytest.approx(roc_auc(probs[:, 1], truth), rel=1e-4)
    assert result["test_acc"] == pytest.approx(
        accuracy(probs.argmax(1), y.numpy(), weights=weights), rel=1e-6
    )
    assert result["test_rejection_at_eff90"] == pytest.approx(
        rejection_at_efficiency(probs[:, 1], truth, 0.9, weights=weights), rel=1e-6
    )
    assert "weighted" in task.figures()["confusion_matrix"].axes[0].get_title()


def test_weighted_regression_metrics() -> None:
    torch.manual_seed(0)
    x = torch.rand(200, 2) + 1.0
    y = x.sum(dim=1, keepdim=True)
    w = torch.where(x[:, 0] > 1.5, 4.0, 1.0)
    task = RegressionTask(MLP((2,), 1, hidden=(4,)), OptimizerConfig(), targets=("e",))
    (result,) = _trainer().test(task, DataLoader(TensorDataset(x, y, w), batch_size=64), verbose=False)
    with torch.no_grad():
        pred = task.model(x)[:, 0].double().numpy()
    err, weights = pred - y[:, 0].double().numpy(), w.double().numpy()
    assert result["test_bias_e"] == pytest.approx(np.average(err, weights=weights), rel=1e-5)
    assert result["test_rmse_e"] == pytest.approx(np.sqrt(np.average(err**2, weights=weights)), rel=1e-5)
    rel_err = err / y[:, 0].double().numpy()
    assert result["test_resolution_e"] == pytest.approx(
        weighted_mean_std(rel_err, weights=weights)[1], rel=1e-5
    )


def test_weighted_regression_loss_and_segmentation_metrics() -> None:
    torch.manual_seed(0)
    task = RegressionTask(MLP((2,), 1), OptimizerConfig(), targets=("e",))
    out, y = torch.randn(4, 1), torch.randn(4, 1)
    w = torch.tensor([1.0, 0.0, 2.0, 1.0])
    assert task._loss(out, y, w).item() == pytest.approx(
        float((((out - y) ** 2)[:, 0] * w).sum() / 4), rel=1e-6
    )
    from labkit.models import UNet

    seg = SegmentationTask(UNet((8, 8), 3, channels=(4, 8)), OptimizerConfig(), num_classes=3)
    x, labels = torch.randn(6, 8, 8), torch.randint(0, 3, (6, 8, 8))
    weights = torch.tensor([1.0, 3.0, 0.5, 2.0, 1.0, 0.0])
    (result,) = _trainer().test(
        seg, DataLoader(TensorDataset(x, labels, weights), batch_size=4), verbose=False
    )
    seg.eval()  # the U-Net's batch norm as in the test step
    with torch.no_grad():
        pred = seg.model(x).argmax(1).numpy()
    iou = iou_per_class(pred, labels.numpy(), 3, weights=weights.numpy())
    dice = dice_per_class(pred, labels.numpy(), 3, weights=weights.numpy())
    for i, name in enumerate(seg.class_names):
        assert result[f"test_iou_{name}"] == pytest.approx(iou[i], rel=1e-6)
        assert result[f"test_dice_{name}"] == pytest.approx(dice[i], rel=1e-6)


def test_weighted_anomaly_metrics_and_cwola_region_weights() -> None:
    from tests.unit.tasks.test_anomaly import _events, _task

    x, truth, _ = _events(600, seed=5, fraction=0.2)
    w = torch.where(x[:, 1] > x[:, 1].median(), 3.0, 0.5)
    task = _task("cwola")
    data = DataLoader(TensorDataset(x, truth.float(), w), batch_size=128)
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(task, data)
    region = task.in_signal_region(x[:, 0])
    total, inside = float(w.sum()), float(w[region].sum())
    expected = torch.tensor([total / (2 * (total - inside)), total / (2 * inside)])
    torch.testing.assert_close(task.region_weight.float(), expected)  # type: ignore[union-attr]
    (result,) = _trainer().test(task, data, verbose=False)
    with torch.no_grad():
        score = task(x).double().numpy()
    r, weights, signal = region.numpy(), w.double().numpy(), truth.numpy() > 0
    assert result["test_auc"] == pytest.approx(roc_auc(score[r], signal[r], weights=weights[r]), rel=1e-6)
    assert result["test_max_sic"] == pytest.approx(
        max_sic(score[r], signal[r], 10, weights=weights[r]), rel=1e-6
    )
    assert result["test_sr_background"] == float((~signal[r]).sum())  # event counts stay counts


def test_weighted_validation_metrics() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = (x[:, 0] > 0).long()
    w = torch.where(x[:, 1] > 0, 3.0, 1.0)
    task = ClassificationTask(MLP((3,), 2, hidden=(4,)), OptimizerConfig(), num_classes=2)
    (result,) = _trainer().validate(task, DataLoader(TensorDataset(x, y, w), batch_size=16), verbose=False)
    with torch.no_grad():
        pred = task.model(x).argmax(1).numpy()
    assert result["val_acc"] == pytest.approx(accuracy(pred, y.numpy(), weights=w.numpy()), rel=1e-6)
    reg = RegressionTask(MLP((3,), 1, hidden=(4,)), OptimizerConfig(), targets=("e",))
    target = x[:, :1] * 2.0
    (result,) = _trainer().validate(
        reg, DataLoader(TensorDataset(x, target, w), batch_size=16), verbose=False
    )
    with torch.no_grad():
        err = (reg.model(x) - target)[:, 0].double().numpy()
    assert result["val_rmse"] == pytest.approx(np.sqrt(np.average(err**2, weights=w.numpy())), rel=1e-5)
