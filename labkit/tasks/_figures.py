"""Diagnostic figures, drawn on ``matplotlib.figure.Figure`` objects (no pyplot global state)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure


def confusion_matrix_figure(counts: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Rows: true class, columns: predicted; colour is the row-normalised fraction, text the count."""
    counts = np.asarray(counts)
    k = len(counts)
    frac = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = min(12.0, 2.5 + 0.45 * k)
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.add_subplot()
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, label="fraction of true class")
    ax.set_xticks(range(k), labels=list(class_names), rotation=45 if k > 10 else 0)
    ax.set_yticks(range(k), labels=list(class_names))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"Confusion matrix (test, accuracy {accuracy:.3f}, n={int(counts.sum())})")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    str(int(counts[i, j])),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if frac[i, j] > 0.5 else "black",
                )
    fig.tight_layout()
    return fig


def regression_figure(true: np.ndarray, pred: np.ndarray, name: str, bins: int, fit: bool = False) -> Figure:
    """Prediction vs truth, and the relative bias and resolution in quantile bins of the truth
    (with the a/√x ⊕ b fit when ``fit``)."""
    from labkit.tasks._functional import binned_bias_resolution, fit_stochastic_constant

    fig = Figure(figsize=(13.0, 4.0))
    ax_scatter, ax_bias, ax_res = fig.subplots(1, 3)
    lo, hi = float(np.min(true)), float(np.max(true))
    ax_scatter.hist2d(true, pred, bins=60, range=[[lo, hi], [lo, hi]], cmap="Blues", cmin=1)
    ax_scatter.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--")
    ax_scatter.set_xlabel(f"true {name}")
    ax_scatter.set_ylabel(f"predicted {name}")
    ax_scatter.set_title(f"{name}: prediction vs truth (test, n={len(true)})")
    centres, bias, resolution, counts = binned_bias_resolution(true, pred, bins)
    errors = resolution / np.sqrt(np.maximum(counts, 1))
    ax_bias.errorbar(centres, bias, yerr=errors, fmt="o", ms=4)
    ax_bias.axhline(0.0, color="black", lw=0.8)
    ax_bias.set_xlabel(f"true {name}")
    ax_bias.set_ylabel("bias  mean((pred - true) / true)")
    ax_res.errorbar(
        centres, resolution, yerr=resolution / np.sqrt(2 * np.maximum(counts - 1, 1)), fmt="o", ms=4
    )
    ax_res.set_xlabel(f"true {name}")
    ax_res.set_ylabel("resolution  std((pred - true) / true)")
    if fit and len(centres) >= 2 and np.all(centres > 0):
        a, b = fit_stochastic_constant(centres, resolution)
        x = np.linspace(centres.min(), centres.max(), 200)
        ax_res.plot(x, np.sqrt(a**2 / x + b**2), color="C3", label=f"{a:.3f}/sqrt(x) (+) {b:.3f}")
        ax_res.legend()
        ax_res.set_xscale("log")
        ax_bias.set_xscale("log")
    for ax in (ax_bias, ax_res):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
