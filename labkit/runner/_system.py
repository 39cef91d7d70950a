"""System metrics of a training run: CPU, memory, GPUs and the data-wait fraction, as ``system/...``.

One daemon thread samples every ``tracking.system_every`` seconds: this process's CPU percent and
resident memory, the host's memory in use (psutil), and for every GPU the job may use its
utilisation, memory and power (NVML, through ``nvidia-ml-py``; no NVML, no GPU or an NVML error:
no GPU metrics, and no warning). The thread only collects: a spool belongs to the thread that
opened it (:class:`labkit.tracking.write.Spool`), so the training thread logs what was collected,
at the end of the next training batch (and at the end of fit), at ``trainer.global_step``.

The data-wait fraction is measured in the training thread: the time from the end of one
training batch to the start of the next (the loader fetching the next batch) over the whole
time of the training batches and the waits between them, per logging window. Validation and
epoch ends are not counted.

At the end of fit the run gets ``gpu_util``: the mean GPU utilisation (%) over every sample of
the run (over the GPUs of each sample), carried across a requeue in the checkpoint;
``labkit compare`` shows it with ``gpu_hours_idle``.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

__all__ = ["DataWait", "GpuProbe", "ProcessProbe", "SystemMetrics", "SystemSampler", "visible_gpus"]

#: the run's mean GPU utilisation (%), logged at the end of fit
GPU_UTIL = "gpu_util"
#: what a probe returns: metric names (without ``system/``) and values
Sample = dict[str, float]
_MB = 1024.0 * 1024.0


def visible_gpus(environ: Mapping[str, str] | None) -> tuple[str, ...] | None:
    """The GPUs this job may use, as ``CUDA_VISIBLE_DEVICES`` in its ``environ`` names them (NVML
    indices or ``GPU-``/``MIG-`` UUIDs, in CUDA's order); ``None``: not said (every GPU NVML sees);
    ``()``: none (empty, or CUDA's ``-1``/``NoDevFiles``)."""
    if environ is None or "CUDA_VISIBLE_DEVICES" not in environ:
        return None
    names: list[str] = []
    for part in environ["CUDA_VISIBLE_DEVICES"].split(","):
        name = part.strip()
        # CUDA stops at the first entry it cannot read: so does the list
        if not name or name == "NoDevFiles" or (name.lstrip("-").isdigit() and int(name) < 0):
            break
        names.append(name)
    return tuple(names)


class Probe(Protocol):
    """What the sampler reads: :meth:`read` in its thread, :meth:`close` when it stops."""

    def read(self) -> Sample: ...

    def close(self) -> None: ...


class ProcessProbe:
    """This process's CPU percent (100 = one core busy, over the time since the last read) and
    resident memory (MB), and the host's memory in use (%)."""

    def __init__(self) -> None:
        import psutil  # type: ignore[import-untyped, unused-ignore]

        self._psutil = psutil
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first read only starts the clock

    def read(self) -> Sample:
        proc = self._process
        return {
            "cpu_percent": float(proc.cpu_percent(None)),
            "rss_mb": proc.memory_info().rss / _MB,
            "host_memory_percent": float(self._psutil.virtual_memory().percent),
        }

    def close(self) -> None:
        """Nothing to release."""


class GpuProbe:
    """Utilisation (%), memory used (MB) and power (W) of each GPU in ``devices``
    (:func:`visible_gpus`), numbered as the job sees them (``gpu0`` is CUDA's device 0).

    NVML missing (no ``pynvml``, no driver) or failing to start: :attr:`devices` is empty and
    :meth:`read` returns nothing. A device or a reading that fails is left out of that sample."""

    def __init__(self, devices: tuple[str, ...] | None, nvml: Any = None) -> None:
        self.handles: list[Any] = []
        self._nvml: Any = None
        try:
            if nvml is None:
                nvml = importlib.import_module("pynvml")
            nvml.nvmlInit()
        except Exception:  # noqa: BLE001 - no NVML library, no driver, no GPU: no GPU metrics
            return
        self._nvml = nvml
        try:
            names = devices if devices is not None else tuple(map(str, range(nvml.nvmlDeviceGetCount())))
        except Exception:  # noqa: BLE001
            names = ()
        for name in names:
            try:
                if name.isdigit():
                    self.handles.append(nvml.nvmlDeviceGetHandleByIndex(int(name)))
                else:
                    self.handles.append(nvml.nvmlDeviceGetHandleByUUID(name))
            except Exception:  # noqa: BLE001 - not ours to see (a cgroup), gone: one GPU fewer
                self.handles.append(None)
        if not any(h is not None for h in self.handles):
            self.close()

    @property
    def devices(self) -> int:
        return sum(h is not None for h in self.handles)

    def read(self) -> Sample:
        nvml = self._nvml
        out: Sample = {}
        if nvml is None:
            return out
        for i, handle in enumerate(self.handles):
            if handle is None:
                continue
            with contextlib.suppress(Exception):
                out[f"gpu{i}_util"] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            with contextlib.suppress(Exception):
                out[f"gpu{i}_memory_mb"] = nvml.nvmlDeviceGetMemoryInfo(handle).used / _MB
            with contextlib.suppress(Exception):  # not every board reports its power
                out[f"gpu{i}_power_w"] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
        return out

    def close(self) -> None:
        nvml, self._nvml, self.handles = self._nvml, None, []
        if nvml is not None:
            with contextlib.suppress(Exception):
                nvml.nvmlShutdown()


class SystemSampler:
    """Reads ``probes`` every ``every_s`` seconds in a daemon thread; :meth:`take` hands the
    samples read since the last call to the caller's thread (the mean of each key over them)."""

    def __init__(self, every_s: float, probes: Callable[[], list[Probe]]) -> None:
        self.every_s = every_s
        self._make_probes = probes
        self._lock = threading.Lock()
        self._sums: Sample = {}
        self._counts: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._gpu_sum = 0.0  # the GPU utilisation of each sample (mean over its GPUs), summed
        self._gpu_count = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="labkit-system-metrics", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            readers = self._make_probes()
        except Exception:  # noqa: BLE001 - no psutil reading at all: nothing to sample
            return
        try:
            while not self._stop.wait(self.every_s):
                self.sample_now(readers)
            self.sample_now(readers)  # the last one, at stop: a short run has one too
        finally:
            for probe in readers:
                with contextlib.suppress(Exception):
                    probe.close()

    def sample_now(self, readers: list[Probe]) -> None:
        """One sample of every probe (a probe that fails skips this sample)."""
        sample: Sample = {}
        for probe in readers:
            with contextlib.suppress(Exception):
                sample |= probe.read()
        self._add(sample)

    def _add(self, sample: Sample) -> None:
        gpus = [v for k, v in sample.items() if k.startswith("gpu") and k.endswith("_util")]
        with self._lock:
            if gpus:
                self._gpu_sum += sum(gpus) / len(gpus)
                self._gpu_count += 1
            for key, value in sample.items():
                self._sums[key] = self._sums.get(key, 0.0) + value
                self._counts[key] = self._counts.get(key, 0) + 1

    def pending(self) -> bool:
        return bool(self._counts)  # read without the lock: a stale answer only delays a log

    def take(self) -> Sample:
        with self._lock:
            sums, counts = self._sums, self._counts
            self._sums, self._counts = {}, {}
        return {key: sums[key] / counts[key] for key in sums}

    def gpu_util_totals(self) -> tuple[float, int]:
        """The GPU utilisation of every sample so far (each the mean over its GPUs), summed, and
        how many samples had one."""
        with self._lock:
            return self._gpu_sum, self._gpu_count

    def stop(self, timeout: float = 5.0) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


@dataclass
class DataWait:
    """The share of training time spent waiting for the next batch, per window: the wait is
    from the end of one training batch to the start of the next; the batch, from its start to
    its end. :meth:`pause` (validation, epoch ends) stops counting until the next batch ends."""

    clock: Callable[[], float] = time.perf_counter
    waited: float = 0.0
    busy: float = 0.0
    _last_end: float | None = field(default=None, repr=False)
    _start: float | None = field(default=None, repr=False)

    def batch_start(self) -> None:
        now = self.clock()
        if self._last_end is not None:
            self.waited += now - self._last_end
        self._start = now

    def batch_end(self) -> None:
        now = self.clock()
        if self._start is not None:
            self.busy += now - self._start
        self._start, self._last_end = None, now

    def resume(self) -> None:
        """From now, the wait for the next batch counts (an epoch starts)."""
        self._last_end = self.clock()

    def pause(self) -> None:
        self._last_end = None

    def take(self) -> float | None:
        """The fraction since the last call (None: no batch in the window)."""
        waited, busy = self.waited, self.busy
        self.waited = self.busy = 0.0
        total = waited + busy
        return waited / total if total > 0 else None


class SystemMetrics(Callback):
    """Logs ``system/...`` every ``every_s`` seconds while fitting, and ``gpu_util`` at its end.

    Under DDP (``world_size > 1``) the keys carry the node and rank of the process that logs:
    ``system/node0/rank0/cpu_percent``; labkit logs from rank 0 only, so that is what a run has
    (its process, and the GPUs of its node). ``devices``: the GPUs to sample
    (:func:`visible_gpus`); ``probes``: what to read instead of psutil and NVML (tests)."""

    def __init__(
        self,
        every_s: float,
        *,
        devices: tuple[str, ...] | None = None,
        probes: Callable[[], list[Probe]] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if every_s <= 0:
            raise ValueError(f"every_s must be positive, not {every_s!r}")
        self.every_s = every_s
        self.devices = devices
        self.sampler = SystemSampler(every_s, probes or self._probes)
        self.wait = DataWait(clock=clock)
        self.prefix = "system/"
        self._logged_step: int | None = None  # one point per key and step, as every labkit metric
        self._gpu_before = (0.0, 0)  # the GPU totals of earlier attempts (the checkpoint's)

    def _probes(self) -> list[Probe]:
        probes: list[Probe] = []
        with contextlib.suppress(Exception):  # no psutil reading here: the GPUs alone
            probes.append(ProcessProbe())
        gpus = GpuProbe(self.devices)
        if gpus.devices:
            probes.append(gpus)
        return probes

    # -- the checkpoint carries the GPU mean across a requeue --------------------------------
    def gpu_util_totals(self) -> tuple[float, int]:
        """The summed GPU utilisation of the run's samples (earlier attempts included) and their
        count."""
        total, count = self.sampler.gpu_util_totals()
        return total + self._gpu_before[0], count + self._gpu_before[1]

    def state_dict(self) -> dict[str, Any]:
        total, count = self.gpu_util_totals()
        return {"gpu_util_sum": total, "gpu_util_count": count}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._gpu_before = (
            float(state_dict.get("gpu_util_sum", 0.0)),
            int(state_dict.get("gpu_util_count", 0)),
        )

    # -- Lightning's hooks ---------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1:
            self.prefix = f"system/node{trainer.node_rank}/rank{trainer.global_rank}/"
        self.sampler.start()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.wait.resume()

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.wait.batch_start()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.wait.batch_end()
        if self.sampler.pending():
            self.flush(trainer)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.wait.pause()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.wait.pause()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.close(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        with contextlib.suppress(Exception):  # never hides the exception that stopped the run
            self.close(trainer)
        self.sampler.stop()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.sampler.stop()  # already stopped by fit's end or its exception; never left running

    # -- logging (in the training thread) ------------------------------------------------------
    def metrics(self) -> Sample:
        """What the sampler collected since the last call (each key's mean) and the data-wait
        fraction, as keys with their prefix."""
        sample = self.sampler.take()
        fraction = self.wait.take()
        if fraction is not None:
            sample["data_wait_fraction"] = fraction
        return {self.prefix + key: value for key, value in sample.items()}

    def flush(self, trainer: pl.Trainer) -> None:
        """Log what waits, unless this step has its point already (gradient accumulation, the
        end of fit right after a batch that logged): then it waits for the next step, or is
        dropped at the end."""
        step = trainer.global_step
        if step == self._logged_step or trainer.logger is None:
            return
        metrics = self.metrics()
        if metrics:
            trainer.logger.log_metrics(metrics, step=step)
            self._logged_step = step

    def close(self, trainer: pl.Trainer) -> None:
        """Stop the thread (it takes a last sample), log what is left and the run's GPU mean."""
        if not self.sampler.running and not self.sampler.pending():
            return
        self.sampler.stop()
        self.flush(trainer)
        total, count = self.gpu_util_totals()
        if count and trainer.logger is not None:
            trainer.logger.log_metrics({GPU_UTIL: total / count}, step=trainer.global_step)
