"""``labkit generate``: showers from a trained surrogate, written in its simulator's layout."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labkit._rundir import RunDir
from labkit.errors import LabkitError

__all__ = ["Generated", "find_run_dir", "generate_showers", "load_surrogate"]


def find_run_dir(ref: str, runs_root: str | os.PathLike[str]) -> Path:
    """The run directory ``ref`` names: the directory itself, or a run under ``runs_root`` by its
    MLflow run id, its run key, or the first 8 characters of the key (the directory's suffix)."""
    given = Path(ref).expanduser()
    if RunDir.is_run_dir(given):
        return given
    root = Path(runs_root).expanduser()
    found: list[Path] = []
    if ref and root.is_dir():
        for rdir in RunDir.scan(root):
            key = rdir.run_key
            if ref in (rdir.mlflow_run_id, key) or (len(ref) >= 8 and key.startswith(ref)):
                found.append(rdir.path)
    if not found:
        raise LabkitError(
            f"no run {ref!r} under {root} (give an MLflow run id, a run key, or a run directory; "
            "--runs-root names where the runs are)"
        )
    if len(found) > 1:
        listing = ", ".join(str(p) for p in found[:5])
        raise LabkitError(f"{ref!r} names {len(found)} runs ({listing}); give the run directory instead")
    return found[0]


@dataclass(frozen=True)
class Loaded:
    """A trained surrogate and where it came from."""

    task: Any  #: the SurrogateTask, weights loaded, in eval mode, on the CPU
    run_dir: Path
    checkpoint: Path
    experiment: str
    model: str
    state: dict[str, Any]  #: the run's run.json
    simulator_options: dict[str, Any]


def load_surrogate(run_dir: Path) -> Loaded:
    """The surrogate trained in ``run_dir`` (its best checkpoint, else its last)."""
    from labkit.config import load_experiment
    from labkit.runner._trained import checkpoint_of, config_of

    exp = load_experiment(config_of(run_dir))
    kind = exp.task.kind
    if kind != "surrogate":
        raise LabkitError(
            f"run {run_dir} trained a {kind} task, not a surrogate (task.kind: surrogate); "
            "labkit generate needs a trained surrogate"
        )
    checkpoint_path = checkpoint_of(run_dir)
    import torch

    from labkit.data import DataInfo
    from labkit.runner._build import build_task

    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    meta = checkpoint.get("labkit_surrogate")
    if not isinstance(meta, dict):
        raise LabkitError(
            f"{checkpoint_path}: not a checkpoint of labkit's surrogate task (no labkit_surrogate entry)"
        )
    options = dict(meta["simulator_options"])
    info = DataInfo(
        in_shape=tuple(int(d) for d in meta["in_shape"]),
        target_names=tuple(meta["target_names"]),
        target_scaling=tuple((float(m), float(s), bool(log)) for m, s, log in meta["target_scaling"]),
        simulator=str(meta["simulator"]),
        simulator_options=options,
    )
    task = build_task(exp, info)
    task.load_state_dict(checkpoint["state_dict"])
    task.eval()
    return Loaded(
        task=task,
        run_dir=run_dir,
        checkpoint=checkpoint_path,
        experiment=exp.name,
        model=str(getattr(exp.model, "name", type(task.model).__name__)),
        state=RunDir.open(run_dir).state(),
        simulator_options=options,
    )


@dataclass(frozen=True)
class Generated:
    """What ``labkit generate`` wrote."""

    path: Path
    events: int
    energy_range: tuple[float, float]
    training_range: tuple[float, float]
    seconds: float  #: generating the showers (not writing them)

    @property
    def extrapolated(self) -> bool:
        """True when some energies lie outside the range the surrogate was trained on."""
        lo, hi = self.energy_range
        return lo < self.training_range[0] * (1 - 1e-9) or hi > self.training_range[1] * (1 + 1e-9)


def generate_showers(
    loaded: Loaded,
    events: int,
    output: Path,
    *,
    energy_range: tuple[float, float] | None = None,
    seed: int = 0,
) -> Generated:
    """Generate ``events`` showers with incident energies log-uniform in ``energy_range`` (GeV;
    default: the training range; ``(E, E)`` for one energy) and write them to ``output`` with the
    simulator's writer: the datasets and attributes of a ``labkit sim calo`` file, with ``seed``
    the generation seed, plus ``surrogate`` (True) and ``surrogate_*`` attributes naming the run."""
    from labkit import sim
    from labkit.errors import ConfigError
    from labkit.sim import check_range

    options = {k: tuple(v) if isinstance(v, list) else v for k, v in loaded.simulator_options.items()}
    trained = tuple(float(v) for v in options["energy_range"])
    low, high = check_range("--energy-range", energy_range or trained, minimum=0.0)
    if low <= 0:
        raise ConfigError(f"incident energies must be > 0 GeV, got {low:g}")
    # a one-shower simulation at the low edge: the grid, medium and options in the writer's form
    simulator = loaded.task.simulator
    template = sim.simulate(simulator, 1, seed=0, **(options | {"energy_range": (low, low)}))
    rng = np.random.default_rng(seed)
    energy = (
        np.full(events, low) if low == high else np.exp(rng.uniform(math.log(low), math.log(high), events))
    )
    start = time.perf_counter()
    showers = loaded.task.generate(energy, seed=seed)
    seconds = time.perf_counter() - start
    sample = dataclasses.replace(
        template,
        incident_energy=energy,
        showers=showers,
        particle=np.full(events, template.particle[0], dtype=np.int64),
        seed=seed,
        options=dict(template.options) | {"energy_range": (low, high)},
    )
    output = output.expanduser()
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp{os.getpid()}")
    try:
        sim.write_h5(sample, tmp)
        import h5py

        with h5py.File(tmp, "a") as f:
            f.attrs["surrogate"] = True
            f.attrs["surrogate_run_dir"] = str(loaded.run_dir.resolve())
            f.attrs["surrogate_run_id"] = str(loaded.state.get("mlflow_run_id") or "")
            f.attrs["surrogate_run_key"] = str(loaded.state.get("run_key") or "")
            f.attrs["surrogate_experiment"] = loaded.experiment
            f.attrs["surrogate_model"] = loaded.model
            f.attrs["surrogate_checkpoint"] = str(loaded.checkpoint.resolve())
            f.attrs["surrogate_training_energy_range"] = np.asarray(trained, dtype=np.float64)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return Generated(output, events, (low, high), (trained[0], trained[1]), seconds)
