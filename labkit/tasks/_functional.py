"""Physics figures of merit as plain functions (the tasks' metrics call these; so can users).

numpy in, floats out: no torch, so that notebooks and reports can use them on saved predictions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["binned_bias_resolution", "fit_stochastic_constant", "rejection_at_efficiency"]


def rejection_at_efficiency(scores: np.ndarray, is_signal: np.ndarray, efficiency: float = 0.9) -> float:
    """Background rejection 1/ε_B at the cut that keeps a fraction ``efficiency`` of the signal.

    The cut is the (1 − efficiency) quantile of the signal scores (higher score = more
    signal-like); ε_B is the fraction of background scoring above it. With no background
    passing, ε_B is taken as 1/N_B, so the result is a lower bound, not infinity.
    """
    scores = np.asarray(scores, dtype=np.float64)
    sig = np.asarray(is_signal, dtype=bool)
    if not 0.0 < efficiency <= 1.0:
        raise ValueError(f"efficiency must be in (0, 1], got {efficiency}")
    if sig.all() or not sig.any():
        raise ValueError("rejection needs both signal and background samples")
    cut = np.quantile(scores[sig], 1.0 - efficiency, method="lower")
    background = scores[~sig]
    passed = max(int(np.count_nonzero(background >= cut)), 1)
    return float(len(background) / passed)


def binned_bias_resolution(
    true: np.ndarray, pred: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Relative bias and resolution of ``pred`` in quantile bins of ``true``.

    Returns the bin centres (median true value), the mean and the standard deviation of
    (pred − true)/true in each bin, and the number of samples per bin.
    """
    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    edges = np.unique(np.quantile(true, np.linspace(0.0, 1.0, bins + 1)))
    index = np.clip(np.searchsorted(edges, true, side="right") - 1, 0, len(edges) - 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = (pred - true) / true
    centres, bias, resolution, counts = [], [], [], []
    for b in range(len(edges) - 1):
        sel = (index == b) & np.isfinite(rel)
        if sel.sum() < 2:
            continue
        centres.append(float(np.median(true[sel])))
        bias.append(float(rel[sel].mean()))
        resolution.append(float(rel[sel].std(ddof=1)))
        counts.append(int(sel.sum()))
    return np.array(centres), np.array(bias), np.array(resolution), np.array(counts)


def fit_stochastic_constant(energy: np.ndarray, resolution: np.ndarray) -> tuple[float, float]:
    """Fit σ/E = a/√E ⊕ b (added in quadrature) to a resolution curve; return (a, b).

    (σ/E)² = a²/E + b² is linear in a² and b²: an ordinary least-squares fit of the squared
    resolution against 1/E, with a² and b² kept non-negative (a negative one is set to zero and
    the other refitted alone).
    """
    e = np.asarray(energy, dtype=np.float64)
    r2 = np.asarray(resolution, dtype=np.float64) ** 2
    if len(e) < 2:
        raise ValueError("the fit needs the resolution in at least two energy bins")
    design = np.stack([1.0 / e, np.ones_like(e)], axis=1)
    (a2, b2), *_ = np.linalg.lstsq(design, r2, rcond=None)
    if a2 < 0:
        a2, b2 = 0.0, float(r2.mean())
    elif b2 < 0:
        inv = 1.0 / e
        a2, b2 = float(np.dot(inv, r2) / np.dot(inv, inv)), 0.0
    return float(np.sqrt(a2)), float(np.sqrt(b2))
