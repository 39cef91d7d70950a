"""The run as a session: one run directory, one tracker, and how the run ended, recorded.

:class:`RunSession` is a context manager. Entering it creates the run directory (or opens one
to resume the run it holds) and writes the experiment into it; inside, the caller builds the
data and the task, starts the tracked run, fits, tests and finishes; leaving it records how the
run ended: FINISHED, FAILED (KILLED for Ctrl-C), or, for a preempted batch job, REQUEUED or
INTERRUPTED, in ``run.json`` and in MLflow. A run is never left RUNNING.

:func:`labkit.runner.run` is the plain composition; the tuner composes the same steps with its
own callbacks and tags.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from labkit._rundir import JobOptions, RunDir
from labkit.config import Experiment, dump_experiment, flatten
from labkit.errors import ConfigError, LabkitError, Preempted
from labkit.runner._cost import inference_cost
from labkit.runner._failure import FAILURE_TAG, disk_problem, first_line, record_failure, record_preemption
from labkit.runner._init_from import PARENT_TAG, Parent
from labkit.runner._notice import notify_run
from labkit.runner._outcome import Built, Fitted, RunOptions, RunResult
from labkit.runner._record import Attempt, bound_ratios, leave_process_group, run_tags, upload
from labkit.tracking import SPOOL_FILE, redact_uri

if TYPE_CHECKING:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback

    from labkit.runner._nan import NanStop
    from labkit.runner._preempt import InterruptWatch
    from labkit.tracking import Tracker

__all__ = ["RunSession"]

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


class RunSession:
    """One run of ``exp``, from its run directory to its final status::

        with RunSession(exp, progress="plain") as session:
            built = session.build()
            session.start(built)
            fitted = session.fit(built)
            session.finish(fitted, session.test(fitted))
        result = session.result

    ``run_dir`` names an existing run directory (``labkit submit`` makes one per job): a run it
    holds already is resumed, from its newest checkpoint, into the same MLflow run. ``source`` is
    the experiment file (it locates the git checkout); ``command`` is recorded as the
    ``labkit.command`` tag; ``job`` holds the batch job's options (None: the defaults);
    ``options`` what a caller adds (tags, callbacks, a checkpoint to resume from).

    Under DDP every rank trains; only rank 0 writes the run directory and talks to MLflow.
    """

    def __init__(
        self,
        exp: Experiment,
        *,
        run_dir: Path | None = None,
        source: Path | None = None,
        command: str | None = None,
        progress: str = "auto",
        stream: TextIO | None = None,
        job: JobOptions | None = None,
        options: RunOptions | None = None,
    ) -> None:
        from labkit.tracking import redact_command

        self.exp = exp
        self.progress = progress
        self.stream = stream or sys.stderr
        self.job = job or JobOptions()
        self._unstage: Any = None
        self.options = options or RunOptions()
        self.source = source
        self.command = redact_command(command) if command else None
        self.tracker: Tracker | None = None
        self.result: RunResult | None = None  #: set by :meth:`finish`
        self._run_dir = run_dir
        self._run_id: str | None = None
        self.parent: Parent | None = None  #: the run ``init_from`` names (set by :meth:`build`)
        self._nan: NanStop | None = None  # stops training at a non-finite loss (set by :meth:`fit`)
        self._guard = contextlib.ExitStack()  # signal handling while training, testing, uploading
        self._quiet = contextlib.ExitStack()  # Lightning's warnings and tips
        # what is written down and logged: the experiment with any password in its URI masked
        self.shown_uri = redact_uri(exp.tracking.uri or "")
        tracking = exp.tracking.model_copy(update={"uri": self.shown_uri})
        self.public = exp.model_copy(update={"tracking": tracking})

    # -- the run directory ---------------------------------------------------------------------
    def __enter__(self) -> RunSession:
        from lightning.pytorch.utilities import rank_zero_only

        self.leader = getattr(rank_zero_only, "rank", 0) == 0
        self.resuming = False  # the run directory holds a run that started: continue it
        self.resume_from = self.options.resume_from
        self.run_dir = self._open_run_dir()
        self._write_config()
        self.attempt = Attempt(previous_s=float(self.run_dir.state().get("elapsed_s", 0.0)))
        tips, lightning_log = _DropTips(), logging.getLogger("lightning.pytorch.utilities.rank_zero")
        self._quiet.enter_context(warnings.catch_warnings())
        for pattern in _QUIET:
            warnings.filterwarnings("ignore", message=pattern)
        lightning_log.addFilter(tips)
        self._quiet.callback(lightning_log.removeFilter, tips)
        return self

    def _open_run_dir(self) -> RunDir:
        if self._run_dir is None:
            return RunDir.create(self.exp.runs_root, self.exp.name)
        rdir = RunDir.open(self._run_dir)
        state = rdir.state()
        if state.get("status") == "FINISHED":
            raise LabkitError(
                f"run directory {self._run_dir} holds a finished run "
                f"(MLflow run {state.get('mlflow_run_id')}); nothing to resume"
            )
        self.resuming = (rdir.path / SPOOL_FILE).is_file()
        if self.source is None and state.get("experiment_file"):
            self.source = Path(state["experiment_file"])
        if self.resuming and self.resume_from is None:
            self.resume_from = rdir.resume_checkpoint()
        return rdir

    def _write_config(self) -> None:
        if not self.leader:
            return
        try:
            self.run_dir.config_file.write_text(dump_experiment(self.public))
            if self._run_dir is None:
                self.run_dir.update(
                    experiment_file=str(self.source) if self.source else None, command=self.command
                )
        except OSError as exc:
            early = disk_problem(exc, self.run_dir)
            if early is None:
                raise
            raise LabkitError(f"{early} (the run did not start)") from exc

    @property
    def run_id(self) -> str | None:
        """The MLflow run id once started (None offline, until the run is synced, or on another rank)."""
        return self.tracker.run_id if self.tracker is not None else self._run_id

    # -- the steps -----------------------------------------------------------------------------
    def build(self) -> Built:
        """Check the accelerator, seed everything, build the data and the task (checking the data
        before anything is logged); start it from ``init_from``'s weights, freeze ``freeze``."""
        import lightning.pytorch as pl

        from labkit.data import default_stage_dir
        from labkit.runner._build import build_datamodule, build_task, data_info
        from labkit.runner._init_from import find_parent, freeze_submodules, load_parent_weights, model_root
        from labkit.runner._trainer import check_accelerator

        exp = self.exp
        check_accelerator(exp, self.job.environ)  # before the data is built or simulated: seconds
        if exp.init_from is not None and not self.resuming:  # a resumed run has its own weights
            self.parent = find_parent(exp.init_from, exp.runs_root)
            if self.leader:
                self.run_dir.update(init_from=self.parent.record())
        pl.seed_everything(exp.seed, workers=True, verbose=False)
        datamodule = build_datamodule(exp, stage_dir=default_stage_dir(self.job.environ))
        self._unstage = getattr(datamodule, "unstage", None)  # data.stage: removed when the run ends
        info = data_info(datamodule, exp)
        task = build_task(exp, info)
        if self.parent is not None and self.resume_from is None:
            load_parent_weights(task, self.parent, self.public.to_dict()["model"])
        freeze_submodules(model_root(task), exp.freeze)
        return Built(datamodule, task, info)

    def start(self, built: Built) -> None:
        """Start the tracked run (or resume it), mark it RUNNING, and say so."""
        from labkit.tracking import Tracker

        exp, rdir = self.exp, self.run_dir
        assert exp.tracking.uri and exp.tracking.experiment and exp.tracking.run_name
        if self.leader:
            self.tracker = Tracker(
                exp.tracking.uri,
                exp.tracking.experiment,
                rdir.path,
                mode=exp.tracking.mode,
                drain_timeout=exp.tracking.drain_timeout,
                notify=lambda line: print(line, file=self.stream, flush=True),
            )
            self._run_id = self._start_or_resume(self.tracker)
            info = built.info
            if not self.resuming:
                if info.checksum:
                    self.tracker.set_tags({"labkit.data_sha256": info.checksum})
                if info.reference_metrics:  # e.g. the Cramér–Rao bound for this test split
                    self.tracker.log_values(info.reference_metrics)
            rdir.mark("RUNNING", mlflow_run_id=self._run_id, tracking_uri=self.shown_uri, error=None)
        if self.progress != "none" and self.leader:
            self._announce(built)

    def _start_or_resume(self, tracker: Tracker) -> str | None:
        import torch

        from labkit.cluster import slurm_tags

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        job_tags = slurm_tags(self.job.environ) | {"labkit.gpu_model": gpu}
        if "slurm.job_id" in job_tags and self.job.cluster:
            job_tags["slurm.cluster"] = self.job.cluster
        if self.resuming:
            tracker.resume()
            origin = str(self.resume_from or "the start (no checkpoint)")
            tracker.set_tags(job_tags | {"labkit.resumed_from": origin})
            return tracker.run_id
        exp = self.exp
        tags = run_tags(exp, self.run_dir, self.source, self.command) | job_tags
        if self.parent is not None:  # fine-tuned from another run
            tags[PARENT_TAG] = self.parent.tag
        tags |= self.options.tags
        run_id = tracker.start(
            exp.tracking.run_name or exp.name,
            flatten(self.public.to_dict()),
            tags,
            run_key=self.run_dir.run_key,
            parent_key=self.options.parent_key,
        )
        if self.run_dir.job_script.is_file():  # a submitted job: its sbatch script, from the start
            tracker.log_artifact(self.run_dir.job_script)
        return run_id

    def _announce(self, built: Built) -> None:
        task, info = built.task, built.info
        n_params = sum(p.numel() for p in task.parameters() if p.requires_grad)
        verb = "resumes" if self.resuming else "run"
        origin = f" from {self.resume_from}" if self.resuming and self.resume_from else ""
        shown = self._run_id or f"key {self.run_dir.run_key}"
        print(
            f"labkit: {verb} {shown} ({self.exp.name}){origin}: {type(task).__name__} with "
            f"{type(getattr(task, 'model', task)).__name__}, {n_params:,} trainable parameters, "
            f"data {info.sizes or info.in_shape}\n        run directory {self.run_dir.path}",
            file=self.stream,
            flush=True,
        )

    def fit(self, built: Built) -> Fitted:
        """Train (from ``options.resume_from`` or the run's own checkpoint when resuming). In a
        batch job, the job's signal saves a checkpoint and stops (:class:`Preempted`)."""
        from lightning.fabric.utilities.exceptions import MisconfigurationException
        from lightning.pytorch.accelerators import CUDAAccelerator
        from lightning.pytorch.loggers.logger import DummyLogger

        from labkit.runner._preempt import ctrl_c_raises
        from labkit.runner._trainer import build_trainer

        callbacks, watch = self._callbacks()
        start = time.perf_counter()
        try:
            logger = self.tracker if self.tracker is not None else DummyLogger()
            trainer, checkpoint = build_trainer(
                self.exp,
                self.run_dir,
                logger,
                self.progress,
                self.stream,
                callbacks,
                self.job.environ,
                job=self.job,
            )
            if isinstance(trainer.accelerator, CUDAAccelerator):
                self.attempt.gpus = trainer.num_devices * trainer.num_nodes
            start = time.perf_counter()
            resume = str(self.resume_from) if self.resume_from else None
            with ctrl_c_raises(watch):
                trainer.fit(built.task, datamodule=built.datamodule, ckpt_path=resume)
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
        return Fitted(built, trainer, watch, fit_seconds, best)

    def _callbacks(self) -> tuple[list[Callback], InterruptWatch]:
        """The caller's callbacks, the Ctrl-C watch and, in a batch job, the preemption callback
        (its signal is noted, not fatal, from here until the session ends)."""
        from labkit.cluster import in_slurm_job
        from labkit.runner._nan import NanStop
        from labkit.runner._preempt import InterruptWatch, PreemptionCallback, outside_training

        watch, self._nan = InterruptWatch(), NanStop()  # Ctrl-C in fit/test: Lightning exits 1
        callbacks: list[Callback] = [*self.options.callbacks, watch, self._nan]
        if in_slurm_job(self.job.environ):  # a batch job: checkpoint and stop on its signal or SIGTERM
            saved = self.run_dir.checkpoints / "preempted.ckpt"
            callbacks.append(PreemptionCallback(saved, self.job.signal, requeue=self.job.requeue))
            self._guard.enter_context(outside_training(self.job.signal))
        return callbacks, watch

    def test(self, fitted: Fitted) -> dict[str, float]:
        """Test the best checkpoint (the last weights without one); the test metrics."""
        from labkit.runner._preempt import ctrl_c_raises

        best = fitted.best_checkpoint
        with ctrl_c_raises(fitted.watch):
            tested = fitted.trainer.test(
                fitted.built.task,
                datamodule=fitted.built.datamodule,
                ckpt_path=str(best) if best else None,
                verbose=False,
            )
        return {k: float(v) for k, v in (tested[0] if tested else {}).items()}

    def finish(
        self, fitted: Fitted, metrics: Mapping[str, float], *, tags: Mapping[str, str] | None = None
    ) -> RunResult:
        """Log the run's last values, figures, test outputs and artifacts (and ``tags``), end the run;
        the run is marked FINISHED when the session ends."""
        metrics = dict(metrics)
        tracker = self.tracker
        if tracker is None:  # another DDP rank: rank 0 logs and uploads
            leave_process_group()
            return self._result(fitted, metrics, None)
        datamodule, trainer = fitted.built.datamodule, fitted.trainer
        reference = getattr(getattr(datamodule, "info", None), "reference_metrics", None) or {}
        ratios, built = bound_ratios(reference, metrics), fitted.built
        cost = inference_cost(built.task, datamodule, trainer.strategy.root_device, stream=self.stream)
        metrics |= ratios | {k: float(v) for k, v in reference.items()}
        tracker.log_values(
            {"fit_time_s": fitted.fit_seconds, "epochs_trained": trainer.current_epoch, **ratios, **cost}
            | {"gpu_hours": self.attempt.gpu_hours()},
            step=trainer.global_step,
        )
        self._save_figures(fitted.built.task)
        from labkit.runner._outputs import save_test_outputs  # numpy: loaded once the run is tested

        save_test_outputs(
            task=built.task, info=built.info, kind=self.exp.task.kind, world=trainer.world_size,
            run_dir=self.run_dir, tracker=tracker, stream=self.stream,
        )  # fmt: skip
        upload(self.exp, tracker, self.run_dir, fitted.best_checkpoint)
        if tags is not None:
            tracker.set_tags(dict(tags))
        tracker.finish()
        leave_process_group()
        self.result = replace(self._result(fitted, metrics, tracker), cost=cost)
        return self.result

    def _save_figures(self, task: pl.LightningModule) -> None:
        draw = getattr(task, "figures", None)  # labkit tasks draw figures; a user's own module may not
        figures: dict[str, Any] = draw() if callable(draw) else {}
        if figures:
            self.run_dir.figures.mkdir(exist_ok=True)
            for stem, fig in figures.items():
                fig.savefig(self.run_dir.figures / f"{stem}.png", dpi=120)

    def _result(self, fitted: Fitted, metrics: dict[str, float], tracker: Tracker | None) -> RunResult:
        assert self.exp.tracking.uri
        self.result = RunResult(
            run_id=self.run_id,
            run_key=self.run_dir.run_key,
            run_dir=self.run_dir.path,
            tracking_uri=self.exp.tracking.uri,
            experiment_id=tracker.experiment_id if tracker else None,
            metrics=metrics,
            fit_seconds=fitted.fit_seconds,
            best_checkpoint=fitted.best_checkpoint,
        )
        return self.result

    # -- the end -------------------------------------------------------------------------------
    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._quiet:
            self._guard.close()
            if callable(self._unstage) and not isinstance(exc, Preempted):  # a requeue reuses them
                self._unstage()
            if exc is not None:
                self._record(exc)
                return
            if self.result is None:
                ended = LabkitError("the run session ended before finish(): the run did not finish")
                self._record(ended)
                raise ended
            if self.leader:
                self.run_dir.mark(
                    "FINISHED",
                    metrics=self.result.metrics,
                    elapsed_s=self.attempt.total_s(),
                    mlflow_run_id=self.run_id,
                )
                notify_run(self, "finished", metrics=self.result.metrics)

    def _record(self, exc: BaseException) -> None:
        """Record how the run ended; raise the error to raise instead of ``exc``, if there is one."""
        if not self.leader:
            return
        if isinstance(exc, Preempted):
            record_preemption(
                self.tracker, self.run_dir, exc, self.attempt.total_s(), self.job,
                announce=lambda what: notify_run(self, "preempted", detail=what),
            )  # fmt: skip
            return
        nan = (self._nan is not None and self._nan.reason is not None) or isinstance(exc, FloatingPointError)
        tags = {**self.options.failure_tags, **({FAILURE_TAG: "nan"} if nan else {})}
        instead = record_failure(self.tracker, self.run_dir, exc, self.attempt.total_s(), tags)
        notify_run(self, "nan" if nan else "failed", detail=first_line(exc))
        if instead is not None:  # a full disk, a read-only file system: the user's to fix
            raise instead from exc
