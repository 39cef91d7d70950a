"""``labkit run``, ``check``, ``sim``, ``generate`` and ``reproduce``: one experiment, here."""

from __future__ import annotations

import os
import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from labkit.cli._app import (
    ClusterOpt,
    FileArg,
    OverridesArg,
    RunsRootOpt,
    SlurmOpt,
    TrackingUriOpt,
    _errors,
    _importable_here,
)
from labkit.errors import LabkitError

if TYPE_CHECKING:
    from labkit.config import Experiment
    from labkit.notify import Notifier
    from labkit.runner import RunResult


class Progress(str, Enum):
    auto = "auto"
    rich = "rich"
    plain = "plain"
    none = "none"


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
        _check_files(exp, scan_bytes=RUN_SCAN_BYTES)  # before torch loads and any run directory
        from labkit.runner import JobOptions, RunOptions
        from labkit.runner import run as run_experiment

        command = shlex.join(["labkit", *sys.argv[1:]])
        source = None if run_dir else Path(file).resolve()
        result = run_experiment(
            exp,
            progress=progress.value,
            command=command,
            source=source,
            run_dir=run_dir,
            job=JobOptions.from_environ(os.environ),
            options=RunOptions(notifier=_notifier(exp)),
        )
        if _is_leader():
            _summary(result)


def check(
    file: FileArg,
    overrides: OverridesArg = None,
    data: Annotated[
        bool,
        typer.Option(
            "--data",
            help="Also open the data files (no torch) and check keys, shapes, dtypes, NaN/inf, labels "
            "and weights; print events per split, inputs and classes.",
        ),
    ] = False,
) -> None:
    """Validate an experiment and print it fully resolved (defaults filled in); train nothing."""
    with _errors():
        from labkit.config import dump_experiment, load_experiment

        exp = load_experiment(file, overrides or [])
        summary = _check_files(exp) if data else None
        print(dump_experiment(exp), end="")
        if data:
            what = getattr(exp.data, "name", None) or "class_path"
            lines = summary.lines() if summary else [f"data: {what}: no files to check (only name: file is)"]
            print("".join(f"# {line}\n" for line in lines), end="")


#: ``labkit run`` reads every value of data up to this size before training (larger data: the
#: first chunk of each file; the DataModule checks the rest as it reads them)
RUN_SCAN_BYTES = 2 * 2**30


def _check_files(exp: Any, scan_bytes: int | None = None) -> Any:
    """``check_data`` for a ``data: {name: file}`` section (None for the others): torch-free."""
    from labkit.config import FileSpec

    if not isinstance(exp.data, FileSpec):
        return None
    from labkit.data import check_data

    kind = getattr(exp.task, "target_kind", None)
    return check_data(
        exp.data,
        target_kind=kind if isinstance(kind, str) else "values",
        num_classes=getattr(exp.task, "num_classes", None),
        scan_bytes=scan_bytes,
    )


def sim(
    simulator: Annotated[
        str, typer.Argument(metavar="SIMULATOR", help="calo, grf, tracks, dijet or jets.", show_default=False)
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
        from labkit.runner import write_simulation

        done = write_simulation(simulator, events=events, seed=seed, output=output, options=kwargs)
        shapes = ", ".join(f"{k} {shape}" for k, shape in done.shapes.items())
        print(
            f"labkit: wrote {events} {simulator} events (seed {seed}) to {output} in {done.seconds:.1f} s "
            f"({done.size_mb:.1f} MB): {shapes}"
        )


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
        from labkit.runner import find_run_dir, generate_showers, load_surrogate

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
        from labkit.report import HEADLINE, default_uri
        from labkit.runner import plan_rerun

        plan = plan_rerun(run_id, uri=default_uri(tracking_uri), runs_root=runs_root, cwd=Path.cwd())
        print(f"labkit reproduce: {plan.describe()}", file=sys.stderr)
        for warning in plan.check(force):
            print(f"labkit: warning: {warning}", file=sys.stderr)
        if dry_run:
            print(f"# {plan.config_path} (not written: --dry-run)")
            print(plan.config_text, end="")
            return
        plan.write()
        command = shlex.join(["labkit", *sys.argv[1:]])
        if cluster:
            from labkit.cluster import load_profile

            profile, profile_path = load_profile(cluster, slurm or [])
            done = plan.submit(profile, profile_path, command=command)
            print(
                f"labkit: submitted job {done.job_id} to {profile.name}; when it has finished, compare with\n"
                f"        labkit compare -e {plan.found.experiment} "
                f"--filter \"tags.labkit.reproduces = '{run_id}'\"",
                file=sys.stderr,
            )
            print(done.job_id)
            return
        _importable_here()
        from labkit.runner import JobOptions

        job = JobOptions.from_environ(os.environ)
        rerun = plan.run_here(headline=HEADLINE.get(plan.found.task, ()), command=command, job=job)
        print(f"rerun {rerun.result.run_id} of run {run_id}:")
        for name, before, after, verdict in rerun.rows:
            print(f"  {name:<28} {before:<14.6g} {after:<14.6g} {verdict}")
        if not rerun.rows:
            print("  (no test metric logged by both runs)")


def _notifier(exp: Experiment) -> Notifier | None:
    """The run's notifier: ``notify``'s webhook, its URL read here from the variable it names
    (rank 0 only: the others send nothing, and warn of nothing)."""
    if exp.notify is None or not _is_leader():
        return None
    from labkit.notify import Notifier
    from labkit.report import HEADLINE

    return Notifier.from_config(
        exp.notify, os.environ, headline=HEADLINE.get(exp.task.kind, ()), stream=sys.stderr
    )


def _is_leader() -> bool:
    """Rank 0 of a multi-process (DDP) job, or a single process: it alone prints summaries."""
    for var in ("RANK", "SLURM_PROCID"):
        if os.environ.get(var, "0") != "0" and (var == "RANK" or os.environ.get("SLURM_NTASKS", "1") != "1"):
            return False
    return True


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
