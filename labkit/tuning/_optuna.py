"""Storage, samplers and pruners: the experiment's ``search`` section in Optuna's terms."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna

from labkit.config import MAX_GRID, CategoricalParam, FloatParam, SearchConfig
from labkit.errors import ConfigError
from labkit.tuning._rdb import FastTrialStorage, ping_when_idle

__all__ = [
    "GRACE_SECONDS",
    "HEARTBEAT_SECONDS",
    "Heartbeat",
    "MAX_GRID_POINTS",
    "check_grid_size",
    "directions",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "suggest",
]

#: a running trial records a heartbeat this often (by default); one silent for GRACE_SECONDS is
#: failed. Sites whose file systems or databases are slow may raise them (LABKIT_HEARTBEAT_SECONDS,
#: LABKIT_GRACE_SECONDS, read by the CLI: :meth:`Heartbeat.from_environ`); the tests lower them.
HEARTBEAT_SECONDS = 5
GRACE_SECONDS = 20
#: a trial whose worker died is retried this many times (resuming from its last checkpoint)
MAX_RETRY = 2
#: the most points a grid search may have (the search section's own limit): Optuna's
#: GridSampler holds every one in memory
MAX_GRID_POINTS = MAX_GRID

optuna.logging.set_verbosity(optuna.logging.ERROR)  # labkit reports what matters itself


@dataclass(frozen=True)
class Heartbeat:
    """How often a running trial records that its worker is alive (``interval`` seconds), and how
    long a trial may stay silent before it is failed and retried (``grace`` seconds)."""

    interval: int = HEARTBEAT_SECONDS
    grace: int = GRACE_SECONDS

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Heartbeat:
        """``LABKIT_HEARTBEAT_SECONDS`` and ``LABKIT_GRACE_SECONDS`` from ``env`` (the CLI passes
        ``os.environ``); a missing variable: its default."""
        return cls(
            interval=_seconds(env, "LABKIT_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS),
            grace=_seconds(env, "LABKIT_GRACE_SECONDS", GRACE_SECONDS),
        )


def _seconds(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        why = f"expected a whole number of seconds (default {default})"
        raise ConfigError(f"{name}={text!r}: {why}") from None


def open_storage(url: str, heartbeat: Heartbeat | None = None) -> optuna.storages.BaseStorage:
    """An RDB storage (``sqlite:///file.db``, ``postgresql://...``) with heartbeats, so that a
    trial whose worker dies is failed and retried instead of staying RUNNING forever."""
    heartbeat = heartbeat or Heartbeat()
    if not url.startswith(("sqlite:///", "postgresql")):
        raise ConfigError(
            f"--storage {url!r}: use sqlite:///path/to/study.db (one machine) or "
            "postgresql://user@host/db (several machines)"
        )
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):  # wait for another worker's write instead of failing at once
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_size": 2, "max_overflow": 2}  # pinged when idle: ping_when_idle below
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            storage = FastTrialStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat.interval,
                grace_period=heartbeat.grace,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRY, inherit_intermediate_values=True
                ),
            )
        except Exception as exc:  # noqa: BLE001 - any connection/driver problem
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"--storage: cannot open the study storage: {first}") from None
    if not url.startswith("sqlite"):  # a file has no connection to lose
        ping_when_idle(storage.engine)
    return storage


def make_sampler(search: SearchConfig, seed: int) -> optuna.samplers.BaseSampler:
    """The search's sampler, seeded. With several objectives ``tpe`` (MOTPE), ``random``,
    ``qmc``, ``grid`` and ``gp`` work as they are; ``nsga2``/``nsga3`` are made for them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if search.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
        if search.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if search.sampler == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if search.sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        if search.sampler == "qmc":
            return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
        if search.sampler == "nsga2":  # several objectives; the first generation is random
            return optuna.samplers.NSGAIISampler(seed=seed)
        if search.sampler == "nsga3":
            return optuna.samplers.NSGAIIISampler(seed=seed)
        check_grid_size(search)  # before a single value is listed
        grid = {k: [_hashable(v) for v in vs] for k, vs in search.grid().items()}
        return optuna.samplers.GridSampler(grid, seed=seed)


def grid_sizes(search: SearchConfig) -> dict[str, int]:
    """How many values each parameter takes on the grid, counted without listing them."""
    return search.grid_sizes()


def check_grid_size(search: SearchConfig) -> None:
    """ConfigError when a grid search has more than :data:`MAX_GRID_POINTS` points."""
    if search.sampler != "grid":
        return
    sizes = grid_sizes(search)
    total = math.prod(sizes.values())
    if total > MAX_GRID_POINTS:
        factors = " x ".join(f"{n} ({k})" for k, n in sizes.items())
        count = (
            f"{total:,}" if total < 10**15 else f"about 10^{math.floor(math.log10(total))}"
        )  # no str(): 10^5000
        raise ConfigError(
            f"search.params: the grid has {count} points ({factors}); sampler grid allows at most "
            f"{MAX_GRID_POINTS:,}: use a larger step, fewer choices, or another sampler "
            "(search.sampler: tpe, random, qmc)"
        )


def directions(search: SearchConfig) -> list[Literal["minimize", "maximize"]]:
    """The study's directions: one per objective, or the one of ``metric``."""
    if search.objectives is None:
        return [search.direction]
    return [o.direction for o in search.objectives]


def make_pruner(search: SearchConfig, *, max_epochs: int) -> optuna.pruners.BasePruner:
    """The search's pruner; Hyperband and successive halving scaled to the trials' length.

    The settings are those that did best in ``benchmarks/tuning.py`` (docs/benchmarks.md, section
    3), a replay of 180 calo_pid trials of 30 epochs: a first rung after one or two epochs stopped
    the trials that ended best (they start slowly), one after a tenth of the epochs kept them."""
    if search.pruner == "median":  # never in a trial's first epoch
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if search.pruner == "hyperband":  # first rung after a tenth of the epochs, a quarter go on
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, max_epochs // 10), max_resource=max(2, max_epochs), reduction_factor=4
        )
    if search.pruner == "asha":  # first rung after a tenth of the epochs, a quarter go on
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=max(1, max_epochs // 10), reduction_factor=4
        )
    return optuna.pruners.NopPruner()


def _hashable(value: Any) -> Any:
    """Optuna's categorical values must be None/bool/int/float/str: lists travel as JSON text."""
    import json

    return json.dumps(value) if isinstance(value, (list, dict)) else value


def suggest(trial: optuna.Trial, search: SearchConfig) -> dict[str, Any]:
    """Draw one value per searched parameter: ``{"optimizer.lr": 0.003, "model.hidden": [64, 64]}``."""
    import json

    values: dict[str, Any] = {}
    for key, p in search.params.items():
        if isinstance(p, CategoricalParam):
            raw = trial.suggest_categorical(key, [_hashable(c) for c in p.choices])
            values[key] = json.loads(raw) if isinstance(raw, str) and raw[:1] in "[{" else raw
        elif isinstance(p, FloatParam):
            values[key] = trial.suggest_float(key, p.low, p.high, log=p.log, step=p.step)
        else:
            values[key] = trial.suggest_int(key, p.low, p.high, log=p.log, step=p.step)
    return values
