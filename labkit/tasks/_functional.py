"""Physics figures of merit as plain functions (the tasks' metrics call these; so can users).

numpy in, floats out: no torch, so that notebooks and reports can use them on saved predictions.
Each takes keyword-only event ``weights`` (one per event, like ``data.weights``; ``None`` means
every event weighs 1, and weights of 1 give exactly the unweighted numbers). Negative weights (MC
generators' negative-weight events) are allowed where the estimator is a sum or a ratio of sums
(AUC, SIC, rejection, accuracy, means, standard deviations, IoU, Dice) and refused with a
``ValueError`` where it is a quantile (:func:`weighted_quantile`, the bin centres of
:func:`binned_bias_resolution`). docs/tasks.md ("Event weights") lists the caveats.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "accuracy",
    "binned_bias_resolution",
    "confusion_counts",
    "dice_per_class",
    "fit_stochastic_constant",
    "iou_per_class",
    "max_sic",
    "rejection_at_efficiency",
    "roc_auc",
    "sic_curve",
    "weighted_mean_std",
    "weighted_quantile",
]


def _event_weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    """``weights`` as float64 of shape (n,) (ones when None); ValueError if the shape or a value is off."""
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != (n,):
        raise ValueError(f"weights: {w.size} weights for {n} events")
    if not np.isfinite(w).all():
        raise ValueError(f"weights: {int((~np.isfinite(w)).sum())} weights are NaN or infinite")
    return w


def weighted_quantile(values: np.ndarray, q: float, *, weights: np.ndarray | None = None) -> float:
    """The ``q`` quantile of ``values`` under ``weights``: the values sorted, each placed at the
    middle of its share of the cumulative weight, and interpolated linearly (equal weights give
    numpy's ``hazen`` quantile; the median equals ``np.median``). Events of weight 0 are ignored.

    Negative weights are refused: the cumulative weight would not be monotone, so no value is
    "the" quantile.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    w = _event_weights(weights, v.size)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    if (w < 0).any():
        raise ValueError(
            f"weighted_quantile: {int((w < 0).sum())} weights are negative; a weighted quantile needs "
            "weights >= 0 (use a weighted mean, or drop the negative-weight events)"
        )
    keep = w > 0
    v, w = v[keep], w[keep]
    if v.size == 0:
        raise ValueError("weighted_quantile: no event with a positive weight")
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    position = (np.cumsum(w) - 0.5 * w) / w.sum()
    return float(np.interp(q, position, v))


def weighted_mean_std(values: np.ndarray, *, weights: np.ndarray | None = None) -> tuple[float, float]:
    """Weighted mean Σwx/Σw and standard deviation √(Σw(x − mean)²/Σw · n_eff/(n_eff − 1)), with
    Kish's effective number of events n_eff = (Σw)²/Σw² (equal weights: ``np.std(ddof=1)``).

    Negative weights are allowed; the result is NaN where it is undefined (Σw <= 0 for the mean;
    n_eff <= 1 or a negative weighted variance for the standard deviation).
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    w = _event_weights(weights, x.size)
    total = w.sum()
    if x.size == 0 or total <= 0:
        return float("nan"), float("nan")
    mean = float(np.dot(w, x) / total)
    n_eff = total**2 / np.dot(w, w)
    variance = np.dot(w, (x - mean) ** 2) / total
    if n_eff <= 1 or variance < 0:
        return mean, float("nan")
    return mean, float(np.sqrt(variance * n_eff / (n_eff - 1)))


def accuracy(pred: np.ndarray, true: np.ndarray, *, weights: np.ndarray | None = None) -> float:
    """The (weighted) fraction of events whose predicted label equals the true one, Σ_correct w / Σw
    (negative weights allowed; ValueError when Σw <= 0)."""
    p, t = np.asarray(pred).ravel(), np.asarray(true).ravel()
    if p.shape != t.shape:
        raise ValueError(f"{p.size} predicted labels but {t.size} true labels")
    w = _event_weights(weights, p.size)
    if not w.sum() > 0:
        raise ValueError(f"accuracy: the weights sum to {w.sum():g}; it needs a positive total")
    return float(w[p == t].sum() / w.sum())


def rejection_at_efficiency(
    scores: np.ndarray, is_signal: np.ndarray, efficiency: float = 0.9, *, weights: np.ndarray | None = None
) -> float:
    """Background rejection 1/ε_B at the tightest cut ``score >= t`` that keeps at least a fraction
    ``efficiency`` of the signal (of its weight, with ``weights``); higher score = more
    signal-like. ε_B is the fraction of the background (weight) scoring at or above the cut. With
    no background passing, ε_B is taken as 1/N_B (N_B background events), so the result is a lower
    bound, not infinity. Negative weights are allowed (ε_B <= 0 is floored the same way).
    """
    if not 0.0 < efficiency <= 1.0:
        raise ValueError(f"efficiency must be in (0, 1], got {efficiency}")
    s, sig, w = _two_classes(scores, is_signal, weights)
    order = np.argsort(-s, kind="stable")
    s_sorted, w_sig = s[order], np.where(sig, w, 0.0)[order]
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])  # the end of each tie group
    kept = np.cumsum(w_sig)[last] / w_sig.sum()
    reached = np.flatnonzero(kept >= efficiency - 1e-12)
    cut = s_sorted[last[reached[0] if reached.size else -1]]
    background = ~sig
    passed = float(w[background & (s >= cut)].sum()) / float(w[background].sum())
    return float(1.0 / max(passed, 1.0 / int(background.sum())))


def _two_classes(
    scores: np.ndarray, is_signal: np.ndarray, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    sig = np.asarray(is_signal).astype(bool).ravel()
    if s.shape != sig.shape:
        raise ValueError(f"{s.size} scores but {sig.size} labels")
    if np.isnan(s).any():
        raise ValueError(f"{int(np.isnan(s).sum())} scores are NaN")
    if sig.all() or not sig.any():
        raise ValueError("needs both signal and background samples")
    w = _event_weights(weights, s.size)
    for name, mask in (("signal", sig), ("background", ~sig)):
        total = float(w[mask].sum())
        if not total > 0:
            raise ValueError(
                f"weights: the {name} weights sum to {total:g}; both classes need a positive total"
            )
    return s, sig, w


def roc_auc(scores: np.ndarray, is_signal: np.ndarray, *, weights: np.ndarray | None = None) -> float:
    """Area under the ROC curve: the probability that a signal event scores above a background
    one, ties counting one half (the Mann–Whitney U statistic over N_S N_B); with ``weights``,
    each (signal, background) pair counts with the product of their weights, over W_S W_B. Any
    monotone transformation of the scores gives the same value (scores may span many decades, as
    a likelihood ratio does). Negative weights are allowed: the value is then a ratio of signed
    sums and may leave [0, 1]."""
    s, sig, w = _two_classes(scores, is_signal, weights)
    order = np.argsort(s, kind="stable")
    sorted_s = s[order]
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])  # groups of equal scores
    sig_w = np.add.reduceat(np.where(sig, w, 0.0)[order], starts)
    bkg_w = np.add.reduceat(np.where(sig, 0.0, w)[order], starts)
    below = np.cumsum(bkg_w) - bkg_w  # background weight scoring strictly lower
    return float(np.dot(sig_w, below + 0.5 * bkg_w) / (sig_w.sum() * bkg_w.sum()))


def sic_curve(
    scores: np.ndarray,
    is_signal: np.ndarray,
    min_background: int = 1,
    *,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signal efficiency ε_S, background efficiency ε_B and significance improvement
    SIC = ε_S/√ε_B of every cut ``score >= t``, one per distinct score value from the tightest
    to the loosest, keeping the cuts that at least ``min_background`` background events pass.

    SIC is the factor by which the cut multiplies S/√B. Without ``min_background`` its maximum
    would sit at cuts passing one or two background events, where ε_B is a statistical fluke.
    With ``weights`` the efficiencies are fractions of the class's weight, while
    ``min_background`` still counts events (it guards the statistics). With negative weights
    the efficiencies are cumulative signed sums: the curve need not be monotone, and the SIC is
    NaN at cuts where ε_B <= 0.
    """
    s, sig, w = _two_classes(scores, is_signal, weights)
    if min_background < 1:
        raise ValueError(f"min_background must be >= 1, got {min_background}")
    order = np.argsort(-s, kind="stable")
    s_sorted, sig_sorted, w_sorted = s[order], sig[order], w[order]
    passed_s = np.cumsum(np.where(sig_sorted, w_sorted, 0.0))
    passed_b = np.cumsum(np.where(sig_sorted, 0.0, w_sorted))
    events_b = np.cumsum(~sig_sorted)
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])  # the end of each tie group
    keep = events_b[last] >= min_background
    eff_s = passed_s[last][keep] / w[sig].sum()
    eff_b = passed_b[last][keep] / w[~sig].sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        sic = np.where(eff_b > 0, eff_s / np.sqrt(np.where(eff_b > 0, eff_b, 1.0)), np.nan)
    return eff_s, eff_b, sic


def max_sic(
    scores: np.ndarray, is_signal: np.ndarray, min_background: int = 1, *, weights: np.ndarray | None = None
) -> float:
    """The largest SIC = ε_S/√ε_B over the cuts that at least ``min_background`` background events
    pass (see :func:`sic_curve`); ValueError when fewer background events than that exist."""
    _, _, sic = sic_curve(scores, is_signal, min_background, weights=weights)
    if sic.size == 0:
        raise ValueError(f"fewer than min_background={min_background} background events: no cut has a SIC")
    if np.isnan(sic).all():
        raise ValueError("no cut passes a positive background weight: no SIC is defined")
    return float(np.nanmax(sic))


def binned_bias_resolution(
    true: np.ndarray, pred: np.ndarray, bins: int = 10, *, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Relative bias and resolution of ``pred`` in quantile bins of ``true``.

    Returns the bin centres (median true value), the mean and the standard deviation of
    (pred − true)/true in each bin, and the number of samples per bin. The bin edges are
    quantiles of the events (equal event counts, whatever the weights). With ``weights``: the
    weighted median, mean and standard deviation (:func:`weighted_mean_std`), and Kish's effective
    number of events (Σw)²/Σw² per bin instead of the count; negative weights are refused (the
    centres are weighted medians).
    """
    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    w = _event_weights(weights, true.size)
    if weights is not None and (w < 0).any():
        raise ValueError(
            f"binned_bias_resolution: {int((w < 0).sum())} weights are negative; the bin centres are "
            "weighted medians, which need weights >= 0"
        )
    edges = np.unique(np.quantile(true, np.linspace(0.0, 1.0, bins + 1)))
    index = np.clip(np.searchsorted(edges, true, side="right") - 1, 0, len(edges) - 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = (pred - true) / true
    centres, bias, resolution, counts = [], [], [], []
    for b in range(len(edges) - 1):
        sel = (index == b) & np.isfinite(rel)
        if sel.sum() < 2 or not w[sel].sum() > 0:
            continue
        if weights is None:
            centres.append(float(np.median(true[sel])))
            bias.append(float(rel[sel].mean()))
            resolution.append(float(rel[sel].std(ddof=1)))
            counts.append(float(sel.sum()))
            continue
        mean, std = weighted_mean_std(rel[sel], weights=w[sel])
        centres.append(weighted_quantile(true[sel], 0.5, weights=w[sel]))
        bias.append(mean)
        resolution.append(std)
        counts.append(float(w[sel].sum() ** 2 / np.dot(w[sel], w[sel])))
    count_type = np.int64 if weights is None else np.float64
    return np.array(centres), np.array(bias), np.array(resolution), np.array(counts, dtype=count_type)


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


def confusion_counts(
    pred: np.ndarray, true: np.ndarray, num_classes: int, *, weights: np.ndarray | None = None
) -> np.ndarray:
    """Pixel counts ``C[t, p]`` of true class ``t`` predicted as ``p``, pooled over every pixel of
    every image given (integer label arrays of the same shape). ``weights``: one per image (N,),
    every pixel of an image weighing its image's weight, or one per pixel (the labels' shape);
    the counts are then sums of weights (floats; negative weights allowed)."""
    shape = np.shape(pred)
    p = np.asarray(pred).ravel().astype(np.int64)
    t = np.asarray(true).ravel().astype(np.int64)
    if p.shape != t.shape:
        raise ValueError(f"{p.size} predicted labels but {t.size} true labels")
    for name, labels in (("predicted", p), ("true", t)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} labels must lie in 0..{num_classes - 1}")
    pixel_weights = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != shape[: w.ndim] or w.ndim == 0:
            raise ValueError(
                f"weights: shape {w.shape}; give one per image {shape[:1]} or one per pixel {shape}"
            )
        w = w.reshape(w.shape + (1,) * (len(shape) - w.ndim))
        pixel_weights = _event_weights(np.broadcast_to(w, shape).ravel(), p.size)
    counts = np.bincount(t * num_classes + p, weights=pixel_weights, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, -1)


def iou_per_class(
    pred: np.ndarray, true: np.ndarray, num_classes: int, *, weights: np.ndarray | None = None
) -> np.ndarray:
    """Intersection over union of each class, ``TP / (TP + FP + FN)``, pooled over all pixels
    (NaN for a class absent from both the prediction and the truth, or whose union weighs <= 0).
    ``weights`` as for :func:`confusion_counts`."""
    c = confusion_counts(pred, true, num_classes, weights=weights)
    tp = np.diag(c).astype(np.float64)
    union = c.sum(axis=0) + c.sum(axis=1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def dice_per_class(
    pred: np.ndarray, true: np.ndarray, num_classes: int, *, weights: np.ndarray | None = None
) -> np.ndarray:
    """Dice coefficient (F1) of each class, ``2TP / (2TP + FP + FN)``, pooled over all pixels
    (NaN for a class absent from both). Dice = 2 IoU / (1 + IoU). ``weights`` as for
    :func:`confusion_counts`."""
    c = confusion_counts(pred, true, num_classes, weights=weights)
    tp = np.diag(c).astype(np.float64)
    total = c.sum(axis=0) + c.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 2.0 * tp / total, np.nan)
