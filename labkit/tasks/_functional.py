"""Physics figures of merit as plain functions (the tasks' metrics call these; so can users).

numpy in, floats out: no torch, so that notebooks and reports can use them on saved predictions.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "binned_bias_resolution",
    "confusion_counts",
    "dice_per_class",
    "fit_stochastic_constant",
    "iou_per_class",
    "max_sic",
    "rejection_at_efficiency",
    "roc_auc",
    "sic_curve",
]


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


def _two_classes(scores: np.ndarray, is_signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    sig = np.asarray(is_signal).astype(bool).ravel()
    if s.shape != sig.shape:
        raise ValueError(f"{s.size} scores but {sig.size} labels")
    if np.isnan(s).any():
        raise ValueError(f"{int(np.isnan(s).sum())} scores are NaN")
    if sig.all() or not sig.any():
        raise ValueError("needs both signal and background samples")
    return s, sig


def roc_auc(scores: np.ndarray, is_signal: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a signal event scores above a background
    one, ties counting one half (the Mann–Whitney U statistic over N_S N_B). Any monotone
    transformation of the scores gives the same value (scores may span many decades, as a
    likelihood ratio does)."""
    s, sig = _two_classes(scores, is_signal)
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average rank (1-based) within groups of equal scores
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    ranks[order] = np.repeat(0.5 * (starts + 1 + ends), ends - starts)
    n_s, n_b = int(sig.sum()), int((~sig).sum())
    return float((ranks[sig].sum() - n_s * (n_s + 1) / 2.0) / (n_s * n_b))


def sic_curve(
    scores: np.ndarray, is_signal: np.ndarray, min_background: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signal efficiency ε_S, background efficiency ε_B and significance improvement
    SIC = ε_S/√ε_B of every cut ``score >= t``, one per distinct score value from the tightest
    to the loosest, keeping the cuts that at least ``min_background`` background events pass.

    SIC is the factor by which the cut multiplies S/√B. Without ``min_background`` its maximum
    would sit at cuts passing one or two background events, where ε_B is a statistical fluke.
    """
    s, sig = _two_classes(scores, is_signal)
    if min_background < 1:
        raise ValueError(f"min_background must be >= 1, got {min_background}")
    order = np.argsort(-s, kind="stable")
    s_sorted, sig_sorted = s[order], sig[order]
    passed_s = np.cumsum(sig_sorted)
    passed_b = np.cumsum(~sig_sorted)
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])  # the end of each tie group
    passed_s, passed_b = passed_s[last], passed_b[last]
    keep = passed_b >= min_background
    eff_s = passed_s[keep] / sig.sum()
    eff_b = passed_b[keep] / (~sig).sum()
    return eff_s, eff_b, eff_s / np.sqrt(eff_b)


def max_sic(scores: np.ndarray, is_signal: np.ndarray, min_background: int = 1) -> float:
    """The largest SIC = ε_S/√ε_B over the cuts that at least ``min_background`` background events
    pass (see :func:`sic_curve`); ValueError when fewer background events than that exist."""
    _, _, sic = sic_curve(scores, is_signal, min_background)
    if sic.size == 0:
        raise ValueError(f"fewer than min_background={min_background} background events: no cut has a SIC")
    return float(sic.max())


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


def confusion_counts(pred: np.ndarray, true: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixel counts ``C[t, p]`` of true class ``t`` predicted as ``p``, pooled over every pixel of
    every image given (integer label arrays of the same shape)."""
    p = np.asarray(pred).ravel().astype(np.int64)
    t = np.asarray(true).ravel().astype(np.int64)
    if p.shape != t.shape:
        raise ValueError(f"{p.size} predicted labels but {t.size} true labels")
    for name, labels in (("predicted", p), ("true", t)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} labels must lie in 0..{num_classes - 1}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, -1)


def iou_per_class(pred: np.ndarray, true: np.ndarray, num_classes: int) -> np.ndarray:
    """Intersection over union of each class, ``TP / (TP + FP + FN)``, pooled over all pixels
    (NaN for a class absent from both the prediction and the truth)."""
    c = confusion_counts(pred, true, num_classes)
    tp = np.diag(c).astype(np.float64)
    union = c.sum(axis=0) + c.sum(axis=1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def dice_per_class(pred: np.ndarray, true: np.ndarray, num_classes: int) -> np.ndarray:
    """Dice coefficient (F1) of each class, ``2TP / (2TP + FP + FN)``, pooled over all pixels
    (NaN for a class absent from both). Dice = 2 IoU / (1 + IoU)."""
    c = confusion_counts(pred, true, num_classes)
    tp = np.diag(c).astype(np.float64)
    total = c.sum(axis=0) + c.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 2.0 * tp / total, np.nan)
