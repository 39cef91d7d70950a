"""``labkit tune``: run a study (here or as a SLURM array), look at it, write its best trial."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from labkit.cli._app import FileArg, OverridesArg, SlurmOpt, _errors, _importable_here, _write_output
from labkit.config import redact_uri
from labkit.errors import LabkitError


class _TuneGroup(TyperGroup):
    """``labkit tune FILE ...`` runs a study; ``labkit tune status|best ...`` look at one."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


tune_app = typer.Typer(
    cls=_TuneGroup,
    help="Hyperparameter search: labkit tune FILE [KEY=VALUE]... [--trials N] [--workers K] "
    "[--cluster PROFILE]; labkit tune status|best --study NAME. See labkit tune start --help.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


StudyOpt = Annotated[str | None, typer.Option("--study", help="Study name (default: the experiment's name).")]


StudyNameOpt = Annotated[
    str | None, typer.Option("--study", help="Study name (required).", show_default=False)
]


StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage", help="sqlite:///file.db (one machine) or postgresql://... (default: runs/optuna.db)."
    ),
]


@tune_app.command("start")
def tune_start(
    file: FileArg,
    overrides: OverridesArg = None,
    trials: Annotated[int | None, typer.Option(min=1, max=10**6, help="Finished trials to end with.")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1, max=1000, help="Worker processes (up to 256) or SLURM array tasks pulling trials."
        ),
    ] = 1,
    storage: StorageOpt = None,
    study: StudyOpt = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="Submit the workers as one SLURM job array with this site profile and return at once.",
        ),
    ] = None,
    slurm: SlurmOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="With --cluster: print the workers' sbatch script; submit nothing."),
    ] = False,
) -> None:
    """Run (or resume) a study until it holds exactly N finished trials."""
    with _errors():
        from labkit.config import load_experiment

        _importable_here()
        if cluster is None and (slurm or dry_run):
            raise LabkitError("--slurm and --dry-run go with --cluster PROFILE")
        profile = profile_path = None
        if cluster is not None:
            from labkit.cluster import load_profile

            profile, profile_path = load_profile(cluster, slurm or [])
        exp = load_experiment(file, [*(profile.overrides if profile else []), *(overrides or [])])
        from labkit.tuning import default_storage

        name = study or exp.name
        url = storage or default_storage(exp.runs_root)
        if profile is not None:
            from labkit.notify import Notifier
            from labkit.tuning import submit_study

            Notifier.from_config(exp.notify, os.environ, stream=sys.stderr)  # unset: warn here too

            done = submit_study(
                exp,
                profile,
                profile_path,
                study=name,
                storage=url,
                trials=trials,
                workers=workers,
                dry_run=dry_run,
                environ=os.environ,
            )
            if dry_run:
                print(done.script, end="")
                return
            print(
                f"labkit tune: submitted {workers} workers as array job {done.array_job} to {profile.name}, "
                f"summary job {done.summary_job} after them; scripts and logs in {done.folder}\n"
                f"  progress   labkit tune status --study {name} --storage {redact_uri(url)}\n"
                f"  jobs       labkit status {done.array_job} {done.summary_job}",
                file=sys.stderr,
            )
            print(done.array_job)
            return
        from labkit.notify import Notifier
        from labkit.tuning import Heartbeat, tune

        report = tune(
            exp,
            study=name,
            storage=url,
            trials=trials,
            workers=workers,
            heartbeat=Heartbeat.from_environ(os.environ),
            environ=os.environ,
            notifier=Notifier.from_config(exp.notify, os.environ, stream=sys.stderr),
        )
        _print_report(report, url)
        print(f"  next       labkit tune best --study {name} --storage {redact_uri(url)} -o best.yaml")


@tune_app.command("status")
def tune_status(study: StudyNameOpt = None, storage: StorageOpt = None) -> None:
    """Trials by state, the best so far, and an estimate of the time left."""
    with _errors():
        from labkit.tuning import Heartbeat, StudyHandle, default_storage, study_report

        if study is None:
            raise LabkitError("--study NAME is required")
        url = storage or default_storage()
        handle = StudyHandle.load(study, url, heartbeat=Heartbeat.from_environ(os.environ))
        _print_report(study_report(handle), url)


@tune_app.command("best")
def tune_best(
    study: StudyNameOpt = None,
    storage: StorageOpt = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")
    ] = None,
    trial: Annotated[
        int | None,
        typer.Option(
            "--trial", min=0, help="This complete trial instead of the best (a point of the front)."
        ),
    ] = None,
    write: Annotated[
        Path | None,
        typer.Option(
            "--write", help="Several objectives: one file per point of the front (or --trial) in this folder."
        ),
    ] = None,
) -> None:
    """Write the best trial as a runnable experiment file; for several objectives, list the Pareto front."""
    with _errors():
        from labkit.tuning import (
            Heartbeat,
            StudyHandle,
            best_experiment,
            default_storage,
            format_front,
            is_multi_objective,
            pareto_front,
            point_experiment,
            write_front,
        )

        if study is None:
            raise LabkitError("--study NAME is required")
        heartbeat = Heartbeat.from_environ(os.environ)
        handle = StudyHandle.load(study, storage or default_storage(), heartbeat=heartbeat)
        multi = is_multi_objective(handle)
        if write is not None and not multi:
            raise LabkitError(
                "--write is for a study of several objectives; write its best trial with -o FILE"
            )
        if write is not None and output is not None:
            raise LabkitError("--write DIR and -o FILE: give one of them")
        if multi and trial is None and output is not None:
            raise LabkitError(
                f"study {study!r} has several objectives: choose a point with --trial N -o {output}, "
                "or write every point with --write DIR"
            )
        if multi and (trial is None or write is not None):
            print("\n".join(format_front(handle, pareto_front(handle))))
        if write is not None:
            paths = write_front(handle, write, trial=trial)
            print(f"labkit: wrote {len(paths)} file{'s' * (len(paths) != 1)} in {write}; train one with: "
                  f"labkit run {paths[0]}")  # fmt: skip
            return
        if multi and trial is None:
            print(f"  next       labkit tune best --study {study} --write DIR, or --trial N -o FILE")
            return
        text = best_experiment(handle) if trial is None else point_experiment(handle, trial)
        if output is None:
            print(text, end="")
        else:
            _write_output(output, text)
            print(f"labkit: wrote {output}; train it with: labkit run {output}")


@tune_app.command("worker", hidden=True)
def tune_worker(study: StudyNameOpt = None, storage: StorageOpt = None) -> None:
    """Claim and run trials of an existing study (started by labkit tune, or a SLURM array)."""
    with _errors():
        from labkit.runner import JobOptions
        from labkit.tuning import Heartbeat, default_storage, worker_loop

        if study is None:
            raise LabkitError("--study NAME is required")
        worker_loop(
            study,
            storage or os.environ.get("LABKIT_STUDY_STORAGE") or default_storage(),
            job=JobOptions.from_environ(os.environ),
            heartbeat=Heartbeat.from_environ(os.environ),
        )


@tune_app.command("summarize", hidden=True)
def tune_summarize(study: StudyNameOpt = None, storage: StorageOpt = None) -> None:
    """Summarise a study onto its MLflow parent run (the job that follows a SLURM worker array)."""
    with _errors():
        from labkit.tuning import Heartbeat, default_storage, summarize_study

        if study is None:
            raise LabkitError("--study NAME is required")
        url = storage or os.environ.get("LABKIT_STUDY_STORAGE") or default_storage()
        # the job's environment: where notify.webhook_env's variable is looked up (study_done)
        summarize_study(study, url, heartbeat=Heartbeat.from_environ(os.environ), environ=os.environ)
        from labkit.tuning import StudyHandle, study_report

        _print_report(study_report(StudyHandle.load(study, url)), url)


def _print_report(report: Any, url: str) -> None:
    t = report.tally
    c = t.counts
    print(f"labkit: study {report.study} ({redact_uri(url)})")
    print(
        f"  trials     {t.finished}/{report.total} finished: {c.get('COMPLETE', 0)} complete, "
        f"{c.get('PRUNED', 0)} pruned, {c.get('FAIL', 0)} failed; {c.get('RUNNING', 0)} running, "
        f"{c.get('WAITING', 0)} waiting"
        + (f"; {t.superseded} retried after a worker died" if t.superseded else "")
    )
    if report.best_value is not None:
        print(f"  best       trial {report.best_trial}: {report.best_value:.6g}")
        for key, value in report.best_params.items():
            print(f"             {key} = {value}")
    if report.front_size is not None:
        print(
            f"  front      {report.front_size} complete trial(s) on the Pareto front of "
            f"{', '.join(report.objectives)}; labkit tune best --study {report.study} lists them"
        )
    if report.eta_seconds and not report.stopped:
        print(f"  time left  about {report.eta_seconds / 60:.1f} min")
    _print_budget(report)


def _print_budget(report: Any) -> None:
    """``search.budget``: spent and left of each limit, and why the study stopped claiming."""
    for i, line in enumerate(report.budget_lines()):
        print(f"  {'budget' if i == 0 else '':10s} {line}")
    if report.stopped:
        print(f"  stopped    {report.stopped}; the waiting trials stay queued (raise search.budget to go on)")
