"""Generative surrogates of the ``calo`` simulator, judged as in the Fast Calorimeter Simulation
Challenge (CaloChallenge 2022)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from labkit.config import SurrogateSpec
from labkit.errors import ConfigError, DataError
from labkit.models import TwoStageShowerModel
from labkit.tasks._base import Task, unpack_batch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from labkit.config import OptimizerConfig, TaskSpec
    from labkit.data import DataInfo
    from labkit.tasks._showers import ShowerEvaluation

__all__ = ["SurrogateTask"]

#: the batch size of the large-batch generation timing (gen_ms_per_shower_b10000)
LARGE_BATCH = 10_000
#: showers the simulator is timed on (sim_ms_per_shower)
SIM_TIMING_SHOWERS = 2_000


class SurrogateTask(Task):
    """Learns showers of the ``calo`` simulator given the incident energy, and judges the copies.

    Two models: a :class:`~labkit.models.TwoStageShowerModel` works on the cells in GeV (the
    task fits its layer statistics on the training split, passes the readout's ``noise`` and
    ``threshold`` when it samples, and sets its quantum θ from the validation cells after each
    validation epoch); a :class:`~labkit.models.ConditionalVAE` works on the task's preprocessed
    cells: a cell x (GeV) in a shower of incident energy E becomes u = (x − t)/(E s) above the
    readout threshold t and 0 below, s the mean of (x − t)/E over the non-zero training cells (a
    buffer, fitted on the training split), and a generated u goes back as x = u E s + t where
    u > 0, exactly 0 elsewhere. Both condition on the normalised log E of the data module.

    Logs ``train_loss``, ``val_loss`` and ``test_loss`` (the model's loss per shower). At test it
    judges the model with :meth:`evaluate` (``evaluation_showers`` fresh simulator showers, as
    many generated at their energies, and with ``reference`` a second simulator sample: the
    floor) and logs (docs/tasks.md has the definitions): ``test_hl_classifier_auc``,
    ``test_ll_classifier_auc`` (with ``low_level``), ``test_fpd``, ``test_kpd``,
    ``test_sep_power_<feature>``, ``test_sep_power_mean``; with ``reference`` also
    ``reference_hl_classifier_auc``, ``reference_ll_classifier_auc``, ``reference_fpd``,
    ``reference_kpd``, ``reference_sep_power_mean`` and the gaps ``test_hl_gap``,
    ``test_ll_gap``; and ``gen_ms_per_shower_b1``, ``gen_ms_per_shower_b10000`` (wall time per
    generated shower, GeV cells included, at batch size 1 and 10 000, on the CPU, median of
    ``timing_repeats``) and ``sim_ms_per_shower`` (the simulator's, same options, 2000 showers).

    Figures: the high-level features of generated, simulated and second simulated showers,
    with ratio panels, one figure per group of features.
    """

    monitorable: ClassVar[tuple[str, ...]] = SurrogateSpec.monitorable

    @classmethod
    def model_args(cls, spec: TaskSpec, info: DataInfo) -> dict[str, Any]:
        return {"in_shape": tuple(info.in_shape), "conditions": len(info.target_names)}

    @classmethod
    def model_outputs(cls, spec: TaskSpec, info: DataInfo) -> tuple[int, dict[str, Any]]:
        if info.weighted:
            raise ConfigError(
                "data.weights: task surrogate takes no event weights: it compares its generated showers "
                "with unweighted simulator samples (every simulated shower weighs 1); remove data.weights"
            )
        if info.simulator != "calo":
            where = f"simulator {info.simulator!r}" if info.simulator else "a file or a class of your own"
            raise DataError(
                f"task surrogate: the data come from {where}; a surrogate learns labkit's calo simulator "
                "(data: {name: simulated, simulator: calo, inputs: showers, targets: [incident_energy]}), "
                "whose options it needs to time it and to write showers in its layout"
            )
        if tuple(info.target_names) != ("incident_energy",):
            raise DataError(
                "task surrogate: data.targets must be [incident_energy] (the condition), got "
                f"[{', '.join(info.target_names)}]"
            )
        options: dict[str, Any] = dict(info.simulator_options)
        if options.get("particle") == "mixed":
            raise DataError(
                "task surrogate: the showers are conditioned on the energy alone: simulate one particle "
                "(data.parameters.particle: electron or pion), not mixed"
            )
        grid = (int(options["layers"]), len(tuple(options["radial_edges"])) - 1, int(options["angular_bins"]))
        if tuple(info.in_shape) != grid:
            raise DataError(
                f"task surrogate: data.inputs must be the showers, shape {grid} (layers, radial bins, "
                f"angular bins); got samples of shape {tuple(info.in_shape)}"
            )
        if float(options.get("threshold", 0.0)) < 0:
            raise DataError(
                "task surrogate: the surrogate models cell energies >= 0 with exact zeros; "
                f"data.parameters.threshold must be >= 0, got {options['threshold']}"
            )
        size = grid[0] * grid[1] * grid[2]
        return size, {
            "scaling": tuple(info.target_scaling),
            "simulator": info.simulator,
            "simulator_options": options,
        }

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerConfig,
        *,
        scaling: Sequence[tuple[float, float, bool]],
        simulator: str,
        simulator_options: Mapping[str, Any],
        bins: int = 30,
        evaluation_showers: int = 20_000,
        low_level: bool = True,
        reference: bool = True,
        timing_repeats: int = 5,
        sample_seed: int = 0,
    ) -> None:
        super().__init__(model, optimizer)
        if len(scaling) != 1:
            raise ValueError(
                f"a surrogate is conditioned on the incident energy alone, got {len(scaling)} targets"
            )
        mean, std, log = scaling[0]
        self.scaling = ((float(mean), float(std), bool(log)),)
        self.simulator = simulator
        self.simulator_options = dict(simulator_options)
        options = self.simulator_options
        self.threshold = max(float(options.get("threshold", 0.0)), 0.0)
        self.radial_edges = tuple(float(r) for r in options["radial_edges"])
        self.shower_shape = (int(options["layers"]), len(self.radial_edges) - 1, int(options["angular_bins"]))
        self.noise = max(float(options.get("noise", 0.0)), 0.0)
        self.layer_thickness = float(options.get("layer_thickness", 2.0))
        self.bins = bins
        self.evaluation_showers = evaluation_showers
        self.low_level = low_level
        self.two_stage = isinstance(model, TwoStageShowerModel)
        self.reference = reference
        self.timing_repeats = timing_repeats
        self.sample_seed = sample_seed
        self.register_buffer("value_scale", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("fitted", torch.tensor(False))
        self._moments = [0.0, 0.0]
        self._result: ShowerEvaluation | None = None

    # -- units -------------------------------------------------------------------------------
    def energy(self, condition: torch.Tensor) -> torch.Tensor:
        """Incident energies (GeV, float64) from the data module's normalised targets (N, 1)."""
        mean, std, log = self.scaling[0]
        value = condition.reshape(-1).double() * std + mean
        return torch.exp(value) if log else value

    def condition(self, energy: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The model's condition (N, 1), float32, for incident energies in GeV."""
        mean, std, log = self.scaling[0]
        e = torch.as_tensor(np.asarray(energy, dtype=np.float64)).reshape(-1)
        value = torch.log(e) if log else e
        return ((value - mean) / std).float()[:, None]

    def encode(self, showers: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
        """Cells in GeV (N, ...) → the model's units: (x − t)/(E s) above threshold, else 0."""
        x = showers.reshape(len(showers), -1).double()
        scale = self.value_scale
        assert isinstance(scale, torch.Tensor)
        u = (x - self.threshold) / (energy.double()[:, None] * scale)
        return torch.where(x > 0, u.clamp_min(1e-12), torch.zeros_like(u)).float()

    def decode(self, values: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
        """The model's units → cells in GeV (N, layers, radial, angular), float32, exact zeros."""
        u = values.reshape(len(values), -1).double()
        scale = self.value_scale
        assert isinstance(scale, torch.Tensor)
        x = u * energy.double()[:, None] * scale.to(u.device) + self.threshold
        return torch.where(u > 0, x, torch.zeros_like(x)).float().reshape(len(u), *self.shower_shape)

    @torch.no_grad()
    def generate(
        self, energy: np.ndarray | torch.Tensor, *, seed: int = 0, batch_size: int = LARGE_BATCH
    ) -> np.ndarray:
        """Showers (N, layers, radial bins, angular bins) in GeV, float32, one per incident energy
        (GeV); the same energies and ``seed`` give the same showers."""
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        e = torch.as_tensor(np.asarray(energy, dtype=np.float64)).reshape(-1)
        out = []
        for i, start in enumerate(range(0, len(e), batch_size)):
            part = e[start : start + batch_size]
            if self.two_stage:
                showers = self.model.sample(  # type: ignore[operator]
                    self.condition(part).to(device),
                    part.to(device),
                    noise=self.noise,
                    threshold=self.threshold,
                    seed=seed + i,
                )
                out.append(showers.cpu().numpy())
                continue
            values = self.model.sample(self.condition(part).to(device), seed=seed + i)  # type: ignore[operator]
            out.append(self.decode(values.cpu(), part).numpy())
        self.model.train(was_training)
        if not out:
            return np.zeros((0, *self.shower_shape), dtype=np.float32)
        return np.concatenate(out)

    # -- training ----------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        if bool(self.fitted):
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            raise DataError(
                "the surrogate task fits its preprocessing on the training split of a data module"
            )
        total, count, negative = 0.0, 0, 0
        layers: list[torch.Tensor] = []
        energies: list[torch.Tensor] = []
        for batch in datamodule.train_dataloader():
            x, c, _ = unpack_batch(batch)
            if self.two_stage:
                layers.append(x.reshape(len(x), self.shower_shape[0], -1).double().sum(dim=-1).cpu())
                energies.append(self.energy(c).cpu())
            x = x.reshape(len(x), -1).double()
            negative += int((x < 0).sum())
            hit = x > 0
            excess = (x - self.threshold) / self.energy(c)[:, None]
            total += float(excess[hit].sum())
            count += int(hit.sum())
        if negative:
            raise DataError(
                f"the surrogate models cell energies >= 0 with exact zeros below the readout threshold; the "
                f"training showers hold {negative} negative cells: simulate with threshold >= 0"
            )
        if count == 0 or total <= 0:
            raise DataError("every cell of the training showers is zero: nothing to learn")
        self.value_scale.fill_(total / count)  # type: ignore[operator]
        if self.two_stage:
            self.model.fit_layer_statistics(torch.cat(layers), torch.cat(energies))  # type: ignore[operator]
        self.fitted.fill_(True)  # type: ignore[operator]

    def _batch_loss(self, batch: Any) -> torch.Tensor:
        x, c, w = unpack_batch(batch)
        if self.two_stage:
            terms = self.model(x, self.energy(c), c)
            per: torch.Tensor = terms.flow + terms.shape + terms.profile
        else:
            nll, kl = self.model(self.encode(x, self.energy(c)), c)
            per = (nll + kl) / self.model.features  # type: ignore[operator]
        if w is None:
            return per.mean()
        weighted: torch.Tensor = (per * w).sum() / w.sum()
        return weighted

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._batch_loss(batch)
        self.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._moments = [0.0, 0.0]

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        n = len(batch[0])
        self.log(
            "val_loss", self._batch_loss(batch), on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True
        )
        if self.two_stage:
            x, c, _ = unpack_batch(batch)
            residual, expected = self.model.quantum_moments(x, self.energy(c), c)  # type: ignore[operator]
            self._moments[0] += residual
            self._moments[1] += expected

    def on_validation_epoch_end(self) -> None:
        # the two-stage model's quantum θ: the moment estimate over the validation cells
        if self.two_stage and self._moments[1] > 0 and not self.trainer.sanity_checking:
            moments = self.all_gather(torch.tensor(self._moments, dtype=torch.float64, device=self.device))
            assert isinstance(moments, torch.Tensor)
            residual, expected = moments.reshape(-1, 2).sum(dim=0).tolist()
            self.model.quantum.fill_(residual / expected)  # type: ignore[operator, union-attr]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # what `labkit generate` needs to rebuild the task without the data
        checkpoint["labkit_surrogate"] = {
            "in_shape": list(self.shower_shape),
            "target_names": ["incident_energy"],
            "target_scaling": [list(self.scaling[0])],
            "simulator": self.simulator,
            "simulator_options": {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.simulator_options.items()
            },
        }

    # -- test --------------------------------------------------------------------------------
    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, _, _ = unpack_batch(batch)
        self.log("test_loss", self._batch_loss(batch), on_epoch=True, batch_size=len(x), sync_dist=True)

    def on_test_epoch_end(self) -> None:
        result = self.evaluate()
        metrics = {(k if k.startswith("reference_") else f"test_{k}"): v for k, v in result.metrics().items()}
        metrics |= self._timings()
        for key, value in metrics.items():
            self.log(key, value, sync_dist=False)
        self._result = result

    def evaluate(self) -> ShowerEvaluation:
        """The CaloChallenge-style judgement (:func:`~labkit.tasks.evaluate_showers`) of
        ``evaluation_showers`` generated showers against as many fresh simulator showers at the
        same incident energies, and (with ``reference``) of a second, independent simulator
        sample against the first: the floor. The simulator samples use seeds of their own, not
        the training data's."""
        from labkit import sim
        from labkit.tasks._showers import evaluate_showers

        seeds = np.random.SeedSequence([self.sample_seed, 2**20 + 11]).generate_state(2)
        options = self._sim_options() | {
            "energy_range": tuple(float(v) for v in self.simulator_options["energy_range"])
        }
        first = sim.simulate(self.simulator, self.evaluation_showers, seed=int(seeds[0]), **options)
        energy = np.asarray(first.incident_energy, dtype=np.float64)
        generated = self.generate(energy, seed=self.sample_seed)
        second = (
            sim.simulate(self.simulator, self.evaluation_showers, seed=int(seeds[1]), **options)
            if self.reference
            else None
        )
        return evaluate_showers(
            generated,
            np.asarray(first.showers),
            energy_generated=energy,
            energy_reference=energy,
            reference_2=None if second is None else np.asarray(second.showers),
            energy_reference_2=None if second is None else np.asarray(second.incident_energy),
            radial_edges=self.radial_edges,
            layer_thickness=self.layer_thickness,
            seed=self.sample_seed,
            bins=self.bins,
            low_level=self.low_level,
        )

    def _sim_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.simulator_options.items() if k != "energy_range"}

    def _timings(self) -> dict[str, float]:
        from labkit import sim

        low, high = (float(v) for v in self.simulator_options["energy_range"])
        rng = np.random.default_rng(self.sample_seed)

        def energies(n: int) -> np.ndarray:
            return np.exp(rng.uniform(math.log(low), math.log(high), n))

        device = next(self.model.parameters()).device
        self.model.cpu()  # timed on the CPU, like the simulator
        try:
            one = energies(1)
            self.generate(one, seed=1)  # warm-up
            b1 = _median_seconds(lambda: self.generate(one, seed=1), self.timing_repeats)
            many = energies(LARGE_BATCH)
            b_large = _median_seconds(lambda: self.generate(many, seed=1), min(self.timing_repeats, 3))
        finally:
            self.model.to(device)
        options = self._sim_options() | {"energy_range": (low, high)}
        simulated = _median_seconds(
            lambda: sim.simulate(self.simulator, SIM_TIMING_SHOWERS, seed=1, **options),
            min(self.timing_repeats, 3),
        )
        return {
            "gen_ms_per_shower_b1": 1e3 * b1,
            "gen_ms_per_shower_b10000": 1e3 * b_large / LARGE_BATCH,
            "sim_ms_per_shower": 1e3 * simulated / SIM_TIMING_SHOWERS,
        }

    def figures(self) -> dict[str, Figure]:
        if self._result is None:
            return {}
        from labkit.tasks._shower_io import evaluation_figures

        return evaluation_figures(self._result)


def _median_seconds(call: Any, repeats: int) -> float:
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
