"""``grf``: 2-D Gaussian random fields with a power-law spectrum, and their Fisher bound.

Grid and wavenumbers
--------------------
A field lives on an ``N × N`` periodic grid of unit pixels (``N = size``). Its discrete Fourier
modes are labelled by integer pairs ``m = (m_x, m_y)`` with ``-N/2 <= m_i < N/2`` (numpy's
``fftfreq`` order), and the wavenumber of a mode is, in radians per pixel,

    k_m = 2π |m| / N,    from 2π/N (the fundamental) to π√2 (the corner of the grid).

Normalisation
-------------
With the unitary DFT (numpy ``norm="ortho"``), ``δ̃_m = N⁻¹ Σ_x δ_x exp(−2πi m·x/N)``, a field of
spectrum ``P`` has independent modes (up to the reality condition ``δ̃_{−m} = δ̃_m*``) with::

    <|δ̃_m|²> = P(k_m) = A k_m^n   for m ≠ 0,     δ̃_0 = 0 (the field has zero mean exactly).

With numpy's default (unnormalised) ``fft2`` this reads ``<|F_m|²> = N² P(k_m)``: the usual
continuum convention ``<|δ_k|²> = V P(k)`` for a box of area ``V = N²`` pixels, so ``P`` is in
pixel² and the pixel variance is ``<δ_x²> = N⁻² Σ_{m≠0} P(k_m)`` (≈ ∫ d²k/(2π)² P(k)). A pair
``±m`` is one complex Gaussian variable whose real and imaginary parts each have variance
``P/2``; a self-conjugate mode (``m ≡ −m`` mod N: for even N the three modes (N/2, 0), (0, N/2),
(N/2, N/2)) is real with variance ``P``.

Generation
----------
White noise ``w_x ~ N(0, 1)`` is transformed with ``rfft2(·, norm="ortho")``: its modes then have
exactly the statistics above with ``P = 1``, Hermitian symmetry and the real self-conjugate modes
included. They are multiplied by ``sqrt(P(k_m))`` (0 at m = 0) and transformed back with
``irfft2(·, norm="ortho")``. This is the same as drawing the Fourier modes directly with the
covariance above; going through real white noise makes the symmetry exact by construction.
Per field, ``A`` is drawn log-uniform in ``amplitude_range`` and ``n`` uniform in ``tilt_range``
(both may be a single value, ``low == high``).

Fisher information
------------------
The field has ``N² − 1`` real Gaussian degrees of freedom (every mode but m = 0), each with
variance ``P(k_m)``; a ±m pair counts twice (real and imaginary part), a self-conjugate mode
once. For parameters θ of ``P`` the Fisher matrix of one field is therefore::

    F_ij = ½ Σ_dof ∂_i ln P ∂_j ln P = ½ Σ_{m ≠ 0, all N² modes} ∂_i ln P(k_m) ∂_j ln P(k_m)

(the sum over all modes of the full grid counts each ±m pair twice and each self-conjugate mode
once, as it should). For ``P = A k^n``: ``∂_A ln P = 1/A`` and ``∂_n ln P = ln k``, so with
``M = N² − 1``, ``S₁ = Σ ln k_m`` and ``S₂ = Σ (ln k_m)²``::

    F = ½ [[M/A², S₁/A], [S₁/A, S₂]]
    σ(A) = A sqrt(2 S₂ / (M S₂ − S₁²)),   σ(n) = sqrt(2 M / (M S₂ − S₁²))

F does not depend on n, σ(A)/A does not depend on A, and σ(n) depends on the grid only. With n
known, ``σ(A)/A = sqrt(2/M)``. Both bounds fall roughly as 1/N (M grows as N², and the spread of
ln k over the modes tends to a constant).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from labkit.errors import ConfigError
from labkit.sim._common import PathLike, attr_value, check_count, check_range, check_seed, write_hdf5

#: the largest grid side: one field of 4096 x 4096 float64 is 128 MiB
MAX_SIZE = 4096

__all__ = [
    "GRFSample",
    "fisher_bound",
    "fisher_matrix",
    "power_spectrum",
    "simulate_grf",
    "wavenumbers",
    "write_grf",
]

_FIELD_CHUNK = 4096


@dataclass(frozen=True, eq=False)
class GRFSample:
    """Fields from :func:`simulate_grf`.

    ``fields`` (N, size, size) float32; ``amplitude`` (N,) and ``tilt`` (N,) float64, the ``A``
    and ``n`` of ``P(k) = A k^n`` each field was drawn with. ``options`` holds the generator
    arguments (``size``, ``amplitude_range``, ``tilt_range``), as written to the HDF5 attributes.
    """

    fields: np.ndarray
    amplitude: np.ndarray
    tilt: np.ndarray
    size: int
    seed: int
    options: Mapping[str, object] = field(default_factory=dict)

    simulator: ClassVar[str] = "grf"
    ARRAYS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "fields": ("n", "size", "size"),
        "amplitude": ("n",),
        "tilt": ("n",),
    }

    def __len__(self) -> int:
        return len(self.amplitude)

    def as_arrays(self) -> dict[str, np.ndarray]:
        """The arrays under their HDF5 dataset names: fields, amplitude, tilt."""
        return {key: getattr(self, key) for key in self.ARRAYS}

    def write(self, path: PathLike) -> Path:
        """Write the HDF5 file (see :func:`write_grf`); returns its path."""
        return write_grf(self, path)


def wavenumbers(size: int, *, half: bool = False) -> np.ndarray:
    """``k_m = 2π|m|/size`` (radians per pixel) on the ``fft2`` grid, or the ``rfft2`` half if ``half``."""
    size = check_count("size", size, minimum=2)
    ky = 2.0 * np.pi * np.fft.fftfreq(size)
    kx = 2.0 * np.pi * (np.fft.rfftfreq(size) if half else np.fft.fftfreq(size))
    k: np.ndarray = np.hypot(ky[:, None], kx[None, :])
    return k


def power_spectrum(k: np.ndarray, amplitude: np.ndarray | float, tilt: np.ndarray | float) -> np.ndarray:
    """``P(k) = A k^n``, 0 where ``k == 0`` (broadcast over the arguments)."""
    k = np.asarray(k, dtype=np.float64)
    safe = np.where(k > 0, k, 1.0)
    return np.where(k > 0, np.asarray(amplitude) * safe ** np.asarray(tilt), 0.0)


def simulate_grf(
    n: int,
    *,
    seed: int,
    size: int = 32,
    amplitude_range: tuple[float, float] = (0.1, 10.0),
    tilt_range: tuple[float, float] = (-3.0, -1.0),
) -> GRFSample:
    """Simulate ``n`` Gaussian random fields; the same arguments and ``seed`` give identical arrays.

    Args:
        n: number of fields.
        seed: seed of ``numpy.random.default_rng``.
        size: grid side N (fields are N × N, periodic).
        amplitude_range: ``A`` is drawn log-uniform in ``[low, high]`` (low > 0); ``low == high``
            fixes it. The default 0.1–10 gives pixel standard deviations of about 0.2–3.3.
        tilt_range: ``n`` is drawn uniform in ``[low, high]``; ``low == high`` fixes it.
    """
    n = check_count("n", n)
    seed = check_seed(seed)
    size = check_count("size", size, minimum=2, maximum=MAX_SIZE)
    a_low, a_high = check_range("amplitude_range", amplitude_range)
    if a_low <= 0:
        raise ConfigError(f"amplitude_range must be positive (A is log-uniform), got {amplitude_range!r}")
    t_low, t_high = check_range("tilt_range", tilt_range)

    rng = np.random.default_rng(seed)
    amplitude = (
        np.full(n, a_low) if a_low == a_high else np.exp(rng.uniform(math.log(a_low), math.log(a_high), n))
    )
    tilt = np.full(n, t_low) if t_low == t_high else rng.uniform(t_low, t_high, n)

    k = wavenumbers(size, half=True)
    fields = np.empty((n, size, size), dtype=np.float32)
    for start in range(0, n, _FIELD_CHUNK):
        stop = min(n, start + _FIELD_CHUNK)
        white = rng.standard_normal((stop - start, size, size))
        modes = np.fft.rfft2(white, norm="ortho")
        modes *= np.sqrt(power_spectrum(k, amplitude[start:stop, None, None], tilt[start:stop, None, None]))
        fields[start:stop] = np.fft.irfft2(modes, s=(size, size), norm="ortho")

    options: dict[str, object] = {
        "size": size,
        "amplitude_range": (a_low, a_high),
        "tilt_range": (t_low, t_high),
    }
    return GRFSample(fields=fields, amplitude=amplitude, tilt=tilt, size=size, seed=seed, options=options)


def fisher_matrix(size: int, amplitude: np.ndarray | float, tilt: np.ndarray | float) -> np.ndarray:
    """Fisher matrix of ``(A, n)`` for one field, shape ``(..., 2, 2)`` (see the module docstring)."""
    size = check_count("size", size, minimum=2)
    amplitude, _ = _check_parameters(amplitude, tilt)
    ln_k = np.log(wavenumbers(size).ravel()[1:])  # every mode but m = 0
    m, s1, s2 = float(ln_k.size), float(ln_k.sum()), float(np.square(ln_k).sum())
    out = np.empty((*amplitude.shape, 2, 2))
    out[..., 0, 0] = 0.5 * m / amplitude**2
    out[..., 0, 1] = out[..., 1, 0] = 0.5 * s1 / amplitude
    out[..., 1, 1] = 0.5 * s2
    return out


def fisher_bound(
    size: int, amplitude: np.ndarray | float, tilt: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """Cramér–Rao standard deviations ``(σ(A), σ(n))`` for one ``size × size`` field.

    ``σ = sqrt(diag(F⁻¹))`` with the Fisher matrix of the module docstring; ``amplitude`` and
    ``tilt`` broadcast against each other and the results have their common shape.
    """
    size = check_count("size", size, minimum=2)
    amplitude, tilt_arr = _check_parameters(amplitude, tilt)
    ln_k = np.log(wavenumbers(size).ravel()[1:])
    m, s1, s2 = float(ln_k.size), float(ln_k.sum()), float(np.square(ln_k).sum())
    det = m * s2 - s1 * s1
    sigma_a = amplitude * math.sqrt(2.0 * s2 / det)
    sigma_n = np.full(tilt_arr.shape, math.sqrt(2.0 * m / det))
    return sigma_a, sigma_n


def write_grf(sample: GRFSample, path: PathLike) -> Path:
    """Write ``sample`` to the HDF5 file ``path`` (replaced if it exists); returns the path.

    Datasets: ``fields`` (N, size, size) float32 (gzip), ``amplitude`` (N,) and ``tilt`` (N,)
    float64. File attributes: ``simulator`` ("grf"), ``seed``, ``n``, ``labkit_version``, ``size``,
    ``amplitude_range``, ``tilt_range``, ``amplitude_prior`` ("log-uniform"), ``tilt_prior``
    ("uniform"), ``k_unit`` ("radians per pixel") and ``normalisation`` (a one-line statement of
    the convention).
    """
    from labkit import __version__

    attrs: dict[str, object] = {
        "simulator": sample.simulator,
        "seed": sample.seed,
        "n": len(sample),
        "labkit_version": __version__,
        **{key: attr_value(value) for key, value in sample.options.items()},
        "amplitude_prior": "log-uniform",
        "tilt_prior": "uniform",
        "k_unit": "radians per pixel: k = 2*pi*|m|/size",
        "normalisation": "<|fft2(field, norm='ortho')[m]|^2> = A*k_m^n for m != 0; mode m = 0 is 0",
    }
    return write_hdf5(path, sample.as_arrays(), attrs, compress=("fields",))


def _check_parameters(amplitude: object, tilt: object) -> tuple[np.ndarray, np.ndarray]:
    try:
        a = np.asarray(amplitude, dtype=np.float64)
        t = np.asarray(tilt, dtype=np.float64)
        np.broadcast(a, t)
    except (TypeError, ValueError):
        raise ConfigError(
            f"amplitude and tilt must be numbers or arrays of the same shape, got {amplitude!r} and {tilt!r}"
        ) from None
    if not np.all(np.isfinite(a)) or not np.all(a > 0):
        raise ConfigError(f"amplitude must be positive and finite, got {amplitude!r}")
    if not np.all(np.isfinite(t)):
        raise ConfigError(f"tilt must be finite, got {tilt!r}")
    a, t = np.broadcast_arrays(a, t)
    return a, t
