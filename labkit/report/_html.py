"""``labkit report``: one self-contained HTML file for the group meeting.

Everything is inside the file: the CSS inline, every figure a ``data:image/png;base64`` URI, no
script and no link to anywhere, so the page opens the same on a laptop without network, in a
mail attachment or on the projector. Figures are drawn with matplotlib (learning curves) or
taken from the runs' artifacts (each task's diagnostic figures; each study's Optuna figures).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from labkit.report._format import shown_value
from labkit.report._table import HEADLINE, compare_frame, higher_is_better, is_study

if TYPE_CHECKING:
    import pandas as pd

    from labkit.report._outputs import RunOutputs
    from labkit.tracking.query import RunRecord

__all__ = ["ReportSources", "build_report"]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1300px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #345; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 2em; color: #345; }
h3 { font-size: 1.05em; margin-bottom: .3em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #eef2f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #f3faf0; font-weight: 600; }
figure { display: inline-block; margin: .4em .8em .8em 0; vertical-align: top; }
figure img { max-width: 620px; border: 1px solid #ddd; }
figcaption { font-size: .8em; color: #555; }
.meta { color: #666; font-size: .85em; }
.dirty { color: #b00; font-weight: 600; }
nav a { margin-right: 1em; }
.wide { overflow-x: auto; }
"""


@dataclass
class ReportSources:
    """Where the report gets what is not in the run records (the tracking server, in practice)."""

    history: Callable[[str, str], list[tuple[int, int, float]]]
    figures: Callable[[str], dict[str, bytes]]
    notes: list[str] = field(default_factory=list)
    #: a run's stored per-event test outputs (:func:`labkit.report.load_outputs`); ``None``: no
    #: physics curves in the report
    outputs: Callable[[RunRecord], RunOutputs] | None = None


def _png(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_png(fig: object) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)  # type: ignore[attr-defined]
    return buffer.getvalue()


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _headline(records: Sequence[RunRecord]) -> str | None:
    """The metric an experiment's runs are ranked by: its task's first headline metric they logged
    with a value (not NaN), else the first they logged at all (its rows then rank in run order)."""
    candidates = [n for rec in records for n in HEADLINE.get(rec.tags.get("labkit.task", ""), ())]
    candidates = list(dict.fromkeys([*candidates, "test_loss", "val_loss"]))
    logged = [n for n in candidates if any(n in r.metrics for r in records)]
    for name in logged:
        if any(name in r.metrics and not math.isnan(r.metrics[name]) for r in records):
            return name
    return logged[0] if logged else None


def _table(frame: pd.DataFrame, best_first: bool) -> str:
    columns = [c for c in frame.columns if not c.endswith("_std") and c != "n"]
    head = "".join(f"<th>{_e(c.removeprefix('params.'))}</th>" for c in columns)
    rows = []
    for i, (_, row) in enumerate(frame.iterrows()):
        cells = []
        for c in columns:
            value = row[c]
            numeric = isinstance(value, float) and c not in ("run_id",)
            cells.append(f"<td{' class=num' if numeric else ''}>{_e(shown_value(row, c))}</td>")
        rows.append(f"<tr{' class=best' if best_first and i == 0 else ''}>{''.join(cells)}</tr>")
    body = "".join(rows)
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _ranked(records: Sequence[RunRecord], metric: str | None) -> list[RunRecord]:
    done = [r for r in records if r.status == "FINISHED" and (metric is None or metric in r.metrics)]
    if metric is None:
        return done
    sign = -1.0 if higher_is_better(metric) else 1.0
    return sorted(done, key=lambda r: (math.isnan(r.metrics[metric]), sign * r.metrics[metric]))


def _curves(best: Sequence[RunRecord], sources: ReportSources) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.0, 3.8))
    axes = fig.subplots(1, 2)
    drawn = 0
    for ax, metric in zip(axes, ("train_loss", "val_loss"), strict=True):
        for rec in best:
            if metric not in rec.metrics:
                continue
            try:
                points = sources.history(rec.run_id, metric)
            except Exception as exc:  # noqa: BLE001 - one unreadable history must not sink the report
                sources.notes.append(f"history of {metric} for run {rec.run_id}: {exc}")
                continue
            if points:
                steps, _, values = zip(*points, strict=True)
                ax.plot(steps, values, label=f"{rec.run_id[:8]} ({rec.user})", lw=1.2)
                drawn += 1
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    if not drawn:
        return ""
    fig.tight_layout()
    return (
        f'<figure><img alt="learning curves" src="{_png(_figure_png(fig))}">'
        "<figcaption>Learning curves of the best runs (train loss per step, validation loss per "
        "epoch)</figcaption></figure>"
    )


#: the most runs the GPU-use figure shows (those with the most idle GPU-hours)
_GPU_BARS = 30


def _gpu_use(records: Sequence[RunRecord]) -> str:
    """Bars per run of its mean GPU utilisation and its idle GPU-hours (``gpu_util`` from its
    system metrics); nothing when no run logged it."""
    from matplotlib.figure import Figure

    from labkit.report._table import gpu_use

    used = [(rec, *gpu_use(rec)) for rec in records if "gpu_util" in rec.metrics]
    used = [u for u in used if not math.isnan(u[1])]
    if not used:
        return ""
    used.sort(key=lambda u: -u[2])
    shown = used[:_GPU_BARS]
    labels = [rec.run_id[:8] for rec, _, _ in shown]
    fig = Figure(figsize=(11.0, 0.9 + 0.25 * len(shown)))
    util_ax, idle_ax = fig.subplots(1, 2, sharey=True)
    rows = list(range(len(shown)))  # positions, not labels: two ids may share their first 8 characters
    util_ax.barh(rows, [u for _, u, _ in shown], color="#4a7ab0")
    util_ax.set_yticks(rows, labels)
    util_ax.set_xlim(0, 100)
    util_ax.set_xlabel("mean GPU utilisation (%)")
    idle_ax.barh(rows, [i for _, _, i in shown], color="#c0504d")
    idle_ax.set_xlabel("idle GPU-hours (GPU-hours x (1 - utilisation))")
    util_ax.invert_yaxis()  # the most idle hours on top
    for ax in (util_ax, idle_ax):
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    more = f" (the {_GPU_BARS} with the most idle hours of {len(used)})" if len(used) > _GPU_BARS else ""
    return (
        f'<h3>GPU use</h3><figure><img alt="GPU use" src="{_png(_figure_png(fig))}">'
        f"<figcaption>Mean GPU utilisation and idle GPU-hours per run{_e(more)}, from the runs' "
        "system metrics</figcaption></figure>"
    )


def _figures_html(figures: dict[str, bytes], caption: str) -> str:
    return "".join(
        f'<figure><img alt="{_e(stem)}" src="{_png(data)}"><figcaption>{_e(caption)}: {_e(stem)}'
        "</figcaption></figure>"
        for stem, data in figures.items()
    )


_CURVE_TASKS = ("classification", "regression", "anomaly")


def _physics(ranked: Sequence[RunRecord], sources: ReportSources, reference: str | None, best: int) -> str:
    """The physics curves of an experiment's best ``best`` configurations (seeds as one band),
    with the ratio panel to ``reference`` when it is one of its runs, else to its best run."""
    from labkit.errors import LabkitError
    from labkit.report._figures import CurveGroup, physics_figures
    from labkit.report._physics import group_by_seed, seed_groups

    if sources.outputs is None or not ranked:
        return ""
    task = ranked[0].tags.get("labkit.task", "")
    if task not in _CURVE_TASKS:
        return ""
    same = [r for r in ranked if r.tags.get("labkit.task", "") == task]
    groups = group_by_seed(same)
    ref = next((g for g in groups if any(r.run_id == reference for r in g)), None) if reference else None
    chosen = groups[:best] + ([ref] if ref is not None and ref not in groups[:best] else [])
    loaded: dict[str, RunOutputs] = {}
    for rec in (r for g in chosen for r in g):
        try:
            loaded[rec.run_id] = sources.outputs(rec)
        except LabkitError as exc:  # an old run, a damaged file: shown under "Not shown"
            sources.notes.append(f"physics curves: {exc}")
    kept = [[r for r in g if r.run_id in loaded] for g in chosen]
    kept = [g for g in kept if g]
    if not kept:
        return ""
    curve_groups: list[CurveGroup] = seed_groups([r for g in kept for r in g], lambda r: loaded[r.run_id])
    ref_id = reference if ref is not None and reference in loaded else kept[0][0].run_id
    ref_index = next(i for i, g in enumerate(curve_groups) if any(o.run_id == ref_id for o in g.runs))
    try:
        figures = physics_figures(curve_groups, reference=ref_index)
    except (LabkitError, ValueError) as exc:  # no signal class, a spectator not shared ...
        sources.notes.append(f"physics curves of {ranked[0].experiment}: {exc}")
        return ""
    why = "--reference" if ref is not None else "the best run"
    label = curve_groups[ref_index].label
    caption = {
        "rejection": f"Background rejection vs signal efficiency; ratio to {label} ({why})",
        "sic": "SIC vs signal efficiency",
    }
    html_parts = []
    for name, fig in figures.items():
        text = caption.get(name) or (
            f"Efficiency and rejection {name.replace('_', ' ')} at the working point"
            if name.startswith("vs_")
            else "Resolution and bias vs the true value, fit a/√E ⊕ b"
        )
        html_parts.append(
            f'<figure><img alt="physics curve {_e(name)}" src="{_png(_figure_png(fig))}">'
            f"<figcaption>{_e(text)}</figcaption></figure>"
        )
    return (
        "<h3>Physics curves</h3>"
        f'<p class="meta">From the runs\' stored test outputs; bands: binomial errors (effective counts '
        f"with weights), or mean ± σ over runs differing only by seed.</p>{''.join(html_parts)}"
    )


def _provenance(records: Sequence[RunRecord]) -> str:
    head = "<tr><th>run</th><th>experiment</th><th>who</th><th>when (UTC)</th><th>status</th>"
    head += "<th>git commit</th><th>host</th><th>cluster / job</th><th>command</th></tr>"
    rows = []
    for rec in records:
        when = (
            datetime.fromtimestamp(rec.start_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
            if rec.start_ms
            else ""
        )
        commit = rec.tags.get("mlflow.source.git.commit", "")
        dirty = rec.tags.get("labkit.git_dirty", "unknown")
        git = _e(commit[:10]) if commit else "(not in git)"
        if dirty == "true":
            git += ' <span class="dirty">dirty</span>'
        job = rec.tags.get("slurm.job_id", "")
        cluster = rec.tags.get("slurm.cluster", "")
        where = f"{_e(cluster)} {_e(job)}".strip() if job else "local"
        rows.append(
            f"<tr><td>{_e(rec.run_id)}</td><td>{_e(rec.experiment)}</td><td>{_e(rec.user)}</td>"
            f"<td>{when}</td><td>{_e(rec.status)}</td><td>{git}</td>"
            f"<td>{_e(rec.tags.get('labkit.host', ''))}</td>"
            f"<td>{where}</td><td><code>{_e(rec.tags.get('labkit.command', ''))}</code></td></tr>"
        )
    return f'<div class="wide"><table>{head}{"".join(rows)}</table></div>'


def build_report(
    records: Sequence[RunRecord],
    sources: ReportSources,
    *,
    title: str = "labkit report",
    best: int = 5,
    selection: str = "",
    reference: str | None = None,
) -> str:
    """The HTML page for ``records``: per experiment a leaderboard, the learning curves and the
    diagnostic figures of its ``best`` runs, and (when ``sources.outputs`` is given) the physics
    curves of its ``best`` configurations with a ratio panel to ``reference`` (a run id; in an
    experiment without it, that experiment's best run); each tuning study's figures; provenance
    of every run."""
    studies = [r for r in records if is_study(r)]
    runs = [r for r in records if r not in studies]
    experiments = sorted({r.experiment for r in runs})
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    users = sorted({r.user for r in runs if r.user})
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">Generated {now} by labkit. {len(runs)} runs in {len(experiments)} experiments '
        f"by {len(users)} {'person' if len(users) == 1 else 'people'}"
        f"{(': ' + _e(', '.join(users))) if users else ''}; "
        f"{len(studies)} tuning studies."
        f"{(' Selection: ' + _e(selection) + '.') if selection else ''}</p>",
        "<nav>"
        + "".join(f'<a href="#exp-{i}">{_e(name)}</a>' for i, name in enumerate(experiments))
        + ('<a href="#studies">studies</a>' if studies else "")
        + '<a href="#provenance">provenance</a></nav>',
    ]
    for i, name in enumerate(experiments):
        mine = [r for r in runs if r.experiment == name]
        metric = _headline(mine)
        parts.append(f'<h2 id="exp-{i}">{_e(name)}</h2>')
        tasks = sorted({r.tags.get("labkit.task", "") for r in mine} - {""})
        better = "higher" if metric and higher_is_better(metric) else "lower"
        ranked = f"ranked by <code>{_e(metric)}</code> ({better} is better)"
        parts.append(
            f'<p class="meta">{len(mine)} runs; task {_e(", ".join(tasks) or "unknown")}; '
            f"{ranked if metric else 'no common metric to rank by'}. Runs differing only by seed are "
            "one row: mean ± std (n).</p>"
        )
        frame = compare_frame(mine, metric=metric, strict=False)  # a NaN headline ranks last, never fails
        parts.append(_table(frame, best_first=metric is not None))
        ranked_runs = _ranked(mine, metric)
        top = ranked_runs[:best]
        curves = _curves(top, sources)
        if curves:
            parts.append("<h3>Learning curves</h3>" + curves)
        parts.append(_gpu_use(mine))
        parts.append(_physics(ranked_runs, sources, reference, best))
        for rec in top[:2]:
            figures = sources.figures(rec.run_id)
            if figures:
                score = f", {metric} = {rec.metrics[metric]:.4g}" if metric else ""
                parts.append(
                    f"<h3>Diagnostic figures of run {_e(rec.run_id[:8])} ({_e(rec.user)}{_e(score)})</h3>"
                )
                parts.append(_figures_html(figures, rec.run_id[:8]))
    if studies:
        parts.append('<h2 id="studies">Tuning studies</h2>')
        for rec in studies:
            study = rec.tags.get("labkit.study", "")
            values = ", ".join(
                f"{k} = {v:.4g}" for k, v in sorted(rec.metrics.items()) if k.startswith("best_")
            )
            params = ", ".join(f"{k[5:]} = {v}" for k, v in sorted(rec.tags.items()) if k.startswith("best."))
            trials = ", ".join(
                f"{int(v)} {k.removeprefix('trials_')}"
                for k, v in sorted(rec.metrics.items())
                if k.startswith("trials_")
            )
            parts.append(
                f"<h3>{_e(study)} ({_e(rec.experiment)}, {_e(rec.user)})</h3>"
                f'<p class="meta">{_e(values or "no finished trial yet")}'
                f"{('; best parameters: ' + _e(params)) if params else ''}"
                f"{('; trials: ' + _e(trials)) if trials else ''}</p>"
            )
            figures = sources.figures(rec.run_id)
            parts.append(
                _figures_html(figures, "Optuna")
                if figures
                else '<p class="meta">no figures stored with this study (it may still be running)</p>'
            )
    parts.append('<h2 id="provenance">Provenance</h2>')
    parts.append(_provenance(records))
    if sources.notes:
        parts.append("<h2>Not shown</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in sources.notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
