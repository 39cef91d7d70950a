"""``dijet``: LHC-Olympics-like dijet events, QCD background and a W′ → XY resonance, with the
exact likelihood ratio of every event.

Every density below is written in closed form, events are drawn from exactly these densities,
and the file stores, per event, ``LR(x) = p_sig(x) / p_bkg(x)`` of the normalised densities on
the same support: the Neyman–Pearson optimal discriminant, against which a learnt anomaly score
is judged. Masses are in TeV, ``√s = 13 TeV``.

Features
--------
Each event has two large-radius jets; ``features`` holds, in this order::

    mjj       dijet invariant mass m_jj (TeV), in mjj_range
    mj1, mj2  jet masses (TeV), the heavier jet first (m_j1 >= m_j2 > 0)
    tau21_1, tau21_2   N-subjettiness ratios τ21 = τ2/τ1 of jet 1 and jet 2, in (0, 1)

(a jet with two hard prongs, such as a boosted X → qq, has a small τ21; a QCD jet with one
prong a large one.)

Background: QCD dijets
----------------------
* ``m_jj`` follows the dijet function of the ATLAS and CMS resonance searches, with
  ``x = m_jj / √s``::

      f(x) = p0 (1 − x)^p1 / x^(p2 + p3 ln x)

  restricted to ``mjj_range``; ``p0`` is the normalisation there, computed by Gauss–Legendre
  quadrature (200 nodes: exact to rounding for this smooth integrand). As a density in m_jj
  (per TeV) ``f_B(m_jj) = f(m_jj/√s) / (√s ∫ f dx)``. Default ``(p1, p2, p3) = (10, 5, 0.2)``:
  illustrative values of the size these fits find at 13 TeV (a local slope
  d ln f / d ln m_jj ≈ −8 at 3.5 TeV).

  Drawn exactly by rejection: proposals from ``g(x) ∝ x^−a`` on the range (inverse CDF) with
  ``a = p2 + 2 p3 ln x_lo`` (``ln x_hi`` when p3 < 0), for which ``f/g`` falls monotonically
  (``d ln(f/g)/dx = −p1/(1 − x) + (a − p2 − 2 p3 ln x)/x <= 0`` for p1 >= 0), accepted with
  probability ``(f/g)(x) / (f/g)(x_lo)``.
* Each jet independently (given m_jj) has a mass from a Gamma density of shape ``k_B = 1.5`` and
  a scale that grows mildly with m_jj (heavier jets at higher p_T)::

      g_B(m | m_jj) = m^(k_B − 1) exp(−m/θ) / (Γ(k_B) θ^k_B),   θ = θ0 (m_jj / 3.5 TeV)^κ

  with ``θ0 = 0.1 TeV`` (mean jet mass 150 GeV at 3.5 TeV, an exponential-like tail: 4.6 % of
  QCD jets are heavier than 400 GeV) and ``κ = jet_mass_slope`` (default 0.3).
* and a τ21 from ``h_B(τ) = Beta(τ; 6, 4)`` (mean 0.6: one prong), independent of the mass.

Signal: W′ → X Y, X → qq, Y → qq
--------------------------------
* ``m_jj`` is a Gaussian of mean ``signal_mass`` (m_W′) and standard deviation ``signal_width``
  (natural width and detector resolution together), truncated to ``mjj_range``:
  ``f_S(m_jj) = φ((m_jj − m_W′)/σ) / (σ [Φ((hi − m_W′)/σ) − Φ((lo − m_W′)/σ)])``.
* One jet is the X, the other the Y; their masses are Gaussians of mean ``x_mass`` (m_X) and
  ``y_mass`` (m_Y) and standard deviations ``jet_mass_resolution × m_X`` and ``× m_Y``,
  truncated to m > 0 (``g_X``, ``g_Y``, each divided by ``Φ(m/σ)``).
* Both jets have two prongs: ``h_S(τ) = Beta(τ; 4, 6)`` (mean 0.4) each, independently.

Ordering and the joint densities
--------------------------------
The jets are ordered by mass (jet 1 the heavier), so on the support ``m_j1 >= m_j2``::

    p_bkg(x) = f_B(m_jj) · 2 g_B(m_j1 | m_jj) g_B(m_j2 | m_jj) · h_B(τ21_1) h_B(τ21_2)
    p_sig(x) = f_S(m_jj) · [g_X(m_j1) g_Y(m_j2) + g_Y(m_j1) g_X(m_j2)] · h_S(τ21_1) h_S(τ21_2)

(the factor 2 and the sum over which jet is the X come from ordering two unordered jets);
each integrates to 1 over the support. ``likelihood_ratio = p_sig / p_bkg`` is evaluated in
log space (``log_likelihood_ratio`` is stored as well: the ratio spans hundreds of orders of
magnitude).

Mixing: exactly ``round(signal_fraction · n)`` events are signal, at random positions (drawn from
a stream spawned from the seed, independent of the one that draws the events).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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

__all__ = ["COLUMNS", "DijetModel", "DijetSample", "dijet_function", "simulate_dijet", "write_dijet"]

#: the columns of ``features``, in order
COLUMNS: tuple[str, ...] = ("mjj", "mj1", "mj2", "tau21_1", "tau21_2")

QCD_JET_MASS_SHAPE = 1.5  #: k_B of the Gamma density of QCD jet masses
QCD_JET_MASS_SCALE = 0.1  #: θ0 (TeV) at m_jj = MJJ_REFERENCE
MJJ_REFERENCE = 3.5  #: TeV, where the QCD jet-mass scale is θ0
TAU21_BACKGROUND = (6.0, 4.0)  #: Beta(a, b) of τ21 for one-prong (QCD) jets
TAU21_SIGNAL = (4.0, 6.0)  #: Beta(a, b) of τ21 for two-prong (X, Y) jets
_QUADRATURE_NODES = 200


def dijet_function(x: np.ndarray | float, p1: float, p2: float, p3: float) -> np.ndarray:
    """The dijet function with ``p0 = 1``: ``(1 − x)^p1 / x^(p2 + p3 ln x)``, ``x = m_jj/√s``."""
    x = np.asarray(x, dtype=np.float64)
    out: np.ndarray = np.exp(_log_dijet(x, p1, p2, p3))
    return out


def _log_dijet(x: np.ndarray, p1: float, p2: float, p3: float) -> np.ndarray:
    ln_x = np.log(x)
    out: np.ndarray = p1 * np.log1p(-x) - (p2 + p3 * ln_x) * ln_x
    return out


def _normal_cdf(z: float) -> float:
    """Φ(z), the standard normal cumulative distribution."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _log_gauss(x: np.ndarray, mean: float, sigma: float) -> np.ndarray:
    out: np.ndarray = -0.5 * ((x - mean) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2.0 * math.pi)
    return out


def _log_beta(x: np.ndarray, a: float, b: float) -> np.ndarray:
    norm = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    out: np.ndarray = (a - 1.0) * np.log(x) + (b - 1.0) * np.log1p(-x) - norm
    return out


@dataclass(frozen=True)
class DijetModel:
    """The densities of :func:`simulate_dijet` for one set of options (see the module docstring).

    Every ``log_*`` method takes arrays (broadcast together) and returns natural logs of
    normalised densities in TeV⁻¹ (masses) or per unit τ21; outside the support they return −inf.
    """

    mjj_range: tuple[float, float] = (2.5, 6.0)
    sqrt_s: float = 13.0
    dijet_parameters: tuple[float, float, float] = (10.0, 5.0, 0.2)
    signal_mass: float = 3.5
    signal_width: float = 0.15
    x_mass: float = 0.5
    y_mass: float = 0.1
    jet_mass_resolution: float = 0.1
    jet_mass_slope: float = 0.3

    def __post_init__(self) -> None:
        lo, hi = check_range("mjj_range", self.mjj_range)
        sqrt_s = check_number("sqrt_s", self.sqrt_s, minimum=0.0, strict=True)
        if not 0.0 < lo < hi < sqrt_s:
            raise ConfigError(
                f"mjj_range must satisfy 0 < low < high < sqrt_s ({sqrt_s:g} TeV), got {self.mjj_range!r}"
            )
        params = self.dijet_parameters
        if isinstance(params, str | bytes) or not isinstance(params, Sequence) or len(params) != 3:
            raise ConfigError(f"dijet_parameters must be three numbers (p1, p2, p3), got {params!r}")
        p1 = check_number("dijet_parameters[0] (p1)", params[0], minimum=0.0)
        p2 = check_number("dijet_parameters[1] (p2)", params[1])
        p3 = check_number("dijet_parameters[2] (p3)", params[2])
        mass = check_number("signal_mass", self.signal_mass)
        if not lo <= mass <= hi:
            raise ConfigError(
                f"signal_mass must lie in mjj_range {self.mjj_range!r}, got {self.signal_mass!r}"
            )
        width = check_number("signal_width", self.signal_width, minimum=0.0, strict=True)
        mx = check_number("x_mass", self.x_mass, minimum=0.0, strict=True)
        my = check_number("y_mass", self.y_mass, minimum=0.0, strict=True)
        res = check_number("jet_mass_resolution", self.jet_mass_resolution, minimum=0.0, strict=True)
        slope = check_number("jet_mass_slope", self.jet_mass_slope)
        for name, value in (
            ("mjj_range", (lo, hi)),
            ("sqrt_s", sqrt_s),
            ("dijet_parameters", (p1, p2, p3)),
            ("signal_mass", mass),
            ("signal_width", width),
            ("x_mass", mx),
            ("y_mass", my),
            ("jet_mass_resolution", res),
            ("jet_mass_slope", slope),
        ):
            object.__setattr__(self, name, value)

    def options(self) -> dict[str, object]:
        """The options under their names in :func:`simulate_dijet`."""
        return {
            "mjj_range": self.mjj_range,
            "sqrt_s": self.sqrt_s,
            "dijet_parameters": self.dijet_parameters,
            "signal_mass": self.signal_mass,
            "signal_width": self.signal_width,
            "x_mass": self.x_mass,
            "y_mass": self.y_mass,
            "jet_mass_resolution": self.jet_mass_resolution,
            "jet_mass_slope": self.jet_mass_slope,
        }

    # -- the one-dimensional densities ---------------------------------------------------------
    @property
    def x_range(self) -> tuple[float, float]:
        """``mjj_range / √s``."""
        return self.mjj_range[0] / self.sqrt_s, self.mjj_range[1] / self.sqrt_s

    def dijet_integral(self) -> float:
        """``∫ f(x) dx`` over ``x_range`` (p0 = 1), by Gauss–Legendre quadrature."""
        lo, hi = self.x_range
        nodes, weights = np.polynomial.legendre.leggauss(_QUADRATURE_NODES)
        x = 0.5 * (hi - lo) * nodes + 0.5 * (hi + lo)
        return float(0.5 * (hi - lo) * np.sum(weights * dijet_function(x, *self.dijet_parameters)))

    def log_mjj_background(self, mjj: np.ndarray) -> np.ndarray:
        """ln f_B(m_jj): the normalised dijet function, per TeV."""
        mjj = np.asarray(mjj, dtype=np.float64)
        lo, hi = self.mjj_range
        inside = (mjj >= lo) & (mjj <= hi)
        x = np.where(inside, mjj, lo) / self.sqrt_s
        log_norm = math.log(self.sqrt_s * self.dijet_integral())
        return np.where(inside, _log_dijet(x, *self.dijet_parameters) - log_norm, -np.inf)

    def log_mjj_signal(self, mjj: np.ndarray) -> np.ndarray:
        """ln f_S(m_jj): the Gaussian of the W′, truncated to ``mjj_range``, per TeV."""
        mjj = np.asarray(mjj, dtype=np.float64)
        lo, hi = self.mjj_range
        mean, sigma = self.signal_mass, self.signal_width
        inside = (mjj >= lo) & (mjj <= hi)
        norm = _normal_cdf((hi - mean) / sigma) - _normal_cdf((lo - mean) / sigma)
        return np.where(inside, _log_gauss(mjj, mean, sigma) - math.log(norm), -np.inf)

    def qcd_jet_mass_scale(self, mjj: np.ndarray) -> np.ndarray:
        """θ(m_jj) = θ0 (m_jj / 3.5 TeV)^κ of the QCD jet-mass Gamma density (TeV)."""
        ratio = np.asarray(mjj, dtype=np.float64) / MJJ_REFERENCE
        out: np.ndarray = QCD_JET_MASS_SCALE * ratio**self.jet_mass_slope
        return out

    def log_jet_mass_background(self, m: np.ndarray, mjj: np.ndarray) -> np.ndarray:
        """ln g_B(m | m_jj): Gamma of shape k_B and scale θ(m_jj), per TeV."""
        m = np.asarray(m, dtype=np.float64)
        k, theta = QCD_JET_MASS_SHAPE, self.qcd_jet_mass_scale(mjj)
        safe = np.where(m > 0, m, 1.0)
        out = (k - 1.0) * np.log(safe) - safe / theta - math.lgamma(k) - k * np.log(theta)
        return np.where(m > 0, out, -np.inf)

    def _log_jet_mass_peak(self, m: np.ndarray, mean: float) -> np.ndarray:
        m = np.asarray(m, dtype=np.float64)
        sigma = self.jet_mass_resolution * mean
        return np.where(m > 0, _log_gauss(m, mean, sigma) - math.log(_normal_cdf(mean / sigma)), -np.inf)

    def log_jet_mass_x(self, m: np.ndarray) -> np.ndarray:
        """ln g_X(m): Gaussian at m_X of width ``jet_mass_resolution · m_X``, truncated to m > 0."""
        return self._log_jet_mass_peak(m, self.x_mass)

    def log_jet_mass_y(self, m: np.ndarray) -> np.ndarray:
        """ln g_Y(m): Gaussian at m_Y of width ``jet_mass_resolution · m_Y``, truncated to m > 0."""
        return self._log_jet_mass_peak(m, self.y_mass)

    @staticmethod
    def log_tau21_background(tau: np.ndarray) -> np.ndarray:
        """ln h_B(τ21) = ln Beta(τ21; 6, 4)."""
        return _log_beta_support(tau, *TAU21_BACKGROUND)

    @staticmethod
    def log_tau21_signal(tau: np.ndarray) -> np.ndarray:
        """ln h_S(τ21) = ln Beta(τ21; 4, 6)."""
        return _log_beta_support(tau, *TAU21_SIGNAL)

    # -- the joint densities -------------------------------------------------------------------
    def log_background(self, features: np.ndarray) -> np.ndarray:
        """ln p_bkg of rows ``(mjj, mj1, mj2, tau21_1, tau21_2)`` (−inf off the support m_j1 >= m_j2)."""
        mjj, m1, m2, t1, t2 = _columns(features)
        out = (
            self.log_mjj_background(mjj)
            + math.log(2.0)
            + self.log_jet_mass_background(m1, mjj)
            + self.log_jet_mass_background(m2, mjj)
            + self.log_tau21_background(t1)
            + self.log_tau21_background(t2)
        )
        return np.where(m1 >= m2, out, -np.inf)

    def log_signal(self, features: np.ndarray) -> np.ndarray:
        """ln p_sig of rows ``(mjj, mj1, mj2, tau21_1, tau21_2)`` (−inf off the support m_j1 >= m_j2)."""
        mjj, m1, m2, t1, t2 = _columns(features)
        with np.errstate(invalid="ignore"):  # -inf + -inf in logaddexp is fine; nothing else is
            masses = np.logaddexp(
                self.log_jet_mass_x(m1) + self.log_jet_mass_y(m2),
                self.log_jet_mass_y(m1) + self.log_jet_mass_x(m2),
            )
        out = self.log_mjj_signal(mjj) + masses + self.log_tau21_signal(t1) + self.log_tau21_signal(t2)
        return np.where(m1 >= m2, out, -np.inf)

    def log_likelihood_ratio(self, features: np.ndarray) -> np.ndarray:
        """ln LR = ln p_sig − ln p_bkg, for rows on the support (where p_bkg > 0)."""
        out: np.ndarray = self.log_signal(features) - self.log_background(features)
        return out

    def likelihood_ratio(self, features: np.ndarray) -> np.ndarray:
        """LR = p_sig / p_bkg (0 where the signal density underflows)."""
        out: np.ndarray = np.exp(self.log_likelihood_ratio(features))
        return out

    # -- sampling ----------------------------------------------------------------------------
    def sample_mjj_background(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` exact draws of f_B (rejection from a power law, see the module docstring)."""
        p1, p2, p3 = self.dijet_parameters
        lo, hi = self.x_range
        a = p2 + 2.0 * p3 * math.log(lo if p3 >= 0 else hi)
        b = 1.0 - a
        ratio = hi / lo
        log_bound = float(_log_dijet(np.array(lo), p1, p2, p3)) + a * math.log(lo)
        out = np.empty(n)
        filled = 0
        while filled < n:
            size = max(1024, 2 * (n - filled))
            u = rng.random(size)
            x = lo * ratio**u if abs(b) < 1e-12 else lo * (1.0 + u * (ratio**b - 1.0)) ** (1.0 / b)
            x = np.clip(x, lo, hi)
            log_accept = _log_dijet(x, p1, p2, p3) + a * np.log(x) - log_bound
            keep = x[np.log(rng.random(size)) < log_accept][: n - filled]
            out[filled : filled + len(keep)] = keep
            filled += len(keep)
        return out * self.sqrt_s

    def sample_mjj_signal(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` exact draws of f_S (truncated Gaussian, by rejection)."""
        return _truncated_normal(rng, n, self.signal_mass, self.signal_width, *self.mjj_range)

    def sample_background(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` background events, rows ``(mjj, mj1, mj2, tau21_1, tau21_2)``."""
        mjj = self.sample_mjj_background(rng, n)
        theta = self.qcd_jet_mass_scale(mjj)
        masses = rng.gamma(QCD_JET_MASS_SHAPE, theta[:, None], size=(n, 2))
        taus = rng.beta(*TAU21_BACKGROUND, size=(n, 2))
        return _ordered(mjj, masses, taus)

    def sample_signal(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` signal events, rows ``(mjj, mj1, mj2, tau21_1, tau21_2)``."""
        mjj = self.sample_mjj_signal(rng, n)
        res = self.jet_mass_resolution
        mx = _truncated_normal(rng, n, self.x_mass, res * self.x_mass, 0.0, math.inf)
        my = _truncated_normal(rng, n, self.y_mass, res * self.y_mass, 0.0, math.inf)
        taus = rng.beta(*TAU21_SIGNAL, size=(n, 2))
        return _ordered(mjj, np.stack([mx, my], axis=1), taus)


def _log_beta_support(tau: np.ndarray, a: float, b: float) -> np.ndarray:
    tau = np.asarray(tau, dtype=np.float64)
    inside = (tau > 0) & (tau < 1)
    return np.where(inside, _log_beta(np.where(inside, tau, 0.5), a, b), -np.inf)


def _columns(features: np.ndarray) -> tuple[np.ndarray, ...]:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] != len(COLUMNS):
        raise ValueError(f"features must have shape (N, {len(COLUMNS)}), columns {COLUMNS}; got {f.shape}")
    return tuple(f[:, i] for i in range(len(COLUMNS)))


def _ordered(mjj: np.ndarray, masses: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Rows (mjj, heavier mass, lighter mass, its τ21, the other's τ21)."""
    swap = masses[:, 1] > masses[:, 0]
    first = np.where(swap, 1, 0)
    second = 1 - first
    rows = np.arange(len(mjj))
    return np.stack(
        [mjj, masses[rows, first], masses[rows, second], taus[rows, first], taus[rows, second]], axis=1
    )


def _truncated_normal(
    rng: np.random.Generator, n: int, mean: float, sigma: float, lo: float, hi: float
) -> np.ndarray:
    """Exact draws of N(mean, sigma²) restricted to [lo, hi], by rejection."""
    out = np.empty(n)
    filled = 0
    while filled < n:
        size = max(1024, 2 * (n - filled))
        z = rng.normal(mean, sigma, size)
        keep = z[(z >= lo) & (z <= hi)][: n - filled]
        out[filled : filled + len(keep)] = keep
        filled += len(keep)
    return out


@dataclass(frozen=True, eq=False)
class DijetSample:
    """Events from :func:`simulate_dijet`.

    ``features`` (N, 5) float64, columns :data:`COLUMNS` (``mjj``, ``mj1``, ``mj2`` in TeV, jet 1
    the heavier; ``tau21_1``, ``tau21_2``); ``is_signal`` (N,) int64 (1 for W′ → XY, 0 for QCD);
    ``likelihood_ratio`` (N,) float64, the exact ``p_sig/p_bkg`` of each event's features, and
    ``log_likelihood_ratio`` its natural log. ``model`` holds the densities; ``options`` the
    generator arguments (everything but ``n`` and ``seed``), as written to the HDF5 attributes.
    """

    features: np.ndarray
    is_signal: np.ndarray
    likelihood_ratio: np.ndarray
    log_likelihood_ratio: np.ndarray
    model: DijetModel
    seed: int
    options: Mapping[str, object] = field(default_factory=dict)

    simulator: ClassVar[str] = "dijet"
    columns: ClassVar[tuple[str, ...]] = COLUMNS
    ARRAYS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "features": ("n", "columns"),
        "is_signal": ("n",),
        "likelihood_ratio": ("n",),
        "log_likelihood_ratio": ("n",),
    }

    def __len__(self) -> int:
        return len(self.is_signal)

    def as_arrays(self) -> dict[str, np.ndarray]:
        """The arrays under their HDF5 dataset names: features, is_signal, likelihood_ratio,
        log_likelihood_ratio."""
        return {key: getattr(self, key) for key in self.ARRAYS}

    def column(self, name: str) -> np.ndarray:
        """One column of ``features`` by name (``"mjj"``, ``"mj1"``...)."""
        if name not in COLUMNS:
            raise KeyError(f"no column {name!r}; the columns are: {', '.join(COLUMNS)}")
        out: np.ndarray = self.features[:, COLUMNS.index(name)]
        return out

    def write(self, path: PathLike) -> Path:
        """Write the HDF5 file (see :func:`write_dijet`); returns its path."""
        return write_dijet(self, path)


def simulate_dijet(
    n: int,
    *,
    seed: int,
    signal_fraction: float = 0.01,
    mjj_range: tuple[float, float] = (2.5, 6.0),
    sqrt_s: float = 13.0,
    dijet_parameters: tuple[float, float, float] = (10.0, 5.0, 0.2),
    signal_mass: float = 3.5,
    signal_width: float = 0.15,
    x_mass: float = 0.5,
    y_mass: float = 0.1,
    jet_mass_resolution: float = 0.1,
    jet_mass_slope: float = 0.3,
) -> DijetSample:
    """Simulate ``n`` dijet events, QCD and W′ → XY; the same arguments and ``seed`` give
    identical arrays. Masses in TeV; every density is in the module docstring.

    Args:
        n: number of events.
        seed: seed of ``numpy.random.default_rng``.
        signal_fraction: exactly ``round(signal_fraction · n)`` events are signal (in [0, 1]).
        mjj_range: the m_jj window events are generated in (a preselection), TeV.
        sqrt_s: centre-of-mass energy (TeV); the dijet function is in ``x = m_jj/√s``.
        dijet_parameters: ``(p1, p2, p3)`` of ``f(x) = p0 (1−x)^p1 / x^(p2 + p3 ln x)``, p1 >= 0.
        signal_mass: m_W′ (TeV), inside ``mjj_range``.
        signal_width: standard deviation of the signal's m_jj peak (TeV).
        x_mass, y_mass: m_X and m_Y (TeV), the masses of the two signal jets.
        jet_mass_resolution: relative standard deviation of the signal jet-mass peaks.
        jet_mass_slope: κ of the QCD jet-mass scale θ0 (m_jj/3.5 TeV)^κ (0: jet masses independent
            of m_jj).
    """
    n = check_count("n", n)
    seed = check_seed(seed)
    fraction = check_number("signal_fraction", signal_fraction, minimum=0.0)
    if fraction > 1.0:
        raise ConfigError(f"signal_fraction must be in [0, 1], got {signal_fraction!r}")
    model = DijetModel(
        mjj_range=mjj_range,
        sqrt_s=sqrt_s,
        dijet_parameters=dijet_parameters,
        signal_mass=signal_mass,
        signal_width=signal_width,
        x_mass=x_mass,
        y_mass=y_mass,
        jet_mass_resolution=jet_mass_resolution,
        jet_mass_slope=jet_mass_slope,
    )
    # the signal positions come from their own stream: ``default_rng(seed).permutation(n)`` is
    # how labkit's data modules split train/val/test, and with the same seed the signal would
    # all land in the test split
    order_rng, rng = np.random.default_rng(seed).spawn(2)
    n_signal = round(fraction * n)
    is_signal = np.zeros(n, dtype=np.int64)
    is_signal[order_rng.permutation(n)[:n_signal]] = 1
    features = np.empty((n, len(COLUMNS)))
    features[is_signal == 0] = model.sample_background(rng, n - n_signal)
    features[is_signal == 1] = model.sample_signal(rng, n_signal)
    log_lr = model.log_likelihood_ratio(features)
    options: dict[str, object] = {"signal_fraction": fraction, **model.options()}
    return DijetSample(
        features=features,
        is_signal=is_signal,
        likelihood_ratio=np.exp(log_lr),
        log_likelihood_ratio=log_lr,
        model=model,
        seed=seed,
        options=options,
    )


def write_dijet(sample: DijetSample, path: PathLike) -> Path:
    """Write ``sample`` to the HDF5 file ``path`` (replaced if it exists); returns the path.

    Datasets: ``features`` (N, 5) float64 with the attribute ``columns`` (mjj, mj1, mj2, tau21_1,
    tau21_2), ``is_signal`` (N,) int64, ``likelihood_ratio`` and ``log_likelihood_ratio`` (N,)
    float64. File attributes: ``simulator`` ("dijet"), ``seed``, ``n``, ``labkit_version``, every
    generator argument under its own name, ``n_signal``, ``mass_unit`` ("TeV"), the fixed shape
    parameters (``qcd_jet_mass_shape``, ``qcd_jet_mass_scale_tev``, ``mjj_reference_tev``,
    ``tau21_background_beta``, ``tau21_signal_beta``) and ``dijet_function`` (the formula).
    """
    from labkit import __version__

    attrs: dict[str, object] = {
        "simulator": sample.simulator,
        "seed": sample.seed,
        "n": len(sample),
        "labkit_version": __version__,
        **{key: attr_value(value) for key, value in sample.options.items()},
        "n_signal": int(sample.is_signal.sum()),
        "mass_unit": "TeV",
        "qcd_jet_mass_shape": QCD_JET_MASS_SHAPE,
        "qcd_jet_mass_scale_tev": QCD_JET_MASS_SCALE,
        "mjj_reference_tev": MJJ_REFERENCE,
        "tau21_background_beta": np.asarray(TAU21_BACKGROUND),
        "tau21_signal_beta": np.asarray(TAU21_SIGNAL),
        "dijet_function": "f(x) = p0 (1-x)^p1 / x^(p2 + p3 ln x), x = mjj/sqrt_s, on mjj_range",
    }
    return write_hdf5(
        path,
        sample.as_arrays(),
        attrs,
        dataset_attrs={"features": {"columns": list(COLUMNS)}},
    )
