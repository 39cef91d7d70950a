"""The anomaly task: what it trains on (never the labels), its losses, and its metrics against the
functions they are defined by, on dijet events with an exact likelihood ratio."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from labkit.config import AnomalySpec, OptimizerConfig
from labkit.data import DataInfo
from labkit.errors import DataError
from labkit.models import MLP, Autoencoder
from labkit.sim._dijet import COLUMNS, simulate_dijet
from labkit.tasks import AnomalyTask
from labkit.tasks._functional import max_sic, rejection_at_efficiency, roc_auc

SR = (3.3, 3.7)
FEATURES = COLUMNS[1:]


def _events(
    n: int, seed: int, fraction: float = 0.1, **options: object
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    s = simulate_dijet(n, seed=seed, signal_fraction=fraction, mjj_range=(3.0, 4.2), **options)  # type: ignore[arg-type]
    return torch.from_numpy(s.features.astype(np.float32)), torch.from_numpy(s.is_signal), s.likelihood_ratio


def _trainer(epochs: int = 2) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )


def _task(method: str = "cwola", variational: bool = False, **kw: object) -> AnomalyTask:
    model: torch.nn.Module
    if method == "cwola":
        model = MLP((4,), 1, hidden=(16,))
    else:
        model = Autoencoder((4,), 4, hidden=(16,), latent=2, variational=variational)
    return AnomalyTask(
        model, OptimizerConfig(lr=1e-2), mass_index=0, feature_names=FEATURES, method=method, **kw
    )  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- losses


def test_vae_score_is_reconstruction_plus_weighted_kl() -> None:
    x, _, _ = _events(50, seed=4)
    task = _task("autoencoder", variational=True, kl_weight=0.5)
    task.eval()
    with torch.no_grad():
        z = (x[:, 1:] - task.feature_mean) / task.feature_std
        out = task.model(z)
        expected = 0.5 * (out.reconstruction - z).square().sum(1) + 0.5 * out.kl_divergence()
        assert torch.allclose(task(x), expected)


# ----------------------------------------------------------------------------- metrics


def test_np_max_sic_is_the_sic_of_the_exact_likelihood_ratio_on_the_signal_region_test_events() -> None:
    x, y, lr = _events(4000, seed=5, fraction=0.05)
    task = _task("cwola", reference_scores=lr, min_background=10)
    (result,) = _trainer().test(task, DataLoader(TensorDataset(x, y), batch_size=512), verbose=False)
    inside = ((x[:, 0] >= SR[0]) & (x[:, 0] < SR[1])).numpy()
    truth = y.numpy()[inside] == 1
    assert result["np_max_sic"] == pytest.approx(max_sic(lr[inside], truth, 10), rel=1e-6)
    assert result["np_auc"] == pytest.approx(roc_auc(lr[inside], truth), rel=1e-6)
    assert result["np_rejection_at_eff30"] == pytest.approx(rejection_at_efficiency(lr[inside], truth, 0.3))
    assert result["test_sr_signal"] == truth.sum() and result["test_sr_background"] == (~truth).sum()
    with torch.no_grad():
        score = task(x).numpy()[inside]
    assert result["test_max_sic"] == pytest.approx(max_sic(score, truth, 10), rel=1e-6)
    assert result["test_auc"] == pytest.approx(roc_auc(score, truth), rel=1e-6)
    assert result["test_max_sic_over_np"] == pytest.approx(
        result["test_max_sic"] / result["np_max_sic"], rel=1e-6
    )
    # the exact ratio is the best discriminant there is: an untrained network is far below it
    assert result["np_auc"] > 0.99 > result["test_auc"]
    fig = task.figures()["sic_curve"]
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[:2] == ["cwola (score)", "Neyman–Pearson (exact likelihood ratio)"]


def test_undefined_metrics_are_nan_and_no_figure() -> None:
    x, y, lr = _events(300, seed=8, fraction=0.0)  # no signal at all
    task = _task("autoencoder", reference_scores=lr)
    (result,) = _trainer().test(task, DataLoader(TensorDataset(x, y), batch_size=64), verbose=False)
    for key in ("test_auc", "test_max_sic", "test_rejection_at_eff30", "np_max_sic", "test_max_sic_over_np"):
        assert math.isnan(result[key]), key
    assert result["test_sr_signal"] == 0 and task.figures() == {}
    # fewer background events in the signal region than min_background: no SIC, the AUC is defined
    x, y, lr = _events(300, seed=8, fraction=0.2)
    task = _task("cwola", reference_scores=lr, min_background=1000)
    (result,) = _trainer().test(task, DataLoader(TensorDataset(x, y), batch_size=64), verbose=False)
    assert math.isnan(result["test_max_sic"]) and math.isnan(result["np_max_sic"])
    assert 0.0 <= result["test_auc"] <= 1.0 and result["np_auc"] > 0.9


# ----------------------------------------------------------------------------- the spec and errors


def test_spec_builds_the_task_arguments_from_the_data() -> None:
    info = DataInfo(in_shape=(5,), input_names=COLUMNS, extras={"likelihood_ratio": np.ones(3)})
    spec = AnomalySpec(kind="anomaly")
    assert AnomalyTask.extras(spec) == ("likelihood_ratio",)
    assert AnomalyTask.model_args(spec, info) == {"in_shape": (4,)}
    outputs, args = AnomalyTask.model_outputs(spec, info)
    assert outputs == 1 and args["mass_index"] == 0 and args["feature_names"] == FEATURES
    assert AnomalyTask.model_outputs(AnomalySpec(kind="anomaly", method="autoencoder"), info)[0] == 4
    assert set(spec.options()) == {"method", "signal_region", "min_background", "kl_weight"}
    with pytest.raises(
        DataError, match=r"task.mass_feature: no input column 'm_jj'.*the columns are: mjj, mj1"
    ):
        AnomalyTask.model_outputs(AnomalySpec(kind="anomaly", mass_feature="m_jj"), info)


def test_bad_options() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="the signal region must be"):
        AnomalySpec(kind="anomaly", signal_region=(3.7, 3.3))
    with pytest.raises(ValueError, match="unknown anomaly method 'vae'; valid: autoencoder, cwola"):
        AnomalyTask(MLP((4,), 1), OptimizerConfig(), mass_index=0, method="vae")
    with pytest.raises(ValueError, match=r"signal_region must be \(low, high\)"):
        AnomalyTask(MLP((4,), 1), OptimizerConfig(), mass_index=0, signal_region=(2.0, 1.0))
    task = AnomalyTask(Autoencoder((4,), 3, latent=2), OptimizerConfig(), mass_index=0, method="autoencoder")
    with pytest.raises(
        ValueError, match=r"the autoencoder reconstructs \(3,\) per event, the features are \(4,\)"
    ):
        task(torch.ones(2, 5))
