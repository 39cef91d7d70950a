"""Reading showers in the calo layout for :func:`~labkit.tasks.evaluate_showers`, and writing what
it found (``labkit evaluate -o``): the metrics, the separation-power table and the figures.

Torch-free; h5py on reading, matplotlib only in :func:`write_evaluation`.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from labkit.errors import DataError
from labkit.tasks._showers import ShowerEvaluation

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FIGURE_GROUPS", "CaloFile", "read_calo_file", "write_evaluation"]


@dataclass(frozen=True)
class CaloFile:
    """The showers of one HDF5 file in the calo layout (``labkit sim calo``, ``labkit generate``)."""

    path: Path
    showers: np.ndarray  #: (N, layers, radial bins, angular bins) GeV
    incident_energy: np.ndarray  #: (N,) GeV
    radial_edges: np.ndarray  #: radial bin edges (Molière radii)
    layer_thickness: float  #: X0 per layer

    def check_same_grid(self, other: CaloFile) -> None:
        """A :class:`~labkit.errors.DataError` unless ``other`` has this file's grid."""
        if other.showers.shape[1:] != self.showers.shape[1:]:
            raise DataError(
                f"{other.path}: showers of shape {other.showers.shape[1:]} per shower, "
                f"but {self.path} has {self.showers.shape[1:]}; the files must share one grid"
            )
        if not np.allclose(other.radial_edges, self.radial_edges, rtol=1e-6, atol=1e-9):
            raise DataError(
                f"{other.path}: radial_edges {other.radial_edges.tolist()} differ from "
                f"{self.path}'s {self.radial_edges.tolist()}"
            )
        if not math.isclose(other.layer_thickness, self.layer_thickness, rel_tol=1e-6):
            raise DataError(
                f"{other.path}: layer_thickness {other.layer_thickness:g} differs from "
                f"{self.path}'s {self.layer_thickness:g}"
            )


def read_calo_file(path: str | os.PathLike[str]) -> CaloFile:
    """Read the datasets ``showers`` and ``incident_energy`` and the attributes ``radial_edges``
    (or ``radial_edges_rm``) and ``layer_thickness`` (or ``layer_edges_x0``) of ``path``;
    a :class:`~labkit.errors.DataError` names the file and what is missing."""
    import h5py

    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: no such file (give an HDF5 file in the calo layout)")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise DataError(f"{p}: not an HDF5 file ({exc})") from None
    with f:
        for name in ("showers", "incident_energy"):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                have = ", ".join(sorted(f.keys())) or "none"
                raise DataError(f"{p}: no dataset {name!r} (datasets: {have}); is it a calo file?")
        showers, energy = f["showers"], f["incident_energy"]
        if showers.ndim != 4:
            raise DataError(
                f"{p}: dataset 'showers' has shape {showers.shape}; "
                "expected (N, layers, radial bins, angular bins)"
            )
        if energy.shape != (showers.shape[0],):
            raise DataError(
                f"{p}: dataset 'incident_energy' has shape {energy.shape}; expected ({showers.shape[0]},), "
                "one per shower"
            )
        attrs = dict(f.attrs)
        edges = attrs.get("radial_edges", attrs.get("radial_edges_rm"))
        if edges is None:
            raise DataError(f"{p}: no attribute 'radial_edges' (the radial bin edges) in the file")
        edges = np.asarray(edges, dtype=np.float64).reshape(-1)
        if len(edges) != showers.shape[2] + 1:
            raise DataError(
                f"{p}: attribute 'radial_edges' has {len(edges)} edges for {showers.shape[2]} radial bins"
            )
        thickness = attrs.get("layer_thickness")
        if thickness is None and "layer_edges_x0" in attrs:
            thickness = float(np.mean(np.diff(np.asarray(attrs["layer_edges_x0"], dtype=np.float64))))
        if thickness is None:
            raise DataError(f"{p}: no attribute 'layer_thickness' (X0 per layer) in the file")
        return CaloFile(
            path=p,
            showers=np.asarray(showers[...], dtype=np.float32),
            incident_energy=np.asarray(energy[...], dtype=np.float64),
            radial_edges=edges,
            layer_thickness=float(thickness),
        )


#: the figures ``write_evaluation`` draws: file stem → (title, feature-name prefixes)
FIGURE_GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "surrogate_energies": ("Energy: total and per layer, over E_inc", ("etot_", "elayer_")),
    "surrogate_radial_centres": ("Radial centre of energy per layer (Molière radii)", ("r_centre_",)),
    "surrogate_radial_widths": ("Radial width per layer (Molière radii)", ("r_width_",)),
    "surrogate_transverse_centres": (
        "Centre of energy across the axis, x and y per layer (R_M)",
        ("x_centre_", "y_centre_"),
    ),
    "surrogate_transverse_widths": (
        "Width across the axis, x and y per layer (R_M)",
        ("x_width_", "y_width_"),
    ),
    "surrogate_hits": ("Number of cells with energy, per layer and in all", ("nhit",)),
    "surrogate_hottest_cell": (
        "Hottest cell: energy over E_inc (per layer and in all), position, E_ratio",
        ("emax", "eratio"),
    ),
    "surrogate_longitudinal": ("Longitudinal centre of gravity and width (X0)", ("depth_",)),
}


def write_evaluation(result: ShowerEvaluation, outdir: str | os.PathLike[str]) -> list[Path]:
    """Write ``metrics.json`` (every number of ``result.metrics()``, plus the sample sizes),
    ``separation.csv`` (per feature: separation power, the floor's, and one column per energy
    bin), the feature histograms with ratio panels (one PNG per group of :data:`FIGURE_GROUPS`)
    and ``separation_power.png`` into ``outdir``; returns the paths written."""
    from labkit.tasks._figures import separation_power_figure

    out = Path(outdir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot write to {out} ({exc.strerror})") from None
    written = []
    metrics: dict[str, int | float | None] = {"n_" + k: int(v) for k, v in result.n_showers.items()}
    metrics |= {k: _json_number(v) for k, v in result.metrics().items()}
    metrics["seconds"] = round(result.seconds, 2)
    path = out / "metrics.json"
    path.write_text(json.dumps(metrics, indent=1) + "\n")
    written.append(path)

    path = out / "separation.csv"
    e = result.energy_bins
    bins = [f"{lo:g}-{hi:g}GeV" for lo, hi in itertools.pairwise(e)]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["feature", "separation_power", "floor"]
            + [f"sep_{b}" for b in bins]
            + ([f"floor_{b}" for b in bins] if result.floor else [])
        )
        for name, value in result.generated.separation.items():
            row: list[object] = [
                name,
                f"{value:.6g}",
                f"{result.floor.separation[name]:.6g}" if result.floor else "",
            ]
            row += [f"{v:.6g}" for v in result.generated.separation_by_energy[name]]
            if result.floor:
                row += [f"{v:.6g}" for v in result.floor.separation_by_energy[name]]
            writer.writerow(row)
    written.append(path)

    for stem, fig in evaluation_figures(result).items():
        written.append(_save(fig, out / f"{stem}.png"))
    sep = dict(result.generated.separation)
    fig = separation_power_figure(sep, dict(result.floor.separation) if result.floor else None)
    written.append(_save(fig, out / "separation_power.png"))
    return written


def evaluation_figures(result: ShowerEvaluation) -> dict[str, Figure]:
    """The feature histograms of ``result`` with ratio panels (generated, reference and, with a
    floor, reference-2), one figure per group of :data:`FIGURE_GROUPS` that has features."""
    from labkit.tasks._figures import feature_comparison_figure

    feats = result.features
    sep = dict(result.generated.separation)
    out = {}
    for stem, (title, prefixes) in FIGURE_GROUPS.items():
        names = [n for n in feats["reference"] if n.startswith(prefixes)]
        if names:
            out[stem] = feature_comparison_figure(
                {n: feats["reference"][n] for n in names},
                {n: feats["generated"][n] for n in names},
                {n: result.edges[n] for n in names},
                sep,
                reference={n: feats["reference_2"][n] for n in names} if "reference_2" in feats else None,
                title=title,
            )
    return out


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=80)
    return path


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
