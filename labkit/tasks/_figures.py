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
