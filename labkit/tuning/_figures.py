"""A study's own figures: Optuna's matplotlib plots, logged to the study's parent run."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from labkit.tuning._pareto import plot_front

__all__ = ["study_figures"]


def study_figures(study: optuna.Study, folder: Path) -> list[Path]:
    """Optuna's matplotlib figures: history, parameter importances, parallel coordinates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    plots: dict[str, Any] = {"optimization_history": ovm.plot_optimization_history}
    if len(study.directions) > 1:  # several objectives: the plots above would each need a target
        plots = {"pareto_front": plot_front} if complete and len(study.directions) <= 3 else {}
    elif len(complete) >= 2:
        plots |= {
            "param_importances": ovm.plot_param_importances,
            "parallel_coordinate": ovm.plot_parallel_coordinate,
        }
    out = []
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks these plots experimental
        for name, plot in plots.items():
            try:
                axes = plot(study)
            except (ValueError, RuntimeError):  # e.g. importances of a single distinct value
                continue
            fig: Any = axes.flat[0].figure if hasattr(axes, "flat") else axes.figure
            path = folder / "figures" / f"{name}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
            out.append(path)
    return out
