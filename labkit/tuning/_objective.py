"""One trial = one ordinary labkit run, a child of the study's MLflow parent run."""

from __future__ import annotations

import json
import math
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import optuna
from lightning.pytorch.callbacks import Callback

from labkit.config import Experiment, validate_experiment
from labkit.runner import JobOptions
from labkit.tuning._optuna import suggest
from labkit.tuning._study import SLURM_JOB, StudyHandle

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from labkit.runner import RunOptions, RunSession

__all__ = ["ObjectivesCallback", "TrialCallback", "run_trial"]

_RUN_ID, _RUN_DIR, _FAIL_REASON = "labkit.mlflow_run_id", "labkit.run_dir", "labkit.fail_reason"
_VALIDATION = "labkit.validation"  # trial user attr (several objectives): the rows logged so far
_TRIAL_STATE = "labkit.trial_state"  # MLflow tag: how the trial ended


class TrialCallback(Callback):
    """Reports the study metric to Optuna after each validation, stops a trial the pruner
    rejects, and fails a trial whose training loss is NaN/inf instead of letting it run on."""

    def __init__(self, trial: optuna.Trial, metric: str, direction: str) -> None:
        self.trial, self.metric, self.direction = trial, metric, direction
        self.history: list[float] = []
        self.pruned = False

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None and not math.isfinite(float(loss)):
            raise FloatingPointError(
                f"training loss became {float(loss)} at epoch {trainer.current_epoch}, batch {batch_idx}"
            )

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.metric not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.metric])
        if not math.isfinite(value):
            raise FloatingPointError(f"{self.metric} became {value} at epoch {trainer.current_epoch}")
        self.history.append(value)
        self.trial.report(value, step=trainer.current_epoch)
        if self.trial.should_prune():
            self.pruned = True
            trainer.should_stop = True

    def best(self) -> float:
        return min(self.history) if self.direction == "minimize" else max(self.history)

    def done(self) -> bool:
        """Whether the trial has what its value is made of (else it failed: the metric was never
        logged)."""
        return bool(self.history)


class ObjectivesCallback(TrialCallback):
    """A trial of several objectives: no pruning and no intermediate reports (Optuna supports
    neither); each validation's values of the objective metrics (and of the checkpoint's
    ``monitor``) are kept as one row, so that a metric logged at validation is taken at the epoch
    of the best checkpoint, the one that is tested (the last row without a monitored value)."""

    def __init__(self, trial: optuna.Trial, objectives: list[str], monitor: str, mode: str) -> None:
        super().__init__(trial, objectives[0], "minimize")
        self.objectives, self.monitor, self.mode = objectives, monitor, mode
        self.rows: list[dict[str, float]] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        logged = trainer.callback_metrics
        row = {m: float(logged[m]) for m in {*self.objectives, self.monitor} if m in logged}
        for metric in self.objectives:
            if metric in row and not math.isfinite(row[metric]):
                raise FloatingPointError(f"{metric} became {row[metric]} at epoch {trainer.current_epoch}")
        self.rows.append(row)
        self.trial.set_user_attr(_VALIDATION, json.dumps(self.rows))

    def tested_row(self) -> dict[str, float]:
        """The validation row of the tested checkpoint: the first best monitored value, as
        Lightning's ModelCheckpoint keeps it (it replaces its file only on improvement)."""
        seen = [r for r in self.rows if self.monitor in r and math.isfinite(r[self.monitor])]
        if not seen:
            return self.rows[-1] if self.rows else {}
        pick = min if self.mode == "min" else max
        return pick(seen, key=lambda r: r[self.monitor])

    def values(self, final: Mapping[str, float]) -> tuple[list[float], str | None]:
        """The objective values: a metric of the finished run (test metrics, ``inference_ms``,
        ``parameters``) as it ended, a validation metric at the tested checkpoint; and the reason
        the trial fails instead (a metric never logged, or not finite), or None."""
        row = self.tested_row()
        out: list[float] = []
        for metric in self.objectives:
            value = final.get(metric, row.get(metric))
            if value is None:
                return [], f"the run never logged {metric!r}"
            if not math.isfinite(value):
                return [], f"{metric} is {value}"
            out.append(float(value))
        return out, None

    def done(self) -> bool:
        return bool(self.rows)


@contextmanager
def _heartbeat(handle: StudyHandle, trial_id: int) -> Iterator[None]:
    """Record the trial's heartbeat from a thread while it runs, so a dead worker is noticed."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(handle.timing.interval):
            handle.heartbeat(trial_id)

    handle.heartbeat(trial_id)
    thread = threading.Thread(target=beat, name="labkit-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _tell(
    handle: StudyHandle, trial: optuna.Trial, value: float | list[float] | None = None, state: Any = None
) -> None:
    """``study.tell``; the grid sampler calls ``study.stop()`` after the last grid point, which
    Optuna refuses outside ``optimize`` with a RuntimeError although the trial is already saved."""
    try:
        handle.tell(trial, value, state=state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def trial_experiment(base: Experiment, values: dict[str, Any], number: int) -> Experiment:
    """The base experiment with the trial's values set (and the search section dropped)."""
    data = base.model_dump(mode="json", exclude={"search"})
    for path, value in values.items():
        node = data
        *parents, leaf = path.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    data["tracking"]["run_name"] = f"{base.tracking.run_name}-trial{number:03d}"
    return validate_experiment(data, source=f"trial {number}")


def run_trial(
    handle: StudyHandle,
    trial: optuna.Trial,
    trial_id: int,
    progress: str = "plain",
    *,
    reclaimed: bool = False,
    job: JobOptions | None = None,
) -> None:
    """Run one claimed trial to its end and tell Optuna how it ended.

    ``reclaimed``: the trial was running in this SLURM job when it was preempted; it continues in
    its run directory, from its checkpoint, into the same MLflow run. Only a preemption
    (:class:`~labkit.errors.Preempted`) leaves the trial RUNNING, for the requeued job.
    ``job``: the options of the batch job this worker runs in (None: not in one, the defaults).
    """
    from labkit.runner import RunOptions

    base = handle.experiment()
    assert base.search is not None
    search = base.search
    study_name = handle.study.study_name
    callback = _callback(trial, base)
    resume_dir, resume_from = _continue_from(handle, trial_id, callback, reclaimed=reclaimed)
    tags = {"labkit.study": study_name, "labkit.trial": str(trial.number)}
    if resume_from is not None:
        tags["labkit.resumed_from"] = str(resume_from)
    options = RunOptions(
        tags=tags,
        callbacks=[callback],
        resume_from=resume_from,
        parent_key=handle.parent_run_key,
        failure_tags={_TRIAL_STATE: "FAIL"},
    )
    with _heartbeat(handle, trial_id):
        try:
            exp = trial_experiment(base, suggest(trial, search), trial.number)
            final = _train(
                exp,
                trial,
                callback,
                options,
                run_dir=resume_dir,
                job=job or JobOptions(),
                progress=progress,
                command=f"labkit tune worker --study {study_name}",
            )
        except Exception as exc:  # noqa: BLE001 - a failing trial is recorded; the study goes on
            reason = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr(_FAIL_REASON, reason[:2000])
            _tell(handle, trial, state=optuna.trial.TrialState.FAIL)
            print(f"labkit tune: trial {trial.number} FAILED: {reason}", flush=True)
            return
    if isinstance(callback, ObjectivesCallback):
        values, why = callback.values(final)
        if why is not None:
            trial.set_user_attr(_FAIL_REASON, why)
            print(f"labkit tune: trial {trial.number} FAILED: {why}", flush=True)
        _tell(handle, trial, values or None, state=optuna.trial.TrialState.FAIL if why else None)
    elif callback.pruned:
        _tell(handle, trial, state=optuna.trial.TrialState.PRUNED)
    elif not callback.history:
        trial.set_user_attr(_FAIL_REASON, f"the task never logged {search.metric!r}")
        _tell(handle, trial, state=optuna.trial.TrialState.FAIL)
    else:
        _tell(handle, trial, callback.best())


def _callback(trial: optuna.Trial, exp: Experiment) -> TrialCallback:
    """The trial's callback: one metric reported each validation (pruning), or several kept."""
    assert exp.search is not None
    if exp.search.objectives is None:
        return TrialCallback(trial, exp.search.metric, exp.search.direction)
    checkpoint = exp.trainer.checkpoint
    metrics = [o.metric for o in exp.search.objectives]
    return ObjectivesCallback(trial, metrics, checkpoint.monitor, checkpoint.mode)


def _restore(callback: TrialCallback, frozen: FrozenTrial) -> None:
    """The values an earlier attempt at this trial reported, when its epochs count."""
    if isinstance(callback, ObjectivesCallback):
        callback.rows = json.loads(str(frozen.user_attrs.get(_VALIDATION) or "[]"))
    else:
        callback.history = [v for _, v in sorted(frozen.intermediate_values.items())]


def _continue_from(
    handle: StudyHandle, trial_id: int, callback: TrialCallback, *, reclaimed: bool
) -> tuple[Path | None, Path | None]:
    """Where the trial's run continues: ``(run directory, None)`` for a trial this job was running
    when it was preempted; ``(None, checkpoint)`` for a retry of a trial whose worker died (its
    run is closed); ``(None, None)`` for a fresh start. The callback gets the values reported so
    far, when they count towards the trial's value."""
    from labkit.runner import RunDir
    from labkit.tracking import end_abandoned_run

    frozen = handle.storage.get_trial(trial_id)
    if reclaimed and frozen.user_attrs.get(_RUN_DIR):
        _restore(callback, frozen)
        return Path(str(frozen.user_attrs[_RUN_DIR])), None
    previous = handle.previous_attempt(trial_id)
    if previous is None:
        return None, None
    old_dir = previous.user_attrs.get(_RUN_DIR)
    resume_from = RunDir(Path(str(old_dir)), "").resume_checkpoint() if old_dir else None
    if resume_from is not None:  # its epochs count towards the trial's value
        _restore(callback, previous)
    if old_dir:
        uri = handle.experiment().tracking.uri
        end_abandoned_run(str(old_dir), f"worker died during trial {previous.number}", uri)
    return None, resume_from


def _train(
    exp: Experiment,
    trial: optuna.Trial,
    callback: TrialCallback,
    options: RunOptions,
    *,
    run_dir: Path | None,
    job: JobOptions,
    progress: str,
    command: str,
) -> dict[str, float]:
    """The trial's run: fit; test unless pruned; its state as the tag ``labkit.trial_state``; the
    run's final metrics (test metrics, ``inference_ms``, ``parameters``, ...)."""
    from labkit.runner import RunSession

    session = RunSession(exp, run_dir=run_dir, command=command, progress=progress, job=job, options=options)
    with session:
        built = session.build()
        session.start(built)
        _note_run(trial, session, job)
        fitted = session.fit(built)
        metrics = {} if callback.pruned else session.test(fitted)
        result = session.finish(fitted, metrics, tags={_TRIAL_STATE: _trial_state(callback)})
        return {**result.metrics, **result.cost}


def _note_run(trial: optuna.Trial, session: RunSession, job: JobOptions) -> None:
    """Where the trial runs, in its user attributes: a retry or a requeued job finds it there."""
    from labkit.cluster import current_job_id

    trial.set_user_attr("labkit.worker", f"{socket.gethostname()}:{os.getpid()}")
    if session.run_id:  # offline: known once the run is synced
        trial.set_user_attr(_RUN_ID, session.run_id)
    trial.set_user_attr(_RUN_DIR, str(session.run_dir.path))
    job_id = current_job_id(job.environ)
    if job_id:
        trial.set_user_attr(SLURM_JOB, job_id)


def _trial_state(callback: TrialCallback) -> str:
    """PRUNED, COMPLETE, or FAIL when the study metric was never logged."""
    if callback.pruned:
        return "PRUNED"
    return "COMPLETE" if callback.done() else "FAIL"
