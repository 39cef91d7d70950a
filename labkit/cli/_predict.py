"""``labkit predict``: a trained run's outputs for every event of a file (HDF5, ROOT, Parquet)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from labkit.cli._app import RunsRootOpt, TrackingUriOpt, _errors, _importable_here
from labkit.errors import LabkitError


class Split(str, Enum):
    test = "test"
    all = "all"


def predict(
    run_id: Annotated[
        str,
        typer.Argument(
            metavar="RUN",
            help="The run: its MLflow run id, its run key (or the key's first 8 characters), or its "
            "run directory.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Where to write: OUT.h5, OUT.root (a TTree 'predictions') or OUT.parquet."
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="A file in the layout the run trained on (the same keys); default: the run's own data.",
            show_default=False,
        ),
    ] = None,
    split: Annotated[
        Split | None,
        typer.Option(
            "--split",
            help="The run's own data: its test split (default) or all events. A --data file is read whole.",
            show_default=False,
        ),
    ] = None,
    spectators: Annotated[
        str,
        typer.Option("--spectators", help="Columns of the file to copy into each row, e.g. pt,eta."),
    ] = "",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Events per forward pass.")] = 1024,
    runs_root: RunsRootOpt = Path("runs"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
    log: Annotated[
        bool,
        typer.Option(
            "--log",
            help="Record the output with the run: a tag labkit.predictions.<name> and a reference "
            "predictions/<name>.json (path, size, sha256, columns) in its MLflow artifacts.",
        ),
    ] = False,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Score events with a trained run: one row per event with the model's outputs, the truth and
    spectator columns, streamed in chunks."""
    with _errors():
        if output is None:
            raise LabkitError("-o OUT.h5 (or .root, .parquet) is required: where to write the predictions")
        if output.exists() and not force:
            raise LabkitError(f"{output} exists; choose another -o or add --force to overwrite it")
        _importable_here()  # a class_path model next to the experiment
        from labkit.runner import load_trained, record_prediction
        from labkit.runner import predict as run_predict

        trained = load_trained(run_id, runs_root=runs_root)
        done = run_predict(
            trained,
            out=output,
            data=data,
            split=split.value if split is not None else None,
            spectators=spectators.split(","),
            batch_size=batch_size,
        )
        typer.echo(
            f"labkit: wrote {done.events} events ({done.split} of {done.source}) to {done.path} in "
            f"{done.seconds:.1f} s: {', '.join(done.columns)}"
        )
        if log:
            typer.echo(f"labkit: {record_prediction(trained.run_dir, done, uri=tracking_uri)}")
