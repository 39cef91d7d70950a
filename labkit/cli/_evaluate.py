"""``labkit evaluate``: judge generated calorimeter showers against simulated ones, CaloChallenge-style.

Torch-free: numpy, h5py and scikit-learn (matplotlib only with ``-o``)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from labkit.cli._app import _errors
from labkit.errors import LabkitError

if TYPE_CHECKING:
    from labkit.tasks import ShowerEvaluation


def evaluate(
    generated: Annotated[
        Path,
        typer.Argument(
            metavar="GENERATED.h5",
            help="Showers to judge, in the calo layout (labkit generate, or any file with datasets "
            "showers and incident_energy and attributes radial_edges and layer_thickness).",
            show_default=False,
        ),
    ],
    reference: Annotated[
        Path,
        typer.Option(
            "--reference", metavar="SIM.h5", help="Simulated showers to compare with.", show_default=False
        ),
    ],
    reference_2: Annotated[
        Path | None,
        typer.Option(
            "--reference-2",
            metavar="SIM2.h5",
            help="A second, independent simulated sample: the same tests against --reference give the "
            "floor, and the gaps to it.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            metavar="OUTDIR",
            help="Write metrics.json, separation.csv and the figures (PNG) into this directory.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Seed of the splits and classifiers.")] = 0,
    low_level: Annotated[
        bool,
        typer.Option(
            "--low-level/--no-low-level", help="Run the low-level (cell) classifier (the slower test)."
        ),
    ] = True,
) -> None:
    """Judge generated showers against simulated ones: high- and low-level classifier AUCs, FPD, KPD
    and per-feature separation power (with --reference-2: the simulator's floor and the gaps)."""
    with _errors():
        from labkit.tasks import evaluate_showers, read_calo_file

        if output is not None:  # before minutes of work
            try:
                output.expanduser().mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LabkitError(f"-o {output}: cannot make the directory ({exc.strerror})") from None

        ref = read_calo_file(reference)
        gen = read_calo_file(generated)
        ref.check_same_grid(gen)
        ref2 = None
        if reference_2 is not None:
            ref2 = read_calo_file(reference_2)
            ref.check_same_grid(ref2)
        result = evaluate_showers(
            gen.showers,
            ref.showers,
            energy_generated=gen.incident_energy,
            energy_reference=ref.incident_energy,
            radial_edges=ref.radial_edges,
            layer_thickness=ref.layer_thickness,
            reference_2=ref2.showers if ref2 else None,
            energy_reference_2=ref2.incident_energy if ref2 else None,
            seed=seed,
            low_level=low_level,
        )
        names = f"{generated} ({len(gen.showers)} showers) vs {reference} ({len(ref.showers)})"
        if ref2 is not None:
            names += f", floor {reference_2} ({len(ref2.showers)}) vs {reference}"
        print(f"labkit evaluate: {names} in {result.seconds:.0f} s")
        print(_table(result))
        if output is not None:
            from labkit.tasks import write_evaluation

            written = write_evaluation(result, output)
            print(f"labkit evaluate: wrote {len(written)} files to {output}", file=sys.stderr)


def _table(result: ShowerEvaluation) -> str:
    g, f = result.generated, result.floor
    floor_head = f"  {'floor':>9}  {'gap':>8}" if f else ""
    lines = [f"  {'':<28}{'generated':>9}{floor_head}"]

    def row(label: str, value: float, floor: float | None = None, gap: bool = False) -> None:
        if math.isnan(value):
            return
        text = f"  {label:<28}{value:>9.4f}"
        if floor is not None:
            text += f"  {floor:>9.4f}"
            if gap:
                text += f"  {value - floor:>+8.4f}"
        lines.append(text)

    row("high-level classifier AUC", g.hl_auc, f.hl_auc if f else None, gap=True)
    row("low-level classifier AUC", g.ll_auc, f.ll_auc if f else None, gap=True)
    row("FPD", g.fpd, f.fpd if f else None)
    row("KPD", g.kpd, f.kpd if f else None)
    mean = sum(g.separation.values()) / len(g.separation)
    row("mean separation power", mean, sum(f.separation.values()) / len(f.separation) if f else None)
    worst = ", ".join(f"{name} {value:.4f}" for name, value in result.worst_features(5))
    lines.append(f"  worst features (separation power): {worst}")
    return "\n".join(lines)
