"""Regression of real-valued targets, judged as physicists judge an estimator."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.regression import MeanSquaredError

from labkit.config import RegressionSpec
from labkit.errors import ConfigError, DataError, did_you_mean
from labkit.tasks._base import Task, unpack_batch
from labkit.tasks._functional import binned_bias_resolution, fit_stochastic_constant, weighted_mean_std

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from labkit.config import OptimizerConfig, TaskSpec
    from labkit.data import DataInfo

__all__ = ["RegressionTask"]


class RegressionTask(Task):
    """Predicts the targets the data names, in the data module's normalised units.

    Losses: ``mse``, ``mae``, or ``gaussian_nll`` (the model predicts a mean and a variance per
    target: a heteroscedastic estimate of its own uncertainty). Logs ``train_loss``,
    ``val_loss``, ``val_rmse`` and ``test_rmse`` in normalised units (comparable across
    targets), and per target ``T`` in its physical units: ``test_rmse_T``, ``test_mae_T``,
    ``test_bias_T`` (mean of pred − true) and ``test_resolution_T`` (σ of (pred − true)/true).
    Targets in ``resolution_fit`` also get ``test_resolution_a_T`` and ``test_resolution_b_T``
    from a fit of the binned resolution to a/√x ⊕ b. Figures: prediction vs truth, bias and
    resolution binned in the true value. With event weights (``data.weights``) the loss, every
    test metric and the figure are weighted (weighted means, σ and medians).
    """

    monitorable: ClassVar[tuple[str, ...]] = RegressionSpec.monitorable

    @classmethod
    def model_outputs(cls, spec: TaskSpec, info: DataInfo) -> tuple[int, dict[str, Any]]:
        assert isinstance(spec, RegressionSpec)
        names = tuple(info.target_names)
        if not names:
            raise DataError("regression needs real-valued targets: name them in data.targets")
        for name in spec.resolution_fit:
            if name not in names:
                raise ConfigError(
                    f"task.resolution_fit: no target {name!r}{did_you_mean(name, names)}; "
                    f"the targets are: {', '.join(names)}"
                )
        outputs = len(names) * (2 if spec.loss == "gaussian_nll" else 1)
        return outputs, {"targets": names, "scaling": info.target_scaling}

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerConfig,
        *,
        targets: Sequence[str],
        scaling: Sequence[tuple[float, float, bool]] = (),
        loss: str = "mse",
        resolution_fit: Sequence[str] = (),
        bins: int = 10,
    ) -> None:
        super().__init__(model, optimizer)
        self.targets = tuple(targets)
        scaling = tuple(scaling) or tuple((0.0, 1.0, False) for _ in self.targets)
        if len(scaling) != len(self.targets):
            raise ValueError(f"{len(self.targets)} targets but {len(scaling)} scalings")
        self.register_buffer("target_mean", torch.tensor([s[0] for s in scaling], dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor([s[1] for s in scaling], dtype=torch.float32))
        self.register_buffer("target_log", torch.tensor([bool(s[2]) for s in scaling]))
        self.loss_name = loss
        self.val_rmse = MeanSquaredError(squared=False)  # in normalised units, all targets together
        self.val_mse_weighted = MeanMetric()  # the same with event weights (data.weights)
        self._val_weighted = False
        self.resolution_fit = tuple(resolution_fit)
        self.bins = bins
        self._test: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        self._result: dict[str, np.ndarray] = {}

    # -- the estimate ------------------------------------------------------------------------
    def _split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        k = len(self.targets)
        out = out.reshape(len(out), -1)
        if self.loss_name == "gaussian_nll":
            return out[:, :k], F.softplus(out[:, k:]) + 1e-6
        return out, None

    def _loss(self, out: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        mean, var = self._split(out)
        y = y.reshape(mean.shape)
        if self.loss_name == "gaussian_nll":
            assert var is not None
            per = F.gaussian_nll_loss(mean, y, var, reduction="none", full=True)
        elif self.loss_name == "mae":
            per = (mean - y).abs()
        else:
            per = (mean - y) ** 2
        per = per.mean(dim=1)
        if w is None:
            return per.mean()
        return (per * w).sum() / w.sum()

    def physical(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised predictions or targets back in the targets' own units."""
        std, mean, log = self.target_std, self.target_mean, self.target_log
        assert (
            isinstance(std, torch.Tensor) and isinstance(mean, torch.Tensor) and isinstance(log, torch.Tensor)
        )
        value = z * std + mean
        return torch.where(log, torch.exp(value), value)

    # -- Lightning ---------------------------------------------------------------------------
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y, w = unpack_batch(batch)
        out = self.model(x)
        mean, _ = self._split(out)
        n = len(y)
        self.log(
            "val_loss", self._loss(out, y, w), on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True
        )
        if w is None:
            self.val_rmse.update(mean, y.reshape(mean.shape))
            self.log("val_rmse", self.val_rmse, on_epoch=True, prog_bar=True)
        else:  # event weights: the square root of Σ w (mean over targets of the squared error) / Σ w
            self.val_mse_weighted.update((mean - y.reshape(mean.shape)).square().mean(dim=1), w)
            self._val_weighted = True

    def on_validation_epoch_end(self) -> None:
        if self._val_weighted:
            self.log("val_rmse", torch.sqrt(self.val_mse_weighted.compute()), prog_bar=True)
            self.val_mse_weighted.reset()
            self._val_weighted = False

    def on_test_epoch_start(self) -> None:
        self._test = []
        self._result = {}

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y, w = unpack_batch(batch)
        out = self.model(x)
        mean, _ = self._split(out)
        self.log("test_loss", self._loss(out, y, w), on_epoch=True, batch_size=len(y), sync_dist=True)
        self._test.append((mean.detach(), y.reshape(mean.shape).detach(), None if w is None else w.detach()))

    def on_test_epoch_end(self) -> None:
        z_pred = self.gather_rows(torch.cat([p for p, _, _ in self._test]))  # DDP: all ranks' shares
        z_true = self.gather_rows(torch.cat([t for _, t, _ in self._test]))
        given = [w for _, _, w in self._test if w is not None]
        weights = self.gather_rows(torch.cat(given)).double().cpu().numpy() if given else None
        self._test = []
        w = np.ones(len(z_pred)) if weights is None else weights
        squared = ((z_pred - z_true) ** 2).double().mean(dim=1).cpu().numpy()
        self.log("test_rmse", float(np.sqrt(np.dot(w, squared) / w.sum())), sync_dist=False)
        pred = self.physical(z_pred).double().cpu().numpy()
        true = self.physical(z_true).double().cpu().numpy()
        self._result = {"pred": pred, "true": true} | ({} if weights is None else {"weights": weights})
        negative = weights is not None and bool((weights < 0).any())
        for i, name in enumerate(self.targets):
            values = _estimator_scores(name, pred[:, i], true[:, i], weights)
            if name in self.resolution_fit and negative:
                warnings.warn(
                    f"regression task: {int((w < 0).sum())} negative event weights (data.weights); the "
                    f"binned resolution of {name!r} needs weighted medians: test_resolution_a/b not logged",
                    stacklevel=2,
                )
            elif name in self.resolution_fit:
                centres, _, resolution, _ = binned_bias_resolution(
                    true[:, i], pred[:, i], self.bins, weights=weights
                )
                if len(centres) >= 2:
                    a, b = fit_stochastic_constant(centres, resolution)
                    values |= {f"test_resolution_a_{name}": a, f"test_resolution_b_{name}": b}
            for key, value in values.items():
                self.log(key, value, sync_dist=False)

    def test_outputs(self) -> dict[str, np.ndarray]:
        """``pred`` and ``truth`` (N, T) in the targets' physical units (the normalisation and
        any log undone, as the test metrics use them), ``target_names`` (T,) and, with event
        weights, ``weights`` (N,)."""
        if not self._result:
            return {}
        out = {
            "pred": self._result["pred"].astype(np.float32),
            "truth": self._result["true"].astype(np.float32),
            "target_names": np.array(self.targets, dtype=str),
        }
        if "weights" in self._result:
            out["weights"] = self._result["weights"].astype(np.float32)
        return out

    def figures(self) -> dict[str, Figure]:
        if not self._result:
            return {}
        from labkit.tasks._figures import regression_figure

        return {
            f"regression_{name.replace('/', '_')}": regression_figure(
                self._result["true"][:, i],
                self._result["pred"][:, i],
                name,
                self.bins,
                fit=name in self.resolution_fit,
                weights=self._result.get("weights"),
            )
            for i, name in enumerate(self.targets)
        }


def _estimator_scores(
    name: str, pred: np.ndarray, true: np.ndarray, weights: np.ndarray | None
) -> dict[str, float]:
    """RMSE, MAE, bias (mean of pred − true) and resolution (σ of (pred − true)/true) of one target,
    weighted by the event ``weights`` when given (negative weights allowed: means and σ)."""
    err = pred - true
    w = np.ones(len(err)) if weights is None else weights
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = err / true
    finite = np.isfinite(rel)
    _, resolution = weighted_mean_std(rel[finite], weights=w[finite])
    total = w.sum()
    return {
        f"test_rmse_{name}": float(np.sqrt(np.dot(w, err**2) / total)),
        f"test_mae_{name}": float(np.dot(w, np.abs(err)) / total),
        f"test_bias_{name}": float(np.dot(w, err) / total),
        f"test_resolution_{name}": resolution,
    }
