"""A real (tiny) run logs its system metrics: ``system/cpu_percent``, ``system/rss_mb``,
``system/data_wait_fraction`` (and on a CUDA machine ``system/gpu0_util`` and
``system/gpu0_memory_mb``, plus the run's mean ``gpu_util``)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from mlflow.tracking import MlflowClient

import labkit
from labkit.config import Experiment
from tests.conftest import SMOKE

Load = Callable[..., Experiment]
pytestmark = [pytest.mark.slow]


def _metrics(store: str, run_id: str | None) -> dict[str, list[float]]:
    assert run_id is not None
    client = MlflowClient(store)
    keys = client.get_run(run_id).data.metrics
    return {k: [m.value for m in client.get_metric_history(run_id, k)] for k in keys}


def _sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "labkit-system-metrics"]


def test_a_run_logs_cpu_memory_and_data_wait(load: Load, store: str) -> None:
    exp = load("digits_mlp", *SMOKE, "tracking.system_every=0.2")
    result = labkit.run(exp, progress="none")

    metrics = _metrics(store, result.run_id)
    for key in (
        "system/cpu_percent",
        "system/rss_mb",
        "system/host_memory_percent",
        "system/data_wait_fraction",
    ):
        assert metrics.get(key), (key, sorted(metrics))
    assert all(v > 10 for v in metrics["system/rss_mb"])  # a Python process with torch: > 10 MB
    assert all(0.0 <= v <= 1.0 for v in metrics["system/data_wait_fraction"])
    assert all(0.0 <= v <= 100.0 for v in metrics["system/host_memory_percent"])
    assert not _sampler_threads()  # stopped at the end of fit
    client = MlflowClient(store)
    for key in metrics:  # one point per key and step, as every labkit metric
        steps = [m.step for m in client.get_metric_history(result.run_id or "", key)]
        assert len(steps) == len(set(steps)), (key, steps)


def test_a_failing_run_stops_the_sampler_and_keeps_its_last_sample(load: Load, store: str) -> None:
    model = "model={class_path: tests.user_models.Exploding, init_args: {after: 3}}"
    exp = load("digits_mlp", *SMOKE, model, "tracking.system_every=0.05")
    with pytest.raises(RuntimeError, match="exploded after 3 batches"):
        labkit.run(exp, progress="none")
    assert not _sampler_threads()
    client = MlflowClient(store)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FAILED"
    assert "system/rss_mb" in run.data.metrics  # the sample taken as the thread stopped


@pytest.mark.gpu
def test_a_gpu_run_logs_its_gpu(load: Load, store: str) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    exp = load(
        "digits_mlp",
        *SMOKE,
        "trainer.accelerator=gpu",
        "trainer.devices=1",
        "trainer.deterministic=false",
        "tracking.system_every=0.2",
    )
    result = labkit.run(exp, progress="none")
    metrics = _metrics(store, result.run_id)
    assert metrics.get("system/gpu0_util"), sorted(metrics)
    assert metrics.get("system/gpu0_memory_mb"), sorted(metrics)
    assert all(v > 0 for v in metrics["system/gpu0_memory_mb"])  # torch holds a context on it
    assert 0.0 <= metrics["gpu_util"][-1] <= 100.0
