"""The evaluation of generated calorimeter showers against simulated ones, as in the Fast
Calorimeter Simulation Challenge (CaloChallenge 2022, arXiv:2410.21611): a high-level and a
low-level classifier two-sample test, per-feature separation power (overall and per incident
energy bin), the Fréchet and kernel physics distances (FPD, KPD), and the same numbers between two
simulator samples, the floor a perfect generator would reach.

numpy and scikit-learn only (no torch): it runs on any showers in the calo layout, e.g. a file
from ``labkit generate`` against files from ``labkit sim calo`` (``labkit evaluate``).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from labkit.errors import DataError
from labkit.tasks._functional import roc_auc
from labkit.tasks._generative import (
    feature_edges,
    frechet_distance,
    mlp_scores,
    separation_power,
    shower_features,
    two_sample_split,
)

__all__ = ["Comparison", "ShowerEvaluation", "evaluate_showers", "kernel_distance"]

#: the low-level classifier's input transform of each cell: ``"log"`` is log10(cell/E_inc + 1e-6),
#: ``"linear"`` cell/E_inc; both then standardised with the training rows' mean and deviation.
#: "log" was the stronger on the shipped calo_surrogate (docs/tasks.md, "Evaluating showers").
LL_TRANSFORM = "log"
LL_EPSILON = 1e-6


@dataclass(frozen=True)
class Comparison:
    """The numbers of one sample against the reference."""

    hl_auc: float
    ll_auc: float  #: NaN without the low-level classifier
    fpd: float
    kpd: float
    separation: Mapping[str, float]  #: feature → separation power
    separation_by_energy: Mapping[str, tuple[float, ...]]  #: feature → one per energy bin (NaN: too few)


@dataclass(frozen=True)
class ShowerEvaluation:
    """What :func:`evaluate_showers` found. ``generated`` compares the sample under test with
    the reference; ``floor`` (or None) a second simulator sample with the reference."""

    generated: Comparison
    floor: Comparison | None
    features: Mapping[str, Mapping[str, np.ndarray]]  #: "generated", "reference"[, "reference_2"]
    edges: Mapping[str, np.ndarray]  #: the separation-power bins of each feature (from the reference)
    energy_bins: tuple[float, ...]
    n_showers: Mapping[str, int]  #: per sample
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())

    @property
    def hl_gap(self) -> float:
        return self.generated.hl_auc - self.floor.hl_auc if self.floor else math.nan

    @property
    def ll_gap(self) -> float:
        return self.generated.ll_auc - self.floor.ll_auc if self.floor else math.nan

    def worst_features(self, count: int = 5) -> list[tuple[str, float]]:
        """The ``count`` features with the largest separation power, largest first."""
        items = sorted(self.generated.separation.items(), key=lambda kv: -kv[1])
        return items[:count]

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat numbers for logging: ``hl_classifier_auc``, ``ll_classifier_auc`` (with the
        low-level test), ``fpd``, ``kpd``, ``sep_power_mean``, ``sep_power_<feature>``; with the
        floor also ``reference_hl_classifier_auc``, ``reference_ll_classifier_auc``,
        ``reference_fpd``, ``reference_kpd``, ``reference_sep_power_mean``, ``hl_gap`` and
        ``ll_gap``. Each name is preceded by ``prefix`` (e.g. ``"test_"``)."""
        out = _comparison_metrics(self.generated, "")
        if self.floor is not None:
            floor = _comparison_metrics(self.floor, "reference_")
            out |= {
                k: v
                for k, v in floor.items()
                if not k.startswith("reference_sep_power_") or k.endswith("_mean")
            }
            out["hl_gap"] = self.hl_gap
            if not math.isnan(self.generated.ll_auc):
                out["ll_gap"] = self.ll_gap
        return {f"{prefix}{k}": float(v) for k, v in out.items()}


def _comparison_metrics(c: Comparison, prefix: str) -> dict[str, float]:
    out = {f"{prefix}hl_classifier_auc": c.hl_auc}
    if not math.isnan(c.ll_auc):
        out[f"{prefix}ll_classifier_auc"] = c.ll_auc
    out[f"{prefix}fpd"] = c.fpd
    out[f"{prefix}kpd"] = c.kpd
    out[f"{prefix}sep_power_mean"] = float(np.mean(list(c.separation.values())))
    out |= {f"{prefix}sep_power_{k}": v for k, v in c.separation.items()}
    return out


def evaluate_showers(
    generated: np.ndarray,
    reference: np.ndarray,
    *,
    energy_generated: np.ndarray,
    energy_reference: np.ndarray,
    radial_edges: Sequence[float] | np.ndarray,
    layer_thickness: float = 2.0,
    reference_2: np.ndarray | None = None,
    energy_reference_2: np.ndarray | None = None,
    seed: int = 0,
    bins: int = 30,
    energy_bins: Sequence[float] = (1, 3, 10, 30, 100),
    low_level: bool = True,
    test_fraction: float = 0.4,
) -> ShowerEvaluation:
    """Judge ``generated`` showers against ``reference`` ones (and ``reference_2`` against
    ``reference``: the floor), CaloChallenge-style.

    Showers are (N, layers, radial bins, angular bins) in GeV, energies (N,) GeV; the samples
    may differ in size. The tests (label 1: the sample under test, 0: the reference):

    * **high-level classifier**: scikit-learn's ``HistGradientBoostingClassifier``
      (learning rate 0.1, up to 500 trees of 31 leaves, early stopping on 15 % of the training
      rows after 20 trees without improvement) on every feature of
      :func:`~labkit.tasks.shower_features` and log10 E_inc;
    * **low-level classifier**: an MLP (2 × 256 ReLU, Adam lr 1e-3, batch 256, L2 1e-4; the
      best epoch on 15 % of the training rows, patience 5, at most 50 epochs) on every cell as
      log10(cell/E_inc + 1e-6), standardised, and log10 E_inc (skipped with ``low_level=False``);

    each trained on (1 − ``test_fraction``) of each sample, its ROC AUC measured on the rest
    (a seeded split; samples of equal length share one permutation, so showers paired by energy
    stay on the same side). 0.5: indistinguishable.

    * **separation power** of each feature (``bins`` bins from the reference's central 99 %),
      overall and per incident-energy bin (``energy_bins`` edges in GeV; NaN where a bin holds
      fewer than 20 showers of either sample);
    * **FPD**: the Fréchet distance of the standardised features; **KPD**: the unbiased MMD² with
      the kernel (x·y/d + 1)³ on the same features (:func:`kernel_distance`).

    Raises :class:`~labkit.errors.DataError` for showers of another shape, energies of another
    length, or non-finite values.
    """
    start = time.perf_counter()
    gen = _checked("generated", generated, energy_generated)
    ref = _checked("reference", reference, energy_reference)
    samples = {"generated": gen, "reference": ref}
    if reference_2 is not None or energy_reference_2 is not None:
        if reference_2 is None or energy_reference_2 is None:
            raise DataError("reference_2: give both the showers and energy_reference_2, or neither")
        samples["reference_2"] = _checked("reference_2", reference_2, energy_reference_2)
    for name, (showers, _) in samples.items():
        if showers.shape[1:] != ref[0].shape[1:]:
            raise DataError(
                f"{name}: showers of shape {showers.shape[1:]} per shower, "
                f"the reference's are {ref[0].shape[1:]}"
            )
    radial = ref[0].shape[2]
    if len(radial_edges) != radial + 1:
        raise DataError(
            f"radial_edges: {radial} radial bins need {radial + 1} edges, got {len(radial_edges)}"
        )
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    features = {
        name: shower_features(s, e, radial_edges, layer_thickness=layer_thickness)
        for name, (s, e) in samples.items()
    }
    edges = {k: feature_edges(v, bins) for k, v in features["reference"].items()}
    e_bins = tuple(float(v) for v in energy_bins)
    ref_set = _Sample(ref[0], ref[1], features["reference"])

    def compare(name: str) -> Comparison:
        showers, energy = samples[name]
        other = _Sample(showers, energy, features[name])
        return _compare(
            other,
            ref_set,
            edges=edges,
            bins=bins,
            energy_bins=e_bins,
            seed=seed,
            low_level=low_level,
            test_fraction=test_fraction,
        )

    return ShowerEvaluation(
        generated=compare("generated"),
        floor=compare("reference_2") if "reference_2" in samples else None,
        features=features,
        edges=edges,
        energy_bins=e_bins,
        n_showers={name: len(s) for name, (s, _) in samples.items()},
        seconds=time.perf_counter() - start,
    )


@dataclass(frozen=True)
class _Sample:
    showers: np.ndarray
    energy: np.ndarray
    features: Mapping[str, np.ndarray]

    def hl_inputs(self) -> np.ndarray:
        return np.stack([*self.features.values(), np.log10(self.energy)], axis=1)


def _checked(name: str, showers: object, energy: object) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(showers)
    e = np.asarray(energy, dtype=np.float64)
    if s.ndim != 4:
        raise DataError(
            f"{name}: showers must be (N, layers, radial bins, angular bins), got shape {s.shape}"
        )
    if e.ndim != 1 or len(e) != len(s):
        raise DataError(f"{name}: {len(s)} showers but incident energies of shape {e.shape}")
    if len(s) < 10:
        raise DataError(f"{name}: {len(s)} showers; the evaluation needs at least 10")
    if not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise DataError(f"{name}: incident energies must be finite and > 0 GeV")
    bad = ~np.isfinite(s).reshape(len(s), -1).all(axis=1)
    if bad.any():
        raise DataError(f"{name}: {int(bad.sum())} showers hold non-finite cell energies (NaN or inf)")
    return s, e


def _compare(
    other: _Sample,
    ref: _Sample,
    *,
    edges: Mapping[str, np.ndarray],
    bins: int,
    energy_bins: tuple[float, ...],
    seed: int,
    low_level: bool,
    test_fraction: float,
) -> Comparison:
    separation = {k: separation_power(ref.features[k], other.features[k], edges[k]) for k in ref.features}
    by_energy: dict[str, list[float]] = {k: [] for k in ref.features}
    for i, (lo, hi) in enumerate(itertools.pairwise(energy_bins)):
        last = i == len(energy_bins) - 2  # the last bin includes its upper edge
        in_ref = (ref.energy >= lo) & ((ref.energy < hi) | (last & (ref.energy == hi)))
        in_other = (other.energy >= lo) & ((other.energy < hi) | (last & (other.energy == hi)))
        enough = min(in_ref.sum(), in_other.sum()) >= 20
        for k in ref.features:
            value = math.nan
            if enough:
                value = separation_power(ref.features[k][in_ref], other.features[k][in_other], bins)
            by_energy[k].append(value)
    ref_hl, other_hl = ref.hl_inputs(), other.hl_inputs()
    ref_f, other_f = _standardised(ref_hl[:, :-1], other_hl[:, :-1])
    ll_auc = math.nan
    if low_level:
        ll_auc = ll_classifier_auc(
            ref.showers, ref.energy, other.showers, other.energy, seed=seed, test_fraction=test_fraction
        )
    return Comparison(
        hl_auc=hl_classifier_auc(ref_hl, other_hl, seed=seed, test_fraction=test_fraction),
        ll_auc=ll_auc,
        fpd=frechet_distance(ref_f, other_f, standardize=False),
        kpd=kernel_distance(ref_f, other_f, seed=seed),
        separation=separation,
        separation_by_energy={k: tuple(v) for k, v in by_energy.items()},
    )


def _standardised(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both samples scaled with the reference's mean and standard deviation (a constant feature
    is only shifted)."""
    mean, std = reference.mean(axis=0), reference.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (reference - mean) / std, (other - mean) / std


# --------------------------------------------------------------------------- classifiers


def hl_classifier_auc(reference: np.ndarray, other: np.ndarray, *, seed: int, test_fraction: float) -> float:
    """The high-level test: ROC AUC of gradient-boosted trees telling ``other`` (label 1) from
    ``reference`` (label 0), both (N, F) feature rows, on the held-out ``test_fraction``."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    train_x, train_y, test_x, test_y = two_sample_split(
        reference, other, test_fraction=test_fraction, seed=seed
    )
    clf = HistGradientBoostingClassifier(
        learning_rate=0.1,
        max_iter=500,
        max_leaf_nodes=31,
        early_stopping=True,
        validation_fraction=0.15,
        n_iter_no_change=20,
        random_state=seed,
    )
    clf.fit(train_x, train_y)
    return roc_auc(clf.predict_proba(test_x)[:, 1], test_y.astype(bool))


def ll_inputs(showers: np.ndarray, energy: np.ndarray, transform: str = LL_TRANSFORM) -> np.ndarray:
    """The low-level classifier's inputs: every cell / E_inc (``"log"``: log10(· + 1e-6);
    ``"linear"``: as it is) and log10 E_inc, one row per shower."""
    cells = showers.reshape(len(showers), -1).astype(np.float64) / energy[:, None]
    if transform == "log":
        cells = np.log10(np.maximum(cells, 0.0) + LL_EPSILON)
    elif transform != "linear":
        raise ValueError(f"transform must be 'log' or 'linear', got {transform!r}")
    return np.concatenate([cells, np.log10(energy)[:, None]], axis=1)


def ll_classifier_auc(
    reference: np.ndarray,
    reference_energy: np.ndarray,
    other: np.ndarray,
    other_energy: np.ndarray,
    *,
    seed: int,
    test_fraction: float,
    transform: str = LL_TRANSFORM,
    threads: int = 1,
) -> float:
    """The low-level test: ROC AUC of an MLP (2 × 256 ReLU, Adam lr 1e-3, batch 256, L2 1e-4,
    best epoch on 15 % of the training rows, patience 5, at most 50 epochs) on the cells."""
    a = ll_inputs(reference, reference_energy, transform)
    b = ll_inputs(other, other_energy, transform)
    train_x, train_y, test_x, test_y = two_sample_split(a, b, test_fraction=test_fraction, seed=seed)
    mean, std = train_x.mean(axis=0), train_x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    scores = mlp_scores(
        (train_x - mean) / std,
        train_y,
        (test_x - mean) / std,
        seed=seed,
        hidden=(256, 256),
        alpha=1e-4,
        batch_size=256,
        learning_rate=1e-3,
        max_epochs=50,
        patience=5,
        validation_fraction=0.15,
        threads=threads,
    )
    return roc_auc(scores, test_y.astype(bool))


# --------------------------------------------------------------------------- kernel distance


def kernel_distance(
    a: np.ndarray, b: np.ndarray, *, seed: int = 0, block: int = 2000, subsets: int = 10
) -> float:
    """Kernel physics distance (Kansal et al., arXiv:2211.10295; jetnet's ``kpd``): the unbiased
    estimate of the squared maximum mean discrepancy MMD² between samples ``a`` and ``b`` (N, d)
    with the cubic polynomial kernel k(x, y) = (x·y/d + 1)³, on subsets of at most ``block``
    rows of each (drawn without replacement, seeded), averaged over ``subsets`` draws. Give it
    standardised features. Its expectation is 0 for two samples of one distribution (single
    values scatter around 0, and may be negative)."""
    xa = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    xb = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"the samples have {xa.shape[1]} and {xb.shape[1]} features")
    m = min(block, len(xa), len(xb))
    if m < 2:
        raise ValueError("the kernel distance needs at least two events in each sample")
    d = xa.shape[1]
    rng = np.random.default_rng([seed, 2])
    values = []
    for _ in range(subsets):
        x = xa[rng.choice(len(xa), m, replace=False)]
        y = xb[rng.choice(len(xb), m, replace=False)]
        kxx = (x @ x.T / d + 1.0) ** 3
        kyy = (y @ y.T / d + 1.0) ** 3
        kxy = (x @ y.T / d + 1.0) ** 3
        off = m * (m - 1)
        values.append(
            (kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2.0 * kxy.mean()
        )
    return float(np.mean(values))
