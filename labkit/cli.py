"""The ``labkit`` command. Thin: parse at the edge, hand typed objects inward.

Heavy libraries (torch, Lightning, MLflow) are imported inside the commands that need them, so
``labkit --help`` answers at once on a login node.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from labkit import __version__
from labkit.config import redact_uri
from labkit.errors import LabkitError

if TYPE_CHECKING:
    from labkit.runner import RunResult

app = typer.Typer(
    name="labkit",
    help="Experiment files in, tracked Lightning runs out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Progress(str, Enum):
    auto = "auto"
    rich = "rich"
    plain = "plain"
    none = "none"


FileArg = Annotated[
    str, typer.Argument(metavar="FILE", help="The experiment file (YAML).", show_default=False)
]
OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[KEY=VALUE]...",
        help="Dotted overrides merged over the file, e.g. trainer.max_epochs=3 model.hidden=[64,64] seed=7.",
        show_default=False,
    ),
]


def _fail(message: str, code: int) -> NoReturn:
    print(f"labkit: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


class _Flags:
    """Options of the ``labkit`` command itself, set by its callback."""

    debug = False  #: ``labkit --debug ...`` (or ``LABKIT_DEBUG=1``): show an unexpected error's traceback


#: errors of the machine or the file system that the user fixes (free space, permissions): exit 2
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "file name too long",
}


@contextmanager
def _errors() -> Iterator[None]:
    """LabkitError → one message, exit 2. Anything else is a bug: one line and exit 1, with the
    traceback under ``--debug`` or when it came out of training (the user's own code)."""
    try:
        yield
    except LabkitError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted; the run is marked KILLED", 130)
    except (typer.Exit, typer.Abort):
        raise
    except SystemExit as exc:
        if type(exc).__name__ == "SIGTERMException":  # Lightning's, on SIGTERM during training
            _fail("terminated by SIGTERM; the run is marked KILLED", 128 + signal.SIGTERM)
        raise
    except Exception as exc:  # noqa: BLE001 - the last resort
        _unexpected(exc)
    except BaseException as exc:
        if type(exc).__name__ != "Preempted":  # labkit.runner's; importing it would import Lightning
            raise
        if getattr(exc, "requeue", False):
            print(f"labkit: {exc}; the job is requeued and resumes from it", file=sys.stderr)
            raise typer.Exit(0) from None
        _fail(f"{exc}; the run is marked KILLED and resumes from it if the job is requeued", 143)


def _unexpected(exc: Exception) -> NoReturn:
    """The last resort for an exception labkit did not turn into a LabkitError."""
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        where = f" writing {exc.filename}" if exc.filename else ""
        problem = _ENVIRONMENT_ERRNOS[exc.errno]
        _fail(f"{problem}{where} ({exc.strerror}); free space or fix the permissions", 2)
    if _from_training(exc):
        traceback.print_exc()
        _fail(
            "training failed with the error above (raised in the model's or module's code); "
            "the run is marked FAILED",
            1,
        )
    if _Flags.debug:
        traceback.print_exc()
        _fail("the command failed with the error above (a bug: please report it with this traceback)", 1)
    text = " ".join(str(exc).split()) or "(no message)"
    if len(text) > 300:
        text = text[:297] + "..."
    _fail(
        f"unexpected {type(exc).__name__}: {text} (labkit should have said what to fix; "
        "rerun with labkit --debug ... for the traceback and report it)",
        1,
    )


_TRAINING_MODULES = ("lightning.pytorch.loops", "lightning.pytorch.trainer")


def _from_training(exc: BaseException) -> bool:
    """Whether ``exc`` came out of Lightning's fit/test loops, i.e. from the user's own training
    code (a model's forward, a module's step): its traceback is what they need to see."""
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        name = frame.f_globals.get("__name__", "")
        if isinstance(name, str) and name.startswith(_TRAINING_MODULES):
            return True
    return False


def _version(value: bool) -> None:
    if value:
        print(f"labkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="LABKIT_DEBUG",
            help="Print the traceback of an unexpected error (for a bug report).",
        ),
    ] = False,
) -> None:
    """Experiment files in, tracked Lightning runs out."""
    _Flags.debug = debug


@app.command()
def run(
    file: FileArg,
    overrides: OverridesArg = None,
    progress: Annotated[
        Progress, typer.Option(help="Rich bars on a terminal, plain lines in logs (auto), or none.")
    ] = Progress.auto,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run-dir",
            help="Use this run directory (made by labkit submit); a run it holds is resumed from its "
            "newest checkpoint into the same MLflow run.",
        ),
    ] = None,
) -> None:
    """Train, validate and test an experiment; log it to MLflow; print the run id."""
    with _errors():
        from labkit.config import load_experiment

        _importable_here()
        exp = load_experiment(file, overrides or [])
        from labkit.runner import run as run_experiment

        command = shlex.join(["labkit", *sys.argv[1:]])
        source = None if run_dir else Path(file).resolve()
        result = run_experiment(exp, progress=progress.value, command=command, source=source, run_dir=run_dir)
        if _is_leader():
            _summary(result)


@app.command()
def check(file: FileArg, overrides: OverridesArg = None) -> None:
    """Validate an experiment and print it fully resolved (defaults filled in); train nothing."""
    with _errors():
        from labkit.config import dump_experiment, load_experiment

        print(dump_experiment(load_experiment(file, overrides or [])), end="")


ClusterOpt = Annotated[
    str,
    typer.Option(
        "--cluster",
        help="Site profile: a file (cluster/site.yaml) or a name in ./cluster/.",
        show_default=False,
    ),
]
SlurmOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--slurm",
        metavar="KEY=VALUE",
        help="Change a profile field for this job, e.g. --slurm time=02:00:00 --slurm tasks_per_node=2.",
        show_default=False,
    ),
]
RunsRootOpt = Annotated[
    Path, typer.Option("--runs-root", help="Where labkit keeps its runs and the list of submitted jobs.")
]


@app.command()
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
        from labkit.cluster._profile import load_profile
        from labkit.cluster._submit import submit_run
        from labkit.config import load_experiment

        if not cluster:
            raise LabkitError("--cluster PROFILE is required (a file such as cluster/slurm-local.yaml)")
        profile, profile_path = load_profile(cluster, slurm or [])
        exp = load_experiment(file, [*profile.overrides, *(overrides or [])])
        command = shlex.join(["labkit", *sys.argv[1:]])
        done = submit_run(
            exp, profile, profile_path, source=Path(file).resolve(), command=command, dry_run=dry_run
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


@app.command()
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
        from labkit.cluster._status import job_table

        rows, total = job_table(jobs or [], runs_root)
        if not rows:
            print(f"labkit: no jobs (none given, none submitted from {runs_root})")
            return
        _print_table(rows)
        print(f"GPU-hours so far: {total:.2f}")


@app.command()
def logs(
    job: Annotated[str, typer.Argument(metavar="JOB", help="A job id (123, or 123_4 for an array task).")],
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing until the job ends.")] = False,
    runs_root: RunsRootOpt = Path("runs"),
) -> None:
    """Print a job's log (its sbatch output file)."""
    with _errors():
        from labkit.cluster._status import follow_log, log_file

        path = log_file(job, runs_root)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends -f
            follow_log(path, job if follow else None, sys.stdout)


@app.command()
def cancel(
    jobs: Annotated[
        list[str], typer.Argument(metavar="JOB...", help="Job ids to cancel.", show_default=False)
    ],
) -> None:
    """Cancel SLURM jobs (scancel). A training job saves a checkpoint first; its run is marked KILLED."""
    with _errors():
        from labkit.cluster._slurm import cancel as scancel

        scancel(jobs)
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


def _is_leader() -> bool:
    """Rank 0 of a multi-process (DDP) job, or a single process: it alone prints summaries."""
    for var in ("RANK", "SLURM_PROCID"):
        if os.environ.get(var, "0") != "0" and (var == "RANK" or os.environ.get("SLURM_NTASKS", "1") != "1"):
            return False
    return True


@app.command()
def sim(
    simulator: Annotated[
        str, typer.Argument(metavar="SIMULATOR", help="calo, grf, tracks or dijet.", show_default=False)
    ],
    options: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[KEY=VALUE]...",
            help="Simulator options, e.g. particle=pion energy_range=[1,50] (labkit sim calo --list).",
            show_default=False,
        ),
    ] = None,
    events: Annotated[int, typer.Option("-n", "--events", min=1, help="Number of events.")] = 1000,
    seed: Annotated[
        int,
        typer.Option(
            min=0, max=2**32 - 1, help="Random seed: the same arguments and seed give the same file."
        ),
    ] = 0,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="The HDF5 file to write.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
    list_options: Annotated[
        bool, typer.Option("--list", help="List the simulator's options and defaults.")
    ] = False,
) -> None:
    """Generate events with one of labkit's seeded physics simulators and write them to HDF5."""
    with _errors():
        from labkit import sim as simulators
        from labkit.config import parse_value
        from labkit.errors import ConfigError, did_you_mean

        names = sorted(simulators.SIMULATORS)
        if simulator not in names:
            hint = did_you_mean(simulator, names)
            raise ConfigError(f"no simulator {simulator!r}{hint}; choose one of: {', '.join(names)}")
        if list_options:
            for key, default in simulators.options(simulator).items():
                print(f"{key} = {default!r}")
            return
        if output is None:
            raise LabkitError("-o FILE.h5 is required (where to write the events)")
        if output.is_dir():
            raise LabkitError(f"-o {output} is a directory; give the file to write, e.g. {output}/events.h5")
        if output.exists() and not force:
            raise LabkitError(f"{output} exists; choose another -o or add --force to overwrite it")
        kwargs: dict[str, Any] = {}
        for item in options or []:
            key, sep, value = item.partition("=")
            if not sep or not key.isidentifier():
                raise ConfigError(f"simulator option {item!r}: write KEY=VALUE, e.g. particle=pion")
            kwargs[key] = parse_value(value, what=f"simulator option {item!r}")
        # options and size checked (a trillion events fails here, not in the allocator)
        simulators.SIMULATORS[simulator].check_size(events, kwargs, field="-n/--events")
        start = time.perf_counter()
        sample = simulators.simulate(simulator, events, seed=seed, **kwargs)
        generated = time.perf_counter() - start
        tmp = output.with_name(f".{output.name}.tmp{os.getpid()}")
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            simulators.write_h5(sample, tmp)
            os.replace(tmp, output)
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise LabkitError(f"-o {output}: cannot write it ({why}); choose another path") from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in simulators.as_arrays(sample).items())
        print(
            f"labkit: wrote {events} {simulator} events (seed {seed}) to {output} in {generated:.1f} s "
            f"({output.stat().st_size / 1e6:.1f} MB): {shapes}"
        )


@app.command()
def generate(
    run_id: Annotated[
        str,
        typer.Argument(
            metavar="RUN_ID",
            help="The surrogate's run: its MLflow run id, its run key (or the key's first 8 characters), "
            "or its run directory.",
            show_default=False,
        ),
    ],
    events: Annotated[int, typer.Option("-n", "--events", min=1, help="Number of showers.")] = 1000,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="The HDF5 file to write.")] = None,
    energy_range: Annotated[
        tuple[float, float] | None,
        typer.Option(
            "--energy-range",
            metavar="LO HI",
            help="Incident energies log-uniform in [LO, HI] GeV (default: the range it was trained on).",
            show_default=False,
        ),
    ] = None,
    energy: Annotated[
        float | None,
        typer.Option("--energy", help="One incident energy (GeV) for every shower.", show_default=False),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            min=0, max=2**32 - 1, help="Random seed: the same run, arguments and seed give the same file."
        ),
    ] = 0,
    runs_root: RunsRootOpt = Path("runs"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
) -> None:
    """Write showers from a trained surrogate (task: surrogate) in its simulator's HDF5 layout."""
    with _errors():
        if output is None:
            raise LabkitError("-o FILE.h5 is required (where to write the showers)")
        if output.exists() and not force:
            raise LabkitError(f"{output} exists; choose another -o or add --force to overwrite it")
        if energy is not None and energy_range is not None:
            raise LabkitError("give --energy E or --energy-range LO HI, not both")
        from labkit.runner._generate import find_run_dir, generate_showers, load_surrogate

        run_dir = find_run_dir(run_id, runs_root)
        loaded = load_surrogate(run_dir)
        wanted = (energy, energy) if energy is not None else energy_range
        done = generate_showers(loaded, events, output, energy_range=wanted, seed=seed)
        lo, hi = done.energy_range
        if done.extrapolated:
            t_lo, t_hi = done.training_range
            print(
                f"labkit: warning: energies {lo:g}-{hi:g} GeV reach outside the training range "
                f"{t_lo:g}-{t_hi:g} GeV: the surrogate extrapolates there",
                file=sys.stderr,
            )
        shown = f"{lo:g} GeV" if lo == hi else f"{lo:g}-{hi:g} GeV"
        print(
            f"labkit: wrote {events} showers ({shown}, seed {seed}) from surrogate run {run_dir} to {output} "
            f"in {done.seconds:.1f} s ({1e3 * done.seconds / events:.3f} ms per shower)"
        )


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
app.add_typer(tune_app, name="tune")

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
            from labkit.cluster._profile import load_profile

            profile, profile_path = load_profile(cluster, slurm or [])
        exp = load_experiment(file, [*(profile.overrides if profile else []), *(overrides or [])])
        from labkit.tuning import default_storage

        name = study or exp.name
        url = storage or default_storage(exp.runs_root)
        if profile is not None:
            from labkit.tuning._cluster import submit_study

            done = submit_study(
                exp,
                profile,
                profile_path,
                study=name,
                storage=url,
                trials=trials,
                workers=workers,
                dry_run=dry_run,
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
        from labkit.tuning import tune

        report = tune(exp, study=name, storage=url, trials=trials, workers=workers)
        _print_report(report, url)
        print(f"  next       labkit tune best --study {name} --storage {redact_uri(url)} -o best.yaml")


@tune_app.command("status")
def tune_status(study: StudyNameOpt = None, storage: StorageOpt = None) -> None:
    """Trials by state, the best so far, and an estimate of the time left."""
    with _errors():
        from labkit.tuning import StudyHandle, default_storage, study_report

        if study is None:
            raise LabkitError("--study NAME is required")
        url = storage or default_storage()
        _print_report(study_report(StudyHandle.load(study, url)), url)


@tune_app.command("best")
def tune_best(
    study: StudyNameOpt = None,
    storage: StorageOpt = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write the best trial as a runnable experiment file."""
    with _errors():
        from labkit.tuning import StudyHandle, best_experiment, default_storage

        if study is None:
            raise LabkitError("--study NAME is required")
        text = best_experiment(StudyHandle.load(study, storage or default_storage()))
        if output is None:
            print(text, end="")
        else:
            _write_output(output, text)
            print(f"labkit: wrote {output}; train it with: labkit run {output}")


@tune_app.command("worker", hidden=True)
def tune_worker(study: StudyNameOpt = None, storage: StorageOpt = None) -> None:
    """Claim and run trials of an existing study (started by labkit tune, or a SLURM array)."""
    with _errors():
        from labkit.tuning import default_storage, worker_loop

        if study is None:
            raise LabkitError("--study NAME is required")
        worker_loop(study, storage or os.environ.get("LABKIT_STUDY_STORAGE") or default_storage())


@tune_app.command("summarize", hidden=True)
def tune_summarize(study: StudyNameOpt = None, storage: StorageOpt = None) -> None:
    """Summarise a study onto its MLflow parent run (the job that follows a SLURM worker array)."""
    with _errors():
        from labkit.tuning import default_storage
        from labkit.tuning._cluster import summarize_study

        if study is None:
            raise LabkitError("--study NAME is required")
        url = storage or os.environ.get("LABKIT_STUDY_STORAGE") or default_storage()
        summarize_study(study, url)
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
    if report.eta_seconds:
        print(f"  time left  about {report.eta_seconds / 60:.1f} min")


server_app = typer.Typer(
    help="The group's MLflow tracking server: labkit server start [--auth] [--backend-store-uri "
    "postgresql://...]; labkit server adduser NAME; labkit server grant NAME EXPERIMENT PERMISSION. "
    "See docs/server.md.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(server_app, name="server")

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The server (default: $MLFLOW_TRACKING_URI). Admin credentials: "
        "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.",
        show_default=False,
    ),
]


@server_app.command("start")
def server_start(
    host: Annotated[
        str, typer.Option(help="Address to listen on; keep 127.0.0.1 behind a reverse proxy.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    backend_store_uri: Annotated[
        str | None,
        typer.Option(
            envvar="MLFLOW_BACKEND_STORE_URI",
            help="postgresql://USER@HOST/DB for a group, sqlite:///PATH on one machine "
            "(default: sqlite under the state directory). A password belongs in ~/.pgpass or this "
            "variable, not on the command line.",
            show_default=False,
        ),
    ] = None,
    artifacts_destination: Annotated[
        str | None,
        typer.Option(
            help="Where the server keeps artifacts: a directory or s3:// ... URI "
            "(default: artifacts/ under the state directory).",
            show_default=False,
        ),
    ] = None,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth", help="Require a login (MLflow basic-auth); admin password: MLFLOW_AUTH_ADMIN_PASSWORD."
        ),
    ] = False,
    auth_db_uri: Annotated[
        str | None,
        typer.Option(
            help="Where --auth keeps users (default: sqlite under the state directory).", show_default=False
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server worker processes.")] = 2,
    db_pool_size: Annotated[
        int, typer.Option(min=1, max=1000, help="Database connections each pool keeps open.")
    ] = 5,
    db_max_overflow: Annotated[
        int, typer.Option(min=0, max=1000, help="Extra connections each pool may open under load.")
    ] = 10,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="Secret key, auth config, default databases (default: $XDG_DATA_HOME/labkit/server)."
        ),
    ] = None,
    allowed_hosts: Annotated[
        str | None,
        typer.Option(help="Host names a reverse proxy forwards, comma-separated (e.g. mlflow.example.org)."),
    ] = None,
) -> None:
    """Run the MLflow tracking server in the foreground (artifacts served through it); Ctrl-C stops it."""
    with _errors():
        from labkit.tracking._server import ServerError, ServerOptions, run_server

        options = ServerOptions(
            host=host,
            port=port,
            backend_store_uri=backend_store_uri,
            artifacts_destination=artifacts_destination,
            auth=auth,
            auth_db_uri=auth_db_uri,
            workers=workers,
            db_pool_size=db_pool_size,
            db_max_overflow=db_max_overflow,
            state_dir=state_dir,
            allowed_hosts=allowed_hosts,
        )
        code = run_server(options)
        if code != 0:
            raise ServerError(f"the MLflow server exited with code {code} (its messages are above)")


def _admin_url(url: str | None) -> str | None:
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # not minutes on a wrong --url
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    return url or os.environ.get("MLFLOW_TRACKING_URI")


@server_app.command("adduser")
def server_adduser(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The new user's name.", show_default=False)],
    url: UrlOpt = None,
) -> None:
    """Create a user (password from LABKIT_NEW_USER_PASSWORD, else asked for twice, hidden)."""
    with _errors():
        from labkit.tracking._server import add_user, check_admin

        server = check_admin(_admin_url(url))  # before asking for a password
        password = os.environ.get("LABKIT_NEW_USER_PASSWORD") or typer.prompt(
            f"Password for {name}", hide_input=True, confirmation_prompt=True
        )
        add_user(server, name, password)
        print(f"labkit: created user {name!r}; every user reads every experiment unless you grant otherwise")


@server_app.command("grant")
def server_grant(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A user.", show_default=False)],
    experiment: Annotated[
        str, typer.Argument(metavar="EXPERIMENT", help="An experiment's name or id.", show_default=False)
    ],
    permission: Annotated[
        str, typer.Argument(metavar="PERMISSION", help="READ, EDIT or MANAGE.", show_default=False)
    ],
    url: UrlOpt = None,
) -> None:
    """Give a user READ, EDIT or MANAGE on one experiment (or change what they have)."""
    with _errors():
        from labkit.tracking._server import grant

        done = grant(_admin_url(url), name, experiment, permission)
        print(f"labkit: {done} {permission.upper()} for {name!r} on experiment {experiment!r}")


@app.command()
def ui(
    storage: Annotated[
        str | None,
        typer.Option("--storage", help="Study storage for optuna-dashboard (default: runs/optuna.db)."),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)."
        ),
    ] = None,
    optuna_port: Annotated[int, typer.Option(help="Port of optuna-dashboard.")] = 8080,
    mlflow_port: Annotated[int, typer.Option(help="Port of mlflow ui.")] = 5000,
    optuna: Annotated[bool, typer.Option(help="Start optuna-dashboard.")] = True,
    mlflow: Annotated[bool, typer.Option(help="Start mlflow ui (not needed for an http:// server).")] = True,
) -> None:
    """Start optuna-dashboard and/or mlflow ui on 127.0.0.1, print their URLs, stop on Ctrl-C."""
    with _errors():
        from labkit._services import start_ui, stop_ui

        logs = Path("runs") / "ui"
        started = []
        try:
            if optuna:
                url = storage or f"sqlite:///{Path('runs', 'optuna.db').resolve()}"
                if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
                    raise LabkitError(f"--storage: no study database at {url} (run labkit tune first)")
                started.append(
                    start_ui(
                        "optuna-dashboard",
                        ["optuna-dashboard", url, "--host", "127.0.0.1", "--port", str(optuna_port)],
                        f"http://127.0.0.1:{optuna_port}/",
                        logs / "optuna-dashboard.log",
                    )
                )
            from labkit.config import default_tracking_uri

            uri = default_tracking_uri(tracking_uri)
            if mlflow and not uri.startswith(("http://", "https://")):
                started.append(
                    start_ui(
                        "mlflow ui",
                        [
                            "mlflow",
                            "ui",
                            "--backend-store-uri",
                            uri,
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(mlflow_port),
                        ],
                        f"http://127.0.0.1:{mlflow_port}/health",
                        logs / "mlflow-ui.log",
                    )
                )
            elif mlflow:
                print(f"labkit: MLflow   {uri} (a server: nothing to start)")
            for item in started:
                shown = item.url.removesuffix("health")
                if item.name == "mlflow ui":
                    shown += "#/?workflowType=machine_learning"
                print(f"labkit: {item.name:<16} {shown}", flush=True)
            if not started:
                return
            print("labkit: Ctrl-C stops them", flush=True)
            signal.signal(signal.SIGTERM, _interrupt)
            while all(item.process.poll() is None for item in started):
                time.sleep(0.5)
            gone = [item for item in started if item.process.poll() is not None]
            raise LabkitError(f"{gone[0].name} stopped (see {gone[0].log})")
        except KeyboardInterrupt:
            pass
        finally:
            for item in started:
                stop_ui(item)


@app.command()
def sync(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="[RUN_DIR]...", help="Run directories, or folders holding them.", show_default=False
        ),
    ] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Every run under --runs-root.")] = False,
    runs_root: RunsRootOpt = Path("runs"),
    uri: Annotated[
        str | None,
        typer.Option(
            help="Upload to this tracking URI (default: the configured one, $MLFLOW_TRACKING_URI or "
            "./mlflow.db; a run started with another URI is uploaded only where --uri names it)."
        ),
    ] = None,
) -> None:
    """Upload what runs left in their spools (offline runs, killed jobs) to MLflow.

    Safe to repeat: a second sync sends nothing, and a sync stopped midway duplicates nothing
    when run again. Credentials come from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
    A spool is refused, nothing of it sent, when it or its run directory is not yours or is
    writable by others, when it lists a file outside its run directory, or when its run was
    started with a tracking URI other than the configured one and --uri does not name it.
    """
    with _errors():
        from labkit.errors import TrackingError
        from labkit.tracking import SpoolRefused, configured_uri, find_spools, sync_spool

        targets = list(paths or []) + ([runs_root] if all_runs else [])
        if not targets:
            raise TrackingError("name run directories to sync, or use --all (every run under --runs-root)")
        for target in targets:
            if not target.exists():
                raise TrackingError(f"{target}: no such run directory or folder")
            if not target.is_dir() and target.name != "spool.db":
                raise TrackingError(f"{target}: a file, not a run directory (or a folder of them)")
        spools = find_spools(targets)
        if not spools:
            print(f"labkit sync: no run spools under {', '.join(map(str, targets))}")
            return
        left = sent = 0
        refusals: list[str] = []
        for spool in spools:
            where = spool.parent
            try:
                result = sync_spool(spool, uri)
            except SpoolRefused as exc:  # checked before anything was sent: nothing was
                refusals.append(str(exc))
                if len(spools) > 1:
                    print(f"  refused  {where}: {exc}")
                continue
            sent += result.sent
            if result.busy:
                print(f"  busy     {where}: {result.error}")
            elif result.error and result.pending.total:
                print(f"  pending  {where}: {result.pending.describe()}; {result.error}")
            elif result.sent or result.rejected:
                refused = f", {result.rejected} refused (kept in the spool)" if result.rejected else ""
                items = f"{result.sent} item{'s' * (result.sent != 1)}{refused}"
                print(f"  uploaded {where}: {items} → run {result.run_id}")
            else:
                print(f"  in sync  {where} (run {result.run_id})")
            left += bool(result.pending.total or result.busy)
        dest = redact_uri(uri or configured_uri())
        print(f"labkit sync: {len(spools)} run{'s' * (len(spools) != 1)}, {sent} items uploaded to {dest}")
        if refusals:
            if len(spools) == 1:
                raise TrackingError(refusals[0])
            raise TrackingError(
                f"{len(refusals)} of {len(spools)} runs refused, nothing of them sent (see above)"
                + (f"; {left} more not fully uploaded" if left else "")
            )
        if left:
            raise TrackingError(
                f"{left} run{'s' * (left != 1)} not fully uploaded (see above); run labkit sync again"
            )


class TableFormat(str, Enum):
    table = "table"
    csv = "csv"
    md = "md"
    json = "json"


ExperimentsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--experiment", "-e", help="MLflow experiment (repeat for several; default: all).", show_default=False
    ),
]
SinceOpt = Annotated[
    str | None, typer.Option(help="Runs started since: 30d, 12h, 2w or a date (2026-11-01).")
]
UsersOpt = Annotated[
    list[str] | None, typer.Option("--user", help="Runs by this user (repeatable).", show_default=False)
]
FilterOpt = Annotated[
    str | None,
    typer.Option(
        "--filter", help="Conditions joined by 'and': \"test_acc > 0.9 and params.model.name = 'mlp'\"."
    ),
]
TrackingUriOpt = Annotated[
    str | None,
    typer.Option("--tracking-uri", help="MLflow server (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)."),
]
RefreshOpt = Annotated[
    bool,
    typer.Option("--refresh", help="Re-read every run from the server (the cache is otherwise incremental)."),
]


def _selected_runs(
    experiments: list[str] | None,
    since: str | None,
    users: list[str] | None,
    where: str | None,
    tracking_uri: str | None,
    refresh: bool,
) -> tuple[str, list[Any]]:
    from labkit._cache import default_cache_dir
    from labkit.report import parse_filter, parse_since, select
    from labkit.report._api import default_uri
    from labkit.tracking._query import fetch_runs

    cutoff, conditions = parse_since(since), parse_filter(where)  # bad options fail before any request
    uri = default_uri(tracking_uri)
    records = fetch_runs(
        uri, experiments, cache_dir=default_cache_dir(), refresh="full" if refresh else "auto"
    )
    return uri, select(records, since=cutoff, users=users or (), where=conditions)


@app.command()
def compare(
    experiment: ExperimentsOpt = None,
    since: SinceOpt = None,
    user: UsersOpt = None,
    filter_: FilterOpt = None,
    metric: Annotated[str | None, typer.Option(help="Sort by this metric, best first (and show it).")] = None,
    group_by: Annotated[
        list[str] | None,
        typer.Option("--group-by", help="Group runs by this parameter (repeatable).", show_default=False),
    ] = None,
    top: Annotated[int | None, typer.Option(min=1, help="Show only the best N rows.")] = None,
    fmt: Annotated[
        TableFormat, typer.Option("--format", help="table (terminal), csv, md or json.")
    ] = TableFormat.table,
    tracking_uri: TrackingUriOpt = None,
    refresh: RefreshOpt = False,
) -> None:
    """What everyone ran, side by side: one row per run, or per group of runs differing only by seed
    (mean ± std (n)), with the parameters that vary and each task's headline metrics."""
    with _errors():
        from labkit.report import compare_frame, format_table

        _, records = _selected_runs(experiment, since, user, filter_, tracking_uri, refresh)
        frame = compare_frame(records, metric=metric, group_by=group_by or (), top=top)
        title = f"{len(records)} runs" + (f", best {metric} first" if metric else "")
        sys.stdout.write(format_table(frame, fmt.value, title=title))


@app.command()
def report(
    output: Annotated[Path, typer.Option("-o", "--output", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    experiment: ExperimentsOpt = None,
    since: SinceOpt = None,
    user: UsersOpt = None,
    filter_: FilterOpt = None,
    best: Annotated[
        int, typer.Option(min=1, help="Runs per experiment whose curves and figures are shown.")
    ] = 5,
    title: Annotated[str, typer.Option(help="The page title.")] = "labkit report",
    tracking_uri: TrackingUriOpt = None,
    refresh: RefreshOpt = False,
) -> None:
    """One self-contained HTML page for the group meeting: leaderboards, learning curves, each
    task's diagnostic figures, tuning studies and provenance; opens without any network."""
    with _errors():
        from labkit.report._html import ReportSources, build_report
        from labkit.tracking._query import fetch_figures, fetch_history

        uri, records = _selected_runs(experiment, since, user, filter_, tracking_uri, refresh)
        if not records:
            from labkit.errors import ConfigError

            raise ConfigError("no runs match the selection (check --experiment, --since, --user, --filter)")
        sources = ReportSources(
            history=lambda run_id, name: fetch_history(uri, run_id, name),
            figures=lambda run_id: fetch_figures(uri, run_id),
        )
        chosen = [
            f"{k} {v}"
            for k, v in (("experiment", experiment), ("since", since), ("user", user), ("filter", filter_))
            if v
        ]
        page = build_report(records, sources, title=title, best=best, selection="; ".join(chosen))
        _write_output(output, page)
        print(
            f"labkit report: {len(records)} runs → {output} "
            f"({len(page.encode()) / 1e6:.1f} MB, self-contained)"
        )


@app.command()
def reproduce(
    run_id: Annotated[
        str, typer.Argument(metavar="RUN_ID", help="The MLflow run to reproduce.", show_default=False)
    ],
    cluster: ClusterOpt = "",
    slurm: SlurmOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the config and what would run; run nothing.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Rerun even when this checkout is not the code the run used.")
    ] = False,
    tracking_uri: TrackingUriOpt = None,
    runs_root: RunsRootOpt = Path("runs"),
) -> None:
    """Run a logged experiment again from its stored config, on the code it used, and compare its
    headline metrics with the original's."""
    with _errors():
        from labkit.config import load_experiment
        from labkit.report import HEADLINE
        from labkit.report._api import default_uri
        from labkit.runner._reproduce import compare_metrics, plan_reproduction

        uri = default_uri(tracking_uri)
        plan = plan_reproduction(run_id, uri, Path.cwd())
        commit = plan.commit[:12] if plan.commit else "no commit"
        print(
            f"labkit reproduce: run {run_id} ({plan.experiment}, task {plan.task or '?'}, "
            f"code {commit}{' + uncommitted changes' if plan.dirty else ''})",
            file=sys.stderr,
        )
        for warning in plan.check(force):
            print(f"labkit: warning: {warning}", file=sys.stderr)
        root = runs_root.resolve()
        config_path = root / "reproduce" / f"{run_id}.yaml"
        text = plan.config_yaml(root, uri)
        if dry_run:
            print(f"# {config_path} (not written: --dry-run)")
            print(text, end="")
            return
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(text)
        if cluster:
            from labkit.cluster._profile import load_profile
            from labkit.cluster._submit import submit_run

            profile, profile_path = load_profile(cluster, slurm or [])
            exp = load_experiment(config_path, list(profile.overrides))
            done = submit_run(
                exp, profile, profile_path, source=config_path, command=shlex.join(["labkit", *sys.argv[1:]])
            )
            print(
                f"labkit: submitted job {done.job_id} to {profile.name}; when it has finished, compare with\n"
                f"        labkit compare -e {plan.experiment} "
                f"--filter \"tags.labkit.reproduces = '{run_id}'\"",
                file=sys.stderr,
            )
            print(done.job_id)
            return
        _importable_here()
        from labkit.runner import run as run_experiment

        exp = load_experiment(config_path)
        result = run_experiment(exp, command=shlex.join(["labkit", *sys.argv[1:]]), source=config_path)
        names = list(HEADLINE.get(plan.task, ())) + sorted(k for k in plan.metrics if k.startswith("test_"))
        rows = compare_metrics(plan.metrics, result.metrics, list(dict.fromkeys(names)))
        print(f"rerun {result.run_id} of run {run_id}:")
        for name, before, after, verdict in rows:
            print(f"  {name:<28} {before:<14.6g} {after:<14.6g} {verdict}")
        if not rows:
            print("  (no test metric logged by both runs)")


def _write_output(output: Path, text: str, option: str = "-o") -> None:
    """Write ``text`` to the file a user named with ``option``: whole or not at all (a temporary
    file beside it, then renamed), and any problem one line naming the path."""
    if output.is_dir():
        raise LabkitError(f"{option} {output} is a directory; give the file to write")
    tmp = output.with_name(f".{output.name}.partial")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, output)
    except OSError as exc:
        raise LabkitError(
            f"{option} {output}: cannot write it ({exc.strerror or exc}); choose another path"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops `labkit ui` the way Ctrl-C does


def _importable_here() -> None:
    """Put the working directory first on ``sys.path``, as ``python -m`` does, so that a
    ``class_path: mymodels.Net`` next to the user's experiment imports with ``labkit`` too."""
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)


def _summary(result: RunResult) -> None:
    rows = [("run id", result.run_id or f"not on the server yet (run key {result.run_key})")]
    rows += [(key, f"{value:.4f}") for key, value in sorted(result.metrics.items())]
    rows += [
        ("fit time", f"{result.fit_seconds:.1f} s"),
        ("run dir", str(result.run_dir)),
    ]
    rows += [("open with" if i == 0 else "", line) for i, line in enumerate(result.how_to_open())]
    width = max(len(k) for k, _ in rows)
    print("labkit: run finished")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
