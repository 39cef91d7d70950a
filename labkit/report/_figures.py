"""The physics-curve figures of ``labkit plot`` and the report (matplotlib, ``mplhep``'s ROOT
style): the numbers come from :mod:`labkit.report._curves`.

Each figure takes :class:`CurveGroup` objects: one label and the test outputs of one run, or of
several runs that differ only by seed (drawn as their mean ± σ band).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.errors import ConfigError
from labkit.report._curves import (
    Band,
    binned_efficiency,
    cut_at_efficiency,
    on_grid,
    ratio_to,
    rejection_curve,
    rejection_vs,
    resolution_curve,
    seed_band,
    sic_band,
    spectator_edges,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from labkit.report._outputs import RunOutputs

__all__ = ["CurveGroup", "physics_figures"]

#: the default working point of the efficiency-vs-spectator curves: 70 % signal efficiency
DEFAULT_WORKING_POINT = 0.7


@dataclass(frozen=True)
class CurveGroup:
    """The runs drawn as one curve: one run, or runs that differ only by seed."""

    label: str
    runs: tuple[RunOutputs, ...]


@contextlib.contextmanager
def _style() -> Iterator[None]:
    import matplotlib as mpl
    import mplhep  # type: ignore[import-untyped]

    with mpl.rc_context():
        mpl.style.use(mplhep.style.ROOT)
        mpl.rcParams["font.size"] = 11
        mpl.rcParams["mathtext.fontset"] = "dejavusans"  # the style's custom set asks for a cursive font
        yield


def _draw(ax: Axes, band: Band, label: str, color: Any, *, points: bool = False) -> None:
    ok = np.isfinite(band.y)
    name = f"{label} (mean ± σ of {band.n} seeds)" if band.n > 1 else label
    if points:
        ax.errorbar(
            band.x[ok], band.y[ok], yerr=band.error[ok], fmt="o", ms=4, color=color, label=name, capsize=2
        )
        return
    ax.plot(band.x[ok], band.y[ok], color=color, lw=1.6, label=name)
    lo, hi = band.y - band.error, band.y + band.error
    ax.fill_between(band.x, lo, hi, where=ok & np.isfinite(band.error), color=color, alpha=0.25, lw=0)


def _colors(n: int) -> list[Any]:
    import matplotlib as mpl

    cycle = mpl.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    return [cycle[i % len(cycle)] for i in range(n)]


def _mean(bands: list[Band]) -> Band:
    return seed_band(bands)


def _png_figure(
    size: tuple[float, float], rows: int = 1, ratios: Sequence[float] = (1.0,)
) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    axes = fig.subplots(
        rows, 1, sharex=True, gridspec_kw={"height_ratios": list(ratios)} if rows > 1 else None
    )
    return fig, axes


def rejection_figure(groups: Sequence[CurveGroup], reference: int | None, *, title: str = "") -> Figure:
    """Background rejection 1/ε_B (log) vs signal efficiency, every group overlaid, with a ratio
    panel to group ``reference`` (none when ``None``)."""
    bands = []
    for group in groups:
        per_run = []
        for run in group.runs:
            scores, is_signal = run.signal_scores()
            per_run.append(rejection_curve(scores, is_signal, weights=run.weights))
        bands.append(_mean(per_run))
    with _style():
        rows = 2 if reference is not None else 1
        fig, axes = _png_figure((7.0, 6.5 if rows == 2 else 5.0), rows, (3.0, 1.2) if rows == 2 else (1.0,))
        top = axes[0] if rows == 2 else axes
        for band, group, color in zip(bands, groups, _colors(len(groups)), strict=True):
            _draw(top, band, group.label, color)
        top.set_yscale("log")
        top.set_ylabel(r"background rejection $1/\varepsilon_B$")
        top.legend(fontsize=8, loc="upper right")
        if title:
            top.set_title(title, fontsize=10, loc="left")
        bottom = top
        if reference is not None:
            bottom = axes[1]
            ref = bands[reference]
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = ref.error / ref.y
            ok = np.isfinite(ref.y)
            bottom.fill_between(ref.x, 1 - rel, 1 + rel, where=ok, color="grey", alpha=0.3, lw=0)
            for i, (band, color) in enumerate(zip(bands, _colors(len(groups)), strict=True)):
                ratio, err = ratio_to(band, ref)
                ok = np.isfinite(ratio)
                bottom.plot(band.x[ok], ratio[ok], color=color, lw=1.4, ls="--" if i == reference else "-")
                bottom.fill_between(band.x, ratio - err, ratio + err, where=ok, color=color, alpha=0.2, lw=0)
            bottom.set_ylabel(f"ratio to\n{groups[reference].label[:24]}", fontsize=9)
            bottom.axhline(1.0, color="black", lw=0.8)
        bottom.set_xlabel(r"signal efficiency $\varepsilon_S$")
        bottom.set_xlim(0.0, 1.0)
        fig.tight_layout()
    return fig


def spectator_figure(
    groups: Sequence[CurveGroup],
    spectator: str,
    working_point: float = DEFAULT_WORKING_POINT,
    *,
    bins: int = 8,
) -> Figure:
    """Signal efficiency and background rejection vs ``spectator`` at the cut giving
    ``working_point`` signal efficiency overall (per run), binomial error bars (or seed spread)."""
    runs = [run for group in groups for run in group.runs]
    for run in runs:
        if spectator not in run.spectators:
            have = ", ".join(sorted(run.spectators)) or "none"
            raise ConfigError(
                f"--spectator {spectator!r}: run {run.run_id} stored no such spectator; it has: {have}"
            )
    edges = spectator_edges([run.spectators[spectator] for run in runs], bins)
    effs, rejs = [], []
    for group in groups:
        e_runs, r_runs = [], []
        for run in group.runs:
            scores, is_signal = run.signal_scores()
            cut = cut_at_efficiency(scores, is_signal, working_point, weights=run.weights)
            passed = scores >= cut
            values = run.spectators[spectator]
            w = run.weights
            sig, bkg = is_signal, ~is_signal
            e_runs.append(
                binned_efficiency(values[sig], passed[sig], edges, weights=None if w is None else w[sig])
            )
            r_runs.append(
                rejection_vs(values[bkg], passed[bkg], edges, weights=None if w is None else w[bkg])
            )
        effs.append(_mean(e_runs))
        rejs.append(_mean(r_runs))
    with _style():
        fig, axes = _png_figure((7.0, 7.0), 2, (1.0, 1.0))
        for eff, rej, group, color in zip(effs, rejs, groups, _colors(len(groups)), strict=True):
            _draw(axes[0], eff, group.label, color, points=True)
            _draw(axes[1], rej, group.label, color, points=True)
        axes[0].set_ylabel("signal efficiency")
        axes[0].axhline(working_point, color="grey", lw=0.8, ls=":")
        axes[0].set_title(
            f"working point: $\\varepsilon_S$ = {working_point:.0%} overall (per run)",
            fontsize=10,
            loc="left",
        )
        axes[0].legend(fontsize=8)
        axes[1].set_ylabel(r"background rejection $1/\varepsilon_B$")
        axes[1].set_yscale("log")
        axes[1].set_xlabel(spectator)
        for edge in edges:
            axes[1].axvline(edge, color="grey", lw=0.3, alpha=0.5)
        fig.tight_layout()
    return fig


def sic_figure(groups: Sequence[CurveGroup], *, title: str = "") -> Figure:
    """SIC = ε_S/√ε_B vs signal efficiency, every group overlaid."""
    with _style():
        fig, ax = _png_figure((7.0, 5.0))
        for group, color in zip(groups, _colors(len(groups)), strict=True):
            per_run = []
            for run in group.runs:
                scores, is_signal = run.signal_scores()
                per_run.append(sic_band(scores, is_signal, weights=run.weights))
            _draw(ax, _mean(per_run), group.label, color)
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_xlabel(r"signal efficiency $\varepsilon_S$")
        ax.set_ylabel(r"SIC $= \varepsilon_S/\sqrt{\varepsilon_B}$")
        ax.set_xlim(0.0, 1.0)
        ax.legend(fontsize=8)
        if title:
            ax.set_title(title, fontsize=10, loc="left")
        fig.tight_layout()
    return fig


def resolution_figure(groups: Sequence[CurveGroup], target: int = 0) -> Figure:
    """Relative resolution (with the fitted a/√E ⊕ b of each run) and bias vs the true value of
    regression target ``target``."""
    with _style():
        fig, axes = _png_figure((7.0, 7.0), 2, (1.0, 1.0))
        name = "target"
        for group, color in zip(groups, _colors(len(groups)), strict=True):
            res_runs, bias_runs, fits = [], [], []
            for run in group.runs:
                assert run.truth is not None and run.pred is not None
                name = run.target_names[target] if target < len(run.target_names) else name
                curve = resolution_curve(run.truth[:, target], run.pred[:, target], weights=run.weights)
                res_runs.append(curve.resolution)
                bias_runs.append(curve.bias)
                if curve.fit is not None:
                    fits.append(curve.fit)
            x = res_runs[0].x
            res = _mean([on_grid(b, x) for b in res_runs]) if len(res_runs) > 1 else res_runs[0]
            bias = _mean([on_grid(b, x) for b in bias_runs]) if len(bias_runs) > 1 else bias_runs[0]
            label = group.label
            if fits:
                a, b = np.mean(fits, axis=0)
                label += f": a={a:.3g}, b={b:.3g}"
                e = np.linspace(x.min(), x.max(), 100)
                axes[0].plot(e, np.sqrt(a**2 / e + b**2), color=color, lw=0.9, ls="--")
            _draw(axes[0], res, label, color, points=True)
            _draw(axes[1], bias, group.label, color, points=True)
        axes[0].set_ylabel(r"resolution $\sigma$((pred$-$true)/true)")
        axes[0].set_title(
            f"{name}; dashed: fit $\\sigma/E = a/\\sqrt{{E}} \\oplus b$", fontsize=10, loc="left"
        )
        axes[0].legend(fontsize=8)
        axes[1].axhline(0.0, color="grey", lw=0.8)
        axes[1].set_ylabel(r"bias: mean of (pred$-$true)/true")
        axes[1].set_xlabel(f"true {name}")
        fig.tight_layout()
    return fig


def physics_figures(
    groups: Sequence[CurveGroup],
    *,
    reference: int | None = None,
    spectator: str | None = None,
    working_point: float = DEFAULT_WORKING_POINT,
    title: str = "",
) -> dict[str, Figure]:
    """The figures of the groups' task, by name: ``rejection`` (+ ``vs_<spectator>``) for
    classification, ``sic`` for anomaly, ``resolution`` (one per target) for regression.
    ``spectator`` ``None``: the first one the runs share (none when they share none)."""
    if not 0.0 < working_point < 1.0:
        raise ConfigError(
            f"--working-point {working_point:g}: give a signal efficiency between 0 and 1 (e.g. 0.7)"
        )
    task = groups[0].runs[0].task
    out: dict[str, Figure] = {}
    if task == "regression":
        first = groups[0].runs[0]
        for t, name in enumerate(first.target_names or ("target",)):
            out[f"resolution_{name}" if len(first.target_names) > 1 else "resolution"] = resolution_figure(
                groups, t
            )
        return out
    if task == "anomaly":
        out["sic"] = sic_figure(groups, title=title)
    else:
        out["rejection"] = rejection_figure(groups, reference, title=title)
    if spectator is None:
        shared = set.intersection(*(set(r.spectators) for g in groups for r in g.runs))
        spectator = min(shared) if shared else None
        first_names = list(groups[0].runs[0].spectators)
        spectator = next((s for s in first_names if s in shared), spectator)
    if spectator is not None:
        out[f"vs_{spectator}"] = spectator_figure(groups, spectator, working_point)
    return out
