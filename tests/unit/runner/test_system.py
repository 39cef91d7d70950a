"""The system-metrics sampler without training: fake probes, a fake NVML, a fake clock."""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import lightning.pytorch as pl
import pytest
from lightning.pytorch.loggers.logger import DummyLogger

from labkit.config import Experiment, load_experiment
from labkit.runner._system import DataWait, GpuProbe, ProcessProbe, SystemMetrics, SystemSampler, visible_gpus
from labkit.runner._trainer import system_metrics
from labkit.tracking import Tracker
from tests.conftest import EXPERIMENTS

FAKE = cast(pl.LightningModule, None)


def _threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "labkit-system-metrics"]


def _until(check: Any, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


# -- CUDA_VISIBLE_DEVICES ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0,1", ("0", "1")),
        ("2, 0", ("2", "0")),
        ("GPU-1234,MIG-ab", ("GPU-1234", "MIG-ab")),
        ("", ()),
        ("-1", ()),
        ("NoDevFiles", ()),
        ("1,-1,0", ("1",)),  # CUDA stops at the first entry it cannot use
    ],
)
def test_visible_gpus_read_the_jobs_environment(value: str, expected: tuple[str, ...]) -> None:
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": value}) == expected


def test_visible_gpus_unsaid_is_every_gpu() -> None:
    assert visible_gpus(None) is None
    assert visible_gpus({"PATH": "/bin"}) is None


# -- NVML --------------------------------------------------------------------------------------
class FakeNvml:
    """Three physical GPUs; GPU 2 reports no power; ``fail_init``: no driver."""

    class Error(Exception):
        pass

    def __init__(self, *, fail_init: bool = False) -> None:
        self.fail_init = fail_init
        self.shut = False

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise self.Error("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.shut = True

    def nvmlDeviceGetCount(self) -> int:
        return 3

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if index >= 3:
            raise self.Error("Invalid Argument")
        return index

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> int:
        return {"GPU-b": 1}[uuid]

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return SimpleNamespace(gpu=10 * (handle + 1), memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return SimpleNamespace(used=(handle + 1) * 1024 * 1024 * 100, total=0, free=0)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        if handle == 2:
            raise self.Error("Not Supported")
        return 150_000  # mW


def test_gpu_probe_numbers_gpus_as_the_job_sees_them() -> None:
    nvml = FakeNvml()
    probe = GpuProbe(("2", "GPU-b"), nvml=nvml)
    assert probe.devices == 2
    sample = probe.read()
    assert sample == {
        "gpu0_util": 30.0,  # CUDA's device 0 is the physical GPU 2
        "gpu0_memory_mb": 300.0,
        "gpu1_util": 20.0,
        "gpu1_memory_mb": 200.0,
        "gpu1_power_w": 150.0,
    }  # GPU 2 has no power reading: left out
    probe.close()
    assert nvml.shut and probe.read() == {}


def test_gpu_probe_without_visible_devices_reads_every_gpu() -> None:
    assert GpuProbe(None, nvml=FakeNvml()).devices == 3
    assert GpuProbe((), nvml=FakeNvml()).devices == 0


def test_gpu_probe_skips_a_device_it_cannot_open() -> None:
    probe = GpuProbe(("0", "7"), nvml=FakeNvml())
    assert probe.devices == 1
    assert set(probe.read()) == {"gpu0_util", "gpu0_memory_mb", "gpu0_power_w"}


def test_no_nvml_means_no_gpu_metrics_and_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        failing = GpuProbe(None, nvml=FakeNvml(fail_init=True))
        real = GpuProbe(None)  # this machine: pynvml, maybe no driver or no GPU
    assert failing.devices == 0 and failing.read() == {}
    if real.devices == 0:
        assert real.read() == {}
    real.close()


def test_process_probe_reads_this_process() -> None:
    sample = ProcessProbe().read()
    assert set(sample) == {"cpu_percent", "rss_mb", "host_memory_percent"}
    assert sample["rss_mb"] > 10 and 0 <= sample["host_memory_percent"] <= 100


# -- the thread --------------------------------------------------------------------------------
class Counting:
    def __init__(self, values: list[float], fail_every: int = 0) -> None:
        self.values = values
        self.calls = 0
        self.closed = False
        self.fail_every = fail_every

    def read(self) -> dict[str, float]:
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError("a probe failing once")
        return {"x": self.values[min(self.calls - 1, len(self.values) - 1)]}

    def close(self) -> None:
        self.closed = True


def test_sampler_thread_collects_means_and_stops() -> None:
    probe = Counting([1.0, 3.0, 5.0, 5.0])
    sampler = SystemSampler(0.01, lambda: [probe])
    sampler.start()
    assert sampler.running and len(_threads()) == 1
    assert _threads()[0].daemon  # never keeps the process alive
    _until(lambda: probe.calls >= 2)
    sampler.stop()
    assert not sampler.running and not _threads() and probe.closed
    taken = sampler.take()
    assert set(taken) == {"x"} and 1.0 <= taken["x"] <= 5.0
    assert sampler.take() == {} and not sampler.pending()


def test_sampler_takes_a_last_sample_when_stopped() -> None:
    probe = Counting([7.0])
    sampler = SystemSampler(3600.0, lambda: [probe])
    sampler.start()
    sampler.stop()
    assert sampler.take() == {"x": 7.0}


def test_a_failing_probe_skips_a_sample_only() -> None:
    bad, good = Counting([1.0], fail_every=1), Counting([2.0])
    good.read = lambda: {"y": 2.0}  # type: ignore[method-assign]
    sampler = SystemSampler(0.01, lambda: [bad, good])
    sampler.start()
    _until(sampler.pending)
    sampler.stop()
    assert sampler.take() == {"y": 2.0}


def test_a_sampler_whose_probes_cannot_start_ends_quietly() -> None:
    def broken() -> list[Any]:
        raise OSError("no /proc")

    sampler = SystemSampler(0.01, broken)
    sampler.start()
    _until(lambda: not sampler.running)
    sampler.stop()
    assert sampler.take() == {}


# -- data wait ---------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_data_wait_is_the_gap_between_batches_over_the_whole() -> None:
    clock = Clock()
    wait = DataWait(clock=clock)
    assert wait.take() is None  # no batch yet
    wait.resume()  # the epoch starts at 0
    for start, end in ((1.0, 4.0), (5.0, 8.0)):  # waits 1 + 1, batches 3 + 3
        clock.now = start
        wait.batch_start()
        clock.now = end
        wait.batch_end()
    assert wait.take() == pytest.approx(2 / 8)
    wait.pause()  # validation: its 100 s do not count
    clock.now = 108.0
    wait.batch_start()
    clock.now = 110.0
    wait.batch_end()
    clock.now = 112.0  # a starved loader: 2 s for the next batch, 1 s of work
    wait.batch_start()
    clock.now = 113.0
    wait.batch_end()
    assert wait.take() == pytest.approx(2 / 5)


# -- the callback ------------------------------------------------------------------------------
class Logged:
    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, float], int | None]] = []

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.calls.append((dict(metrics), step))


def _trainer(world_size: int = 1, **more: Any) -> Any:
    return SimpleNamespace(
        world_size=world_size, node_rank=1, global_rank=3, global_step=5, logger=Logged(), **more
    )


def _callback(samples: list[dict[str, float]]) -> tuple[SystemMetrics, Clock]:
    it = iter(samples)

    class Scripted:
        def read(self) -> dict[str, float]:
            return next(it, samples[-1])

        def close(self) -> None:
            pass

    clock = Clock()
    return SystemMetrics(3600.0, probes=lambda: [Scripted()], clock=clock), clock


def test_callback_logs_system_keys_at_the_global_step_and_the_gpu_mean_at_fit_end() -> None:
    cb, clock = _callback(
        [{"cpu_percent": 50.0, "gpu0_util": 20.0, "gpu1_util": 40.0, "gpu0_memory_mb": 9.0}]
    )
    trainer = _trainer()
    cb.on_fit_start(trainer, FAKE)
    cb.on_train_epoch_start(trainer, FAKE)
    clock.now = 1.0
    cb.on_train_batch_start(trainer, FAKE, None, 0)
    clock.now = 4.0
    cb.on_train_batch_end(trainer, FAKE, None, None, 0)  # the sampler has nothing yet (3600 s)
    assert trainer.logger.calls == []
    cb.on_fit_end(trainer, FAKE)
    assert not _threads()
    (system, step), (mean, _) = trainer.logger.calls
    assert step == 5
    assert system == {
        "system/cpu_percent": 50.0,
        "system/gpu0_util": 20.0,
        "system/gpu1_util": 40.0,
        "system/gpu0_memory_mb": 9.0,
        "system/data_wait_fraction": pytest.approx(0.25),
    }
    assert mean == {"gpu_util": 30.0}
    cb.on_fit_end(trainer, FAKE)  # twice: nothing more
    assert len(trainer.logger.calls) == 2


def test_callback_logs_a_waiting_sample_at_the_next_batch_end() -> None:
    cb, _ = _callback([{"cpu_percent": 10.0}])
    trainer = _trainer()
    cb.sampler.every_s = 0.01
    cb.on_fit_start(trainer, FAKE)
    _until(cb.sampler.pending)
    cb.on_train_batch_start(trainer, FAKE, None, 0)
    cb.on_train_batch_end(trainer, FAKE, None, None, 0)
    assert trainer.logger.calls[0][0]["system/cpu_percent"] == 10.0
    cb.teardown(trainer, FAKE, "fit")
    assert not _threads()


def test_without_gpus_no_gpu_util_is_logged() -> None:
    cb, _ = _callback([{"cpu_percent": 10.0}])
    trainer = _trainer()
    cb.on_fit_start(trainer, FAKE)
    cb.on_fit_end(trainer, FAKE)
    assert [set(m) for m, _ in trainer.logger.calls] == [{"system/cpu_percent"}]


def test_under_ddp_the_key_names_node_and_rank() -> None:
    cb, _ = _callback([{"rss_mb": 1.0}])
    trainer = _trainer(world_size=8)
    cb.on_fit_start(trainer, FAKE)
    cb.on_fit_end(trainer, FAKE)
    assert trainer.logger.calls[0][0] == {"system/node1/rank3/rss_mb": 1.0}


def test_an_exception_stops_the_thread_and_keeps_what_was_sampled() -> None:
    cb, _ = _callback([{"gpu0_util": 80.0}])
    trainer = _trainer()
    cb.on_fit_start(trainer, FAKE)
    cb.on_exception(trainer, FAKE, RuntimeError("boom"))
    assert not _threads()
    assert trainer.logger.calls[-1][0] == {"gpu_util": 80.0}


def test_an_exception_while_logging_is_not_raised_from_on_exception() -> None:
    cb, _ = _callback([{"rss_mb": 1.0}])

    class Broken:
        def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
            raise OSError("disk full")

    trainer = _trainer()
    trainer.logger = Broken()
    cb.on_fit_start(trainer, FAKE)
    cb.on_exception(trainer, FAKE, RuntimeError("boom"))
    assert not _threads()


def test_the_gpu_mean_survives_a_requeue_in_the_checkpoint() -> None:
    cb, _ = _callback([{"gpu0_util": 0.0}])  # one sample at 0 % before the requeue
    trainer = _trainer()
    cb.on_fit_start(trainer, FAKE)
    cb.sampler.stop()  # its last sample
    assert cb.state_dict() == {"gpu_util_sum": 0.0, "gpu_util_count": 1}
    again, _ = _callback([{"gpu0_util": 100.0}])
    again.load_state_dict(cb.state_dict())
    trainer = _trainer()
    again.on_fit_start(trainer, FAKE)
    again.on_fit_end(trainer, FAKE)
    assert trainer.logger.calls[-1][0] == {"gpu_util": 50.0}


def test_every_s_must_be_positive() -> None:
    with pytest.raises(ValueError, match="every_s must be positive"):
        SystemMetrics(0.0)


# -- when build_trainer adds it ----------------------------------------------------------------
def _exp(every: float, where: Path) -> Experiment:
    overrides = [f"tracking.system_every={every}", f"tracking.uri=sqlite:///{where / 'm.db'}"]
    return load_experiment(EXPERIMENTS / "digits_mlp.yaml", overrides, cwd=where)


def test_system_metrics_only_for_labkits_tracker_and_a_positive_interval(tmp_path: Path) -> None:
    tracker = Tracker.__new__(Tracker)  # no store: only its type matters here
    env = {"CUDA_VISIBLE_DEVICES": "1"}
    made = system_metrics(_exp(2.0, tmp_path), tracker, env)
    assert isinstance(made, SystemMetrics) and made.every_s == 2.0 and made.devices == ("1",)
    assert system_metrics(_exp(0.0, tmp_path), tracker, env) is None
    assert system_metrics(_exp(2.0, tmp_path), DummyLogger(), env) is None  # the ranks that do not log


def test_the_gpu_mean_weighs_every_sample_alike() -> None:
    values = iter(
        [{"gpu0_util": 0.0, "gpu1_util": 0.0}, {"gpu0_util": 100.0, "gpu1_util": 50.0}, {"cpu_percent": 1.0}]
    )

    class Scripted:
        def read(self) -> dict[str, float]:
            return next(values)

        def close(self) -> None:
            pass

    sampler = SystemSampler(3600.0, lambda: [Scripted()])
    probes: list[Any] = [Scripted()]
    for _ in range(3):  # pooled in one window (a long validation), yet three samples
        sampler.sample_now(probes)
    assert sampler.gpu_util_totals() == (75.0, 2)  # a sample without GPUs does not count
    assert sampler.take() == {"gpu0_util": 50.0, "gpu1_util": 25.0, "cpu_percent": 1.0}


def test_one_point_per_key_and_step() -> None:
    cb, _ = _callback([{"gpu0_util": 40.0}])
    trainer = _trainer()
    cb.sampler.every_s = 0.005
    cb.on_fit_start(trainer, FAKE)
    _until(cb.sampler.pending)
    cb.on_train_batch_end(trainer, FAKE, None, None, 0)  # logs at step 5
    _until(cb.sampler.pending)
    cb.on_train_batch_end(trainer, FAKE, None, None, 1)  # still step 5 (gradient accumulation): waits
    assert len(trainer.logger.calls) == 1
    trainer.global_step = 6
    _until(cb.sampler.pending)
    cb.on_train_batch_end(trainer, FAKE, None, None, 2)
    cb.on_fit_end(trainer, FAKE)  # step 6 has its point: only the mean is added
    steps = [(sorted(m), s) for m, s in trainer.logger.calls]
    assert steps == [(["system/gpu0_util"], 5), (["system/gpu0_util"], 6), (["gpu_util"], 6)]
