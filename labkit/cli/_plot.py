"""``labkit plot``: cross-run physics curves as PNG/PDF for slides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labkit.cli._app import TrackingUriOpt, _errors


def plot(
    runs: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN...",
            help="MLflow run ids (or run directories / run keys under --runs-root).",
            show_default=False,
        ),
    ],
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="Draw a ratio panel to this run (or its seed group)."),
    ] = None,
    spectator: Annotated[
        str | None,
        typer.Option(help="Efficiency and rejection vs this spectator (default: the first the runs share)."),
    ] = None,
    working_point: Annotated[
        float,
        typer.Option("--working-point", help="Signal efficiency of the cut for the spectator curves."),
    ] = 0.7,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="out.png or out.pdf; further figures go beside it.")
    ] = Path("curves.png"),
    tracking_uri: TrackingUriOpt = None,
    runs_root: Annotated[
        Path | None,
        typer.Option("--runs-root", help="Also look for the runs' test outputs in run directories here."),
    ] = None,
) -> None:
    """Rejection vs efficiency (ratio to --reference), efficiency vs a spectator, SIC or resolution
    of the runs, drawn from the test outputs each run stored; runs differing only by seed are one
    band (mean ± σ)."""
    with _errors():
        from labkit._cache import default_cache_dir
        from labkit.report import default_uri, plot_runs, save_figures

        figures = plot_runs(
            runs,
            uri=default_uri(tracking_uri),
            cache_dir=default_cache_dir(),
            runs_root=runs_root,
            reference=reference,
            spectator=spectator,
            working_point=working_point,
        )
        written = save_figures(figures, output)
        print(f"labkit plot: {len(runs)} runs → {', '.join(map(str, written))}")
