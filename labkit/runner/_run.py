"""``labkit run``: one experiment → one run directory → one MLflow run."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from labkit._rundir import JobOptions
from labkit.config import Experiment
from labkit.runner._outcome import RunOptions, RunResult
from labkit.runner._session import RunSession

__all__ = ["RunHooks", "RunOptions", "RunResult", "run"]

#: the former name of :class:`RunOptions` (deprecated): what a caller adds to a run
RunHooks = RunOptions


def run(
    exp: Experiment,
    *,
    progress: str = "auto",
    command: str | None = None,
    source: Path | None = None,
    stream: TextIO | None = None,
    options: RunOptions | None = None,
    run_dir: Path | None = None,
    job: JobOptions | None = None,
    hooks: RunOptions | None = None,
) -> RunResult:
    """Train, validate and test ``exp``; log everything to its run directory and to MLflow.

    ``progress`` is ``auto``, ``rich``, ``plain`` or ``none``; ``source`` is the experiment file
    (it locates the git checkout); ``command`` is recorded as the ``labkit.command`` tag.
    ``run_dir`` names an existing run directory (``labkit submit`` creates one per job): a run
    it holds already is resumed, from its newest checkpoint, into the same MLflow run.
    ``options`` adds tags, callbacks or a checkpoint to resume from (``hooks`` is its former,
    deprecated name); ``job``: the options of the batch job running this process (the CLI reads
    them from the job's environment); None: the defaults.

    Under DDP every rank trains; only rank 0 writes the run directory and talks to MLflow. For
    more control (a pruned trial skips its test), compose a :class:`RunSession` yourself.
    """
    session = RunSession(
        exp,
        run_dir=run_dir,
        source=source,
        command=command,
        progress=progress,
        stream=stream,
        job=job,
        options=options or hooks,
    )
    with session:
        built = session.build()
        session.start(built)
        fitted = session.fit(built)
        session.finish(fitted, session.test(fitted))
    assert session.result is not None
    return session.result
