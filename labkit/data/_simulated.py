"""Events from labkit's own simulators, generated once and cached as HDF5.

The cache file is keyed by everything that decides its content: the simulator, its options, the
number of events, the seed, and the simulator's source code (so a changed simulator never serves
stale events). Parallel jobs (tuning workers) wait on a lock instead of generating twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labkit._cache import default_cache_dir
from labkit.data._arrays import assemble, fields_of, keys_of
from labkit.data._base import Arrays, ArraySplitDataModule
from labkit.data._files import column_names, read_arrays
from labkit.errors import ConfigError

__all__ = ["SimulatedDataModule", "default_cache_dir"]


class SimulatedDataModule(ArraySplitDataModule):
    """``data: {name: simulated, simulator: calo, events: 20000, parameters: {...}, inputs, targets}``."""

    def __init__(
        self,
        *,
        simulator: str,
        inputs: str | Sequence[str],
        targets: str | Sequence[str],
        events: int = 10000,
        parameters: Mapping[str, Any] | None = None,
        weights: str | None = None,
        labels: Mapping[int, str] | None = None,
        sim_seed: int | None = None,
        cache_dir: str | None = None,
        constituents: Mapping[str, Mapping[str, Any]] | None = None,
        nan: str | Mapping[str, str] = "error",
        fill_value: float = 0.0,
        memory_limit: int | None = None,
        shuffle_buffer: int = 100_000,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        self.simulator = simulator
        self.events = events
        self.options = dict(parameters or {})
        self.inputs, self.targets, self.weights = inputs, targets, weights
        self.labels = dict(labels or {})
        self.sim_seed = seed if sim_seed is None else sim_seed
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.source = f"simulator {simulator}"
        #: per-event sets read from the cache file's compound datasets (``tracks`` of ``jets``)
        self.constituents = {k: dict(v) for k, v in (constituents or {}).items()}
        self.nan: str | dict[str, str] = nan if isinstance(nan, str) else dict(nan)
        self.fill_value = fill_value
        # a simulation is made in memory, and so is its cache read back: no streaming
        self.memory_limit, self.shuffle_buffer = memory_limit, shuffle_buffer
        self._found: dict[str, np.ndarray] = {}

    def _registry(self) -> Any:
        from labkit import sim

        if self.simulator not in sim.SIMULATORS:
            from labkit.errors import did_you_mean

            names = sorted(sim.SIMULATORS)
            raise ConfigError(
                f"data.simulator: no simulator {self.simulator!r}{did_you_mean(self.simulator, names)}; "
                f"choose one of: {', '.join(names)}"
            )
        return sim

    def cache_file(self) -> Path:
        """Where the events are (or will be) cached."""
        sim = self._registry()
        module = sys.modules[sim.SIMULATORS[self.simulator].generate.__module__]
        key = json.dumps(
            {
                "simulator": self.simulator,
                "events": self.events,
                "seed": self.sim_seed,
                "options": self.options,
                "code": hashlib.sha256(inspect.getsource(module).encode()).hexdigest(),
            },
            sort_keys=True,
            default=str,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return self.cache_dir / "sim" / f"{self.simulator}-{self.events}-seed{self.sim_seed}-{digest}.h5"

    def check(self) -> None:
        """The seed, the number of events and the options, before anything is generated."""
        from labkit.sim import SEED_LIMIT

        sim = self._registry()
        seed = self.sim_seed
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
            raise ConfigError(
                "data.sim_seed (default: the experiment's seed) must be an integer in [0, 2**32), "
                f"got {seed!r}"
            )
        try:
            sim.SIMULATORS[self.simulator].check_size(self.events, self.options, field="data.events")
        except ConfigError as exc:
            message = str(exc)
            raise ConfigError(
                message if message.startswith("data.") else f"data.parameters: {message}"
            ) from None

    def prepare_data(self) -> None:
        self.check()
        path = self.cache_file()
        if path.is_file():
            return
        sim = self._registry()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise ConfigError(
                f"data.cache_dir: cannot create or write in {path.parent} ({exc.strerror or exc}); set "
                "data.cache_dir or $LABKIT_CACHE_DIR to a writable directory"
            ) from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another job may be generating the same events
            if path.is_file():
                return
            sample = sim.simulate(self.simulator, self.events, seed=self.sim_seed, **self.options)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            sim.write_h5(sample, tmp)
            os.replace(tmp, path)  # complete or absent: a killed job leaves no half-written cache

    def default_spectators(self) -> tuple[str, ...]:
        """The spectators when ``data.spectators`` names none: the simulator's datasets of one
        number per event (axes ``("n",)``) that are neither inputs, targets nor weights, e.g.
        ``incident_energy`` for calo showers classified by particle."""
        named = set(keys_of(self.inputs, self.targets, self.weights))
        arrays = self._registry().SIMULATORS[self.simulator].arrays
        return tuple(k for k, axes in arrays.items() if tuple(axes) == ("n",) and k not in named)

    def load(self) -> Arrays:
        self.prepare_data()
        path = self.cache_file()
        if not self.spectators:
            self.spectators = self.default_spectators()
        if self.constituents or self.nan != "error":
            return self._load_events(path)
        keys = keys_of(self.inputs, self.targets, self.weights) + list(_TRUTH.get(self.simulator, ()))
        fields = fields_of(self.inputs, self.targets, self.weights, self.spectators)
        keys += list(self.extras) + list(self.spectators)
        self._found = read_arrays(path, keys, "hdf5", fields=fields)
        where = f"simulator {self.simulator} ({path})"
        return assemble(
            self._found,
            self.inputs,
            self.targets,
            self.weights,
            where,
            self.labels,
            fields,
            extras=self.extras,
            input_names=column_names(path, self.inputs, "hdf5"),
            spectators=self.spectators,
        )

    def _load_events(self, path: Path) -> Arrays:
        """The cache file read as an event file is (constituents, data.nan): the same reader as
        ``data: {name: file}``."""
        from labkit.data._read_events import EventSource, load_events

        source = EventSource(
            path=str(path),
            inputs=self.inputs if isinstance(self.inputs, str) else tuple(self.inputs),
            targets=self.targets if isinstance(self.targets, str) else tuple(self.targets),
            weights=self.weights,
            format="hdf5",
            labels=self.labels,
            spectators=tuple(self.spectators),
            extras=tuple(self.extras),
            constituents=self.constituents,
            nan=self.nan,
            fill_value=self.fill_value,
        )
        events = load_events(source)
        truth = [k for k in _TRUTH.get(self.simulator, ()) if k not in events.extras]
        self._found = dict(events.extras) | (read_arrays(path, truth, "hdf5") if truth else {})
        return Arrays(**(events.fields() | {"source": f"simulator {self.simulator} ({path})"}))

    def provenance(self) -> tuple[str | None, dict[str, object]]:
        from labkit import sim

        return self.simulator, sim.SIMULATORS[self.simulator].defaults() | self.options

    def reference_metrics(self, test: np.ndarray) -> dict[str, float]:
        """What the data knows about the test split: the Cramér–Rao bounds of ``grf`` fields, or
        the IoU of the classical amplitude-window baseline on ``tracks`` images."""
        if self.simulator == "tracks" and self._found:
            return self._tracks_baseline(test)
        if self.simulator == "jets" and self._found:
            return self._jets_reference(test)
        if self.simulator != "grf" or not self._found:
            return {}
        from labkit.sim import fisher_bound

        fields = self._found.get("fields")
        size = int(fields.shape[-1]) if fields is not None else int(self.options.get("size", 32))
        sigma_a, sigma_n = fisher_bound(size, self._found["amplitude"][test], self._found["tilt"][test])
        # the RMSE an efficient unbiased estimator reaches on this test split, one field each
        return {
            "crb_amplitude": float(np.sqrt(np.mean(np.square(sigma_a)))),
            "crb_tilt": float(np.sqrt(np.mean(np.square(sigma_n)))),
        }

    def _jets_reference(self, test: np.ndarray) -> dict[str, float]:
        """``np_auc``: the ROC AUC (b against light) of the exact likelihood ratio of the test
        jets, the best any classifier can reach; ``np_auc_jet_level``: the same from the
        jet-level variables alone (pt, eta, mass, ntracks), the best without the tracks."""
        flavour = self._found["flavour"][test]
        return {
            "np_auc": _auc(self._found["log_likelihood_ratio"][test], flavour == 1),
            "np_auc_jet_level": _auc(self._found["jet_log_likelihood_ratio"][test], flavour == 1),
        }

    def _tracks_baseline(self, test: np.ndarray) -> dict[str, float]:
        """``baseline_iou_track``: the track IoU, pooled over the test split's pixels, of calling
        a pixel "track" when its raw amplitude (MIP, never standardised) lies in the window
        ``[lo, hi)`` that maximises the track IoU on the training split; ``lo`` and ``hi`` are
        logged as ``baseline_track_window_lo`` / ``_hi`` (hi only when finite)."""
        from labkit.sim import amplitude_window_iou, fit_amplitude_window

        images, labels = self._found["images"], self._found["labels"]
        train = self._parts.get("train")
        if train is None or len(train) == 0:
            return {}
        track = 1  # the simulator's label of track pixels (labkit.sim._tracks.CLASS_NAMES)
        is_track = labels[train] == track
        if not is_track.any():
            return {}
        lo, hi = fit_amplitude_window(images[train], is_track)
        out = {"baseline_iou_track": amplitude_window_iou(images[test], labels[test] == track, lo, hi)}
        out["baseline_track_window_lo"] = lo
        if np.isfinite(hi):
            out["baseline_track_window_hi"] = hi
        return out


#: arrays read besides inputs and targets: the truth the reference metrics need
_TRUTH = {
    "grf": ("fields", "amplitude", "tilt"),
    "tracks": ("images", "labels"),
    "jets": ("flavour", "log_likelihood_ratio", "jet_log_likelihood_ratio"),
}


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC of ``score`` for the ``positive`` events (ties count one half); NaN without both
    classes."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    sorted_scores = score[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first[counts > 1], counts[counts > 1], strict=True):
        ranks[order[start : start + count]] = start + (count + 1) / 2
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
