"""Diagnostic figures, drawn on ``matplotlib.figure.Figure`` objects (no pyplot global state)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure


def confusion_matrix_figure(
    counts: np.ndarray, class_names: Sequence[str], *, weighted: bool = False
) -> Figure:
    """Rows: true class, columns: predicted; colour is the row-normalised fraction, text the count
    (with ``weighted``, ``counts`` are sums of event weights, shown to 3 significant digits)."""
    counts = np.asarray(counts)
    k = len(counts)
    rows = counts.sum(axis=1, keepdims=True)
    frac = counts / np.where(rows > 0, rows, 1) if weighted else counts / np.maximum(rows, 1)
    size = min(12.0, 2.5 + 0.45 * k)
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.add_subplot()
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, label="fraction of true class" + (" (weighted)" if weighted else ""))
    ax.set_xticks(range(k), labels=list(class_names), rotation=45 if k > 10 else 0)
    ax.set_yticks(range(k), labels=list(class_names))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = counts.sum()
    if weighted:
        accuracy = np.trace(counts) / total if total > 0 else float("nan")
        ax.set_title(f"Confusion matrix (test, weighted: accuracy {accuracy:.3f}, Σw={total:.4g})")
    else:
        accuracy = np.trace(counts) / max(total, 1)
        ax.set_title(f"Confusion matrix (test, accuracy {accuracy:.3f}, n={int(total)})")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    f"{counts[i, j]:.3g}" if weighted else str(int(counts[i, j])),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if frac[i, j] > 0.5 else "black",
                )
    fig.tight_layout()
    return fig


def sic_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    n_signal: int,
    n_background: int,
    min_background: int,
) -> Figure:
    """Significance improvement SIC = ε_S/√ε_B (left) and background rejection 1/ε_B (right)
    against the signal efficiency ε_S, one line per score; ``curves`` maps a label to the
    ``(ε_S, ε_B)`` of its cuts. The SIC is drawn where at least ``min_background`` of the
    ``n_background`` events pass."""
    fig = Figure(figsize=(11.0, 4.2))
    ax_sic, ax_rej = fig.subplots(1, 2)
    for i, (label, (given_s, given_b)) in enumerate(curves.items()):
        eff_s, eff_b = np.asarray(given_s, dtype=np.float64), np.asarray(given_b, dtype=np.float64)
        ok = eff_b * n_background >= min_background - 1e-9
        style = {"color": f"C{i}", "ls": "--" if i else "-"}
        ax_sic.plot(eff_s[ok], eff_s[ok] / np.sqrt(eff_b[ok]), label=label, **style)
        pos = eff_b > 0
        ax_rej.plot(eff_s[pos], 1.0 / eff_b[pos], label=label, **style)
    ax_sic.axhline(1.0, color="grey", lw=0.8, ls=":", label="no cut (SIC = 1)")
    ax_sic.set_xlabel("signal efficiency ε_S")
    ax_sic.set_ylabel("SIC = ε_S / √ε_B")
    ax_sic.set_title(f"test, signal region: {n_signal} S, {n_background} B; >= {min_background} B pass")
    ax_rej.plot([0, 1], [1, 1], color="grey", lw=0.8, ls=":")
    ax_rej.set_yscale("log")
    ax_rej.set_xlabel("signal efficiency ε_S")
    ax_rej.set_ylabel("background rejection 1/ε_B")
    ax_rej.set_title("background rejection")
    for ax in (ax_sic, ax_rej):
        ax.set_xlim(0.0, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def regression_figure(
    true: np.ndarray,
    pred: np.ndarray,
    name: str,
    bins: int,
    fit: bool = False,
    *,
    weights: np.ndarray | None = None,
) -> Figure:
    """Prediction vs truth, and the relative bias and resolution in quantile bins of the truth
    (with the a/√x ⊕ b fit when ``fit``). With event ``weights`` the 2-D histogram and the binned
    numbers are weighted; with negative weights the binned panels are left empty (their centres
    are weighted medians)."""
    from labkit.tasks._functional import binned_bias_resolution, fit_stochastic_constant

    fig = Figure(figsize=(13.0, 4.0))
    ax_scatter, ax_bias, ax_res = fig.subplots(1, 3)
    lo, hi = float(np.min(true)), float(np.max(true))
    ax_scatter.hist2d(
        true, pred, bins=60, range=[[lo, hi], [lo, hi]], weights=weights, cmap="Blues", cmin=1e-300
    )
    ax_scatter.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--")
    ax_scatter.set_xlabel(f"true {name}")
    ax_scatter.set_ylabel(f"predicted {name}")
    shown = f"n={len(true)}" if weights is None else f"n={len(true)}, weighted"
    ax_scatter.set_title(f"{name}: prediction vs truth (test, {shown})")
    if weights is not None and np.any(np.asarray(weights) < 0):
        for ax in (ax_bias, ax_res):
            ax.text(
                0.5, 0.5, "negative event weights:\nno weighted medians", ha="center", transform=ax.transAxes
            )
        fig.tight_layout()
        return fig
    centres, bias, resolution, counts = binned_bias_resolution(true, pred, bins, weights=weights)
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


def segmentation_figure(
    images: np.ndarray,
    true: np.ndarray,
    pred: np.ndarray,
    class_names: Sequence[str],
    iou: dict[str, float | None] | None = None,
) -> Figure:
    """One row per image: the input (summed over channels; log colour scale when it is not
    negative), the true labels and the predicted labels, with the classes in fixed colours
    (background white)."""
    from matplotlib.colors import ListedColormap, LogNorm
    from matplotlib.patches import Patch

    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 4:  # (N, C, H, W)
        images = images.sum(axis=1)
    k = len(class_names)
    palette = ["#ffffff", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]
    colours = (palette * (k // len(palette) + 1))[:k]
    cmap = ListedColormap(colours)
    rows = len(images)
    fig = Figure(figsize=(10.5, 3.2 * rows + 0.8))
    axes = np.atleast_2d(fig.subplots(rows, 3, squeeze=False))
    for r in range(rows):
        image = images[r]
        positive = image[image > 0]
        if np.all(image >= 0) and positive.size:
            norm = LogNorm(vmin=max(float(positive.min()), 1e-3), vmax=float(positive.max()))
            shown = np.where(image > 0, image, np.nan)
            im = axes[r, 0].imshow(shown, origin="lower", cmap="viridis", norm=norm, interpolation="nearest")
        else:
            im = axes[r, 0].imshow(image, origin="lower", cmap="viridis", interpolation="nearest")
        fig.colorbar(im, ax=axes[r, 0], fraction=0.046, pad=0.04)
        for col, labels in ((1, true[r]), (2, pred[r])):
            axes[r, col].imshow(
                labels, origin="lower", cmap=cmap, vmin=-0.5, vmax=k - 0.5, interpolation="nearest"
            )
        axes[r, 0].set_title("input" if r else "input (test image)")
        axes[r, 1].set_title("true labels")
        axes[r, 2].set_title("predicted labels")
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    legend = []
    for i, name in enumerate(class_names):
        score = (iou or {}).get(name)
        label = f"{name} (IoU {score:.3f})" if score is not None and np.isfinite(score) else name
        legend.append(Patch(facecolor=colours[i], edgecolor="black", label=label))
    fig.legend(handles=legend, loc="lower center", ncol=min(k, 4), frameon=False)
    fig.suptitle("Segmentation of test images (IoU over the whole test split)")
    fig.tight_layout(rect=(0, 0.6 / (3.2 * rows + 0.8), 1, 1))
    return fig


def feature_comparison_figure(
    simulated: dict[str, np.ndarray],
    generated: dict[str, np.ndarray],
    edges: dict[str, np.ndarray],
    separation: dict[str, float],
    *,
    reference: dict[str, np.ndarray] | None = None,
    title: str = "",
) -> Figure:
    """One panel per feature: normalised histograms of the simulated and generated samples (and
    a second simulated sample, ``reference``) in the bins of the separation power, the values
    outside the bins counted in the first or last one; below each, the ratio generated /
    simulated with Poisson errors of both."""
    names = list(simulated)
    cols = min(4, max(1, len(names)))
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(3.8 * cols, 3.6 * rows + 0.7))
    outer = fig.add_gridspec(rows, cols, hspace=0.45, wspace=0.3)

    def counts(values: np.ndarray, e: np.ndarray) -> np.ndarray:
        index = np.clip(np.searchsorted(e, values[np.isfinite(values)], side="right") - 1, 0, len(e) - 2)
        return np.bincount(index, minlength=len(e) - 1).astype(np.float64)

    for i, name in enumerate(names):
        r, c = divmod(i, cols)
        cell = outer[r, c].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.05)
        top = fig.add_subplot(cell[0])
        bottom = fig.add_subplot(cell[1], sharex=top)
        e = edges[name]
        centres = 0.5 * (e[:-1] + e[1:])
        n_sim, n_gen = counts(simulated[name], e), counts(generated[name], e)
        h_sim, h_gen = n_sim / max(n_sim.sum(), 1), n_gen / max(n_gen.sum(), 1)
        top.stairs(h_sim, e, fill=True, alpha=0.35, color="C0", label="simulated")
        top.stairs(h_gen, e, color="C3", lw=1.4, label="generated")
        if reference is not None:
            n_ref = counts(reference[name], e)
            top.stairs(
                n_ref / max(n_ref.sum(), 1), e, color="black", lw=0.8, ls="--", label="simulated, 2nd sample"
            )
        top.set_title(f"{name}  S={separation.get(name, float('nan')):.3f}", fontsize=9)
        top.tick_params(labelbottom=False, labelsize=7)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = h_gen / h_sim
            error = ratio * np.sqrt(1.0 / n_gen + 1.0 / n_sim)
        ok = (n_sim > 0) & (n_gen > 0)
        bottom.errorbar(centres[ok], ratio[ok], yerr=error[ok], fmt="o", ms=2.5, color="C3", lw=0.8)
        bottom.axhline(1.0, color="black", lw=0.8)
        bottom.set_ylim(0.0, 2.0)
        bottom.set_ylabel("gen/sim", fontsize=7)
        bottom.tick_params(labelsize=7)
        bottom.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
        bottom.xaxis.get_offset_text().set_fontsize(7)
        if i == 0:
            top.legend(fontsize=7)
    fig.suptitle(title or "Generated vs simulated showers (test split)")
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.05, top=1 - 1.0 / (3.6 * rows + 0.7))
    return fig


def separation_power_figure(
    separation: Mapping[str, float], floor: Mapping[str, float] | None = None
) -> Figure:
    """One bar per feature: its separation power, generated vs simulated (log scale), and with
    ``floor`` a black tick at the value between two simulator samples (what finite samples of
    one distribution give)."""
    names = list(separation)
    values = np.array([max(separation[n], 1e-6) for n in names])
    fig = Figure(figsize=(max(8.0, 0.13 * len(names) + 1.5), 4.8))
    ax = fig.add_subplot()
    x = np.arange(len(names))
    ax.bar(x, values, width=0.8, color="C3", alpha=0.7, label="generated vs simulated")
    if floor is not None:
        ax.scatter(
            x,
            [max(floor.get(n, float("nan")), 1e-6) for n in names],
            marker="_",
            s=60,
            color="black",
            label="simulated vs simulated (floor)",
        )
    ax.set_yscale("log")
    ax.set_xticks(x, labels=names, rotation=90, fontsize=6)
    ax.set_xlim(-1, len(names))
    ax.set_ylabel("separation power")
    ax.set_title(f"Separation power per feature (mean {float(np.mean(values)):.4f})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
