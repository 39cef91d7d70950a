"""Seeded physics simulators that write training data: ``calo`` showers, ``grf`` fields,
``tracks`` detector images and ``dijet`` events.

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

from labkit._lazy import lazy_getattr

__all__ = [
    "check_range",
    "MATERIALS",
    "MAX_EVENTS",
    "SEED_LIMIT",
    "SIMULATORS",
    "CaloSample",
    "DijetModel",
    "DijetSample",
    "GRFSample",
    "Material",
    "Sample",
    "Simulator",
    "TracksSample",
    "amplitude_window_iou",
    "as_arrays",
    "check_output",
    "fisher_bound",
    "fisher_matrix",
    "fit_amplitude_window",
    "memory_budget",
    "options",
    "simulate",
    "simulate_calo",
    "simulate_dijet",
    "simulate_grf",
    "simulate_tracks",
    "write_h5",
]

if TYPE_CHECKING:
    from labkit.sim._calo import MATERIALS, CaloSample, Material, simulate_calo
    from labkit.sim._common import MAX_EVENTS, SEED_LIMIT, check_output, check_range
    from labkit.sim._dijet import DijetModel, DijetSample, simulate_dijet
    from labkit.sim._grf import GRFSample, fisher_bound, fisher_matrix, simulate_grf
    from labkit.sim._registry import (
        SIMULATORS,
        Sample,
        Simulator,
        as_arrays,
        memory_budget,
        options,
        simulate,
        write_h5,
    )
    from labkit.sim._tracks import (
        TracksSample,
        amplitude_window_iou,
        fit_amplitude_window,
        simulate_tracks,
    )

_LAZY = {
    "check_range": "labkit.sim._common",
    **dict.fromkeys(("MATERIALS", "CaloSample", "Material", "simulate_calo"), "labkit.sim._calo"),
    **dict.fromkeys(("DijetModel", "DijetSample", "simulate_dijet"), "labkit.sim._dijet"),
    **dict.fromkeys(("GRFSample", "fisher_bound", "fisher_matrix", "simulate_grf"), "labkit.sim._grf"),
    **dict.fromkeys(
        ("TracksSample", "amplitude_window_iou", "fit_amplitude_window", "simulate_tracks"),
        "labkit.sim._tracks",
    ),
    **dict.fromkeys(
        (
            "SIMULATORS",
            "Sample",
            "Simulator",
            "as_arrays",
            "memory_budget",
            "options",
            "simulate",
            "write_h5",
        ),
        "labkit.sim._registry",
    ),
    "write_h5": "labkit.sim._registry",
    **dict.fromkeys(("MAX_EVENTS", "SEED_LIMIT", "check_output"), "labkit.sim._common"),
}
__getattr__ = lazy_getattr(__name__, _LAZY)
