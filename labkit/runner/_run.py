"""``labkit run``: one experiment → one run directory → one MLflow run."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from labkit._rundir import RunDir
from labkit.config import Experiment, dump_experiment, flatten
from labkit.errors import ConfigError, LabkitError, Preempted
from labkit.runner._failure import disk_problem, record_failure
from labkit.tracking import SPOOL_FILE, git_state, redact_command, redact_uri, software_versions, user

if TYPE_CHECKING:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback

    from labkit.tracking import Tracker

__all__ = ["RunHooks", "RunResult", "run"]

# Lightning's advice that does not apply to labkit's in-memory datasets
_QUIET = (
    r".*does not have many workers.*",
    r".*The number of training batches .* is smaller than the logging interval.*",
    r".*Consider setting `persistent_workers=True`.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*The `srun` command is available on your system but is not used.*",  # a login node running locally
    r"Checkpoint directory .* exists and is not empty.*",  # a resumed run: its own checkpoints
)


class _DropTips(logging.Filter):
    """Lightning advertises cloud services at every start; a physicist's log needs none of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


@dataclass(frozen=True)
class RunHooks:
    """What a caller such as the tuner adds to a run, without reaching inside it."""

    tags: dict[str, str] = field(default_factory=dict)  #: extra tags when the run starts
    callbacks: Sequence[Callback] = ()  #: extra Lightning callbacks
    resume_from: Path | None = None  #: a checkpoint to continue training from
    on_start: Callable[[RunDir, str], None] | None = None  #: called with the run dir and run id
    skip_test: Callable[[], bool] | None = None  #: after fit: True skips the test (a pruned trial)
    end_tags: Callable[[BaseException | None], dict[str, str]] | None = None  #: tags at the end
    parent_key: str | None = None  #: the run key of the run this one is a child of (a study's)


@dataclass(frozen=True)
class RunResult:
    """What ``labkit run`` reports at the end."""

    run_id: str | None  #: None while the run is only in its spool (offline)
    run_key: str
    run_dir: Path
    tracking_uri: str
    experiment_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    fit_seconds: float = 0.0
    best_checkpoint: Path | None = None

    def how_to_open(self) -> list[str]:
        """Lines telling a user how to see this run in the MLflow UI."""
        if not self.run_id or not self.experiment_id:
            return [f"labkit sync {self.run_dir}  (uploads it), then open it in MLflow"]
        # the query selects the UI's "Model training" view (MLflow 3 opens on its GenAI view)
        page = f"#/experiments/{self.experiment_id}/runs/{self.run_id}?workflowType=machine_learning"
        uri = redact_uri(self.tracking_uri)
        if uri.startswith(("http://", "https://")):
            return [f"{uri.rstrip('/')}/{page}"]
        return [f"mlflow ui --backend-store-uri {uri}", f"then http://127.0.0.1:5000/{page}"]


def run(
    exp: Experiment,
    *,
    progress: str = "auto",
    command: str | None = None,
    source: Path | None = None,
    stream: TextIO | None = None,
    hooks: RunHooks | None = None,
    run_dir: Path | None = None,
) -> RunResult:
    """Train, validate and test ``exp``; log everything to its run directory and to MLflow.

    ``progress`` is ``auto``, ``rich``, ``plain`` or ``none``; ``source`` is the experiment file
    (it locates the git checkout); ``command`` is recorded as the ``labkit.command`` tag.
    ``run_dir`` names an existing run directory (``labkit submit`` creates one per job): a run
    it holds already is resumed, from its newest checkpoint, into the same MLflow run.

    Under DDP every rank trains; only rank 0 writes the run directory and talks to MLflow.
    """
    import lightning.pytorch as pl
    from lightning.pytorch.utilities import rank_zero_only

    from labkit.runner._build import build_datamodule, build_task, data_info
    from labkit.runner._trainer import check_accelerator
    from labkit.tracking import Tracker

    stream = stream or sys.stderr
    hooks = hooks or RunHooks()
    command = redact_command(command) if command else None
    leader = getattr(rank_zero_only, "rank", 0) == 0
    resuming = False  # the run directory holds a run that started: continue it
    if run_dir is None:
        rdir = RunDir.create(exp.runs_root, exp.name)
    else:
        rdir = RunDir.open(run_dir)
        state = rdir.state()
        if state.get("status") == "FINISHED":
            raise LabkitError(
                f"run directory {run_dir} holds a finished run (MLflow run {state.get('mlflow_run_id')}); "
                "nothing to resume"
            )
        resuming = (rdir.path / SPOOL_FILE).is_file()
        if source is None and state.get("experiment_file"):
            source = Path(state["experiment_file"])
        if resuming and hooks.resume_from is None:
            hooks = replace(hooks, resume_from=rdir.resume_checkpoint())
    # what is written down and logged: the experiment with any password in its URI masked
    shown_uri = redact_uri(exp.tracking.uri or "")
    public = exp.model_copy(update={"tracking": exp.tracking.model_copy(update={"uri": shown_uri})})
    if leader:
        try:
            rdir.config_file.write_text(dump_experiment(public))
            if run_dir is None:
                rdir.update(experiment_file=str(source) if source else None, command=command)
        except OSError as exc:
            early = disk_problem(exc, rdir)
            if early is None:
                raise
            raise LabkitError(f"{early} (the run did not start)") from exc

    tracker: Tracker | None = None
    attempt = _Attempt(previous_s=float(rdir.state().get("elapsed_s", 0.0)))
    lightning_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    tips = _DropTips()
    lightning_log.addFilter(tips)
    with warnings.catch_warnings():
        for pattern in _QUIET:
            warnings.filterwarnings("ignore", message=pattern)
        try:
            check_accelerator(exp)  # before the data is built or simulated: seconds, not minutes
            pl.seed_everything(exp.seed, workers=True, verbose=False)
            datamodule = build_datamodule(exp)
            info = data_info(datamodule, exp)  # checks the data before anything is logged
            task = build_task(exp, info)

            assert exp.tracking.uri and exp.tracking.experiment and exp.tracking.run_name
            run_id: str | None = None
            if leader:
                tracker = Tracker(
                    exp.tracking.uri,
                    exp.tracking.experiment,
                    rdir.path,
                    mode=exp.tracking.mode,
                    drain_timeout=exp.tracking.drain_timeout,
                    notify=lambda line: print(line, file=stream, flush=True),
                )
                run_id = _start_or_resume(tracker, exp, public, rdir, source, command, hooks, resuming)
                if not resuming:
                    if info.checksum:
                        tracker.set_tags({"labkit.data_sha256": info.checksum})
                    if info.reference_metrics:  # e.g. the Cramér–Rao bound for this test split
                        tracker.log_values(info.reference_metrics)
                rdir.mark("RUNNING", mlflow_run_id=run_id, tracking_uri=shown_uri, error=None)
                if hooks.on_start is not None:
                    hooks.on_start(rdir, run_id or "")
            if progress != "none" and leader:
                n_params = sum(p.numel() for p in task.parameters() if p.requires_grad)
                verb = "resumes" if resuming else "run"
                origin = f" from {hooks.resume_from}" if resuming and hooks.resume_from else ""
                shown = run_id or f"key {rdir.run_key}"
                print(
                    f"labkit: {verb} {shown} ({exp.name}){origin}: {type(task).__name__} with "
                    f"{type(getattr(task, 'model', task)).__name__}, {n_params:,} trainable parameters, "
                    f"data {info.sizes or info.in_shape}\n        run directory {rdir.path}",
                    file=stream,
                    flush=True,
                )
            result = _train(exp, task, datamodule, tracker, rdir, progress, stream, hooks, attempt)
        except Preempted as exc:
            if leader:
                _record_preemption(tracker, rdir, exc, attempt)
            raise
        except BaseException as exc:
            if not leader:
                raise
            instead = record_failure(tracker, rdir, exc, attempt.total_s(), hooks.end_tags)
            if instead is not None:  # a full disk, a read-only file system: the user's to fix
                raise instead from exc
            raise
        finally:
            lightning_log.removeFilter(tips)
    if leader:
        run_id = tracker.run_id if tracker else run_id
        rdir.mark("FINISHED", metrics=result.metrics, elapsed_s=attempt.total_s(), mlflow_run_id=run_id)
    return RunResult(
        run_id=run_id,
        run_key=rdir.run_key,
        run_dir=rdir.path,
        tracking_uri=exp.tracking.uri,
        experiment_id=tracker.experiment_id if tracker else None,
        metrics=result.metrics,
        fit_seconds=result.fit_seconds,
        best_checkpoint=result.best_checkpoint,
    )


@dataclass
class _Attempt:
    """This process's share of the run's wall time (a requeued run has several attempts)."""

    previous_s: float = 0.0  #: wall time of earlier attempts (run.json ``elapsed_s``)
    gpus: int = 0  #: GPUs this attempt trains on (all ranks)
    started: float = field(default_factory=time.monotonic)

    def total_s(self) -> float:
        return self.previous_s + time.monotonic() - self.started

    def gpu_hours(self) -> float:
        return self.total_s() * self.gpus / 3600.0


def _start_or_resume(
    tracker: Tracker,
    exp: Experiment,
    public: Experiment,
    rdir: RunDir,
    source: Path | None,
    command: str | None,
    hooks: RunHooks,
    resuming: bool,
) -> str | None:
    import torch

    from labkit.cluster import slurm_tags

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    if resuming:
        tracker.resume()
        tags = slurm_tags() | {
            "labkit.resumed_from": str(hooks.resume_from or "the start (no checkpoint)"),
            "labkit.gpu_model": gpu,
        }
        tracker.set_tags(tags)
        return tracker.run_id
    tags = _tags(exp, rdir, source, command) | slurm_tags() | {"labkit.gpu_model": gpu} | hooks.tags
    run_id = tracker.start(
        exp.tracking.run_name or exp.name,
        flatten(public.to_dict()),
        tags,
        run_key=rdir.run_key,
        parent_key=hooks.parent_key,
    )
    if rdir.job_script.is_file():  # a submitted job: its sbatch script, as an artifact from the start
        tracker.log_artifact(rdir.job_script)
    return run_id


@dataclass
class _Trained:
    metrics: dict[str, float]
    fit_seconds: float
    best_checkpoint: Path | None


def _train(
    exp: Experiment,
    task: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    tracker: Tracker | None,
    run_dir: RunDir,
    progress: str,
    stream: TextIO,
    hooks: RunHooks,
    attempt: _Attempt,
) -> _Trained:
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.accelerators import CUDAAccelerator
    from lightning.pytorch.loggers.logger import DummyLogger

    from labkit.cluster import in_slurm_job
    from labkit.runner._preempt import InterruptWatch, PreemptionCallback, ctrl_c_raises, outside_training
    from labkit.runner._trainer import build_trainer

    watch = InterruptWatch()  # Ctrl-C in fit/test: Lightning exits 1; the CLI must see the interrupt
    callbacks = [*hooks.callbacks, watch]
    guard: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if in_slurm_job():  # a batch job: checkpoint and stop on SLURM's signal or SIGTERM
        signame = os.environ.get("LABKIT_SIGNAL", "USR1")
        requeue = os.environ.get("LABKIT_REQUEUE", "1") == "1"
        callbacks.append(PreemptionCallback(run_dir.checkpoints / "preempted.ckpt", signame, requeue=requeue))
        guard = outside_training(signame)
    with guard:
        start = time.perf_counter()
        try:
            logger = tracker if tracker is not None else DummyLogger()
            trainer, checkpoint = build_trainer(exp, run_dir, logger, progress, stream, callbacks)
            if isinstance(trainer.accelerator, CUDAAccelerator):
                attempt.gpus = trainer.num_devices * trainer.num_nodes
            start = time.perf_counter()
            resume = str(hooks.resume_from) if hooks.resume_from else None
            with ctrl_c_raises(watch):
                trainer.fit(task, datamodule=datamodule, ckpt_path=resume)
        except MisconfigurationException as exc:  # e.g. accelerator: gpu on a machine without one
            raise ConfigError(f"Lightning rejected the set-up: {exc}") from exc
        except RuntimeError as exc:
            if "conditioned on metric" in str(exc):  # EarlyStopping on a metric the module never logs
                raise ConfigError(f"trainer.early_stopping.monitor: {exc}") from exc
            raise
        fit_seconds = time.perf_counter() - start
        if trainer.interrupted:  # stopped without an exception reaching here: the run is not finished
            raise KeyboardInterrupt
        best = Path(checkpoint.best_model_path) if checkpoint and checkpoint.best_model_path else None
        metrics: dict[str, float] = {}
        if hooks.skip_test is None or not hooks.skip_test():
            with ctrl_c_raises(watch):
                tested = trainer.test(
                    task, datamodule=datamodule, ckpt_path=str(best) if best else None, verbose=False
                )
            metrics = {k: float(v) for k, v in (tested[0] if tested else {}).items()}
        if tracker is None:  # another DDP rank: rank 0 logs and uploads
            _leave_process_group()
            return _Trained(metrics, fit_seconds, best)
        reference = getattr(getattr(datamodule, "info", None), "reference_metrics", None) or {}
        ratios = _bound_ratios(reference, metrics)
        metrics |= ratios | {k: float(v) for k, v in reference.items()}
        tracker.log_values(
            {
                "fit_time_s": fit_seconds,
                "epochs_trained": trainer.current_epoch,
                "gpu_hours": attempt.gpu_hours(),
                **ratios,
            },
            step=trainer.global_step,
        )

        draw = getattr(task, "figures", None)  # labkit tasks draw figures; a user's own module may not
        figures: dict[str, Any] = draw() if callable(draw) else {}
        if figures:
            run_dir.figures.mkdir(exist_ok=True)
            for stem, fig in figures.items():
                fig.savefig(run_dir.figures / f"{stem}.png", dpi=120)
        _upload(exp, tracker, run_dir, best)
        if hooks.end_tags is not None:
            tracker.set_tags(hooks.end_tags(None))
        tracker.finish()
        _leave_process_group()
        return _Trained(metrics, fit_seconds, best)


def _bound_ratios(reference: dict[str, float], metrics: dict[str, float]) -> dict[str, float]:
    """``test_rmse_T / crb_T`` for each Cramér–Rao bound the data gives: 1 is the best an unbiased
    estimator can do on these test samples."""
    out = {}
    for name, bound in reference.items():
        target = name.removeprefix("crb_")
        if name.startswith("crb_") and f"test_rmse_{target}" in metrics and bound > 0:
            out[f"rmse_over_crb_{target}"] = metrics[f"test_rmse_{target}"] / bound
    return out


def _leave_process_group() -> None:
    """DDP: wait until rank 0 has logged everything, then tear the process group down. A rank
    that simply exits aborts in gloo's threads, and srun --kill-on-bad-exit then kills rank 0
    in the middle of its uploads."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _upload(exp: Experiment, tracker: Tracker, run_dir: RunDir, best: Path | None) -> None:
    tracker.log_artifact(run_dir.config_file)
    if (run_dir.path / "git.diff").is_file():
        tracker.log_artifact(run_dir.path / "git.diff")
    if run_dir.figures.is_dir():
        tracker.log_artifact(run_dir.figures, "figures")
    if best is not None and exp.tracking.log_checkpoint:
        tracker.log_artifact(best, "checkpoints")


def _record_preemption(tracker: Tracker | None, run_dir: RunDir, exc: Preempted, attempt: _Attempt) -> None:
    """The job stopped on a signal with a checkpoint saved: requeue it (the requeue signal) or
    leave it to SLURM (SIGTERM: requeued by an admin or preemption, or cancelled)."""
    from labkit.cluster import current_job_id, requeue

    job = current_job_id()
    status = "REQUEUED" if exc.requeue and job else "INTERRUPTED"
    run_dir.mark(status, checkpoint=str(exc.checkpoint), elapsed_s=attempt.total_s(), error=str(exc))
    if tracker is not None and tracker.spool is not None:
        if status == "REQUEUED":
            tracker.suspend(f"{exc}; job {job} requeued, it resumes from there")
        else:
            tracker.fail(exc, killed=True)
    if status == "REQUEUED":
        assert job is not None
        try:
            requeue(job)  # last: SLURM stops this job at once and queues it again
        except LabkitError as err:
            run_dir.mark("INTERRUPTED", error=f"requeue failed: {err}")
            if tracker is not None and tracker.spool is not None:
                tracker.fail(err, killed=True)
            raise LabkitError(
                f"{err}; the checkpoint {exc.checkpoint} is saved: continue with "
                f"labkit run {run_dir.config_file} --run-dir {run_dir.path}"
            ) from None


def _tags(exp: Experiment, run_dir: RunDir, source: Path | None, command: str | None) -> dict[str, str]:
    import platform

    tags = {
        "mlflow.user": user(),
        "mlflow.source.name": str(source) if source else "labkit",
        "mlflow.source.type": "LOCAL",
        "labkit.run_key": run_dir.run_key,
        "labkit.run_dir": str(run_dir.path),
        "labkit.host": platform.node(),
        "labkit.command": command or "",
        "labkit.task": exp.task.kind,
    }
    tags.update({f"labkit.{name}_version": v for name, v in software_versions().items()})
    tags["labkit.version"] = tags.pop("labkit.labkit_version")
    git = git_state(*([source] if source else []), Path.cwd())
    if git is not None:
        tags["mlflow.source.git.commit"] = git.commit
        tags["labkit.git_dirty"] = str(git.dirty).lower()
        if git.branch:
            tags["mlflow.source.git.branch"] = git.branch
        if git.remote:
            tags["mlflow.source.git.repoURL"] = git.remote
        if git.dirty:
            (run_dir.path / "git.diff").write_text(git.patch)
    else:
        tags["labkit.git_dirty"] = "unknown"
    tags.update(exp.tracking.tags)
    return tags
