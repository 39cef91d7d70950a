"""Resonant anomaly detection, judged by the significance improvement against the exact
likelihood ratio (the Neyman–Pearson ceiling)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from labkit.config import AnomalySpec
from labkit.errors import DataError, did_you_mean
from labkit.tasks._base import Task, unpack_batch
from labkit.tasks._functional import max_sic, rejection_at_efficiency, roc_auc, sic_curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from labkit.config import OptimizerConfig, TaskSpec
    from labkit.data import DataInfo

__all__ = ["AnomalyTask"]

_METHODS = ("autoencoder", "cwola")


def _mass_index(spec: AnomalySpec, info: DataInfo) -> int:
    names = tuple(info.input_names)
    if spec.mass_feature not in names:
        shown = ", ".join(names) or "none (the inputs need a `columns` attribute or one key per column)"
        raise DataError(
            f"task.mass_feature: no input column {spec.mass_feature!r}"
            f"{did_you_mean(spec.mass_feature, names)}; the columns are: {shown}"
        )
    return names.index(spec.mass_feature)


class AnomalyTask(Task):
    """Finds a resonance in one mass feature without using the truth labels in training.

    The inputs are table rows (N, F) holding the mass feature (column ``mass_index``) and F − 1
    other features; the mass defines the signal region ``[low, high)`` and the sidebands (every
    other event). The network sees only the other features, standardised with means and standard
    deviations of the training split (kept as buffers, so a checkpoint scores like the trained
    task). The targets (``is_signal``) are read only by the test metrics.

    Methods:

    * ``cwola`` (classification without labels): a classifier of signal region (1) vs sidebands
      (0), binary cross-entropy with the two regions weighted to equal total weight. If the
      signal region holds a resonance the background lacks, the best such classifier is a
      monotone function of p_sig/p_bkg. Score: the classifier's probability.
    * ``autoencoder``: trained on sideband events only to reconstruct them; loss and score
      ``½‖x̂ − x‖²`` (standardised features), plus ``kl_weight · KL(q(z|x) ‖ N(0, 1))`` for a
      variational model (one returning :class:`~labkit.models._autoencoder.VAEOutput`).

    Logs ``train_loss``, ``val_loss`` and ``test_loss`` (the training objective on that split:
    region BCE for CWoLa, sideband reconstruction for the autoencoder). On the test events inside
    the signal region: ``test_auc``, ``test_max_sic`` (max ε_S/√ε_B over the cuts at least
    ``min_background`` background events pass), ``test_rejection_at_eff30`` (1/ε_B at ε_S = 0.3),
    ``test_sr_signal`` and ``test_sr_background`` (event counts), and, when the data gives the
    exact likelihood ratio of the test events (``reference_scores``), ``np_max_sic``, ``np_auc``,
    ``np_rejection_at_eff30`` of that ratio on the same events and ``test_max_sic_over_np``.
    A metric that is undefined on the test events (no signal in the signal region, fewer than
    ``min_background`` background events) is logged as NaN. Figure: ``sic_curve``.

    With event weights (``data.weights``) they multiply the training weights (CWoLa's regions are
    balanced to equal total weight) and the test metrics and curves are weighted;
    ``min_background`` and the ``test_sr_*`` counts stay event counts.
    """

    monitorable: ClassVar[tuple[str, ...]] = AnomalySpec.monitorable

    @classmethod
    def extras(cls, spec: TaskSpec) -> tuple[str, ...]:
        assert isinstance(spec, AnomalySpec)
        return (spec.likelihood_ratio,) if spec.likelihood_ratio else ()

    @classmethod
    def model_args(cls, spec: TaskSpec, info: DataInfo) -> dict[str, Any]:
        return {"in_shape": (int(info.in_shape[0]) - 1,)}  # every feature but the mass

    @classmethod
    def model_outputs(cls, spec: TaskSpec, info: DataInfo) -> tuple[int, dict[str, Any]]:
        assert isinstance(spec, AnomalySpec)
        index = _mass_index(spec, info)
        features = int(info.in_shape[0]) - 1
        outputs = features if spec.method == "autoencoder" else 1
        reference = info.extras.get(spec.likelihood_ratio) if spec.likelihood_ratio else None
        names = tuple(n for n in info.input_names if n != spec.mass_feature)
        return outputs, {"mass_index": index, "feature_names": names, "reference_scores": reference}

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerConfig,
        *,
        mass_index: int,
        feature_names: Sequence[str] = (),
        reference_scores: np.ndarray | None = None,
        method: str = "cwola",
        signal_region: tuple[float, float] = (3.3, 3.7),
        min_background: int = 10,
        kl_weight: float = 1.0,
    ) -> None:
        super().__init__(model, optimizer)
        if method not in _METHODS:
            raise ValueError(f"unknown anomaly method {method!r}; valid: {', '.join(_METHODS)}")
        low, high = (float(v) for v in signal_region)
        if not low < high:
            raise ValueError(f"signal_region must be (low, high) with low < high, got {signal_region!r}")
        if min_background < 1:
            raise ValueError(f"min_background must be >= 1, got {min_background}")
        self.method = method
        self.mass_index = int(mass_index)
        self.feature_names = tuple(feature_names)
        self.signal_region = (low, high)
        self.min_background = int(min_background)
        self.kl_weight = float(kl_weight)
        self.reference_scores = None if reference_scores is None else np.asarray(reference_scores)
        width = len(self.feature_names) or 1
        self.register_buffer("feature_mean", torch.zeros(width))
        self.register_buffer("feature_std", torch.ones(width))
        # CWoLa: the weight of a sideband (index 0) and a signal-region (index 1) training event
        self.register_buffer("region_weight", torch.ones(2))
        self.val_objective = MeanMetric()
        self.test_objective = MeanMetric()
        self._test: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._weighted = False  # whether the test batches carried event weights
        self._result: dict[str, Any] = {}
        self._outputs: dict[str, np.ndarray] = {}  # the last test's per-event outputs

    # -- inputs ------------------------------------------------------------------------------
    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mass column ``(N,)`` and the other features ``(N, F − 1)`` of raw rows ``(N, F)``."""
        x = x.reshape(len(x), -1)
        i = self.mass_index
        return x[:, i], torch.cat([x[:, :i], x[:, i + 1 :]], dim=1)

    def in_signal_region(self, mass: torch.Tensor) -> torch.Tensor:
        """True for events with ``low <= mass < high``."""
        low, high = self.signal_region
        return (mass >= low) & (mass < high)

    def _standardised(self, features: torch.Tensor) -> torch.Tensor:
        mean, std = self.feature_mean, self.feature_std
        assert isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor)
        return (features - mean) / std

    # -- the objective and the score -----------------------------------------------------------
    def _objective(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per event: the loss, its weight in the mean (0 for events the method does not train
        on) and the anomaly score (higher = more signal-like)."""
        mass, features = self.split(x)
        z = self._standardised(features)
        region = self.in_signal_region(mass)
        out = self.model(z)
        if self.method == "cwola":
            logit = (out if isinstance(out, torch.Tensor) else out[0]).reshape(len(z), -1)[:, 0]
            loss = F.binary_cross_entropy_with_logits(logit, region.float(), reduction="none")
            weights = self.region_weight
            assert isinstance(weights, torch.Tensor)
            return loss, weights[region.long()], torch.sigmoid(logit)
        reconstruction = out if isinstance(out, torch.Tensor) else out[0]
        if reconstruction.shape != z.shape:
            raise ValueError(
                f"the autoencoder reconstructs {tuple(reconstruction.shape[1:])} per event, "
                f"the features are {tuple(z.shape[1:])}"
            )
        loss = 0.5 * (reconstruction - z).square().sum(dim=1)
        if not isinstance(out, torch.Tensor) and hasattr(out, "kl_divergence"):
            loss = loss + self.kl_weight * out.kl_divergence()
        return loss, (~region).float(), loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The anomaly score of raw rows ``(N, F)`` (mass column included)."""
        return self._objective(x)[2]

    # -- Lightning ---------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        """Standardisation (and CWoLa's region weights) from the training split: every training
        event for CWoLa, the sideband events for the autoencoder. The labels are not read."""
        rows = self._training_rows()
        if rows is None:
            return
        total = torch.zeros(len(self.feature_names) or 1, dtype=torch.float64)
        square = torch.zeros_like(total)
        counts = torch.zeros(2, dtype=torch.float64)  # sidebands, signal region
        region_sums = torch.zeros(2, dtype=torch.float64)  # the same in event weight
        weighted = False
        for batch in rows:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            w = batch[2] if isinstance(batch, (tuple, list)) and len(batch) == 3 else None
            mass, features = self.split(x.to(torch.float64))
            region = self.in_signal_region(mass)
            counts += torch.stack([(~region).sum(), region.sum()]).to(torch.float64)
            if w is not None:  # event weights: the regions' total weights, not their event counts
                weighted = True
                w = w.to(torch.float64)
                region_sums += torch.stack([w[~region].sum(), w[region].sum()]).cpu()
            keep = features if self.method == "cwola" else features[~region]
            total += keep.sum(dim=0).cpu()
            square += keep.square().sum(dim=0).cpu()
        n = counts.sum() if self.method == "cwola" else counts[0]
        if n < 2:
            warnings.warn(
                f"anomaly task: {int(n)} training events to standardise the features with; left as they are",
                stacklevel=2,
            )
            return
        mean = total / n
        std = torch.sqrt(torch.clamp(square / n - mean.square(), min=0.0))
        std = torch.where(std > 0, std, torch.ones_like(std))
        # equal total weight for the two regions: N / (2 N_region) per event (W / (2 W_region) with
        # event weights, which multiply it)
        if weighted:
            sums = torch.where(region_sums > 0, region_sums, torch.ones_like(region_sums))
            weight = region_sums.sum() / (2.0 * sums)
        else:
            weight = counts.sum() / (2.0 * counts.clamp(min=1.0))
        for name, value in (("feature_mean", mean), ("feature_std", std), ("region_weight", weight)):
            buffer = getattr(self, name)
            buffer.copy_(value.to(buffer))

    def _training_rows(self) -> Any:
        """The training split in a fixed order (the shuffling loader's generator is not touched)."""
        if self._trainer is None:
            return None
        self.trainer.fit_loop.setup_data()
        source = self.trainer.train_dataloader
        dataset = getattr(source, "dataset", None)
        if dataset is None:
            return source
        return torch.utils.data.DataLoader(dataset, batch_size=8192, shuffle=False)

    def _weighted_objective(
        self, x: torch.Tensor, w: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`_objective` with the events' weights (``data.weights``) multiplied in."""
        loss, weight, score = self._objective(x)
        return loss, weight if w is None else weight * w.to(weight.dtype), score

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, _, w = unpack_batch(batch)  # the labels are never used in training
        loss, weight, _ = self._weighted_objective(x, w)
        total = weight.sum()
        value = (loss * weight).sum() / (total.clamp(min=1e-12) if w is None else total)
        self.log("train_loss", value, on_step=True, on_epoch=False, prog_bar=True)
        return value

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, _, w = unpack_batch(batch)
        loss, weight, _ = self._weighted_objective(x, w)
        self.val_objective.update(loss, weight)
        self.log("val_loss", self.val_objective, on_epoch=True, prog_bar=True)

    def on_test_epoch_start(self) -> None:
        self._test = []
        self._weighted = False
        self._result = {}
        self._outputs = {}

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y, w = unpack_batch(batch)
        loss, weight, score = self._weighted_objective(x, w)
        self.test_objective.update(loss, weight)
        self.log("test_loss", self.test_objective, on_epoch=True)
        mass, _ = self.split(x)
        self._weighted = self._weighted or w is not None
        w = torch.ones_like(mass) if w is None else w.to(mass.dtype)
        self._test.append((score.detach(), y.reshape(len(y), -1)[:, 0].detach(), mass.detach(), w.detach()))

    def on_test_epoch_end(self) -> None:
        score = self.gather_rows(torch.cat([s for s, _, _, _ in self._test])).double().cpu().numpy()
        truth = self.gather_rows(torch.cat([t for _, t, _, _ in self._test])).cpu().numpy() > 0
        mass = self.gather_rows(torch.cat([m for _, _, m, _ in self._test]))
        w = self.gather_rows(torch.cat([v for _, _, _, v in self._test])).double().cpu().numpy()
        region = self.in_signal_region(mass).cpu().numpy()
        self._test = []
        self._outputs = {
            "score": score.astype(np.float32),
            "is_signal": truth.astype(bool),
            "in_signal_region": region.astype(bool),
        }
        if self._weighted:
            self._outputs["weights"] = w.astype(np.float32)
        weights = w[region] if self._weighted else None
        n_sig, n_bkg = int(truth[region].sum()), int((~truth[region]).sum())
        values = {"test_sr_signal": float(n_sig), "test_sr_background": float(n_bkg)}
        values |= self._judge("test", score[region], truth[region], weights)
        curves = {f"{self.method} (score)": score[region]}
        reference = self.reference_scores
        if reference is not None and len(reference) == len(score) and self.trainer.world_size == 1:
            ratio = np.asarray(reference, dtype=np.float64)[region]
            values |= self._judge("np", ratio, truth[region], weights)
            values["test_max_sic_over_np"] = values["test_max_sic"] / values["np_max_sic"]
            curves["Neyman–Pearson (exact likelihood ratio)"] = ratio
        elif reference is not None:
            warnings.warn(
                f"anomaly task: {len(reference)} reference scores for {len(score)} test events "
                f"on {self.trainer.world_size} processes; np_* metrics not computed",
                stacklevel=2,
            )
        for key, value in values.items():
            self.log(key, value, sync_dist=False)
        self._result = {"curves": {}, "n_signal": n_sig, "n_background": n_bkg}
        if n_sig and n_bkg:
            for label, s in curves.items():
                try:
                    eff_s, eff_b, _ = sic_curve(s, truth[region], 1, weights=weights)
                except ValueError:  # a class's weights sum to <= 0: no curve
                    continue
                self._result["curves"][label] = (eff_s, eff_b)

    def test_outputs(self) -> dict[str, np.ndarray]:
        """Every test event's ``score`` (higher = more anomalous), ``is_signal``,
        ``in_signal_region`` (the events the test metrics are computed on) and, with event
        weights, ``weights``."""
        return dict(self._outputs)

    def _judge(
        self, prefix: str, score: np.ndarray, truth: np.ndarray, weights: np.ndarray | None = None
    ) -> dict[str, float]:
        """AUC, max SIC and rejection at 30 % signal efficiency of ``score``, weighted by the event
        ``weights`` when given (NaN if undefined)."""
        out = {}
        for name, metric in (
            ("auc", lambda: roc_auc(score, truth, weights=weights)),
            ("max_sic", lambda: max_sic(score, truth, self.min_background, weights=weights)),
            ("rejection_at_eff30", lambda: rejection_at_efficiency(score, truth, 0.3, weights=weights)),
        ):
            try:
                out[f"{prefix}_{name}"] = float(metric())
            except ValueError:  # no signal or too little background in the signal region
                out[f"{prefix}_{name}"] = float("nan")
        return out

    def figures(self) -> dict[str, Figure]:
        if not self._result.get("curves"):
            return {}
        from labkit.tasks._figures import sic_figure

        return {
            "sic_curve": sic_figure(
                self._result["curves"],
                self._result["n_signal"],
                self._result["n_background"],
                self.min_background,
            )
        }
