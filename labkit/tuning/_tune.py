"""``labkit tune``: the coordinator, the worker loop, status and best."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from labkit._services import log_tail
from labkit.config import MAX_GRID, Experiment, dump_experiment
from labkit.errors import ConfigError, LabkitError
from labkit.tuning._budget import Spent, budget_lines
from labkit.tuning._figures import study_figures
from labkit.tuning._optuna import Heartbeat, check_grid_size
from labkit.tuning._pareto import check_objectives
from labkit.tuning._study import MAX_STUDY_NAME, StudyHandle, Tally, check_study_name

if TYPE_CHECKING:
    from labkit.config import BudgetConfig
    from labkit.notify import Notifier
    from labkit.runner import JobOptions
    from labkit.tracking import RunClient

__all__ = [
    "MAX_STUDY_NAME",
    "MAX_TRIALS",
    "MAX_WORKERS",
    "StudyReport",
    "best_experiment",
    "check_study_name",
    "check_trials",
    "check_workers",
    "study_report",
    "tune",
    "worker_loop",
]

#: the most trials a study may end with (the search section's own bound on search.trials)
MAX_TRIALS = MAX_GRID
#: the most worker processes ``labkit tune`` starts on this machine (each trains a model)
MAX_WORKERS = 256


def check_trials(trials: int | None) -> None:
    """ConfigError unless ``trials`` (``--trials``) is None or 1..:data:`MAX_TRIALS`."""
    if trials is None:
        return
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise ConfigError(f"--trials {trials!r}: expected a whole number from 1 to {MAX_TRIALS:,}")


def check_workers(workers: int, limit: int = MAX_WORKERS, what: str = "worker processes") -> None:
    """ConfigError unless ``workers`` (``--workers``) is 1..``limit``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= limit:
        raise ConfigError(f"--workers {workers!r}: expected a whole number from 1 to {limit:,} ({what})")


def worker_loop(
    study: str,
    storage: str,
    progress: str = "plain",
    *,
    job: JobOptions | None = None,
    heartbeat: Heartbeat | None = None,
) -> int:
    """Claim and run WAITING trials until none is left (or ``search.budget`` is spent); return
    how many this worker ran.

    ``job``: the options of the batch job this worker runs in; ``heartbeat``: how often its trials
    beat (the CLI reads both from the environment; None: the defaults)."""
    from labkit.cluster import current_job_id
    from labkit.runner import JobOptions
    from labkit.tuning._budget import trial_devices
    from labkit.tuning._objective import run_trial

    job = job or JobOptions()
    handle = StudyHandle.load(study, storage, heartbeat=heartbeat)
    done = 0
    job_id = current_job_id(job.environ)
    mine = handle.reclaim(job_id) if job_id else None
    if mine is not None:  # this job was preempted during that trial and requeued: continue it
        print(f"labkit tune: job {job_id} resumes trial {mine[0].number}", flush=True)
        run_trial(handle, *mine, progress=progress, reclaimed=True, job=job)
        done += 1
    devices = trial_devices(handle.experiment())  # recorded on each trial it claims (the budget)
    while (claimed := handle.claim(devices=devices)) is not None:
        trial, trial_id = claimed
        print(f"labkit tune: worker {os.getpid()} runs trial {trial.number}", flush=True)
        run_trial(handle, trial, trial_id, progress=progress, job=job)
        done += 1
    if handle.stopped:
        print(f"labkit tune: worker {os.getpid()} claims no more trials: {handle.stopped}", flush=True)
    return done


def tune(
    exp: Experiment,
    *,
    study: str,
    storage: str,
    trials: int | None = None,
    workers: int = 1,
    stream: TextIO | None = None,
    heartbeat: Heartbeat | None = None,
    environ: Mapping[str, str] | None = None,
    notifier: Notifier | None = None,
) -> StudyReport:
    """Create (or resume) the study and run ``workers`` worker processes until it holds
    exactly ``trials`` finished trials; then log the summary to the study's parent run.

    ``heartbeat``: when a silent trial counts as dead (None: the defaults); ``environ``: the
    environment the worker processes start with (None: this process's; they read their own
    options from it, as any ``labkit`` command does); ``notifier``: who is told when the study
    ends (``study_done``; the CLI builds it from the ``notify`` section)."""
    stream = stream or sys.stderr
    check_workers(workers)
    handle, parent, total = prepare_study(
        exp, study=study, storage=storage, trials=trials, stream=stream, heartbeat=heartbeat
    )
    folder = study_folder(exp, study)
    try:
        _drive(handle, study, storage, workers, folder, stream, environ=environ)
    except BaseException as exc:
        parent.fail(exc)
        raise
    return finish_study(handle, parent, total, folder, notifier=notifier, stream=stream)


def study_folder(exp: Experiment, study: str) -> Path:
    """Where a study's worker logs, figures and sbatch scripts go."""
    return Path(exp.runs_root) / exp.name / "studies" / study


def parent_client(exp: Experiment, study: str, stream: TextIO) -> RunClient:
    """The logging of a study's own MLflow run; its spool is in the study folder."""
    from labkit.tracking import RunClient

    assert exp.tracking.uri and exp.tracking.experiment
    return RunClient(
        exp.tracking.uri,
        exp.tracking.experiment,
        study_folder(exp, study),
        mode=exp.tracking.mode,
        drain_timeout=exp.tracking.drain_timeout,
        notify=lambda line: print(line, file=stream, flush=True),
    )


def prepare_study(
    exp: Experiment,
    *,
    study: str,
    storage: str,
    trials: int | None,
    stream: TextIO,
    heartbeat: Heartbeat | None = None,
) -> tuple[StudyHandle, RunClient, int]:
    """Check the search, create or load the study, queue its trials, start or resume its MLflow
    parent run; return them and the number of trials the study ends with."""
    check_study_name(study)
    check_trials(trials)
    if exp.search is None:
        raise ConfigError("the experiment has no search section: nothing to tune (see docs/tuning.md)")
    search = exp.search
    _check_metric(exp)
    check_objectives(exp)
    check_grid_size(search)
    total = trials or search.trials
    if trials is not None:
        search = search.model_copy(update={"trials": trials})
        exp = exp.model_copy(update={"search": search})
    handle = StudyHandle.create(exp, study, storage, heartbeat=heartbeat)
    _refuse_a_spent_failed_study(handle, total, storage)
    _refuse_a_surplus_queue(handle, total, storage)
    added = handle.ensure_slots(total)
    tally = handle.tally()
    print(
        f"labkit tune: study {study!r} in {_redact(storage)}: {tally.finished}/{total} finished, "
        f"{added} new trial{'s' * (added != 1)} queued",
        file=stream,
        flush=True,
    )

    assert exp.tracking.uri and exp.tracking.experiment
    parent = parent_client(exp, study, stream)
    if handle.parent_run_key and parent.spool_path.is_file():
        parent.resume()
    else:
        from labkit.config import flatten

        parent.start(
            f"{study} (study)",
            flatten({"search": search.model_dump(mode="json")}),
            {"labkit.study": study, "labkit.study_storage": _redact(storage)},
            run_key=handle.parent_run_key,
        )
        handle.parent_run_key = parent.run_key
    return handle, parent, total


def _refuse_a_spent_failed_study(handle: StudyHandle, total: int, storage: str) -> None:
    """A study whose budget is spent on trials that all failed (an import error, a typo) has
    nothing left to run: resuming it would only repeat the old error. Say how to go on instead."""
    tally = handle.tally()
    failed = tally.counts.get("FAIL", 0)
    if not failed or tally.open or failed != tally.finished or tally.finished < total:
        return
    name = handle.study.study_name
    first = next((t for t in handle.trials() if t.user_attrs.get("labkit.fail_reason")), None)
    reason = str(first.user_attrs["labkit.fail_reason"]) if first else "no reason recorded"
    raise ConfigError(
        f"study {name!r} in {_redact(storage)} already holds its {tally.finished} trials and every one "
        f"failed (the first: {_one_line(reason)}); nothing is left to run. Once the cause is fixed, start "
        f"a fresh study with --study {name}-2, or run more trials in this one with --trials "
        f"{tally.finished + total}"
    )


def _refuse_a_surplus_queue(handle: StudyHandle, total: int, storage: str) -> None:
    """A study holding more WAITING trials than ``total`` needs (left by an enqueue that was
    interrupted, or an earlier, larger --trials) would run every one of them: say so instead."""
    tally = handle.tally()
    waiting = tally.counts.get("WAITING", 0)
    surplus = tally.finished + tally.open - total
    if not waiting or surplus <= 0:
        return
    name = handle.study.study_name
    raise ConfigError(
        f"--trials {total}: study {name!r} in {_redact(storage)} already holds {tally.finished:,} finished, "
        f"{tally.counts.get('RUNNING', 0):,} running and {waiting:,} queued trials (queued by an earlier "
        f"labkit tune), {surplus:,} more than {total:,}; run them all with --trials "
        f"{tally.finished + tally.open}, or start a fresh study with --study {name}-2"
    )


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def finish_study(
    handle: StudyHandle,
    parent: RunClient,
    total: int,
    folder: Path,
    *,
    notifier: Notifier | None = None,
    stream: TextIO | None = None,
) -> StudyReport:
    """Summarise the study onto its parent run (best value, parameters, Optuna's figures), end
    that run and tell ``notifier`` (``study_done``); raise if every trial failed."""
    study = handle.study.study_name
    try:
        report = study_report(handle, total)
        _summarise(handle, parent, report, folder)
    except BaseException as exc:
        parent.fail(exc)
        raise
    parent.finish()
    if notifier is not None:
        _notify_study(notifier, handle, parent, report, folder, stream)
    counts = report.tally.counts
    if report.tally.finished and not counts.get("COMPLETE") and not counts.get("PRUNED"):
        first = next((t for t in handle.trials() if t.user_attrs.get("labkit.fail_reason")), None)
        reason = first.user_attrs["labkit.fail_reason"] if first else "no reason recorded"
        raise LabkitError(f"every trial of study {study!r} failed; the first: {reason}")
    return report


def _notify_study(
    notifier: Notifier,
    handle: StudyHandle,
    parent: RunClient,
    report: StudyReport,
    folder: Path,
    stream: TextIO | None,
) -> None:
    """``study_done``: the best value, the trial counts and the link to the study's parent run.
    Never raises: a notification never fails the study."""
    import socket

    from labkit.notify import Notice, run_link

    try:
        exp = handle.experiment()
        assert exp.search is not None
        best = f"; best trial {report.best_trial}" if report.best_trial is not None else "; no complete trial"
        params = ", ".join(f"{k}={v}" for k, v in report.best_params.items())
        notice = Notice(
            event="study_done",
            experiment=exp.name,
            run=report.study,
            run_id=parent.run_id,
            host=socket.gethostname(),
            metric=f"best_{exp.search.metric}" if report.best_value is not None else None,
            value=report.best_value,
            link=run_link(exp.tracking.uri or "", parent.run_id, parent.experiment_id, folder),
            detail=f"{_progress_line(report.tally)} of {report.total}{best}"
            + (f" ({params})" if params else ""),
        )
    except Exception as exc:  # noqa: BLE001 - a notification never fails the study
        print(
            f"labkit: notify: no study_done message ({type(exc).__name__}: {exc})", file=stream or sys.stderr
        )
        return
    notifier.send(notice, stream=stream)


def _check_metric(exp: Experiment) -> None:
    """The study metric must be one the task logs at each validation (checked before any trial)."""
    from labkit.config import ClassPathSpec
    from labkit.errors import did_you_mean

    assert exp.search is not None
    if isinstance(exp.model, ClassPathSpec):
        return  # a user's own LightningModule: what it logs is known only when it runs
    logged = exp.task.monitorable  # declared by TaskSpec: no torch import
    metric = exp.search.metric
    if logged and metric not in logged:
        raise ConfigError(
            f"search.metric: the {exp.task.kind} task logs no metric {metric!r} at validation"
            f"{did_you_mean(metric, logged)}; choose one of: {', '.join(logged)}"
        )


def _drive(
    handle: StudyHandle,
    study: str,
    storage: str,
    workers: int,
    logs: Path,
    stream: TextIO,
    command: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Keep up to ``workers`` worker processes busy until no trial is WAITING or RUNNING (or,
    once ``search.budget`` is spent, none is RUNNING); they start with ``environ`` (None: this
    process's environment, inherited as any child's)."""
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if environ is None else environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, workers))))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # workers share the CPUs: waiting threads sleep
    # the storage URL travels in the environment, not on command lines that `ps` shows to everyone
    env["LABKIT_STUDY_STORAGE"] = storage
    cmd = command or [sys.executable, "-m", "labkit", "tune", "worker", "--study", study]
    live: dict[subprocess.Popen[bytes], Path] = {}
    started, crashes, finished, last_report = 0, 0, -1, ""
    while True:
        for proc, log in list(live.items()):
            if proc.poll() is not None:
                del live[proc]
                crashes += proc.returncode != 0
                if crashes >= 3:  # workers that die at once would be restarted for ever
                    raise LabkitError(
                        f"labkit tune: workers keep failing; the last one's log, {log}: {log_tail(log, 4)}"
                    )
        handle.fail_stale()  # a worker that died (SIGKILL, node lost): its trial is failed and retried
        tally = handle.tally()
        if tally.finished > finished:
            finished, crashes = tally.finished, 0  # progress: earlier crashes were not systematic
        stopped = handle.check_budget() if tally.counts.get("WAITING") else None
        line = _progress_line(tally) + (f"; no more trials ({stopped})" if stopped else "")
        if line != last_report:
            print(f"labkit tune: {line}", file=stream, flush=True)
            last_report = line
        waiting, running = tally.counts.get("WAITING", 0), tally.counts.get("RUNNING", 0)
        if running == 0 and (waiting == 0 or stopped):
            break
        waiting = 0 if stopped else waiting
        for _ in range(min(waiting, workers - len(live))):
            log = logs / f"worker-{os.getpid()}-{started}.log"
            with log.open("ab") as out:
                live[subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)] = log
            started += 1
        time.sleep(1.0)
    for proc in live:
        proc.wait()


def _progress_line(t: Tally) -> str:
    c = t.counts
    return (
        f"{t.finished} finished ({c.get('COMPLETE', 0)} complete, {c.get('PRUNED', 0)} pruned, "
        f"{c.get('FAIL', 0)} failed), {c.get('RUNNING', 0)} running, {c.get('WAITING', 0)} waiting"
    )


@dataclass(frozen=True)
class StudyReport:
    study: str
    total: int
    tally: Tally
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    eta_seconds: float | None
    budget: BudgetConfig | None = None  #: the study's search.budget
    spent: Spent | None = None  #: with a budget: GPU-hours and wall hours used so far
    stopped: str | None = None  #: why the workers stopped claiming trials (the budget), or None
    objectives: tuple[str, ...] = ()  #: several objectives: their metrics (empty for one)
    front_size: int | None = None  #: several objectives: complete trials on the Pareto front

    def budget_lines(self) -> list[str]:
        """Spent and left of each limit of the budget (none without one)."""
        return budget_lines(self.budget, self.spent)


def study_report(handle: StudyHandle, total: int | None = None) -> StudyReport:
    exp = handle.experiment()
    assert exp.search is not None
    total = total or exp.search.trials
    tally = handle.tally()
    best = handle.best()
    objectives: tuple[str, ...] = ()
    front_size = None
    if exp.search.objectives is not None:
        from labkit.tuning._pareto import pareto_front

        objectives = tuple(o.metric for o in exp.search.objectives)
        front_size = len(pareto_front(handle)) if tally.counts.get("COMPLETE") else 0
    durations = [t.duration.total_seconds() for t in handle.trials() if t.state.is_finished() and t.duration]
    remaining = max(0, total - tally.finished)
    parallel = max(1, tally.counts.get("RUNNING", 0))
    eta = (sum(durations) / len(durations)) * remaining / parallel if durations and remaining else None
    return StudyReport(
        study=handle.study.study_name,
        total=total,
        tally=tally,
        best_value=best.value if best else None,
        best_params=handle.values(best) if best else {},
        best_trial=best.number if best else None,
        eta_seconds=eta,
        budget=exp.search.budget,
        spent=handle.spent() if exp.search.budget is not None else None,
        stopped=handle.stopped,
        objectives=objectives,
        front_size=front_size,
    )


def _summarise(handle: StudyHandle, parent: RunClient, report: StudyReport, folder: Path) -> None:
    """Best value and parameters, and Optuna's own figures, onto the parent run."""
    exp = handle.experiment()
    assert exp.search is not None
    metrics = {f"trials_{k.lower()}": float(v) for k, v in report.tally.counts.items()}
    if report.best_value is not None:
        metrics[f"best_{exp.search.metric}"] = report.best_value
    parent.log_values(metrics, step=report.tally.finished)
    tags = {f"best.{k}": str(v) for k, v in report.best_params.items()}
    if report.best_trial is not None:
        tags["labkit.best_trial"] = str(report.best_trial)
    parent.set_tags(tags)
    figures = study_figures(handle.study, folder)
    if figures:
        parent.log_artifact(folder / "figures", "figures")


def best_experiment(handle: StudyHandle) -> str:
    """A runnable experiment file (YAML) with the best trial's values and no search section."""
    from labkit.tuning._objective import trial_experiment

    best = handle.best()
    if best is None:
        raise ConfigError(f"study {handle.study.study_name!r} has no complete trial yet")
    base = handle.experiment()
    assert base.search is not None
    exp = trial_experiment(base, handle.values(best), best.number)
    exp = exp.model_copy(update={"tracking": exp.tracking.model_copy(update={"run_name": None})})
    header = (
        f"# best trial {best.number} of study {handle.study.study_name!r}: "
        f"{base.search.metric} = {best.value:.6g}\n"
    )
    return header + dump_experiment(exp)


def _redact(url: str) -> str:
    from labkit.tracking import redact_uri

    return redact_uri(url)
