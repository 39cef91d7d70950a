"""``tracks``: charged-particle tracks in the transverse plane of a solenoid, as pixel images.

What one event is
-----------------
The image is the transverse (x, y) plane of a tracking detector in a solenoid field ``B``
(tesla, along +z, out of the image), read out by square pads of side ``pitch`` (metres): a
``size × size`` image covering ``L = size · pitch`` metres on a side (by default 64 pads of
1 cm: the pad plane of a small TPC, or a dense pixel tracker seen end-on). ``images[i, r, c]`` is
the pad whose centre lies at ``x = (c + ½)·pitch``, ``y = (r + ½)·pitch`` from the image's
lower-left corner (draw with ``imshow(..., origin="lower")``). Amplitudes are in units of
**MIP**: the most probable charge a minimum-ionising particle leaves along one ``pitch`` of path.

Tracks
------
All tracks of an event leave one vertex, the interaction point at the image centre smeared by a
Gaussian of standard deviation ``vertex_spread`` (metres) in x and y (clipped to the image).
The number of tracks is drawn uniformly from the integers in ``tracks = (low, high)``. Each
track has

* ``p_T`` drawn log-uniform in ``pt_range`` (GeV), i.e. ``dN/dp_T ∝ 1/p_T``: a soft spectrum;
* charge ``q = ±1`` with equal probability, direction ``φ₀`` uniform in [0, 2π);
* a circle of radius ``R[m] = p_T[GeV] / (0.3 · B[T])`` (the projection of the helix; the 0.3
  is ``c`` in units of GeV/(T·m)). With B along +z a positive track turns clockwise: its
  direction ``(cos φ, sin φ)`` has ``φ(s) = φ₀ − q s / R`` after an arc length ``s``, and the
  centre of its circle is at ``vertex + q R (sin φ₀, −cos φ₀)``.

A track is followed from the vertex until it leaves the image or has made one full turn (a
"looper", ``2R < L/2``; energy loss, which would make it spiral inwards, is not simulated). The
arc length of a track in each pad it crosses, ``ℓ``, is integrated numerically in steps of
``pitch/10`` (each step is attributed to the pad containing its midpoint).

Hits
----
Each pad a track crosses is one hit, recorded with probability ``efficiency`` (independently
per hit: dead pads, cluster-finding losses). A recorded hit deposits ``(ℓ / pitch) · f`` MIP,
where ``f`` fluctuates like energy loss in a thin layer: ``f = max(0, 1 + landau_width · X)``
with ``X = −ln(Z²)``, ``Z`` standard normal, i.e. ``X`` follows the Moyal distribution (the usual
closed-form stand-in for the Landau distribution), density ``exp(−(x + e⁻ˣ)/2) / √(2π)``,
most probable value 0, mean ``γ_E + ln 2 ≈ 1.27``, and a long upper tail. The most probable
deposit of a track crossing a whole pad is therefore 1 MIP.

Noise hits (label 3)
--------------------
Every pad fires at random with probability ``noise_rate`` per event (low-energy background:
Compton electrons from soft photons, slow neutrons, out-of-time pile-up, hot pads). A noise hit
deposits ``f`` MIP with the same Landau-like ``f`` as a track crossing one pad: its amplitude
alone does not tell it from a track hit; only its isolation does.

Showers (label 2)
-----------------
The number of compact energetic clusters per event (photon conversions showering in material,
nuclear interactions) is drawn uniformly from the integers in ``showers = (low, high)``. Each has
its centre uniform over the image, an energy ``E`` drawn log-uniform in ``shower_energy`` (MIP)
and a width ``σ`` uniform in ``shower_radius`` (metres). ``E`` is split into ``ceil(4 E)`` equal
spots placed with an isotropic 2-D Gaussian of standard deviation ``σ`` around the centre
(spots outside the image are lost), so a shower's pads fluctuate like a sampled shower: bright
cores and MIP-like edges.

Readout and labels
------------------
The pad amplitude is the sum of all deposits plus Gaussian electronic noise of standard
deviation ``pixel_noise`` (MIP); pads not above ``threshold`` (MIP) are set to 0 (zero
suppression). ``labels`` say what made the signal of each pad that is read out:

* 0 background: the pad reads 0 (``labels == 0`` exactly where ``images == 0``);
* otherwise the source with the largest true deposit in the pad: 1 track (all tracks together),
  2 shower, 3 noise hit; an exact tie goes to the lower label;
* a pad above threshold with no deposit at all (an electronic-noise fluctuation) is noise (3).

So a track hit lost to the inefficiency, or whose deposit falls below the threshold (a pad
whose corner a track only clips), is background: the labels describe what can be seen.

Random streams
--------------
The event content, the efficiency draws, the hit amplitudes, the noise and the showers each come
from their own generator (children of ``numpy.random.SeedSequence(seed)``), so changing, say,
``efficiency`` leaves the tracks, their amplitudes and the rest of the event unchanged, and the
hits kept at a lower efficiency are a subset of those kept at a higher one.
"""

from __future__ import annotations

import math
import numbers
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

__all__ = [
    "CLASS_NAMES",
    "TracksSample",
    "amplitude_window_iou",
    "fit_amplitude_window",
    "simulate_tracks",
    "track_radius",
    "write_tracks",
]

#: pixel label -> class name
CLASS_NAMES: dict[int, str] = {0: "background", 1: "track", 2: "shower", 3: "noise"}
BACKGROUND, TRACK, SHOWER, NOISE = 0, 1, 2, 3

#: p_T [GeV] = 0.3 · B [T] · R [m] for a unit charge (0.299792458 to be exact; the textbook 0.3)
PT_PER_TESLA_METRE = 0.3
_STEPS_PER_PITCH = 10  # arc-length steps per pad pitch when integrating the path in each pad
_SPOTS_PER_MIP = 4.0
_EVENT_CHUNK = 512
_MAX_TRACKS = 1000
_MAX_SIZE = 4096  # pads per side: one image of 4096 x 4096 is 80 MiB with its labels


@dataclass(frozen=True, eq=False)
class TracksSample:
    """Events from :func:`simulate_tracks`.

    ``images`` (N, size, size) float32 pad amplitudes in MIP; ``labels`` (N, size, size) uint8
    (0 background, 1 track, 2 shower, 3 noise; :data:`CLASS_NAMES`). Truth per event: ``n_tracks``
    (N,) int64; per track, zero-padded to the largest possible number of tracks ``T``:
    ``track_pt`` (N, T) float64 GeV, ``track_charge`` (N, T) int8 (±1, 0 for padding) and
    ``track_phi`` (N, T) float64, the initial direction φ₀ in radians; ``vertex`` (N, 2) float64,
    the (x, y) of the event's vertex in metres from the image centre. ``options`` holds the
    generator arguments, as written to the HDF5 attributes.
    """

    images: np.ndarray
    labels: np.ndarray
    n_tracks: np.ndarray
    track_pt: np.ndarray
    track_charge: np.ndarray
    track_phi: np.ndarray
    vertex: np.ndarray
    seed: int
    options: Mapping[str, object] = field(default_factory=dict)

    simulator: ClassVar[str] = "tracks"
    ARRAYS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "images": ("n", "size", "size"),
        "labels": ("n", "size", "size"),
        "n_tracks": ("n",),
        "track_pt": ("n", "max_tracks"),
        "track_charge": ("n", "max_tracks"),
        "track_phi": ("n", "max_tracks"),
        "vertex": ("n", "xy"),
    }

    def __len__(self) -> int:
        return len(self.n_tracks)

    def as_arrays(self) -> dict[str, np.ndarray]:
        """The arrays under their HDF5 dataset names (see :attr:`ARRAYS`)."""
        return {key: getattr(self, key) for key in self.ARRAYS}

    def write(self, path: PathLike) -> Path:
        """Write the HDF5 file (see :func:`write_tracks`); returns its path."""
        return write_tracks(self, path)


def track_radius(pt: np.ndarray | float, field: float) -> np.ndarray:
    """Radius of curvature in metres, ``R = p_T / (0.3 B)``, of unit-charge tracks of ``pt`` GeV
    in a field of ``field`` tesla."""
    return np.asarray(pt, dtype=np.float64) / (PT_PER_TESLA_METRE * field)


def simulate_tracks(
    n: int,
    *,
    seed: int,
    size: int = 64,
    pitch: float = 0.01,
    field: float = 2.0,
    pt_range: tuple[float, float] = (0.05, 2.0),
    tracks: tuple[int, int] = (1, 8),
    vertex_spread: float = 0.005,
    efficiency: float = 0.9,
    landau_width: float = 0.1,
    noise_rate: float = 0.01,
    showers: tuple[int, int] = (0, 3),
    shower_energy: tuple[float, float] = (5.0, 100.0),
    shower_radius: tuple[float, float] = (0.005, 0.02),
    pixel_noise: float = 0.05,
    threshold: float = 0.25,
) -> TracksSample:
    """Simulate ``n`` detector images with tracks, showers and noise (see the module docstring).

    Args:
        n: number of events.
        seed: seed of ``numpy.random.default_rng`` streams; the same arguments and seed give
            identical arrays.
        size: pads per side of the square image.
        pitch: pad side in metres (default 1 cm: the image is 64 cm across).
        field: solenoid field B in tesla (> 0); tracks curve with R[m] = p_T/(0.3 B).
        pt_range: (low, high) transverse momentum in GeV, drawn log-uniform (dN/dp_T ∝ 1/p_T).
            The default 0.05–2 GeV at 2 T gives radii from 8 cm (loopers) to 3.3 m (nearly straight).
        tracks: (low, high) number of tracks per event, uniform over the integers, both included.
        vertex_spread: standard deviation in metres of the vertex around the image centre (x, y).
        efficiency: probability that a pad a track crosses records a hit.
        landau_width: width ξ of the Landau-like (Moyal) fluctuation of a hit, relative to its
            most probable value (0 for none).
        noise_rate: probability per pad and event of a random MIP-like noise hit.
        showers: (low, high) number of shower clusters per event, uniform over the integers.
        shower_energy: (low, high) energy of a shower in MIP, drawn log-uniform.
        shower_radius: (low, high) Gaussian width of a shower in metres, drawn uniform.
        pixel_noise: standard deviation of the electronic noise on every pad, in MIP.
        threshold: zero suppression: pads not above it (MIP) read 0.
    """
    n = check_count("n", n)
    seed = check_seed(seed)
    size = check_count("size", size, minimum=2, maximum=_MAX_SIZE)
    pitch = check_number("pitch", pitch, minimum=0.0, strict=True)
    field = check_number("field", field, minimum=0.0, strict=True)
    pt_lo, pt_hi = check_range("pt_range", pt_range)
    if pt_lo <= 0:
        raise ConfigError(f"pt_range must be positive GeV (p_T is log-uniform), got {pt_range!r}")
    tracks_lo, tracks_hi = _check_counts("tracks", tracks)
    vertex_spread = check_number("vertex_spread", vertex_spread, minimum=0.0)
    efficiency = _check_probability("efficiency", efficiency)
    landau_width = check_number("landau_width", landau_width, minimum=0.0)
    noise_rate = _check_probability("noise_rate", noise_rate)
    showers_lo, showers_hi = _check_counts("showers", showers)
    e_lo, e_hi = check_range("shower_energy", shower_energy)
    if e_lo <= 0:
        raise ConfigError(f"shower_energy must be positive MIP (E is log-uniform), got {shower_energy!r}")
    r_lo, r_hi = check_range("shower_radius", shower_radius)
    if r_lo <= 0:
        raise ConfigError(f"shower_radius must be positive metres, got {shower_radius!r}")
    pixel_noise = check_number("pixel_noise", pixel_noise, minimum=0.0)
    threshold = check_number("threshold", threshold, allow_inf=True)
    if threshold == math.inf:
        raise ConfigError(f"threshold must be finite or -inf (no zero suppression), got {threshold!r}")

    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)]
    content, eff_rng, amp_rng, noise_rng, shower_rng = streams

    # the content of every event, drawn up front (the per-pad work is done in chunks)
    n_tracks = content.integers(tracks_lo, tracks_hi + 1, size=n)
    width = max(tracks_hi, 1)
    slots = np.arange(width)[None, :] < n_tracks[:, None]
    count = int(slots.sum())
    pt = np.zeros((n, width))
    charge = np.zeros((n, width), dtype=np.int8)
    phi = np.zeros((n, width))
    pt[slots] = pt_lo if pt_lo == pt_hi else np.exp(content.uniform(math.log(pt_lo), math.log(pt_hi), count))
    charge[slots] = np.where(content.random(count) < 0.5, 1, -1).astype(np.int8)
    phi[slots] = content.uniform(0.0, 2.0 * math.pi, count)
    half = 0.5 * size * pitch
    vertex = np.clip(content.normal(0.0, 1.0, (n, 2)) * vertex_spread, -half * 0.999, half * 0.999)

    images = np.empty((n, size, size), dtype=np.float32)
    labels = np.empty((n, size, size), dtype=np.uint8)
    geometry = _Geometry(size=size, pitch=pitch, field=field)
    for start in range(0, n, _EVENT_CHUNK):
        stop = min(n, start + _EVENT_CHUNK)
        events = stop - start
        sel = slots[start:stop]
        event_of_track = np.nonzero(sel)[0]
        deposits = np.zeros((3, events * size * size))  # track, shower, noise
        deposits[0] = _track_deposits(
            geometry,
            event_of_track,
            vertex[start:stop][event_of_track] + half,
            pt[start:stop][sel],
            charge[start:stop][sel].astype(np.float64),
            phi[start:stop][sel],
            efficiency,
            landau_width,
            eff_rng,
            amp_rng,
            events,
        )
        fired = noise_rng.random(events * size * size) < noise_rate
        deposits[2, fired] = _landau_factor(noise_rng, int(fired.sum()), landau_width)
        deposits[1] = _shower_deposits(
            geometry, shower_rng, events, (showers_lo, showers_hi), (e_lo, e_hi), (r_lo, r_hi)
        )
        amplitude = deposits.sum(axis=0)
        if pixel_noise > 0:
            amplitude += noise_rng.normal(0.0, pixel_noise, amplitude.shape)
        read = amplitude > threshold
        label = np.where(deposits.max(axis=0) > 0, np.argmax(deposits, axis=0) + 1, NOISE)
        images[start:stop] = np.where(read, amplitude, 0.0).reshape(events, size, size)
        labels[start:stop] = np.where(read, label, BACKGROUND).reshape(events, size, size)

    options: dict[str, object] = {
        "size": size,
        "pitch": pitch,
        "field": field,
        "pt_range": (pt_lo, pt_hi),
        "tracks": (tracks_lo, tracks_hi),
        "vertex_spread": vertex_spread,
        "efficiency": efficiency,
        "landau_width": landau_width,
        "noise_rate": noise_rate,
        "showers": (showers_lo, showers_hi),
        "shower_energy": (e_lo, e_hi),
        "shower_radius": (r_lo, r_hi),
        "pixel_noise": pixel_noise,
        "threshold": threshold,
    }
    return TracksSample(
        images=images,
        labels=labels,
        n_tracks=n_tracks.astype(np.int64),
        track_pt=pt,
        track_charge=charge,
        track_phi=phi,
        vertex=vertex,
        seed=seed,
        options=options,
    )


def write_tracks(sample: TracksSample, path: PathLike) -> Path:
    """Write ``sample`` to the HDF5 file ``path`` (replaced if it exists); returns the path.

    Datasets: ``images`` (N, size, size) float32 MIP and ``labels`` (N, size, size) uint8 (both
    gzip), ``n_tracks`` (N,) int64, ``track_pt`` (N, T) float64 GeV, ``track_charge`` (N, T) int8,
    ``track_phi`` (N, T) float64 rad, ``vertex`` (N, 2) float64 m. File attributes: ``simulator``
    ("tracks"), ``seed``, ``n``, ``labkit_version``, every generator argument under its own name
    (``size``, ``pitch``, ``field``, ``pt_range``, ``tracks``, ``vertex_spread``, ``efficiency``,
    ``landau_width``, ``noise_rate``, ``showers``, ``shower_energy``, ``shower_radius``,
    ``pixel_noise``, ``threshold``), ``class_names`` (the names of labels 0..3), and the units
    ``amplitude_unit``, ``pitch_unit``, ``field_unit``, ``pt_unit``.
    """
    from labkit import __version__

    attrs: dict[str, object] = {
        "simulator": sample.simulator,
        "seed": sample.seed,
        "n": len(sample),
        "labkit_version": __version__,
        **{key: attr_value(value) for key, value in sample.options.items()},
        "class_names": [CLASS_NAMES[i] for i in sorted(CLASS_NAMES)],
        "amplitude_unit": "MIP (most probable deposit of a minimum-ionising track over one pitch)",
        "pitch_unit": "m",
        "field_unit": "T",
        "pt_unit": "GeV",
    }
    return write_hdf5(path, sample.as_arrays(), attrs, compress=("images", "labels"))


# --------------------------------------------------------------------------- the classical baseline


def fit_amplitude_window(
    amplitudes: np.ndarray, is_track: np.ndarray, *, bins: int = 512
) -> tuple[float, float]:
    """The amplitude window ``[lo, hi)`` whose pads, called "track", give the best track IoU.

    The classical baseline of track finding by thresholding: every pad with ``lo <= amplitude <
    hi`` is a track hit. Candidate edges are the ``bins``-quantiles of the amplitudes of the pads
    that are not 0 (plus ``hi = inf``: no upper cut); every pair of them is tried (the IoU
    TP/(TP + FP + FN) of each window follows from cumulative counts), and the best is returned.
    Fit it on training images and evaluate it with :func:`amplitude_window_iou` on others.
    """
    amp = np.asarray(amplitudes, dtype=np.float64).ravel()
    track = np.asarray(is_track, dtype=bool).ravel()
    if amp.shape != track.shape:
        raise ValueError(f"amplitudes and is_track differ in size: {amp.size} and {track.size}")
    hits = amp[amp != 0]
    if hits.size == 0 or not track.any():
        raise ValueError("the window needs pads with a signal and some track pads")
    edges = np.unique(np.quantile(hits, np.linspace(0.0, 1.0, bins + 1)))
    edges = np.append(edges[:-1], np.inf)  # the last window reaches every amplitude above
    which = np.searchsorted(edges, amp, side="right") - 1  # bin b holds edges[b] <= a < edges[b+1]
    inside = (which >= 0) & (which < len(edges) - 1) & (amp != 0)
    k = len(edges) - 1
    t = np.bincount(which[inside & track], minlength=k)
    o = np.bincount(which[inside & ~track], minlength=k)
    ct = np.concatenate([[0], np.cumsum(t)])
    co = np.concatenate([[0], np.cumsum(o)])
    tp = ct[None, :] - ct[:, None]  # [i, j]: window edges[i] .. edges[j]
    fp = co[None, :] - co[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(tp > 0, tp / (track.sum() + fp), 0.0)
    i, j = np.unravel_index(int(np.argmax(np.triu(iou, 1))), iou.shape)
    return float(edges[i]), float(edges[j])


def amplitude_window_iou(amplitudes: np.ndarray, is_track: np.ndarray, lo: float, hi: float) -> float:
    """Track IoU, pooled over all pads given, of calling a pad "track" when ``lo <= amplitude < hi``
    (NaN when there is neither a track pad nor a pad in the window)."""
    amp = np.asarray(amplitudes, dtype=np.float64)
    track = np.asarray(is_track, dtype=bool)
    called = (amp >= lo) & (amp < hi) & (amp != 0)
    union = int(np.count_nonzero(called | track))
    return float(np.count_nonzero(called & track) / union) if union else math.nan


# --------------------------------------------------------------------------- internals


@dataclass(frozen=True)
class _Geometry:
    size: int
    pitch: float
    field: float


def _check_counts(name: str, value: object) -> tuple[int, int]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(f"{name} must be a pair (low, high) of counts, got {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or int(v) < 0:
            raise ConfigError(f"{name} must hold integers >= 0, got {value!r}")
    low, high = int(value[0]), int(value[1])
    if low > high:
        raise ConfigError(f"{name} must have low <= high, got {value!r}")
    if high > _MAX_TRACKS:
        raise ConfigError(f"{name} must be at most {_MAX_TRACKS} per event, got {value!r}")
    return low, high


def _check_probability(name: str, value: object) -> float:
    p = check_number(name, value, minimum=0.0)
    if p > 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}")
    return p


def _landau_factor(rng: np.random.Generator, count: int, width: float) -> np.ndarray:
    """``max(0, 1 + width · X)``, X Moyal (= −ln Z², Z standard normal): most probable value 1."""
    z2 = np.square(rng.standard_normal(count))
    x = -np.log(np.maximum(z2, 1e-300))
    return np.maximum(0.0, 1.0 + width * x)


def _exit_arc_length(
    vertex: np.ndarray, radius: np.ndarray, alpha0: np.ndarray, q: np.ndarray, side: float
) -> np.ndarray:
    """Arc length from the vertex (inside the square [0, side]²) to where the circle first leaves
    the square, or one full turn ``2πR`` if it never does.

    The track is at angle ``θ(s) = α₀ − q s/R`` on its circle (centre ``c``); it reaches a
    boundary x = b where ``cos θ = (b − c_x)/R`` (two solutions), y = b where ``sin θ = (b − c_y)/R``.
    The turning angle to a solution θ* is ``q (α₀ − θ*) mod 2π``.
    """
    cx = vertex[:, 0] - radius * np.cos(alpha0)
    cy = vertex[:, 1] - radius * np.sin(alpha0)
    turn = np.full(len(radius), 2.0 * math.pi)
    candidates = []
    for b in (0.0, side):
        u, v = (b - cx) / radius, (b - cy) / radius
        on_x, on_y = np.abs(u) <= 1.0, np.abs(v) <= 1.0
        ax, ay = np.arccos(np.clip(u, -1.0, 1.0)), np.arcsin(np.clip(v, -1.0, 1.0))
        candidates += [(on_x, ax), (on_x, -ax), (on_y, ay), (on_y, math.pi - ay)]
    for ok, theta in candidates:
        delta = np.mod(q * (alpha0 - theta), 2.0 * math.pi)
        turn = np.where(ok & (delta > 1e-12) & (delta < turn), delta, turn)
    out: np.ndarray = radius * turn
    return out


def _track_deposits(
    geo: _Geometry,
    event: np.ndarray,
    vertex: np.ndarray,
    pt: np.ndarray,
    q: np.ndarray,
    phi0: np.ndarray,
    efficiency: float,
    landau_width: float,
    eff_rng: np.random.Generator,
    amp_rng: np.random.Generator,
    events: int,
) -> np.ndarray:
    """Recorded track deposits per pad, flat over (event, row, column); ``vertex`` in image
    coordinates (metres from the lower-left corner)."""
    size, pitch = geo.size, geo.pitch
    out = np.zeros(events * size * size)
    if len(pt) == 0:
        return out
    radius = track_radius(pt, geo.field)
    alpha0 = phi0 + q * (0.5 * math.pi)  # direction from the circle's centre to the vertex
    s_end = _exit_arc_length(vertex, radius, alpha0, q, size * pitch)
    ds = pitch / _STEPS_PER_PITCH
    steps = np.maximum(1, np.ceil(s_end / ds - 1e-9).astype(np.int64))
    track = np.repeat(np.arange(len(pt)), steps)
    first = np.cumsum(steps) - steps
    k = np.arange(int(steps.sum())) - np.repeat(first, steps)
    lo = k * ds
    hi = np.minimum(lo + ds, s_end[track])
    length = hi - lo
    # position at the midpoint of each step: vertex + R (cos θ − cos α₀, sin θ − sin α₀), written
    # with half-angle products so that nearly straight tracks (huge R) lose no precision
    half_turn = -0.5 * q[track] * (0.5 * (lo + hi)) / radius[track]  # (θ − α₀)/2
    mean_angle = alpha0[track] + half_turn  # (θ + α₀)/2
    chord = 2.0 * radius[track] * np.sin(half_turn)
    x = vertex[track, 0] - chord * np.sin(mean_angle)
    y = vertex[track, 1] + chord * np.cos(mean_angle)
    col = np.clip(np.floor(x / pitch).astype(np.int64), 0, size - 1)
    row = np.clip(np.floor(y / pitch).astype(np.int64), 0, size - 1)
    key = track * (size * size) + row * size + col
    start = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))  # one run per (track, pad)
    path = np.add.reduceat(length, start)
    hit_track = track[start]
    keep = eff_rng.random(len(start)) < efficiency
    deposit = path / pitch * _landau_factor(amp_rng, len(start), landau_width)
    flat = event[hit_track] * (size * size) + (key[start] - hit_track * (size * size))
    out += np.bincount(flat[keep], weights=deposit[keep], minlength=len(out))
    return out


def _shower_deposits(
    geo: _Geometry,
    rng: np.random.Generator,
    events: int,
    counts: tuple[int, int],
    energy: tuple[float, float],
    width: tuple[float, float],
) -> np.ndarray:
    size, pitch = geo.size, geo.pitch
    out = np.zeros(events * size * size)
    per_event = rng.integers(counts[0], counts[1] + 1, size=events)
    total = int(per_event.sum())
    if total == 0:
        return out
    event = np.repeat(np.arange(events), per_event)
    side = size * pitch
    centre = rng.uniform(0.0, side, (total, 2))
    e = (
        np.full(total, energy[0])
        if energy[0] == energy[1]
        else np.exp(rng.uniform(math.log(energy[0]), math.log(energy[1]), total))
    )
    sigma = rng.uniform(width[0], width[1], total)
    spots = np.ceil(_SPOTS_PER_MIP * e).astype(np.int64)
    owner = np.repeat(np.arange(total), spots)
    xy = centre[owner] + rng.standard_normal((len(owner), 2)) * sigma[owner, None]
    inside = np.all((xy >= 0.0) & (xy < side), axis=1)
    col = np.floor(xy[inside, 0] / pitch).astype(np.int64)
    row = np.floor(xy[inside, 1] / pitch).astype(np.int64)
    col, row = np.minimum(col, size - 1), np.minimum(row, size - 1)
    flat = event[owner[inside]] * (size * size) + row * size + col
    out += np.bincount(flat, weights=(e / spots)[owner[inside]], minlength=len(out))
    return out
