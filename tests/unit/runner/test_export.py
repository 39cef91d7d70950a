"""The export wrapper (normalisation folded in, each task's output convention), the difference
the self-check uses, and the one-line message for an operator the exporter cannot translate:
no training, no run directory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from labkit.config import OptimizerConfig
from labkit.errors import LabkitError
from labkit.models import MLP
from labkit.runner._export import unsupported_message
from labkit.runner._export_model import ExportModule, reference_outputs, relative_difference, task_kind
from labkit.tasks import AnomalyTask, ClassificationTask, RegressionTask, SegmentationTask

OPT = OptimizerConfig()


def _mean_std(width: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.normal(5.0, 2.0, width).astype(np.float32), rng.uniform(0.5, 3.0, width).astype(np.float32)


# -- relative_difference ------------------------------------------------------------------------
def test_identical_outputs_differ_by_nothing() -> None:
    a = np.array([[0.1, 0.9], [0.5, 0.5]], dtype=np.float32)
    assert relative_difference([a], [a.copy()]) == (0.0, 0.0)


def test_relative_difference_is_relative_to_the_reference() -> None:
    want = np.array([100.0, 1.0])
    got = np.array([100.001, 1.0])
    max_abs, max_rel = relative_difference([got], [want])
    assert max_abs == pytest.approx(1e-3)
    assert max_rel == pytest.approx(1e-5)


def test_values_far_below_their_columns_scale_are_judged_against_the_floor() -> None:
    # a logit crossing zero, off by one float32 unit of its column's scale: 1e-6 of the floor
    want = np.array([[1e-9, 100.0], [2.0, 50.0]])
    got = want + np.array([[1.2e-7, 0.0], [0.0, 0.0]])
    _, rel = relative_difference([got], [want])
    assert rel == pytest.approx(1.2e-7 / (0.1 * 2.0))
    _, strict = relative_difference([got], [want], floor_fraction=1e-15)
    assert strict == pytest.approx(1.2e-7 / 1e-9)


def test_each_column_has_its_own_scale() -> None:
    # an energy in GeV next to an eta: eta's error is not hidden by the energy's scale
    want = np.array([[100.0, 0.5], [80.0, -0.4]])
    got = want + np.array([[0.0, 1e-3], [0.0, 0.0]])
    assert relative_difference([got], [want])[1] == pytest.approx(2e-3)


def test_infinities_that_agree_are_no_difference() -> None:
    inf = float("inf")
    assert relative_difference([np.array([inf, 1.0])], [np.array([inf, 1.0])]) == (0.0, 0.0)


def test_an_all_zero_output_is_judged_absolutely() -> None:
    assert relative_difference([np.array([1e-7])], [np.zeros(1)]) == (
        pytest.approx(1e-7),
        pytest.approx(1e-7),
    )


def test_nan_matches_nan_but_not_a_number() -> None:
    nan = float("nan")
    assert relative_difference([np.array([nan, 1.0])], [np.array([nan, 1.0])]) == (0.0, 0.0)
    assert relative_difference([np.array([nan, 1.0])], [np.array([0.5, 1.0])]) == (np.inf, np.inf)


def test_other_shapes_or_counts_are_an_infinite_difference() -> None:
    assert relative_difference([np.zeros(3)], [np.zeros(4)]) == (np.inf, np.inf)
    assert relative_difference([np.zeros(3)], [np.zeros(3), np.zeros(3)]) == (np.inf, np.inf)


# -- the wrapper ------------------------------------------------------------------------------
def test_classification_takes_raw_inputs_and_gives_probabilities() -> None:
    torch.manual_seed(0)
    task = ClassificationTask(MLP((4,), 3, hidden=(8,)), OPT, num_classes=3).eval()
    mean, std = _mean_std(4)
    wrapper = ExportModule(task, kind="classification", mean=mean, std=std).eval()
    raw = torch.randn(16, 4) * 2 + 5
    z = (raw - torch.from_numpy(mean)) / torch.from_numpy(std)
    with torch.no_grad():
        probs = wrapper(raw)
    assert probs.shape == (16, 3)
    assert torch.allclose(probs.sum(1), torch.ones(16))
    assert torch.equal(probs, reference_outputs(task, "classification", z)[0])
    assert wrapper.folded and task_kind(task, "classification") == "classification"


def test_regression_outputs_are_physical_with_log_targets_undone() -> None:
    torch.manual_seed(0)
    scaling = ((2.0, 0.5, True), (10.0, 3.0, False))
    task = RegressionTask(MLP((5,), 2), OPT, targets=("energy", "eta"), scaling=scaling).eval()
    wrapper = ExportModule(task, kind="regression").eval()
    x = torch.randn(7, 5)
    with torch.no_grad():
        out = wrapper(x)
        net = task.model(x)
    assert not wrapper.folded
    assert torch.allclose(out[:, 0], torch.exp(net[:, 0] * 0.5 + 2.0))
    assert torch.allclose(out[:, 1], net[:, 1] * 3.0 + 10.0)
    assert torch.equal(out, reference_outputs(task, "regression", x)[0])


def test_gaussian_nll_regression_exports_the_mean_only() -> None:
    task = RegressionTask(MLP((3,), 2), OPT, targets=("e",), loss="gaussian_nll").eval()
    with torch.no_grad():
        out = ExportModule(task, kind="regression")(torch.randn(4, 3))
    assert out.shape == (4, 1)


@pytest.mark.parametrize("method", ["cwola", "autoencoder"])
def test_anomaly_score_is_the_tasks_own(method: str) -> None:
    torch.manual_seed(0)
    out = 1 if method == "cwola" else 3
    task = AnomalyTask(MLP((3,), out), OPT, mass_index=1, feature_names=("a", "b", "c"), method=method)
    task.feature_mean.copy_(torch.tensor([1.0, 2.0, 3.0]))  # type: ignore[operator]
    task.feature_std.copy_(torch.tensor([0.5, 2.0, 1.5]))  # type: ignore[operator]
    task.eval()
    x = torch.randn(9, 4) + 3.5
    with torch.no_grad():
        score = ExportModule(task, kind="anomaly")(x)
    assert score.shape == (9,)
    assert torch.allclose(score, task(x))


def test_segmentation_gives_per_pixel_probabilities() -> None:
    class Conv(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x.unsqueeze(1))  # type: ignore[no-any-return]

    task = SegmentationTask(Conv(), OPT, num_classes=3).eval()
    with torch.no_grad():
        probs = ExportModule(task, kind="segmentation")(torch.randn(2, 6, 5))
    assert probs.shape == (2, 3, 6, 5)
    assert torch.allclose(probs.sum(1), torch.ones(2, 6, 5))


def test_a_user_module_without_forward_cannot_be_exported() -> None:
    import lightning.pytorch as pl

    class NoForward(pl.LightningModule):
        pass

    with pytest.raises(LabkitError, match=r"model.class_path: NoForward defines no forward\(x\)"):
        task_kind(NoForward(), "classification")


# -- what the exporter cannot translate --------------------------------------------------------
def test_the_unsupported_operator_is_named_from_the_exporters_error() -> None:
    inner = RuntimeError(
        "No ONNX function found for <OpOverload(op='aten.special_zeta', overload='default')>. "
        "Failure message: No decompositions registered"
    )
    try:
        try:
            raise inner
        except RuntimeError as exc:
            raise RuntimeError("Failed to convert the exported program to an ONNX model.") from exc
    except RuntimeError as outer:
        message = unsupported_message(outer, 18)
    assert message.startswith("cannot export to ONNX (opset 18): the operator aten.special_zeta")
    assert "\n" not in message


def test_an_error_without_an_operator_gives_its_first_line() -> None:
    message = unsupported_message(ValueError("the model does something\nmore text"), 18)
    assert message == "cannot export to ONNX: ValueError: the model does something"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"opset": 9},
            r"^--opset 9: the exporter \(torch.onnx.export\(dynamo=True\)\) writes opsets 18 to 23$",
        ),
        ({"format": "tflite"}, r"^--format 'tflite': choose one of onnx, torchscript, both$"),
        ({"tolerance": 0.0}, r"^--tolerance 0.0: give a positive relative difference"),
    ],
)
def test_bad_options_are_refused_before_the_run_is_loaded(options: dict[str, object], message: str) -> None:
    from labkit.runner._export import export_run

    with pytest.raises(LabkitError, match=message):
        export_run("no-such-run", **options)  # type: ignore[arg-type]
