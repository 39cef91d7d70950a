"""Figures of merit for generative surrogates of a simulator, as in the Fast Calorimeter
Simulation Challenge (CaloChallenge 2022, arXiv:2410.21611): high-level shower features, their
separation power, a Fréchet distance between feature distributions, and a classifier two-sample
test.

numpy in, floats out (scikit-learn's MLP for the classifier test), so that the same numbers can be
computed on saved showers, e.g. a file from ``labkit generate`` against one from ``labkit sim``.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence

import numpy as np

from labkit.tasks._functional import roc_auc

__all__ = [
    "classifier_two_sample_auc",
    "mlp_scores",
    "feature_edges",
    "frechet_distance",
    "frechet_distance_gaussians",
    "separation_power",
    "shower_features",
    "two_sample_split",
]


# --------------------------------------------------------------------------- features


def shower_features(
    showers: np.ndarray,
    incident_energy: np.ndarray,
    radial_edges: Sequence[float] | np.ndarray,
    *,
    layer_thickness: float = 2.0,
) -> dict[str, np.ndarray]:
    """The CaloChallenge's high-level features of showers in a cylindrical grid, one value each.

    ``showers`` is (N, layers, radial bins, angular bins) in GeV, ``incident_energy`` (N,) GeV,
    ``radial_edges`` the radial bin edges (the angular bins are equal and cover [0, 2π)),
    ``layer_thickness`` the depth of one layer in radiation lengths X0. With ``x_v`` the energy
    of voxel v, ``r_v`` the middle of its radial bin and ``φ_v`` the middle of its angular bin,
    the features are (layers counted from 0, names zero-padded: ``_03``):

    * ``etot_over_einc``: Σ_v x_v / E_inc;
    * ``elayer_k_over_einc``: E_k / E_inc, with E_k the energy in layer k;
    * ``r_centre_k`` and ``r_width_k``: the energy-weighted mean of r_v in layer k and its
      standard deviation, √(Σ x_v r_v² / E_k − centre²) (in the unit of the edges, Molière radii);
    * ``x_centre_k`` and ``y_centre_k``: the energy-weighted mean of r_v cos φ_v and r_v sin φ_v,
      the shower's centre of energy across the axis (0 on average for a shower along the axis;
      its spread is that of the fluctuations);
    * ``x_width_k`` and ``y_width_k``: the energy-weighted standard deviation of r_v cos φ_v and
      r_v sin φ_v in layer k, √(Σ x_v (r_v cos φ_v)² / E_k − x_centre²) (CaloChallenge's widths);
    * ``nhit_k``: the number of cells of layer k with energy > 0; ``nhit``: in the whole shower;
    * ``emax_over_einc``: the hottest cell's energy / E_inc; ``emax_k_over_einc``: the hottest
      cell of layer k / E_inc;
    * ``emax_layer`` and ``emax_r``: the hottest cell's position, its layer index and the middle
      of its radial bin;
    * ``eratio``: (E1 − E2)/(E1 + E2) of the shower's two hottest cells (0 when fewer than two
      cells have energy);
    * ``depth_centre``: the longitudinal centre of gravity Σ_k E_k t_k / Σ_k E_k in X0, with
      t_k = ``layer_thickness`` (k + ½) the middle of layer k; ``depth_width``: the
      energy-weighted standard deviation of t_k.

    In a layer without energy its centres, widths and hottest cell are 0; in a shower without
    energy every feature is 0 (no NaN). All values are float64.
    """
    x = np.asarray(showers, dtype=np.float64)
    if x.ndim != 4:
        raise ValueError(f"showers must have shape (N, layers, radial bins, angular bins), got {x.shape}")
    n, layers, radial, angular = x.shape
    edges = np.asarray(radial_edges, dtype=np.float64)
    if len(edges) != radial + 1:
        raise ValueError(f"{radial} radial bins need {radial + 1} radial edges, got {len(edges)}")
    energy = np.asarray(incident_energy, dtype=np.float64).reshape(n)
    r = 0.5 * (edges[:-1] + edges[1:])  # (R,)
    phi = (np.arange(angular) + 0.5) * (2.0 * math.pi / angular)  # (A,)
    e_layer = x.sum(axis=(2, 3))  # (N, L)
    e_total = e_layer.sum(axis=1)  # (N,)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(e_layer > 0, 1.0 / e_layer, 0.0)
        inv_einc = np.where(energy > 0, 1.0 / energy, 0.0)
        radial_profile = x.sum(axis=3)  # (N, L, R)
        r_centre = (radial_profile @ r) * inv
        r2 = (radial_profile @ (r * r)) * inv
        r_width = np.sqrt(np.maximum(r2 - r_centre**2, 0.0))
        px, py = np.outer(r, np.cos(phi)), np.outer(r, np.sin(phi))  # (R, A)
        x_centre = np.einsum("nlra,ra->nl", x, px) * inv
        y_centre = np.einsum("nlra,ra->nl", x, py) * inv
        x_width = np.sqrt(np.maximum(np.einsum("nlra,ra->nl", x, px * px) * inv - x_centre**2, 0.0))
        y_width = np.sqrt(np.maximum(np.einsum("nlra,ra->nl", x, py * py) * inv - y_centre**2, 0.0))
        t = layer_thickness * (np.arange(layers) + 0.5)  # (L,)
        inv_total = np.where(e_total > 0, 1.0 / e_total, 0.0)
        depth_centre = (e_layer @ t) * inv_total
        depth_width = np.sqrt(np.maximum((e_layer @ (t * t)) * inv_total - depth_centre**2, 0.0))
    cells = x.reshape(n, -1)
    hit = x > 0
    emax_layer_cell = np.maximum(x.reshape(n, layers, -1).max(axis=2, initial=0.0), 0.0)  # (N, L)
    hottest = cells.argmax(axis=1) if cells.shape[1] else np.zeros(n, dtype=np.int64)
    e1 = np.maximum(cells.max(axis=1, initial=0.0), 0.0)
    any_hit = e1 > 0
    hot_layer, hot_radial, _ = np.unravel_index(hottest, (layers, radial, angular))
    if cells.shape[1] >= 2:
        top2 = -np.partition(-cells, 1, axis=1)[:, :2]
        e2 = np.maximum(top2[:, 1], 0.0)
    else:
        e2 = np.zeros(n)
    n_hit = hit.reshape(n, layers, -1).sum(axis=2).astype(np.float64)  # (N, L)
    with np.errstate(divide="ignore", invalid="ignore"):
        eratio = np.where((e2 > 0) & (e1 + e2 > 0), (e1 - e2) / (e1 + e2), 0.0)
    out = {"etot_over_einc": e_total * inv_einc}
    groups = {
        "elayer_{}_over_einc": e_layer * inv_einc[:, None],
        "r_centre_{}": r_centre,
        "r_width_{}": r_width,
        "x_centre_{}": x_centre,
        "y_centre_{}": y_centre,
        "x_width_{}": x_width,
        "y_width_{}": y_width,
        "nhit_{}": n_hit,
        "emax_{}_over_einc": emax_layer_cell * inv_einc[:, None],
    }
    width = max(2, len(str(layers - 1)))
    for pattern, values in groups.items():
        for k in range(layers):
            out[pattern.format(f"{k:0{width}d}")] = values[:, k]
    out["nhit"] = n_hit.sum(axis=1)
    out["emax_over_einc"] = e1 * inv_einc
    out["emax_layer"] = np.where(any_hit, hot_layer, 0).astype(np.float64)
    out["emax_r"] = np.where(any_hit, r[hot_radial], 0.0)
    out["eratio"] = eratio
    out["depth_centre"] = depth_centre
    out["depth_width"] = depth_width
    return out


# --------------------------------------------------------------------------- separation power


def feature_edges(reference: np.ndarray, bins: int = 30, coverage: float = 0.99) -> np.ndarray:
    """``bins`` equal-width bins spanning the central ``coverage`` of ``reference`` (by default
    its 0.5 % to 99.5 % quantiles); a constant sample gets bins of width 1/bins around its value."""
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref[np.isfinite(ref)]
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if ref.size == 0:
        return np.linspace(-0.5, 0.5, bins + 1)
    tail = 0.5 * (1.0 - coverage)
    lo, hi = (float(q) for q in np.quantile(ref, [tail, 1.0 - tail]))
    if not hi > lo:
        lo, hi = lo - 0.5, lo + 0.5
    return np.linspace(lo, hi, bins + 1)


def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Normalised counts; values outside the edges count in the first or last bin."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    index = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(index, minlength=len(edges) - 1).astype(np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts


def separation_power(a: np.ndarray, b: np.ndarray, edges: np.ndarray | int = 30) -> float:
    """Separation power of two samples of one feature: S = ½ Σ_bins (h_a − h_b)² / (h_a + h_b).

    ``h_a`` and ``h_b`` are the histograms of ``a`` and ``b`` normalised to unit sum, in common
    bins: ``edges``, or that many bins from :func:`feature_edges` of ``a`` (the reference sample;
    values outside the edges count in the first or last bin). S is 0 for identical histograms
    and 1 for histograms without a common bin. Two finite samples of N events each from the same
    distribution give S ≈ (B − 1)/(2N) on average in B bins, not 0.
    """
    edge_array = feature_edges(a, edges) if isinstance(edges, int) else np.asarray(edges, dtype=np.float64)
    ha, hb = _histogram(a, edge_array), _histogram(b, edge_array)
    both = ha + hb
    mask = both > 0
    return float(0.5 * np.sum((ha[mask] - hb[mask]) ** 2 / both[mask]))


# --------------------------------------------------------------------------- Fréchet distance


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(0.5 * (matrix + matrix.T))
    root: np.ndarray = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    return root


def frechet_distance_gaussians(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """Fréchet (2-Wasserstein²) distance of two Gaussians:
    |μ_a − μ_b|² + Tr(C_a + C_b − 2 (C_a^½ C_b C_a^½)^½).

    For N(0, 1) and N(μ, 1) it is μ²; for N(0, σ_a²) and N(0, σ_b²) it is (σ_a − σ_b)².
    """
    mu_a, mu_b = np.atleast_1d(np.asarray(mean_a, np.float64)), np.atleast_1d(np.asarray(mean_b, np.float64))
    ca, cb = np.atleast_2d(np.asarray(cov_a, np.float64)), np.atleast_2d(np.asarray(cov_b, np.float64))
    root_a = _sqrt_psd(ca)
    middle = root_a @ cb @ root_a
    w = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    cross = float(np.sum(np.sqrt(np.clip(w, 0.0, None))))
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(ca) + np.trace(cb) - 2.0 * cross)
    return max(value, 0.0)


def frechet_distance(a: np.ndarray, b: np.ndarray, *, standardize: bool = True) -> float:
    """Fréchet distance between the feature distributions of samples ``a`` and ``b`` (N, F).

    Each sample is summarised by its mean and covariance (:func:`frechet_distance_gaussians`).
    With ``standardize`` both are first scaled with the mean and standard deviation of ``a``
    (the reference; a constant feature is only shifted), so that features in different units
    weigh alike. Like the separation power it is not 0 for two finite samples of one
    distribution: compare with the value between two samples of the simulator.
    """
    xa = np.asarray(a, dtype=np.float64)
    xb = np.asarray(b, dtype=np.float64)
    if xa.ndim == 1:
        xa, xb = xa[:, None], xb.reshape(len(xb), -1)
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"the samples have {xa.shape[1]} and {xb.shape[1]} features")
    if len(xa) < 2 or len(xb) < 2:
        raise ValueError("the Fréchet distance needs at least two events in each sample")
    if standardize:
        mean, std = xa.mean(axis=0), xa.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        xa, xb = (xa - mean) / std, (xb - mean) / std
    return frechet_distance_gaussians(
        xa.mean(axis=0),
        np.cov(xa, rowvar=False).reshape(xa.shape[1], xa.shape[1]),
        xb.mean(axis=0),
        np.cov(xb, rowvar=False).reshape(xb.shape[1], xb.shape[1]),
    )


# --------------------------------------------------------------------------- classifier test


def classifier_two_sample_auc(
    a: np.ndarray,
    b: np.ndarray,
    *,
    seed: int = 0,
    hidden: Sequence[int] = (128, 128),
    max_epochs: int = 60,
    patience: int = 8,
    validation_fraction: float = 0.25,
) -> float:
    """ROC AUC of a classifier trained to tell sample ``b`` (label 1) from sample ``a`` (label 0).

    Both samples (N, F) are split in halves (with one permutation when they have the same
    length, so that paired rows, e.g. showers at the same incident energy, stay together). A
    scikit-learn MLP (``hidden`` layers, ReLU, Adam) is trained on the first halves, the inputs
    standardised with their mean and standard deviation; ``validation_fraction`` of them choose
    the epoch with the lowest log-loss (early stopping after ``patience`` epochs without
    improvement) and calibrate its output with Platt scaling (a logistic fit of the label on the
    output's logit). The AUC is that of the calibrated probability on the second halves, the
    events the classifier never saw. 0.5: the classifier cannot tell the samples apart; 1: it
    separates them completely. (A monotone calibration leaves the AUC unchanged; it makes the
    output a probability.)
    """
    xa = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    xb = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"the samples have {xa.shape[1]} and {xb.shape[1]} features")
    if min(len(xa), len(xb)) < 8:
        raise ValueError("the classifier test needs at least 8 events in each sample")
    train_x, train_y, test_x, test_y = two_sample_split(xa, xb, test_fraction=0.5, seed=seed)
    mean, std = train_x.mean(axis=0), train_x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    scores = mlp_scores(
        train_x,
        train_y,
        test_x,
        seed=seed,
        hidden=hidden,
        alpha=1e-3,
        batch_size=128,
        max_epochs=max_epochs,
        patience=patience,
        validation_fraction=validation_fraction,
        calibrate=True,
    )
    return roc_auc(scores, test_y.astype(bool))


def two_sample_split(
    a: np.ndarray, b: np.ndarray, *, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training and test rows of a two-sample test: ``a`` labelled 0, ``b`` labelled 1, each
    sample split on its own (stratified: ``test_fraction`` of each is held out), seeded; with one
    permutation for both when they have the same length, so that paired rows (showers at the same
    incident energy) fall on the same side. Returns ``train_x, train_y, test_x, test_y``."""
    rng = np.random.default_rng(seed)
    perm_a = rng.permutation(len(a))
    perm_b = perm_a if len(a) == len(b) else rng.permutation(len(b))
    n_train_a = min(len(a) - 1, max(1, int((1.0 - test_fraction) * len(a))))
    n_train_b = min(len(b) - 1, max(1, int((1.0 - test_fraction) * len(b))))
    train_x = np.concatenate([a[perm_a[:n_train_a]], b[perm_b[:n_train_b]]])
    train_y = np.r_[np.zeros(n_train_a), np.ones(n_train_b)]
    test_x = np.concatenate([a[perm_a[n_train_a:]], b[perm_b[n_train_b:]]])
    test_y = np.r_[np.zeros(len(a) - n_train_a), np.ones(len(b) - n_train_b)]
    return train_x, train_y, test_x, test_y


def mlp_scores(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    *,
    seed: int,
    hidden: Sequence[int],
    alpha: float,
    batch_size: int,
    learning_rate: float = 1e-3,
    max_epochs: int,
    patience: int,
    validation_fraction: float,
    calibrate: bool = False,
    threads: int = 1,
) -> np.ndarray:
    """Scores of ``test_x`` from a scikit-learn MLP (``hidden`` layers, ReLU, Adam) trained on
    ``train_x`` (inputs already scaled) for the binary labels ``train_y``.

    ``validation_fraction`` of the training rows (seeded) choose the epoch with the lowest
    log-loss: training stops after ``patience`` epochs without improvement (or ``max_epochs``)
    and the best epoch's network is kept. With ``calibrate`` its output is Platt-scaled (a
    logistic fit of the label on the output's logit, on the validation rows); the AUC does not
    change. BLAS runs on ``threads`` threads (1: for small networks more threads only wait on
    each other)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # comes with scikit-learn

    rng = np.random.default_rng([seed, 1])
    order = rng.permutation(len(train_x))
    n_val = max(2, round(validation_fraction * len(order)))
    fit_idx, val_idx = order[n_val:], order[:n_val]
    fit_x, fit_y = train_x[fit_idx], train_y[fit_idx]
    val_x, val_y = train_x[val_idx], train_y[val_idx]
    clf = MLPClassifier(
        hidden_layer_sizes=tuple(hidden),
        alpha=alpha,
        batch_size=min(batch_size, len(fit_idx)),
        learning_rate_init=learning_rate,
        random_state=seed,
    )
    best, best_loss, waited = None, math.inf, 0
    with warnings.catch_warnings(), threadpool_limits(threads):
        warnings.simplefilter("ignore")  # partial_fit's convergence notices
        for _ in range(max_epochs):
            clf.partial_fit(fit_x, fit_y, classes=np.array([0.0, 1.0]))
            p = np.clip(clf.predict_proba(val_x)[:, 1], 1e-7, 1 - 1e-7)
            loss = float(-np.mean(val_y * np.log(p) + (1 - val_y) * np.log(1 - p)))
            if loss < best_loss - 1e-6:
                best, best_loss, waited = copy.deepcopy(clf), loss, 0
            else:
                waited += 1
                if waited >= patience:
                    break
        assert best is not None

        def logit(x: np.ndarray) -> np.ndarray:
            p = np.clip(best.predict_proba(x)[:, 1], 1e-7, 1 - 1e-7)
            out: np.ndarray = np.log(p / (1 - p))[:, None]
            return out

        if calibrate and 0 < val_y.sum() < len(val_y):
            platt = LogisticRegression(C=1e6).fit(logit(val_x), val_y)
            scores: np.ndarray = platt.predict_proba(logit(test_x))[:, 1]
            return scores
        return logit(test_x)[:, 0]
