"""``labkit export``: a trained run as ONNX and/or TorchScript, checked against PyTorch."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from labkit.cli._app import RunsRootOpt, TrackingUriOpt, _errors

#: the exit code of an export whose self-check found a difference over the tolerance (the files
#: are kept for inspection, but not logged to the run); a LabkitError (bad arguments, a model the
#: exporter cannot translate) exits 2
CHECK_FAILED = 3


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"
    both = "both"


def export(
    run: Annotated[
        str,
        typer.Argument(
            metavar="RUN",
            help="The run: its MLflow run id, its run key (or the key's first 8 characters), or its "
            "run directory.",
            show_default=False,
        ),
    ],
    fmt: Annotated[
        ExportFormat, typer.Option("--format", help="onnx (model.onnx), torchscript (model.pt) or both.")
    ] = ExportFormat.both,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="The folder to write to (default: RUN_DIR/export).", show_default=False
        ),
    ] = None,
    opset: Annotated[int, typer.Option("--opset", help="The ONNX opset (18 to 23).")] = 18,
    dynamic_batch: Annotated[
        bool,
        typer.Option("--dynamic-batch", help="Any batch size (default: the ONNX model takes batch 1)."),
    ] = False,
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance",
            help="Largest relative difference allowed between the exported model and PyTorch.",
        ),
    ] = 1e-5,
    events: Annotated[int, typer.Option("--events", min=1, help="Test-split events to check on.")] = 1000,
    log: Annotated[
        bool, typer.Option("--log/--no-log", help="Add the files to the run's MLflow artifacts (export/).")
    ] = True,
    runs_root: RunsRootOpt = Path("runs"),
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Write the model with its input normalisation folded in (raw inputs in, physical outputs
    out) and a model card, then check it against PyTorch on the run's test split: exit 3 when a
    difference is over the tolerance."""
    with _errors():
        from labkit.runner import export_run

        result = export_run(
            run,
            format=fmt.value,
            out_dir=output,
            opset=opset,
            dynamic_batch=dynamic_batch,
            runs_root=runs_root,
            tolerance=tolerance,
            events=events,
            log=log,
            tracking_uri=tracking_uri,
        )
        for path in result.files:
            print(f"wrote {path}")
        for note in result.notes:
            print(f"note: {note}")
        for check in result.checks:
            print(f"check: {check.line()}")
        worst = result.worst
        if not result.passed and worst is not None:
            print(
                f"labkit: error: export check failed: {worst.what} at batch {worst.batch}: max relative "
                f"difference {worst.max_rel:.3g} > tolerance {worst.tolerance:g}; the files in "
                f"{result.out_dir} are kept for inspection and not logged",
                file=sys.stderr,
            )
            raise typer.Exit(CHECK_FAILED)
        if worst is not None:
            print(f"max relative difference {worst.max_rel:.3g} <= {worst.tolerance:g}: ok")
        print(result.logged)
