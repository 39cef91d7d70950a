"""``Task.test_outputs()``: each task's per-event test outputs (the arrays of ``test_outputs.npz``),
from hand-made batches pushed through the test hooks (no Trainer)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import torch
from torch import nn

from labkit.config import OptimizerConfig
from labkit.models import MLP
from labkit.tasks import AnomalyTask, ClassificationTask, RegressionTask, Task


@pytest.fixture(autouse=True)
def _no_trainer() -> Iterator[None]:
    with warnings.catch_warnings():  # self.log without a Trainer: Lightning warns and logs nothing
        warnings.filterwarnings("ignore", message=r".*self\.log.*")
        yield


def _test(task: Task, batches: Sequence[tuple[torch.Tensor, ...]]) -> dict[str, np.ndarray]:
    task.eval()
    with torch.no_grad():
        task.on_test_epoch_start()
        for i, batch in enumerate(batches):
            task.test_step(batch, i)
        task.on_test_epoch_end()
    return task.test_outputs()


def test_a_task_keeps_none_by_default() -> None:
    class Mine(Task):
        pass

    assert Mine(nn.Linear(2, 2), OptimizerConfig()).test_outputs() == {}


def _classifier(k: int, **kw: object) -> ClassificationTask:
    torch.manual_seed(0)
    return ClassificationTask(MLP((3,), k, hidden=(8,)), OptimizerConfig(), num_classes=k, **kw)  # type: ignore[arg-type]


def test_classification_outputs_are_probabilities_and_labels_in_test_order() -> None:
    x, y = torch.randn(10, 3), torch.tensor([0, 1, 2, 1, 0, 2, 2, 1, 0, 0])
    task = _classifier(3, class_names=("e", "pi", "mu"))
    out = _test(task, [(x[:6], y[:6]), (x[6:], y[6:])])
    assert set(out) == {"probs", "labels", "class_names", "signal_class"}  # no weights without data.weights
    assert out["probs"].dtype == np.float32 and out["probs"].shape == (10, 3)
    np.testing.assert_allclose(out["probs"].sum(axis=1), 1.0, rtol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(out["probs"], torch.softmax(task.model(x), dim=1).numpy(), rtol=1e-5)
    assert out["labels"].dtype == np.int64 and out["labels"].tolist() == y.tolist()
    assert out["class_names"].tolist() == ["e", "pi", "mu"]
    assert out["signal_class"].shape == () and int(out["signal_class"]) == -1  # 3 classes, none named
    named = _test(_classifier(3, signal_class=1), [(x, y)])
    assert int(named["signal_class"]) == 1


def test_binary_classification_with_weights() -> None:
    x, y, w = (
        torch.randn(6, 3),
        torch.tensor([0, 1, 1, 0, 1, 0]),
        torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0, 1.0]),
    )
    out = _test(_classifier(2), [(x, y, w)])
    assert int(out["signal_class"]) == 1  # the last of two
    assert out["class_names"].tolist() == ["0", "1"]
    assert out["weights"].dtype == np.float32
    np.testing.assert_array_equal(out["weights"], w.numpy())


def test_regression_outputs_are_in_physical_units() -> None:
    torch.manual_seed(0)
    # energy learnt in log, normalised with mean 2 and std 0.5; angle with mean 1 and std 3
    scaling = ((2.0, 0.5, True), (1.0, 3.0, False))
    task = RegressionTask(
        MLP((4,), 2, hidden=(8,)), OptimizerConfig(), targets=("energy", "angle"), scaling=scaling
    )
    x, z = torch.randn(7, 4), torch.randn(7, 2)
    out = _test(task, [(x[:3], z[:3]), (x[3:], z[3:])])
    assert set(out) == {"pred", "truth", "target_names"}
    assert out["pred"].shape == out["truth"].shape == (7, 2) and out["pred"].dtype == np.float32
    assert out["target_names"].tolist() == ["energy", "angle"]
    truth = z.numpy().astype(np.float64)
    np.testing.assert_allclose(out["truth"][:, 0], np.exp(truth[:, 0] * 0.5 + 2.0), rtol=1e-5)
    np.testing.assert_allclose(out["truth"][:, 1], truth[:, 1] * 3.0 + 1.0, rtol=1e-5)
    with torch.no_grad():
        pred = task.model(x).numpy().astype(np.float64)
    np.testing.assert_allclose(out["pred"][:, 0], np.exp(pred[:, 0] * 0.5 + 2.0), rtol=1e-5)
    weighted = _test(task, [(x, z, torch.full((7,), 2.0))])
    np.testing.assert_array_equal(weighted["weights"], np.full(7, 2.0, np.float32))


def test_anomaly_outputs_score_every_test_event() -> None:
    torch.manual_seed(0)
    task = AnomalyTask(
        MLP((2,), 1, hidden=(8,)),
        OptimizerConfig(),
        mass_index=0,
        feature_names=("a", "b"),
        signal_region=(3.0, 4.0),
    )
    mass = torch.tensor([2.5, 3.2, 3.5, 4.5, 3.9, 1.0])
    x = torch.stack([mass, torch.randn(6), torch.randn(6)], dim=1)
    y = torch.tensor([0, 1, 0, 0, 1, 0])
    out = _test(task, [(x[:4], y[:4]), (x[4:], y[4:])])
    assert set(out) == {"score", "is_signal", "in_signal_region"}
    assert out["score"].shape == (6,) and out["score"].dtype == np.float32
    np.testing.assert_allclose(out["score"], task(x).detach().numpy(), rtol=1e-6)  # the CWoLa probability
    assert out["is_signal"].dtype == np.bool_ and out["is_signal"].tolist() == [
        False,
        True,
        False,
        False,
        True,
        False,
    ]
    assert out["in_signal_region"].tolist() == [False, True, True, False, True, False]
