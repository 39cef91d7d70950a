"""For the group meeting: ``labkit compare``, ``report``, ``ui`` and ``sync``."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from labkit.cli._app import TrackingUriOpt, _errors, _write_output
from labkit.config import redact_uri

if TYPE_CHECKING:
    from labkit._services import Service


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
        from labkit._services import serve
        from labkit.config import default_tracking_uri
        from labkit.tracking.server import mlflow_ui

        logs = Path("runs") / "ui"
        services: list[Service] = []
        notes: list[str] = []
        if optuna:
            from labkit.tuning import dashboard_ui

            services.append(dashboard_ui(storage, port=optuna_port, log=logs / "optuna-dashboard.log"))
        uri = default_tracking_uri(tracking_uri)
        if mlflow:
            service = mlflow_ui(uri, port=mlflow_port, log=logs / "mlflow-ui.log")
            if service is None:
                notes.append(f"labkit: MLflow   {uri} (a server: nothing to start)")
            else:
                services.append(service)
        serve(services, notes=notes)


def sync(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="[RUN_DIR]...", help="Run directories, or folders holding them.", show_default=False
        ),
    ] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Every run under --runs-root.")] = False,
    runs_roots: Annotated[
        list[Path] | None,
        typer.Option(
            "--runs-root",
            help="Where labkit keeps its runs (repeatable with --follow; default: ./runs).",
            show_default=False,
        ),
    ] = None,
    uri: Annotated[
        str | None,
        typer.Option(
            help="Upload to this tracking URI (default: the configured one, $MLFLOW_TRACKING_URI or "
            "./mlflow.db; a run started with another URI is uploaded only where --uri names it)."
        ),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            help="Keep running: every --interval seconds upload what the runs under --runs-root "
            "logged since (a relay for jobs with no network), until Ctrl-C.",
        ),
    ] = False,
    interval: Annotated[
        float | None,
        typer.Option(help="Seconds between two rounds of --follow (default: 30).", show_default=False),
    ] = None,
) -> None:
    """Upload what runs left in their spools (offline runs, killed jobs) to MLflow.

    Safe to repeat: a second sync sends nothing, and a sync stopped midway duplicates nothing
    when run again. Credentials come from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
    A spool is refused, nothing of it sent, when it or its run directory is not yours or is
    writable by others, when it lists a file outside its run directory, or when its run was
    started with a tracking URI other than the configured one and --uri does not name it.

    With --follow it is a relay for a login node: it watches the runs roots on the shared file
    system and uploads each run as its job logs (tracking.mode=offline), so the runs of jobs
    with no route to the server are live in MLflow; one line per run when something changes. A
    run shipped by a live process itself is left to it (busy); a run is no longer followed once
    it ended and all of it is uploaded. Stopped or killed, it goes on where it was when started
    again (nothing twice). Runs until Ctrl-C or SIGTERM (exit 0).
    """
    with _errors():
        from labkit.errors import TrackingError
        from labkit.tracking import SpoolRefused, configured_uri, find_spools, sync_spool

        roots = runs_roots or [Path("runs")]
        if follow:
            if paths:
                raise TrackingError(
                    f"--follow watches folders of runs: give {paths[0]} as --runs-root {paths[0]}, "
                    "not as a RUN_DIR"
                )
            _follow(roots, uri, 30.0 if interval is None else interval)
            return
        if interval is not None:
            raise TrackingError(f"--interval {interval:g} is for --follow (the seconds between its rounds)")
        if len(roots) > 1 and not all_runs:
            raise TrackingError("several --runs-root are for --all or --follow")
        targets = list(paths or []) + (roots if all_runs else [])
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


def _follow(roots: list[Path], uri: str | None, interval: float) -> None:
    """``labkit sync --follow``: rounds until Ctrl-C or SIGTERM, then a last line (exit 0)."""
    import signal

    from labkit.tracking import configured_uri
    from labkit.tracking.write import Follower

    follower = Follower(roots=roots, uri=uri, interval=interval)  # checks the roots and interval
    dest = redact_uri(uri or configured_uri())
    print(
        f"labkit sync --follow: following the runs under {', '.join(map(str, roots))} every "
        f"{interval:g} s, to {dest} (Ctrl-C to stop)",
        flush=True,
    )

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)  # a systemd stop, kill: as Ctrl-C
    try:
        follower.run()
    except KeyboardInterrupt:  # between two requests: the marks say what the next start sends
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(follower.summary(), flush=True)


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
    from labkit.report import default_uri, parse_filter, parse_since, select
    from labkit.tracking import fetch_runs

    cutoff, conditions = parse_since(since), parse_filter(where)  # bad options fail before any request
    uri = default_uri(tracking_uri)
    records = fetch_runs(
        uri, experiments, cache_dir=default_cache_dir(), refresh="full" if refresh else "auto"
    )
    return uri, select(records, since=cutoff, users=users or (), where=conditions)


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
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="Physics curves get a ratio panel to this run (default: each experiment's best run).",
        ),
    ] = None,
    tracking_uri: TrackingUriOpt = None,
    refresh: RefreshOpt = False,
) -> None:
    """One self-contained HTML page for the group meeting: leaderboards, learning curves, physics
    curves, each task's diagnostic figures, tuning studies and provenance; opens without any network."""
    with _errors():
        from labkit._cache import default_cache_dir
        from labkit.report import ReportSources, build_report, load_outputs
        from labkit.tracking import fetch_figures, fetch_history

        uri, records = _selected_runs(experiment, since, user, filter_, tracking_uri, refresh)
        if not records:
            from labkit.errors import ConfigError

            raise ConfigError("no runs match the selection (check --experiment, --since, --user, --filter)")
        if reference is not None:
            reference = _reference(reference, records)
        cache = default_cache_dir()
        sources = ReportSources(
            history=lambda run_id, name: fetch_history(uri, run_id, name),
            figures=lambda run_id: fetch_figures(uri, run_id),
            outputs=lambda rec: load_outputs(rec, uri=uri, cache_dir=cache),
        )
        chosen = [
            f"{k} {v}"
            for k, v in (("experiment", experiment), ("since", since), ("user", user), ("filter", filter_))
            if v
        ]
        page = build_report(
            records, sources, title=title, best=best, selection="; ".join(chosen), reference=reference
        )
        _write_output(output, page)
        print(
            f"labkit report: {len(records)} runs → {output} "
            f"({len(page.encode()) / 1e6:.1f} MB, self-contained)"
        )


def _reference(given: str, records: list[Any]) -> str:
    """The run id ``--reference`` names among the selected runs (its full id, or a prefix of at
    least 8 characters), else ConfigError naming it."""
    from labkit.errors import ConfigError

    found = [
        r.run_id for r in records if r.run_id == given or (len(given) >= 8 and r.run_id.startswith(given))
    ]
    if len(found) == 1:
        return str(found[0])
    why = f"names {len(found)} runs" if found else "is not among the selected runs"
    raise ConfigError(f"--reference {given!r}: {why}; give the run id of one run the selection holds")
