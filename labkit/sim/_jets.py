"""``jets``: b-jets and light-flavour jets with their charged tracks, and the exact likelihood
ratio of every jet.

A caricature of flavour tagging at a hadron collider, in the layout of ATLAS/CMS training dumps:
a few jet-level numbers per jet and up to ``max_tracks`` tracks per jet (padded, with a
``valid`` flag). A b-hadron flies a few millimetres before it decays, so some tracks of a b-jet
come from a displaced vertex: their transverse impact parameter ``d0`` (the distance of closest
approach to the beam line, here as a significance d0/σ(d0)) has an exponential lifetime tail,
mostly on the positive side (the lifetime sign: the decay lies downstream along the jet). Prompt
tracks have ``d0/σ ~ N(0, 1)`` (the resolution). Light jets have a small share of symmetric
badly measured tracks (fakes, material interactions, long-lived K⁰_S / Λ) instead.

The jet-level variables barely tell the classes apart (their distributions overlap); the tracks'
``d0`` pattern does. A model that looks at the tracks (Deep Sets, a transformer over the set)
beats a model of the jet-level variables by a wide margin, and the stored
``log_likelihood_ratio`` is the Neyman–Pearson optimal discriminant both are judged against.

Per jet (plain datasets, one number per jet)
--------------------------------------------
* ``flavour``: 1 for a b-jet (exactly ``round(b_fraction · n)`` of them, at random positions
  drawn from a stream spawned from the seed), 0 for a light jet.
* ``pt`` (GeV): the same falling spectrum for both flavours (the flavour-tagging custom of
  reweighting the classes to one p_T spectrum), a power law ``p(pt) ∝ pt^−pt_slope`` on
  ``pt_range`` (drawn by inverse CDF); it cancels in the likelihood ratio.
* ``eta``: uniform in [−2.5, 2.5] for both flavours (cancels too).
* ``mass`` (GeV): Gamma of shape 3 and mean ``0.08 pt`` for light jets, ``0.09 pt`` for b-jets
  (the b-quark mass and the decay products make b-jets a little heavier).
* ``ntracks``: Poisson with mean ``3 + 0.02 pt`` for light jets and ``4 + 0.02 pt`` for b-jets
  (a b-hadron decay adds about five charged particles, fewer inside the acceptance), capped at
  ``max_tracks`` (the last value takes the tail). A jet may have no tracks.

Per track (the compound dataset ``tracks``, shape (N, max_tracks))
------------------------------------------------------------------
Fields ``d0``, ``z0``, ``pt_frac``, ``deta``, ``dphi`` (float32) and ``valid`` (bool; the first
``ntracks`` entries, padding is False with zeros elsewhere). Tracks are ordered by ``pt_frac``,
highest first.

* In a b-jet each track comes from the b-hadron decay with probability ``b_decay_fraction``
  (independently); then ``d0 = s · E + G`` with ``E ~ Exponential(mean decay_significance)``,
  ``G ~ N(0, 1)`` and a sign ``s = +1`` with probability 0.9 (−1 otherwise), and
  ``z0 ~ N(0, 2)`` (displaced along the beam too). Other tracks are prompt.
* In a light jet each track is a fake/secondary with probability ``fake_fraction``:
  ``d0 ~ N(0, 4)``, ``z0 ~ N(0, 1)``. Other tracks are prompt.
* Prompt tracks: ``d0 ~ N(0, 1)``, ``z0 ~ N(0, 1)``.
* For every track and both flavours: ``pt_frac`` (the track's share of the jet's charged p_T)
  from a flat Dirichlet (normalised exponentials) over the jet's tracks; ``deta`` and ``dphi``
  (distance to the jet axis) ``~ N(0, 0.02 + 0.1 (1 − pt_frac))`` each (harder tracks lie
  closer to the axis). These are identical for both flavours: the information is in d0 and z0.

The exact likelihood ratio
--------------------------
Given p_T, the jet mass, the track count and the tracks' (d0, z0) are independent, and the
tracks are independent of each other, so::

    LR = [Γ_b(mass) / Γ_l(mass)] · [P_b(ntracks) / P_l(ntracks)] · Π_tracks t_b(d0, z0) / t_l(d0, z0)

with the Gamma and (capped) Poisson densities above and the per-track mixtures
``t_b = (1 − f_b) N(d0; 1) N(z0; 1) + f_b [0.9 EMG(d0) + 0.1 EMG(−d0)] N(z0; 2)``,
``t_l = (1 − f_fake) N(d0; 1) N(z0; 1) + f_fake N(d0; 4) N(z0; 1)``, where ``EMG`` is the density
of ``E + G`` (an exponentially modified Gaussian: ``(λ/2) exp(λ(λ/2 − x)) erfc((λ − x)/√2)``,
``λ = 1/decay_significance``). ``pt``, ``eta``, ``pt_frac``, ``deta`` and ``dphi`` have the same
density for both flavours and cancel. ``log_likelihood_ratio`` stores ``ln LR`` (ln p_b − ln
p_l); its ROC AUC on the test split is the best any classifier can do on these jets.
``jet_log_likelihood_ratio`` keeps only the mass and track-count factors: the best a model of
the jet-level variables alone (pt, eta, mass, ntracks) can do. With the defaults the two reach
ROC AUCs of about 0.84 and 0.64 (the best single variable, ntracks, about 0.63).

Simplifications, on purpose: no charm jets, no secondary-vertex variables, one lifetime
distribution for every track of the decay (in a real b-jet they share one decay vertex), no
track–jet association errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from labkit.errors import ConfigError
from labkit.sim._common import (
    PathLike,
    attr_value,
    check_count,
    check_number,
    check_range,
    check_seed,
    write_hdf5,
)

__all__ = ["JET_FIELDS", "TRACK_FIELDS", "JetsSample", "simulate_jets", "write_jets"]

#: the per-jet datasets (one number per jet), besides ``flavour`` and ``log_likelihood_ratio``
JET_FIELDS: tuple[str, ...] = ("pt", "eta", "mass", "ntracks")
#: the float fields of each track in ``tracks`` (besides ``valid``)
TRACK_FIELDS: tuple[str, ...] = ("d0", "z0", "pt_frac", "deta", "dphi")
TRACK_DTYPE = np.dtype([*((name, np.float32) for name in TRACK_FIELDS), ("valid", np.bool_)])

MAX_TRACKS = 1000  #: most tracks per jet the simulator stores
ETA_MAX = 2.5
MASS_SHAPE = 3.0  #: Gamma shape of the jet mass
MASS_OVER_PT = {0: 0.08, 1: 0.09}  #: mean jet mass / p_T per flavour
NTRACKS_MEAN = {0: (3.0, 0.02), 1: (4.0, 0.02)}  #: (a, b) of the mean a + b p_T per flavour
POSITIVE_SIGN = 0.9  #: share of b-decay tracks with a positive lifetime-signed d0
B_Z0_WIDTH = 2.0  #: σ of z0/σ(z0) for b-decay tracks
FAKE_D0_WIDTH = 4.0  #: σ of d0/σ(d0) for fakes/secondaries in light jets


@dataclass(frozen=True, eq=False)
class JetsSample:
    """Jets from :func:`simulate_jets`.

    ``pt``, ``eta``, ``mass`` (N,) float64 (GeV), ``ntracks`` (N,) int64, ``flavour`` (N,) int64
    (1 b, 0 light), ``tracks`` (N, max_tracks) structured with fields d0, z0, pt_frac, deta, dphi
    (float32) and valid (bool), ``log_likelihood_ratio`` (N,) float64 (ln p_b/p_l of the jet) and
    ``jet_log_likelihood_ratio`` (the same from the jet-level variables alone).
    """

    pt: np.ndarray
    eta: np.ndarray
    mass: np.ndarray
    ntracks: np.ndarray
    flavour: np.ndarray
    tracks: np.ndarray
    log_likelihood_ratio: np.ndarray
    jet_log_likelihood_ratio: np.ndarray
    seed: int
    options: Mapping[str, object] = field(default_factory=dict)

    simulator: ClassVar[str] = "jets"
    ARRAYS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "pt": ("n",),
        "eta": ("n",),
        "mass": ("n",),
        "ntracks": ("n",),
        "flavour": ("n",),
        "tracks": ("n", "tracks"),
        "log_likelihood_ratio": ("n",),
        "jet_log_likelihood_ratio": ("n",),
    }

    def __len__(self) -> int:
        return len(self.flavour)

    def as_arrays(self) -> dict[str, np.ndarray]:
        """The arrays under their HDF5 dataset names (``tracks`` is a structured array)."""
        return {key: getattr(self, key) for key in self.ARRAYS}

    def write(self, path: PathLike) -> Path:
        """Write the HDF5 file (see :func:`write_jets`); returns its path."""
        return write_jets(self, path)


def simulate_jets(
    n: int,
    *,
    seed: int,
    b_fraction: float = 0.5,
    max_tracks: int = 40,
    pt_range: tuple[float, float] = (20.0, 250.0),
    pt_slope: float = 3.0,
    b_decay_fraction: float = 0.35,
    decay_significance: float = 4.0,
    fake_fraction: float = 0.05,
) -> JetsSample:
    """Simulate ``n`` jets, b and light, with their tracks; the same arguments and ``seed`` give
    identical arrays. Every density is in the module docstring.

    Args:
        n: number of jets.
        seed: seed of ``numpy.random.default_rng``.
        b_fraction: exactly ``round(b_fraction · n)`` jets are b-jets (in [0, 1]).
        max_tracks: tracks stored per jet (the padding size); the track count is capped there.
        pt_range: the jet p_T range (GeV), ``0 < low < high``.
        pt_slope: the power of the falling p_T spectrum ``pt^−pt_slope`` (> 1).
        b_decay_fraction: probability that a track of a b-jet comes from the b-hadron decay.
        decay_significance: mean of the exponential lifetime tail of d0/σ(d0) (> 0).
        fake_fraction: probability that a track of a light jet is a fake/secondary (wide d0).
    """
    n = check_count("n", n)
    seed = check_seed(seed)
    fraction = _probability("b_fraction", b_fraction)
    m = check_count("max_tracks", max_tracks, maximum=MAX_TRACKS)
    lo, hi = check_range("pt_range", pt_range)
    if not 0.0 < lo < hi:
        raise ConfigError(f"pt_range must satisfy 0 < low < high (GeV), got {pt_range!r}")
    slope = check_number("pt_slope", pt_slope, minimum=1.0, strict=True)
    f_b = _probability("b_decay_fraction", b_decay_fraction)
    tail = check_number("decay_significance", decay_significance, minimum=0.0, strict=True)
    f_fake = _probability("fake_fraction", fake_fraction)

    order_rng, rng = np.random.default_rng(seed).spawn(2)
    flavour = np.zeros(n, dtype=np.int64)
    flavour[order_rng.permutation(n)[: round(fraction * n)]] = 1
    is_b = flavour == 1

    # p_T: inverse CDF of pt^-slope on [lo, hi]
    u = rng.random(n)
    a = 1.0 - slope
    pt = (lo**a + u * (hi**a - lo**a)) ** (1.0 / a)
    eta = rng.uniform(-ETA_MAX, ETA_MAX, n)
    mean_mass = np.where(is_b, MASS_OVER_PT[1], MASS_OVER_PT[0]) * pt
    mass = rng.gamma(MASS_SHAPE, mean_mass / MASS_SHAPE)
    mean_tracks = _mean_tracks(pt, is_b)
    ntracks = np.minimum(rng.poisson(mean_tracks), m).astype(np.int64)

    slots = np.arange(m)
    valid = slots[None, :] < ntracks[:, None]
    # per track: from the b decay (b-jets) or a fake (light jets)
    special = rng.random((n, m)) < np.where(is_b, f_b, f_fake)[:, None]
    special &= valid
    decay = special & is_b[:, None]
    fake = special & ~is_b[:, None]
    d0 = rng.standard_normal((n, m))
    z0 = rng.standard_normal((n, m))
    signs = np.where(rng.random((n, m)) < POSITIVE_SIGN, 1.0, -1.0)
    lifetime = rng.exponential(tail, (n, m))
    d0 = np.where(decay, d0 + signs * lifetime, d0)
    d0 = np.where(fake, d0 * FAKE_D0_WIDTH, d0)
    z0 = np.where(decay, z0 * B_Z0_WIDTH, z0)
    # p_T fractions: a flat Dirichlet over the valid tracks, sorted highest first
    shares = np.where(valid, rng.exponential(1.0, (n, m)), 0.0)
    total = shares.sum(axis=1, keepdims=True)
    pt_frac = -np.sort(-np.divide(shares, total, out=np.zeros_like(shares), where=total > 0), axis=1)
    width = 0.02 + 0.1 * (1.0 - pt_frac)
    deta = rng.standard_normal((n, m)) * width
    dphi = rng.standard_normal((n, m)) * width

    tracks = np.zeros((n, m), dtype=TRACK_DTYPE)
    for name, values in (("d0", d0), ("z0", z0), ("pt_frac", pt_frac), ("deta", deta), ("dphi", dphi)):
        tracks[name] = np.where(valid, values, 0.0)
    tracks["valid"] = valid

    d0_64, z0_64 = tracks["d0"].astype(np.float64), tracks["z0"].astype(np.float64)
    log_lr, jet_log_lr = (
        log_likelihood_ratio(
            pt=pt,
            mass=mass,
            ntracks=ntracks,
            d0=d0_64,
            z0=z0_64,
            valid=mask,
            max_tracks=m,
            b_decay_fraction=f_b,
            decay_significance=tail,
            fake_fraction=f_fake,
        )
        for mask in (valid, np.zeros_like(valid))  # all tracks; none (the jet-level factors)
    )
    options: dict[str, object] = {
        "b_fraction": fraction,
        "max_tracks": m,
        "pt_range": (lo, hi),
        "pt_slope": slope,
        "b_decay_fraction": f_b,
        "decay_significance": tail,
        "fake_fraction": f_fake,
    }
    return JetsSample(
        pt=pt,
        eta=eta,
        mass=mass,
        ntracks=ntracks,
        flavour=flavour,
        tracks=tracks,
        log_likelihood_ratio=log_lr,
        jet_log_likelihood_ratio=jet_log_lr,
        seed=seed,
        options=options,
    )


def _probability(name: str, value: object) -> float:
    p = check_number(name, value, minimum=0.0)
    if p > 1.0:
        raise ConfigError(f"{name} must lie in [0, 1], got {value!r}")
    return p


def _mean_tracks(pt: np.ndarray, is_b: np.ndarray) -> np.ndarray:
    a = np.where(is_b, NTRACKS_MEAN[1][0], NTRACKS_MEAN[0][0])
    b = np.where(is_b, NTRACKS_MEAN[1][1], NTRACKS_MEAN[0][1])
    out: np.ndarray = a + b * pt
    return out


def log_likelihood_ratio(
    *,
    pt: np.ndarray,
    mass: np.ndarray,
    ntracks: np.ndarray,
    d0: np.ndarray,
    z0: np.ndarray,
    valid: np.ndarray,
    max_tracks: int,
    b_decay_fraction: float,
    decay_significance: float,
    fake_fraction: float,
) -> np.ndarray:
    """``ln p_b(jet) − ln p_l(jet)`` of the module docstring, per jet."""
    ones = np.ones_like(pt, dtype=bool)
    # the jet mass: Gamma(k, mean/k) per flavour
    k = MASS_SHAPE
    log_gamma = [
        -k * np.log(MASS_OVER_PT[f] * pt / k) + (k - 1.0) * np.log(mass) - mass * k / (MASS_OVER_PT[f] * pt)
        for f in (0, 1)
    ]
    out = log_gamma[1] - log_gamma[0]
    # the track count: Poisson capped at max_tracks
    out += _log_capped_poisson(ntracks, _mean_tracks(pt, ones), max_tracks)
    out -= _log_capped_poisson(ntracks, _mean_tracks(pt, ~ones), max_tracks)
    # the tracks
    lam = 1.0 / decay_significance
    emg = POSITIVE_SIGN * _emg(d0, lam) + (1.0 - POSITIVE_SIGN) * _emg(-d0, lam)
    prompt = _normal(d0, 1.0) * _normal(z0, 1.0)
    t_b = (1.0 - b_decay_fraction) * prompt + b_decay_fraction * emg * _normal(z0, B_Z0_WIDTH)
    t_l = (1.0 - fake_fraction) * prompt + fake_fraction * _normal(d0, FAKE_D0_WIDTH) * _normal(z0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_track = np.where(valid, np.log(t_b) - np.log(t_l), 0.0)
    result: np.ndarray = out + per_track.sum(axis=1)
    return result


def _normal(x: np.ndarray, sigma: float) -> np.ndarray:
    out: np.ndarray = np.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2.0 * math.pi))
    return out


def _elementwise(fn: Callable[[float], float], x: np.ndarray) -> np.ndarray:
    """``fn`` of every element of ``x`` (math.erfc, math.lgamma: numpy has neither), as float64."""
    return np.asarray(np.frompyfunc(fn, 1, 1)(x), dtype=np.float64)


def _emg(x: np.ndarray, lam: float) -> np.ndarray:
    """Density of E + G, E ~ Exponential(rate lam), G ~ N(0, 1)."""
    arg = np.clip(lam * (lam / 2.0 - x), None, 700.0)
    erfc = _elementwise(math.erfc, (lam - x) / math.sqrt(2.0))
    out: np.ndarray = 0.5 * lam * np.exp(arg) * erfc
    return out


def _log_capped_poisson(k: np.ndarray, mean: np.ndarray, cap: int) -> np.ndarray:
    """ln P(min(Poisson(mean), cap) = k)."""
    log_pmf = k * np.log(mean) - mean - _elementwise(math.lgamma, k + 1.0)
    at_cap = k >= cap
    if not at_cap.any():
        out: np.ndarray = log_pmf
        return out
    # P(X >= cap) = 1 - Σ_{j < cap} P(X = j), summed per capped jet
    j = np.arange(cap, dtype=np.float64)
    lj = _elementwise(math.lgamma, j + 1.0)
    mu = mean[at_cap][:, None]
    below = np.exp(j[None, :] * np.log(mu) - mu - lj[None, :]).sum(axis=1)
    log_pmf = np.array(log_pmf, dtype=np.float64)
    log_pmf[at_cap] = np.log(np.clip(1.0 - below, 1e-300, None))
    return log_pmf


def write_jets(sample: JetsSample, path: PathLike) -> Path:
    """Write ``sample`` to the HDF5 file ``path`` (replaced if it exists); returns the path.

    Datasets: ``pt``, ``eta``, ``mass``, ``log_likelihood_ratio``, ``jet_log_likelihood_ratio`` (N,)
    float64, ``ntracks`` and
    ``flavour`` (N,) int64, and ``tracks``: a compound dataset of shape (N, max_tracks) with the
    fields d0, z0, pt_frac, deta, dphi (float32) and valid (bool). File attributes: ``simulator``
    ("jets"), ``seed``, ``n``, ``labkit_version``, every generator argument under its own name,
    ``n_b``, ``pt_unit`` ("GeV") and ``classes`` ("0: light, 1: b").
    """
    from labkit import __version__

    attrs: dict[str, object] = {
        "simulator": sample.simulator,
        "seed": sample.seed,
        "n": len(sample),
        "labkit_version": __version__,
        **{key: attr_value(value) for key, value in sample.options.items()},
        "n_b": int(sample.flavour.sum()),
        "pt_unit": "GeV",
        "classes": "0: light, 1: b",
    }
    return write_hdf5(path, sample.as_arrays(), attrs, compress=("tracks",))
