"""The Lightning Trainer as the experiment's ``trainer`` section asks for it."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers.logger import Logger

from labkit._rundir import JobOptions, RunDir
from labkit.config import Experiment
from labkit.errors import ConfigError
from labkit.runner._progress import progress_callback

__all__ = ["apply_threads", "build_trainer", "check_accelerator", "system_metrics"]

#: the tag naming the CPU threads a run trained with (``trainer.threads`` resolved)
THREADS_TAG = "labkit.threads"


def build_trainer(
    exp: Experiment,
    run_dir: RunDir,
    logger: Logger,
    progress: str,
    stream: TextIO,
    extra_callbacks: Sequence[Callback] = (),
    environ: Mapping[str, str] | None = None,
    *,
    job: JobOptions | None = None,
) -> tuple[pl.Trainer, ModelCheckpoint]:
    """The Trainer and its checkpoint callback; ``environ``: the job's environment (None: this
    process's), where ``labkit.cluster`` sees whether this is a SLURM batch job. torch gets the
    threads ``trainer.threads`` asks for (:func:`apply_threads`, with ``job``'s CPU counts, by
    default those of ``environ``), noted in the run's tag ``labkit.threads``. A run logged by
    labkit's Tracker samples its system metrics every ``tracking.system_every`` seconds
    (:func:`system_metrics`)."""
    t = exp.trainer
    if job is None:  # the CPU counts of the job whose environment the CLI passed in
        job = JobOptions.from_environ(environ) if environ is not None else JobOptions()
    threads = apply_threads(t.threads, job)
    set_tags = getattr(logger, "set_tags", None)
    if callable(set_tags):  # labkit's Tracker (rank 0)
        set_tags({THREADS_TAG: str(threads)})
    checkpoint = ModelCheckpoint(
        dirpath=run_dir.checkpoints,
        filename="best",
        monitor=t.checkpoint.monitor,
        mode=t.checkpoint.mode,
        save_top_k=1,
        save_last=t.checkpoint.save_last,
        enable_version_counter=False,
    )
    callbacks: list[Callback] = [checkpoint, *extra_callbacks]
    if t.early_stopping is not None:
        es = t.early_stopping
        callbacks.append(
            EarlyStopping(monitor=es.monitor, mode=es.mode, patience=es.patience, min_delta=es.min_delta)
        )
    if exp.optimizer.scheduler is not None:
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    system = system_metrics(exp, logger, environ)
    if system is not None:
        callbacks.append(system)
    bar = progress_callback(progress, stream)
    if bar is not None:
        callbacks.append(bar)
    trainer = pl.Trainer(
        max_epochs=t.max_epochs,
        min_epochs=t.min_epochs,
        max_time=t.max_time,
        accelerator=t.accelerator,
        devices=list(t.devices) if isinstance(t.devices, tuple) else t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        gradient_clip_val=t.gradient_clip_val,
        gradient_clip_algorithm=t.gradient_clip_algorithm if t.gradient_clip_val else None,
        accumulate_grad_batches=t.accumulate_grad_batches,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        log_every_n_steps=t.log_every_n_steps,
        limit_train_batches=_limit(t.limit_train_batches),
        limit_val_batches=_limit(t.limit_val_batches),
        limit_test_batches=_limit(t.limit_test_batches),
        deterministic=t.deterministic,
        logger=logger,
        plugins=_cluster_environment(environ),
        callbacks=callbacks,
        default_root_dir=run_dir.path,
        enable_progress_bar=bar is not None,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    return trainer, checkpoint


def system_metrics(exp: Experiment, logger: Logger, environ: Mapping[str, str] | None) -> Callback | None:
    """The callback logging ``system/...`` (:class:`labkit.runner._system.SystemMetrics`) when
    ``tracking.system_every`` is above 0 and ``logger`` is labkit's Tracker (the rank that logs);
    the GPUs it samples are those ``CUDA_VISIBLE_DEVICES`` names in the job's ``environ`` (None:
    every GPU NVML sees)."""
    from labkit.tracking import Tracker

    every = exp.tracking.system_every
    if every <= 0 or not isinstance(logger, Tracker):
        return None
    from labkit.runner._system import SystemMetrics, visible_gpus

    return SystemMetrics(every, devices=visible_gpus(environ))


def apply_threads(setting: int | str, job: JobOptions) -> int:
    """Give torch ``setting`` (``trainer.threads``: ``auto`` or a count) threads, intra-op and
    inter-op; the count. ``auto``: :func:`labkit._threads.auto_threads` with the job's
    ``SLURM_CPUS_PER_TASK`` and ``OMP_NUM_THREADS``. torch takes the inter-op count only before
    its first parallel work: later it keeps the one it has."""
    import torch

    from labkit._threads import auto_threads

    threads = auto_threads("auto" if setting == "auto" else int(setting), cpus=job.cpus, omp=job.omp_threads)
    torch.set_num_threads(threads)
    # raises once set, or once inter-op work has started in this process
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(threads)
    return threads


def check_accelerator(exp: Experiment, environ: Mapping[str, str] | None = None) -> None:
    """``trainer.accelerator`` and ``trainer.devices`` against the devices this machine has,
    before any data is built (Lightning finds out only when the Trainer is made)."""
    import torch

    from labkit.cluster import in_slurm_job

    t = exp.trainer
    if t.accelerator in ("gpu", "cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"trainer.accelerator: {t.accelerator!r} but no GPU is visible on this machine "
                "(torch.cuda.is_available() is False); use accelerator: auto (a GPU when there is "
                "one) or cpu, or run it where there is a GPU (labkit submit)"
            )
        wanted = max(t.devices) + 1 if isinstance(t.devices, tuple) and t.devices else t.devices
        # in a SLURM job, each task may see only the GPUs bound to it: Lightning sorts that out
        if isinstance(wanted, int) and wanted > count and not in_slurm_job(environ):
            raise ConfigError(
                f"trainer.devices: {_shown(t.devices)} but this machine has {count} GPU"
                f"{'s' * (count != 1)} (indices 0 to {count - 1}); use devices: auto or at most {count}"
            )
    elif t.accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            "trainer.accelerator: 'mps' but Apple's Metal GPU is not available on this machine; "
            "use accelerator: auto or cpu"
        )


def _shown(devices: object) -> str:
    return f"[{', '.join(map(str, devices))}]" if isinstance(devices, tuple) else repr(devices)


def _limit(value: float) -> float | None:
    # the float 1.0 (all batches) is Lightning's default: pass None to skip its notice; the int 1 is one batch
    return None if isinstance(value, float) and value == 1.0 else value


def _cluster_environment(environ: Mapping[str, str] | None) -> list[Any] | None:
    """Inside a SLURM batch job: Lightning's SLURM environment (ranks, master address) without
    its auto-requeue, which labkit's PreemptionCallback replaces."""
    from lightning.fabric.plugins.environments.slurm import SLURMEnvironment

    from labkit.cluster import in_slurm_job

    if not (in_slurm_job(environ) and SLURMEnvironment.detect()):
        return None
    return [SLURMEnvironment(auto_requeue=False)]
