"""``labkit submit``, ``status``, ``logs`` and ``cancel``: SLURM jobs (no torch: a login node)."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from labkit.cli._app import ClusterOpt, FileArg, OverridesArg, RunsRootOpt, SlurmOpt, _errors
from labkit.errors import LabkitError


def submit(
    file: FileArg,
    overrides: OverridesArg = None,
    cluster: ClusterOpt = "",
    slurm: SlurmOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the sbatch script; submit nothing.")
    ] = False,
) -> None:
    """Send an experiment to a SLURM cluster: render the site's sbatch script, submit it, print the job id."""
    with _errors():
        from labkit.cluster import load_profile, submit_run
        from labkit.config import load_experiment

        if not cluster:
            raise LabkitError("--cluster PROFILE is required (a file such as cluster/slurm-local.yaml)")
        profile, profile_path = load_profile(cluster, slurm or [])
        exp = load_experiment(file, [*profile.overrides, *(overrides or [])])
        command = shlex.join(["labkit", *sys.argv[1:]])
        _check_webhook(exp)
        done = submit_run(
            exp,
            profile,
            profile_path,
            source=Path(file).resolve(),
            command=command,
            dry_run=dry_run,
            environ=os.environ,  # what sbatch passes on to the job: read here, at the edge
        )
        if dry_run:
            print(done.script, end="")
            return
        print(
            f"labkit: submitted job {done.job_id} to {profile.name}; run directory {done.job_dir}\n"
            f"        follow it with: labkit status {done.job_id} / labkit logs {done.job_id} -f",
            file=sys.stderr,
        )
        print(done.job_id)


def _check_webhook(exp: object) -> None:
    """The job inherits this environment (sbatch passes it on): warn here if ``notify.webhook_env``
    names a variable that is not set, as the job would in its log. The URL is never in the script."""
    from labkit.notify import Notifier

    Notifier.from_config(getattr(exp, "notify", None), os.environ, stream=sys.stderr)


def status(
    jobs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[JOB]...", help="Job ids (default: the jobs submitted from here).", show_default=False
        ),
    ] = None,
    runs_root: RunsRootOpt = Path("runs"),
) -> None:
    """State, elapsed time, nodes and GPU-hours of SLURM jobs, with the GPU-hours summed."""
    with _errors():
        from labkit.cluster import Executor

        rows, total = Executor().status(jobs or [], runs_root=runs_root)
        if not rows:
            print(f"labkit: no jobs (none given, none submitted from {runs_root})")
            return
        _print_table(rows)
        print(f"GPU-hours so far: {total:.2f}")


def logs(
    job: Annotated[str, typer.Argument(metavar="JOB", help="A job id (123, or 123_4 for an array task).")],
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing until the job ends.")] = False,
    runs_root: RunsRootOpt = Path("runs"),
) -> None:
    """Print a job's log (its sbatch output file)."""
    with _errors():
        from labkit.cluster import follow_log, log_file

        path = log_file(job, runs_root)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends -f
            follow_log(path, job if follow else None, sys.stdout)


def cancel(
    jobs: Annotated[
        list[str], typer.Argument(metavar="JOB...", help="Job ids to cancel.", show_default=False)
    ],
) -> None:
    """Cancel SLURM jobs (scancel). A training job saves a checkpoint first; its run is marked KILLED."""
    with _errors():
        from labkit.cluster import Executor

        Executor().cancel(jobs)
        print(f"labkit: cancelled {', '.join(jobs)}")


def _print_table(rows: list[dict[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for key in rows[0]:
        table.add_column(key, justify="right" if key in ("ELAPSED", "GPUS", "GPU-H") else "left")
    for row in rows:
        table.add_row(*row.values())
    Console(width=200 if not sys.stdout.isatty() else None).print(table)
