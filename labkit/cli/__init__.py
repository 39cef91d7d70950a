"""The ``labkit`` command. Thin: parse at the edge, hand typed objects inward.

One module per flow: :mod:`._run` (run, check, sim, generate, reproduce), :mod:`._cluster`
(submit, status, logs, cancel), :mod:`._tune`, :mod:`._server`, :mod:`._meetings` (compare,
report, ui, sync); :mod:`._app` holds the app, the shared options and the error mapping.

Heavy libraries (torch, Lightning, MLflow) are imported inside the commands that need them, so
``labkit --help`` answers at once on a login node.
"""

from __future__ import annotations

from labkit.cli._app import app, main
from labkit.cli._cluster import cancel, logs, status, submit
from labkit.cli._evaluate import evaluate
from labkit.cli._export import export
from labkit.cli._meetings import compare, report, sync, ui
from labkit.cli._plot import plot
from labkit.cli._predict import predict
from labkit.cli._run import check, generate, reproduce, run, sim
from labkit.cli._server import server_app
from labkit.cli._tune import tune_app

__all__ = ["app", "main"]

# registered here, in the order ``labkit --help`` lists them
for _command in (
    run,
    check,
    submit,
    status,
    logs,
    cancel,
    sim,
    generate,
    evaluate,
    predict,
    export,
    ui,
    sync,
    compare,
    report,
    plot,
    reproduce,
):
    app.command()(_command)
app.add_typer(tune_app, name="tune")
app.add_typer(server_app, name="server")
del _command
