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
from labkit.tasks._base import Task, unpack_batch
from labkit.tasks._generative import (
    classifier_two_sample_auc,
    feature_edges,
    frechet_distance,
    separation_power,
    shower_features,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from labkit.config import OptimizerConfig, TaskSpec
    from labkit.data import DataInfo

__all__ = ["SurrogateTask"]

#: the batch size of the large-batch generation timing (gen_ms_per_shower_b10000)
LARGE_BATCH = 10_000
#: showers the simulator is timed on (sim_ms_per_shower)
SIM_TIMING_SHOWERS = 2_000


class SurrogateTask(Task):
    """Learns showers of the ``calo`` simulator given the incident energy, and judges the copies.

    Preprocessing (fitted on the training split, kept with the model): a cell of energy x (GeV)
    in a shower of incident energy E becomes u = (x − t)/(E s) when it is above the simulator's
    readout threshold t (x > 0), and u = 0 when it is not; s is the mean of (x − t)/E over the
    non-zero training cells (a buffer), so that u is of order one. The model (a
    :class:`~labkit.models.ConditionalVAE`) learns u given the normalised log E of the data module;
    a generated u becomes x = u E s + t where u > 0 and exactly 0 elsewhere: a copy has zeros
    where the simulator's threshold would have put them, and no cell between 0 and t.

    Logs ``train_loss``, ``val_loss`` and ``test_loss``: the negative evidence lower bound per
    cell (nats). At test it generates one shower per test shower, at the same incident energy,
    and logs (see docs/tasks.md for the formulas):

    * ``test_sep_power_<feature>`` for each high-level feature
      (:func:`~labkit.tasks._generative.shower_features`) and their mean ``test_sep_power_mean``;
    * ``test_fpd``: the Fréchet distance of the high-level features (standardised with the
      simulated showers' mean and standard deviation);
    * ``test_classifier_auc``: a classifier two-sample test on the cells (each divided by E)
      and log10 E;
    * with ``reference`` the same three numbers for a second, independent simulator sample at the
      same energies against the test showers: ``reference_classifier_auc``, ``reference_fpd``,
      ``reference_sep_power_mean`` (what a perfect surrogate would score on this many showers);
    * ``gen_ms_per_shower_b1`` and ``gen_ms_per_shower_b10000``: wall time per generated shower
      (GeV cells included) at batch size 1 and 10 000, on the CPU, median of ``timing_repeats``;
      ``sim_ms_per_shower``: the simulator's, with the same options, on 2000 showers.

    Figures: the features of generated and simulated test showers, with ratio panels.
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
        classifier_hidden: Sequence[int] = (128, 128),
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
        self.bins = bins
        self.classifier_hidden = tuple(classifier_hidden)
        self.reference = reference
        self.timing_repeats = timing_repeats
        self.sample_seed = sample_seed
        self.register_buffer("value_scale", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("fitted", torch.tensor(False))
        self._test: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._result: dict[str, Any] = {}

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
        for batch in datamodule.train_dataloader():
            x, c, _ = unpack_batch(batch)
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
        self.fitted.fill_(True)  # type: ignore[operator]

    def _batch_loss(self, batch: Any) -> torch.Tensor:
        x, c, w = unpack_batch(batch)
        nll, kl = self.model(self.encode(x, self.energy(c)), c)
        per: torch.Tensor = (nll + kl) / self.model.features  # type: ignore[operator]
        if w is None:
            return per.mean()
        weighted: torch.Tensor = (per * w).sum() / w.sum()
        return weighted

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._batch_loss(batch)
        self.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        n = len(batch[0])
        self.log(
            "val_loss", self._batch_loss(batch), on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True
        )

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
    def on_test_epoch_start(self) -> None:
        self._test = []

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, c, _ = unpack_batch(batch)
        self.log("test_loss", self._batch_loss(batch), on_epoch=True, batch_size=len(x), sync_dist=True)
        self._test.append((x.detach(), c.detach()))

    def on_test_epoch_end(self) -> None:
        showers = self.gather_rows(torch.cat([x for x, _ in self._test])).cpu()
        conditions = self.gather_rows(torch.cat([c for _, c in self._test])).cpu()
        self._test = []
        energy = self.energy(conditions).numpy()
        simulated = showers.numpy().reshape(len(showers), *self.shower_shape)
        generated = self.generate(energy, seed=self.sample_seed)
        metrics, result = self._judge(simulated, generated, energy)
        if self.reference:
            fresh = self._simulate_at(energy)
            ref, ref_result = self._judge(simulated, fresh, energy)
            metrics |= {
                "reference_classifier_auc": ref["test_classifier_auc"],
                "reference_fpd": ref["test_fpd"],
                "reference_sep_power_mean": ref["test_sep_power_mean"],
            }
            result["reference"] = ref_result["generated"]
        metrics |= self._timings()
        for key, value in metrics.items():
            self.log(key, value, sync_dist=False)
        self._result = result

    def _judge(
        self, simulated: np.ndarray, other: np.ndarray, energy: np.ndarray
    ) -> tuple[dict[str, float], dict[str, Any]]:
        sim_f = shower_features(simulated, energy, self.radial_edges)
        other_f = shower_features(other, energy, self.radial_edges)
        metrics: dict[str, float] = {}
        edges = {name: feature_edges(values, self.bins) for name, values in sim_f.items()}
        for name in sim_f:
            metrics[f"test_sep_power_{name}"] = separation_power(sim_f[name], other_f[name], edges[name])
        metrics["test_sep_power_mean"] = float(np.mean(list(metrics.values())))
        metrics["test_fpd"] = frechet_distance(
            np.stack(list(sim_f.values()), axis=1), np.stack(list(other_f.values()), axis=1)
        )
        metrics["test_classifier_auc"] = classifier_two_sample_auc(
            _cells_over_energy(simulated, energy),
            _cells_over_energy(other, energy),
            seed=self.sample_seed,
            hidden=self.classifier_hidden,
        )
        return metrics, {"simulated": sim_f, "generated": other_f, "edges": edges, "metrics": metrics}

    def _sim_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.simulator_options.items() if k != "energy_range"}

    def _simulate_at(self, energy: np.ndarray) -> np.ndarray:
        """A fresh simulator sample, one shower at each energy, with seeds of its own."""
        from labkit import sim

        options = self._sim_options()
        seeds = np.random.SeedSequence([self.sample_seed, 2**20 + 7]).generate_state(len(energy))
        out = np.empty((len(energy), *self.shower_shape), dtype=np.float32)
        for i, (e, seed) in enumerate(zip(energy, seeds, strict=True)):
            sample = sim.simulate(
                self.simulator, 1, seed=int(seed), energy_range=(float(e), float(e)), **options
            )
            out[i] = sample.showers[0]
        return out

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
        if not self._result:
            return {}
        from labkit.tasks._figures import feature_comparison_figure

        r = self._result
        sep = {
            k.removeprefix("test_sep_power_"): v for k, v in r["metrics"].items() if k.startswith("test_sep")
        }
        groups = {
            "surrogate_energies": "Energy: total and per layer, over E_inc",
            "surrogate_radial_centres": "Radial centre of energy per layer (Molière radii)",
            "surrogate_radial_widths": "Radial width per layer (Molière radii)",
            "surrogate_transverse_centres": "Centre of energy across the axis, x and y per layer (R_M)",
        }
        prefixes = {
            "surrogate_energies": ("etot_", "elayer_"),
            "surrogate_radial_centres": ("r_centre_",),
            "surrogate_radial_widths": ("r_width_",),
            "surrogate_transverse_centres": ("x_centre_", "y_centre_"),
        }
        out = {}
        for stem, title in groups.items():
            names = [n for n in r["simulated"] if n.startswith(prefixes[stem])]
            out[stem] = feature_comparison_figure(
                {n: r["simulated"][n] for n in names},
                {n: r["generated"][n] for n in names},
                {n: r["edges"][n] for n in names},
                sep,
                reference={n: r["reference"][n] for n in names} if "reference" in r else None,
                title=title,
            )
        return out


def _cells_over_energy(showers: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """The classifier's inputs: every cell divided by E_inc, and log10 E_inc (as in the CaloChallenge)."""
    cells = showers.reshape(len(showers), -1).astype(np.float64) / energy[:, None]
    return np.concatenate([cells, np.log10(energy)[:, None]], axis=1)


def _median_seconds(call: Any, repeats: int) -> float:
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
