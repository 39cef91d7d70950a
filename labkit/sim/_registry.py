"""The simulator registry: one :class:`Simulator` per name, and the generic entry points.

A new simulator (``tracks``, ``dijet``, ...) is a private module with a ``simulate_<name>(n, *,
seed, **options)`` function returning a frozen sample dataclass (with ``simulator``, ``ARRAYS``,
``as_arrays()`` and ``write(path)``) and a ``write_<name>(sample, path)`` function; registering it
is one more entry in :data:`SIMULATORS`. Option names, defaults and validation of unknown options
come from the function signature.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from labkit.errors import ConfigError, did_you_mean
from labkit.sim._calo import CaloSample, simulate_calo, write_calo
from labkit.sim._common import MAX_EVENTS, PathLike, check_count
from labkit.sim._dijet import DijetSample, simulate_dijet, write_dijet
from labkit.sim._grf import GRFSample, simulate_grf, write_grf
from labkit.sim._jets import JetsSample, simulate_jets, write_jets
from labkit.sim._tracks import TracksSample, simulate_tracks, write_tracks

__all__ = [
    "SIMULATORS",
    "Sample",
    "Simulator",
    "as_arrays",
    "get",
    "memory_budget",
    "options",
    "simulate",
    "write_h5",
]

_POSITIONAL = ("n", "seed")


class Sample(Protocol):
    """What every simulator returns: named arrays with a leading sample axis, and a writer."""

    simulator: str

    def __len__(self) -> int: ...

    def as_arrays(self) -> dict[str, np.ndarray]: ...

    def write(self, path: PathLike) -> Path: ...


@dataclass(frozen=True)
class Simulator:
    """One registered simulator.

    ``generate(n, *, seed, **options)`` returns a sample of type ``sample_type``; ``writer(sample,
    path)`` writes its HDF5 file; ``arrays`` maps each dataset name to the names of its axes
    (the first is always ``"n"``), in the order of the file.
    """

    name: str
    summary: str
    generate: Callable[..., Any]
    writer: Callable[[Any, PathLike], Path]
    sample_type: type

    @property
    def arrays(self) -> Mapping[str, tuple[str, ...]]:
        """Dataset name -> axis names, e.g. ``{"fields": ("n", "size", "size"), ...}``."""
        arrays: Mapping[str, tuple[str, ...]] = self.sample_type.ARRAYS  # type: ignore[attr-defined]
        return arrays

    def option_names(self) -> tuple[str, ...]:
        """The keyword options ``generate`` accepts besides ``n`` and ``seed``, in signature order."""
        return tuple(self.defaults())

    def defaults(self) -> dict[str, object]:
        """Each option with its default value (read from the signature of ``generate``)."""
        params = inspect.signature(self.generate).parameters.values()
        return {p.name: p.default for p in params if p.name not in _POSITIONAL}

    def check_options(self, given: Mapping[str, object]) -> None:
        """:class:`ConfigError` naming the first unknown option and listing the valid ones."""
        valid = self.option_names()
        for key in given:
            if key not in valid:
                raise ConfigError(
                    f"unknown option {key!r} for simulator {self.name!r}{did_you_mean(key, valid)}; "
                    f"valid options: {', '.join(valid)}"
                )

    def check_size(self, n: object, options: Mapping[str, object], field: str = "n") -> int:
        """``n`` as a number of events whose arrays fit in memory, else :class:`ConfigError`
        naming ``field``: one event is simulated to measure its size, before any large array
        is allocated (the options are checked on the way)."""
        self.check_options(options)
        count = check_count(field, n, maximum=MAX_EVENTS)
        if count <= _PROBE_ABOVE:
            return count
        probe = self.generate(1, seed=0, **options)
        per_event = sum(a.nbytes for a in probe.as_arrays().values())
        needed, budget = count * per_event * _PEAK_FACTOR, memory_budget()
        if needed > budget:
            raise ConfigError(
                f"{field}: {count:_} {self.name} events need about {_gb(needed)} of memory "
                f"({per_event:_} bytes each, twice over while they are made); this machine has "
                f"{_gb(budget)}: generate at most {budget // (per_event * _PEAK_FACTOR):_}"
            )
        return count

    def __call__(self, n: int, *, seed: int, **options: object) -> Any:
        self.check_size(n, options)
        return self.generate(n, seed=seed, **options)


#: up to this many events no size check is needed (every option that sizes an event is bounded)
_PROBE_ABOVE = 100
_PEAK_FACTOR = 2  # the arrays, and the working arrays they are made from


def memory_budget() -> int:
    """Bytes of physical memory of this machine (64 GiB when the system does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return 64 * 2**30


def _gb(size: int) -> str:
    return f"{size / 2**30:,.1f} GiB"


SIMULATORS: dict[str, Simulator] = {
    "calo": Simulator(
        name="calo",
        summary="electromagnetic showers after GFlash (and a pion caricature) in cylindrical voxels",
        generate=simulate_calo,
        writer=write_calo,
        sample_type=CaloSample,
    ),
    "grf": Simulator(
        name="grf",
        summary="2-D Gaussian random fields with power-law spectra P(k) = A k^n",
        generate=simulate_grf,
        writer=write_grf,
        sample_type=GRFSample,
    ),
    "dijet": Simulator(
        name="dijet",
        summary="LHC-Olympics dijets (m_jj, jet masses, tau21), QCD and W' -> XY, exact likelihood ratio",
        generate=simulate_dijet,
        writer=write_dijet,
        sample_type=DijetSample,
    ),
    "tracks": Simulator(
        name="tracks",
        summary="charged tracks (circles of R = pT/(0.3 B)), showers and noise hits as labelled pixel images",
        generate=simulate_tracks,
        writer=write_tracks,
        sample_type=TracksSample,
    ),
    "jets": Simulator(
        name="jets",
        summary="b- and light-flavour jets with their tracks (lifetime-signed d0), exact likelihood ratio",
        generate=simulate_jets,
        writer=write_jets,
        sample_type=JetsSample,
    ),
}


def get(name: str) -> Simulator:
    """The registered simulator ``name``, else :class:`ConfigError` listing the valid names."""
    if not isinstance(name, str) or name not in SIMULATORS:
        hint = did_you_mean(name, SIMULATORS) if isinstance(name, str) else ""
        raise ConfigError(f"unknown simulator {name!r}{hint}; valid simulators: {', '.join(SIMULATORS)}")
    return SIMULATORS[name]


def simulate(name: str, n: int, *, seed: int, **options: object) -> Any:
    """Run simulator ``name`` (``"calo"``, ``"grf"``, ``"tracks"``, ``"dijet"``, ``"jets"``) for ``n`` samples
    with ``seed`` and ``options``."""
    return get(name)(n, seed=seed, **options)


def options(name: str) -> dict[str, object]:
    """The options of simulator ``name`` mapped to their defaults (everything but ``n`` and ``seed``).

    ``list(options("grf"))`` is the list of valid option names; the defaults tell a command line
    which type to convert a value to.
    """
    return get(name).defaults()


def _simulator_of(sample: object) -> Simulator:
    for sim in SIMULATORS.values():
        if isinstance(sample, sim.sample_type):
            return sim
    raise ConfigError(
        f"not a simulator sample: {type(sample).__name__} (expected one of "
        f"{', '.join(sim.sample_type.__name__ for sim in SIMULATORS.values())})"
    )


def write_h5(sample: Sample, path: PathLike) -> Path:
    """Write any simulator sample to the HDF5 file ``path`` (same as ``sample.write(path)``)."""
    return _simulator_of(sample).writer(sample, path)


def as_arrays(sample: Sample) -> dict[str, np.ndarray]:
    """The sample's arrays under the names of its HDF5 datasets (no copies)."""
    _simulator_of(sample)
    return sample.as_arrays()
