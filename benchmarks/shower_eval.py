"""How strong is ``labkit evaluate``'s test, and why: the high-level classifier on feature subsets
and the low-level classifier's two input transforms, each against the simulator's floor.

Given a generated file and two independent simulator files in the calo layout (see
docs/tasks.md, "Evaluating showers", for the commands that make them), prints for each variant
the AUC generated vs simulated, simulated vs simulated (the floor) and the gap, with its wall time:

* high-level (gradient-boosted trees, as ``labkit evaluate``) on: the full feature set; the list
  of issue 18 (E_tot, E_k, x/y centres and widths, the hottest cell's energy and position, the
  number of cells hit, the depth and its width, E_ratio); that list plus the hottest cell of each
  layer; that list plus the cells hit per layer; the six features labkit had before
  (E_tot, E_k, r/x/y centres, r widths);
* low-level (the MLP of ``labkit evaluate``) on log10(cell/E_inc + 1e-6) and on cell/E_inc,
  both standardised (skip with ``--no-low-level``), with 1 and with ``--threads`` BLAS threads.

    .venv/bin/python benchmarks/shower_eval.py gen.h5 sim1.h5 sim2.h5      # about 5 min on 2 cores
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from labkit.tasks._generative import shower_features
from labkit.tasks._shower_io import read_calo_file
from labkit.tasks._showers import hl_classifier_auc, ll_classifier_auc

ISSUE_PREFIXES = ("etot", "elayer", "x_centre", "y_centre", "x_width", "y_width")
ISSUE_SINGLES = ("emax_over_einc", "emax_layer", "emax_r", "nhit", "depth_centre", "depth_width", "eratio")


def _issue(name: str) -> bool:
    return name.startswith(ISSUE_PREFIXES) or name in ISSUE_SINGLES


SUBSETS: dict[str, Callable[[str], bool]] = {
    "all features": lambda name: True,
    "issue 18 list": _issue,
    "issue 18 list + emax per layer": lambda n: _issue(n) or (n.startswith("emax_") and n[5:7].isdigit()),
    "issue 18 list + nhit per layer": lambda n: _issue(n) or n.startswith("nhit_"),
    "labkit before (E, centres, r widths)": lambda n: n.startswith(
        ("etot", "elayer", "r_centre", "r_width", "x_centre", "y_centre")
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("generated")
    parser.add_argument("reference")
    parser.add_argument("reference_2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-low-level", action="store_true")
    args = parser.parse_args()
    gen, ref, ref2 = (read_calo_file(p) for p in (args.generated, args.reference, args.reference_2))
    ref.check_same_grid(gen)
    ref.check_same_grid(ref2)
    feats = {
        key: shower_features(
            f.showers, f.incident_energy, ref.radial_edges, layer_thickness=ref.layer_thickness
        )
        for key, f in (("gen", gen), ("ref", ref), ("ref2", ref2))
    }
    energies = {"gen": gen.incident_energy, "ref": ref.incident_energy, "ref2": ref2.incident_energy}

    def rows(key: str, keep: Callable[[str], bool]) -> np.ndarray:
        return np.stack([v for k, v in feats[key].items() if keep(k)] + [np.log10(energies[key])], axis=1)

    print(f"{'test':<48}{'features':>9}{'AUC gen':>9}{'floor':>8}{'gap':>8}{'seconds':>9}")
    for name, keep in SUBSETS.items():
        start = time.perf_counter()
        a = hl_classifier_auc(rows("ref", keep), rows("gen", keep), seed=args.seed, test_fraction=0.4)
        b = hl_classifier_auc(rows("ref", keep), rows("ref2", keep), seed=args.seed, test_fraction=0.4)
        count = sum(map(keep, feats["ref"]))
        _row("HL: " + name, count, a, b, start)
    if args.no_low_level:
        return
    for transform, threads in (("log", 1), ("linear", 1), ("log", args.threads)):
        start = time.perf_counter()
        a, b = (
            ll_classifier_auc(
                ref.showers, ref.incident_energy, other.showers, other.incident_energy,
                seed=args.seed, test_fraction=0.4, transform=transform, threads=threads,
            )
            for other in (gen, ref2)
        )  # fmt: skip
        label = f"LL: {transform} cells, {threads} BLAS thread(s)"
        _row(label, gen.showers[0].size + 1, a, b, start)


def _row(label: str, count: int, auc: float, floor: float, start: float) -> None:
    seconds = time.perf_counter() - start
    print(f"{label:<48}{count:>9}{auc:>9.4f}{floor:>8.4f}{auc - floor:>+8.4f}{seconds:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
