"""The numbers behind the physics curves: rejection vs efficiency, SIC, efficiency vs a spectator
at a working point, resolution and bias vs the true value, each with its uncertainty.

numpy (and ``hist`` for the weighted binning); the figures are in :mod:`labkit.report._figures`.

The error model (docs/meetings.md, "Physics curves"): an efficiency ε measured on events of
weights w has the binomial error √(ε(1−ε)/N_eff) with Kish's effective count
N_eff = (Σw)²/Σw² (N_eff = N without weights); a rejection R = 1/ε_B has σ_R = σ_εB/ε_B² and a
SIC = ε_S/√ε_B has σ = SIC·σ_εB/(2ε_B) (the signal efficiency is the x-axis, taken as exact).
Runs that differ only by seed are one curve: the mean over the seeds ± their standard deviation.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EFF_GRID",
    "Band",
    "binned_efficiency",
    "cut_at_efficiency",
    "rejection_curve",
    "rejection_vs",
    "resolution_curve",
    "ratio_to",
    "seed_band",
    "sic_band",
    "spectator_edges",
]

#: the signal efficiencies the curves are evaluated at (shared by every run, so seeds average)
EFF_GRID = np.linspace(0.01, 1.0, 100)


@dataclass(frozen=True)
class Band:
    """A curve y(x) with its uncertainty ``error`` (binomial, or the spread over ``n`` seeds)."""

    x: np.ndarray
    y: np.ndarray
    error: np.ndarray
    n: int = 1  #: runs averaged (1: the error is binomial)


def _weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64).ravel()


def _n_eff(w: np.ndarray) -> float:
    """Kish's effective number of events (Σw)²/Σw² (the count, for unit weights)."""
    w2 = float(np.dot(w, w))
    return float(w.sum() ** 2 / w2) if w2 > 0 else 0.0


def _efficiencies(
    scores: np.ndarray, is_signal: np.ndarray, weights: np.ndarray | None, grid: np.ndarray
) -> tuple[np.ndarray, float]:
    """ε_B at each signal efficiency of ``grid`` (NaN where no background event passes yet) and
    the background's effective count."""
    from labkit.tasks import sic_curve

    eff_s, eff_b, _ = sic_curve(scores, is_signal, weights=weights)
    order = np.argsort(eff_s, kind="stable")  # cuts from the tightest: ε_S rises (ε_B with it)
    xs, first = np.unique(eff_s[order], return_index=True)  # per ε_S the tightest cut: the least ε_B
    eff_b_grid = np.interp(grid, xs, eff_b[order][first], left=np.nan, right=np.nan)
    w = _weights(weights, len(scores))
    return eff_b_grid, _n_eff(w[~np.asarray(is_signal).astype(bool)])


def rejection_curve(
    scores: np.ndarray,
    is_signal: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    grid: np.ndarray = EFF_GRID,
) -> Band:
    """Background rejection 1/ε_B at each signal efficiency of ``grid``, with its binomial error.
    NaN where no background passes the cut (the rejection is unbounded there)."""
    eff_b, n_b = _efficiencies(scores, is_signal, weights, grid)
    with np.errstate(divide="ignore", invalid="ignore"):
        rej = np.where(eff_b > 0, 1.0 / eff_b, np.nan)
        sigma_b = np.sqrt(np.clip(eff_b * (1.0 - eff_b), 0.0, None) / n_b)
        err = sigma_b / eff_b**2
    return Band(x=grid, y=rej, error=np.where(np.isfinite(rej), err, np.nan))


def sic_band(
    scores: np.ndarray,
    is_signal: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    grid: np.ndarray = EFF_GRID,
) -> Band:
    """SIC = ε_S/√ε_B at each signal efficiency of ``grid`` with its binomial error (from ε_B)."""
    eff_b, n_b = _efficiencies(scores, is_signal, weights, grid)
    with np.errstate(divide="ignore", invalid="ignore"):
        sic = np.where(eff_b > 0, grid / np.sqrt(eff_b), np.nan)
        sigma_b = np.sqrt(np.clip(eff_b * (1.0 - eff_b), 0.0, None) / n_b)
        err = sic * sigma_b / (2.0 * eff_b)
    return Band(x=grid, y=sic, error=np.where(np.isfinite(sic), err, np.nan))


def seed_band(bands: Sequence[Band]) -> Band:
    """Runs that differ only by seed as one curve: the mean over them ± their standard deviation
    (ddof=1) at each x; one run is returned as it is (its binomial error). The bands must share x."""
    if not bands:
        raise ValueError("seed_band needs at least one curve")
    if len(bands) == 1:
        return bands[0]
    x = bands[0].x
    for band in bands[1:]:
        if band.x.shape != x.shape or not np.allclose(band.x, x):
            raise ValueError("seed_band: the curves are evaluated at different x")
    ys = np.stack([b.y for b in bands])
    with warnings.catch_warnings():  # all-NaN columns (no background passes) stay NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(ys, axis=0)
        std = np.nanstd(ys, axis=0, ddof=1)
    return Band(x=x, y=mean, error=std, n=len(bands))


def ratio_to(band: Band, reference: Band) -> tuple[np.ndarray, np.ndarray]:
    """``band``/``reference`` and its error: the curve's own relative error times the ratio (the
    reference's relative error is drawn separately, as a band around 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = band.y / reference.y
        err = np.abs(ratio) * band.error / np.abs(band.y)
    return ratio, err


def cut_at_efficiency(
    scores: np.ndarray, is_signal: np.ndarray, efficiency: float, *, weights: np.ndarray | None = None
) -> float:
    """The working point: the tightest cut ``score >= t`` keeping at least the fraction
    ``efficiency`` of the signal (weight); returns ``t``."""
    if not 0.0 < efficiency <= 1.0:
        raise ValueError(f"efficiency must be in (0, 1], got {efficiency}")
    s = np.asarray(scores, dtype=np.float64).ravel()
    sig = np.asarray(is_signal).astype(bool).ravel()
    w = _weights(weights, s.size)
    order = np.argsort(-s, kind="stable")
    s_sorted, w_sig = s[order], np.where(sig, w, 0.0)[order]
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])  # the end of each tie group
    kept = np.cumsum(w_sig)[last] / w_sig.sum()
    reached = np.flatnonzero(kept >= efficiency - 1e-12)
    return float(s_sorted[last[reached[0] if reached.size else -1]])


def spectator_edges(values: Sequence[np.ndarray], bins: int = 8) -> np.ndarray:
    """Bin edges for a spectator: quantiles of every run's values pooled (about equal event counts
    per bin), the last edge nudged up so the largest value falls inside."""
    pooled = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in values])
    pooled = pooled[np.isfinite(pooled)]
    if pooled.size == 0:
        raise ValueError("the spectator has no finite value")
    edges = np.unique(np.quantile(pooled, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size < 2:
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    edges[-1] = np.nextafter(edges[-1], np.inf)
    return edges


def _sums(values: np.ndarray, weights: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Σw and Σw² per bin (``hist`` with weighted storage; values outside the edges are dropped)."""
    import hist

    h = hist.Hist(hist.axis.Variable(edges, underflow=False, overflow=False), storage=hist.storage.Weight())
    h.fill(values, weight=weights)
    return np.asarray(h.values(), dtype=np.float64), np.asarray(h.variances(), dtype=np.float64)


def binned_efficiency(
    values: np.ndarray, passed: np.ndarray, edges: np.ndarray, *, weights: np.ndarray | None = None
) -> Band:
    """The fraction of events (of their weight) that ``passed``, in bins of ``values``, with the
    binomial error √(ε(1−ε)/N_eff) and N_eff = (Σw)²/Σw² per bin. x: the bin centres; NaN in a
    bin without events."""
    v = np.asarray(values, dtype=np.float64).ravel()
    ok = np.asarray(passed).astype(bool).ravel()
    w = _weights(weights, v.size)
    total, total2 = _sums(v, w, edges)
    kept, _ = _sums(v[ok], w[ok], edges)
    with np.errstate(divide="ignore", invalid="ignore"):
        eff = np.where(total > 0, kept / total, np.nan)
        n_eff = np.where(total2 > 0, total**2 / total2, np.nan)
        err = np.sqrt(np.clip(eff * (1.0 - eff), 0.0, None) / n_eff)
    return Band(x=0.5 * (edges[1:] + edges[:-1]), y=eff, error=err)


def rejection_vs(
    values: np.ndarray, passed: np.ndarray, edges: np.ndarray, *, weights: np.ndarray | None = None
) -> Band:
    """Background rejection 1/ε_B in bins of ``values`` (``passed``: the background events passing
    the cut), σ = σ_εB/ε_B²; NaN in a bin where no background passes."""
    eff = binned_efficiency(values, passed, edges, weights=weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        rej = np.where(eff.y > 0, 1.0 / eff.y, np.nan)
        err = eff.error / eff.y**2
    return Band(x=eff.x, y=rej, error=np.where(np.isfinite(rej), err, np.nan))


@dataclass(frozen=True)
class Resolution:
    """Relative bias and resolution of a regression target in bins of its true value, and the fit
    σ/E = a/√E ⊕ b (``None`` when it cannot be fitted: fewer than two bins, or E <= 0)."""

    bias: Band
    resolution: Band
    fit: tuple[float, float] | None


def resolution_curve(
    truth: np.ndarray, pred: np.ndarray, *, weights: np.ndarray | None = None, bins: int = 10
) -> Resolution:
    """:func:`labkit.tasks.binned_bias_resolution` with errors: the bias ± σ/√N_eff and the
    resolution ± σ/√(2(N_eff−1)) per bin, and :func:`labkit.tasks.fit_stochastic_constant`."""
    from labkit.tasks import binned_bias_resolution, fit_stochastic_constant

    centres, bias, resolution, counts = binned_bias_resolution(truth, pred, bins, weights=weights)
    n = np.asarray(counts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        bias_err = resolution / np.sqrt(n)
        res_err = resolution / np.sqrt(2.0 * np.clip(n - 1.0, 1e-12, None))
    fit = None
    if centres.size >= 2 and (centres > 0).all():
        fit = fit_stochastic_constant(centres, resolution)
    return Resolution(
        bias=Band(x=centres, y=bias, error=bias_err),
        resolution=Band(x=centres, y=resolution, error=res_err),
        fit=fit,
    )


def on_grid(band: Band, x: np.ndarray) -> Band:
    """``band`` interpolated onto ``x`` (NaN outside its range): seeds binned on their own
    quantiles are averaged on the first seed's bins."""
    order = np.argsort(band.x)
    y = np.interp(x, band.x[order], band.y[order], left=np.nan, right=np.nan)
    e = np.interp(x, band.x[order], band.error[order], left=np.nan, right=np.nan)
    return Band(x=x, y=y, error=e, n=band.n)
