"""Studies of several objectives: checking the objectives, the Pareto front, its files and figure.

A trial is on the front when no other complete trial is at least as good in every objective and
better in one (Optuna's ``study.best_trials``). ``labkit tune best`` lists the front and writes
one runnable experiment file per point; the study's figures get Optuna's Pareto-front plot.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from labkit.config import Experiment, dump_experiment
from labkit.errors import ConfigError

if TYPE_CHECKING:
    from labkit.tuning._study import StudyHandle

__all__ = [
    "COST_METRICS",
    "ParetoPoint",
    "check_objectives",
    "format_front",
    "is_multi_objective",
    "objective_names",
    "pareto_front",
    "plot_front",
    "point_experiment",
    "save_front_figure",
    "write_front",
]

#: what labkit measures for every run after test (labkit/runner/_cost.py)
COST_METRICS = ("parameters", "inference_ms", "inference_ms_b256")
_EXPERIMENT = "labkit.experiment"  # study user attr: the resolved experiment (JSON), as _study.py


@dataclass(frozen=True)
class ParetoPoint:
    """One trial on the front: its number, its objective values (in the order of
    ``search.objectives``) and the values it drew."""

    trial: int
    values: tuple[float, ...]
    params: dict[str, Any]


def objective_names(exp: Experiment) -> list[str]:
    """The metrics of ``search.objectives`` (empty for a study of one metric)."""
    return [o.metric for o in (exp.search.objectives or ())] if exp.search else []


def is_multi_objective(handle: StudyHandle) -> bool:
    return len(handle.study.directions) > 1


def check_objectives(exp: Experiment) -> None:
    """ConfigError for an objective no run of this experiment logs: not a metric of its task at
    validation, not a test metric (``test_*``), not one labkit measures (:data:`COST_METRICS`);
    or ``inference_ms`` of a task that samples (the surrogate: only ``parameters`` is measured).
    A ``class_path`` model's own module may log anything: not checked."""
    from labkit.config import ClassPathSpec
    from labkit.errors import did_you_mean

    if exp.search is None or exp.search.objectives is None or isinstance(exp.model, ClassPathSpec):
        return
    logged = [*exp.task.monitorable, *COST_METRICS]
    for i, objective in enumerate(exp.search.objectives):
        metric = objective.metric
        where = f"search.objectives.{i}.metric"
        if metric.startswith("inference_ms") and exp.task.kind == "surrogate":
            raise ConfigError(
                f"{where}: {metric!r}: the surrogate task samples showers, its inference time is not "
                "measured; use parameters, or a test metric"
            )
        if metric not in logged and not metric.startswith("test_"):
            raise ConfigError(
                f"{where}: the {exp.task.kind} task logs no metric {metric!r}{did_you_mean(metric, logged)}; "
                f"choose one of: {', '.join(logged)}, or a test metric (test_...)"
            )


def pareto_front(handle: StudyHandle) -> list[ParetoPoint]:
    """The complete trials on the front, ordered by trial number."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best = handle.study.best_trials
    return [
        ParetoPoint(t.number, tuple(float(v) for v in t.values or ()), handle.values(t))
        for t in sorted(best, key=lambda t: t.number)
    ]


def format_front(handle: StudyHandle, points: list[ParetoPoint]) -> list[str]:
    """The front as text: one row per point (trial, the objective values, the varied values)."""
    exp = handle.experiment()
    assert exp.search is not None and exp.search.objectives is not None
    heads = [f"{o.metric} ({'max' if o.direction == 'maximize' else 'min'})" for o in exp.search.objectives]
    keys = list(exp.search.params)
    rows = [["trial", *heads, *keys]]
    for p in points:
        rows.append([str(p.trial), *(f"{v:.6g}" for v in p.values), *(_short(p.params.get(k)) for k in keys)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    n = len(points)
    lines = [f"labkit: study {handle.study.study_name}: Pareto front of {n} point{'s' * (n != 1)}"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return lines


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def point_experiment(handle: StudyHandle, trial: int) -> str:
    """A runnable experiment file (YAML) of one complete trial (a point of the front, or any
    other): the trial's values filled in, no search section; its first line says where it is from."""
    from labkit.tuning._objective import trial_experiment

    frozen = _complete_trial(handle, trial)
    base = handle.experiment()
    assert base.search is not None
    exp = trial_experiment(base, handle.values(frozen), frozen.number)
    exp = exp.model_copy(update={"tracking": exp.tracking.model_copy(update={"run_name": None})})
    names = objective_names(base) or [base.search.metric]
    shown = ", ".join(f"{n} = {v:.6g}" for n, v in zip(names, frozen.values or (), strict=False))
    return f"# trial {frozen.number} of study {handle.study.study_name!r}: {shown}\n" + dump_experiment(exp)


def _complete_trial(handle: StudyHandle, number: int) -> FrozenTrial:
    trials = {t.number: t for t in handle.trials() if t.state == TrialState.COMPLETE}
    if number not in trials:
        shown = ", ".join(str(n) for n in sorted(trials)) or "none yet"
        raise ConfigError(
            f"--trial {number}: study {handle.study.study_name!r} has no complete trial {number}; "
            f"complete trials: {shown}"
        )
    return trials[number]


def write_front(handle: StudyHandle, folder: Path, *, trial: int | None = None) -> list[Path]:
    """One experiment file per point of the front (``trial-NNN.yaml`` in ``folder``), or only
    that of ``trial``; and Optuna's figure of the front (``pareto_front.png``) with them."""
    numbers = [trial] if trial is not None else [p.trial for p in pareto_front(handle)]
    if not numbers:
        raise ConfigError(f"study {handle.study.study_name!r} has no complete trial yet")
    texts = {n: point_experiment(handle, n) for n in numbers}  # all checked before any is written
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for n, text in texts.items():
        path = folder / f"trial-{n:03d}.yaml"
        path.write_text(text)
        written.append(path)
    save_front_figure(handle.study, folder / "pareto_front.png")
    return written


def plot_front(study: optuna.Study) -> Any:
    """Optuna's Pareto-front plot (matplotlib axes) with the objectives' names on the axes;
    2 or 3 objectives (Optuna draws no more)."""
    from optuna.visualization import matplotlib as ovm

    stored = study.user_attrs.get(_EXPERIMENT)
    names = None
    if stored is not None:
        objectives = json.loads(stored).get("search", {}).get("objectives") or []
        names = [str(o["metric"]) for o in objectives] or None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        return ovm.plot_pareto_front(study, target_names=names)


def save_front_figure(study: optuna.Study, path: Path) -> Path | None:
    """The Pareto-front figure as a PNG at ``path``; None when Optuna cannot draw it (one
    objective, more than 3, no complete trial)."""
    if len(study.directions) not in (2, 3):
        return None
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        axes = plot_front(study)
    except (ValueError, RuntimeError):
        return None
    fig: Any = axes.figure
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
