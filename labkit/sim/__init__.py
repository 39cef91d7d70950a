"""Seeded physics simulators that write training data: ``calo`` showers, ``grf`` fields,
``tracks`` detector images, ``dijet`` events and ``jets`` with their tracks.

Same arguments and seed give byte-identical arrays. Everything here needs numpy only (h5py to
write files); importing the package is cheap, the simulator modules load on first use.

    >>> from labkit import sim
    >>> sample = sim.simulate("calo", 1000, seed=1, particle="mixed")
    >>> sample.write("showers.h5")                      # or sim.write_h5(sample, "showers.h5")
    >>> arrays = sim.as_arrays(sample)                 # incident_energy, showers, particle

See docs/data.md ("Simulators") for the models, their defaults and the HDF5 layout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_exports

__all__, _lazy_getattr = lazy_exports(
    __name__,
    {
        "labkit.sim._calo": ("CaloSample", "MATERIALS", "Material", "simulate_calo"),
        "labkit.sim._common": ("MAX_EVENTS", "SEED_LIMIT", "check_output", "check_range"),
        "labkit.sim._dijet": ("DijetModel", "DijetSample", "simulate_dijet"),
        "labkit.sim._grf": ("GRFSample", "fisher_bound", "fisher_matrix", "simulate_grf"),
        "labkit.sim._jets": ("JetsSample", "simulate_jets"),
        "labkit.sim._registry": (
            "SIMULATORS",
            "Sample",
            "Simulator",
            "as_arrays",
            "memory_budget",
            "options",
            "simulate",
            "write_h5",
        ),
        "labkit.sim._tracks": (
            "TracksSample",
            "amplitude_window_iou",
            "fit_amplitude_window",
            "simulate_tracks",
        ),
    },
)

if TYPE_CHECKING:  # the same names for type checkers; test_public_surface checks they agree
    from labkit.sim._calo import MATERIALS as MATERIALS
    from labkit.sim._calo import CaloSample as CaloSample
    from labkit.sim._calo import Material as Material
    from labkit.sim._calo import simulate_calo as simulate_calo
    from labkit.sim._common import MAX_EVENTS as MAX_EVENTS
    from labkit.sim._common import SEED_LIMIT as SEED_LIMIT
    from labkit.sim._common import check_output as check_output
    from labkit.sim._common import check_range as check_range
    from labkit.sim._dijet import DijetModel as DijetModel
    from labkit.sim._dijet import DijetSample as DijetSample
    from labkit.sim._dijet import simulate_dijet as simulate_dijet
    from labkit.sim._grf import GRFSample as GRFSample
    from labkit.sim._grf import fisher_bound as fisher_bound
    from labkit.sim._grf import fisher_matrix as fisher_matrix
    from labkit.sim._grf import simulate_grf as simulate_grf
    from labkit.sim._jets import JetsSample as JetsSample
    from labkit.sim._jets import simulate_jets as simulate_jets
    from labkit.sim._registry import SIMULATORS as SIMULATORS
    from labkit.sim._registry import Sample as Sample
    from labkit.sim._registry import Simulator as Simulator
    from labkit.sim._registry import as_arrays as as_arrays
    from labkit.sim._registry import memory_budget as memory_budget
    from labkit.sim._registry import options as options
    from labkit.sim._registry import simulate as simulate
    from labkit.sim._registry import write_h5 as write_h5
    from labkit.sim._tracks import TracksSample as TracksSample
    from labkit.sim._tracks import amplitude_window_iou as amplitude_window_iou
    from labkit.sim._tracks import fit_amplitude_window as fit_amplitude_window
    from labkit.sim._tracks import simulate_tracks as simulate_tracks
else:
    __getattr__ = _lazy_getattr
