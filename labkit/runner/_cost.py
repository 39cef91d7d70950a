"""What a trained model costs to use: ``inference_ms`` and ``parameters``, measured after test.

Every run logs them with its other final metrics, so that a study may trade quality against cost
(``search.objectives``). The measure is cheap (well under a second for a small model on a CPU):

- ``parameters``: the task's trainable parameters (``requires_grad``), counted;
- ``inference_ms``: the median wall time in milliseconds of one forward pass of the task on one
  event (batch 1), and ``inference_ms_b256`` the same for a batch of :data:`COST_BATCH` events;
  on the training device (``trainer.strategy.root_device``), the model in eval mode, without
  gradients, after :data:`WARMUP` calls, CUDA synchronised before and after each call. The
  events are the first test batch (repeated to reach the batch size when it is shorter).

A task whose model samples rather than scores (the surrogate: it has ``generate``) gets only
``parameters``: its forward pass is not what it is used for, and timing ``generate`` per shower
depends on its own batch and sampler settings.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    import torch

__all__ = ["COST_BATCH", "WARMUP", "TestData", "inference_cost", "parameter_count", "time_calls"]

#: the larger batch size ``inference_ms_b{COST_BATCH}`` is measured at
COST_BATCH = 256
#: calls made before timing (allocations, caches, CUDA kernels chosen)
WARMUP = 3
#: timed calls at most, and the time after which timing stops (at least MIN_CALLS are made)
MAX_CALLS, MIN_CALLS, TIME_LIMIT_S = 30, 5, 0.25


class TestData(Protocol):
    """What the measure asks of a data module: its test loader (batches ``(x, y[, w])``)."""

    def test_dataloader(self) -> Any: ...


def parameter_count(module: torch.nn.Module) -> int:
    """The trainable parameters of ``module`` (those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def time_calls(call: Callable[[], Any], *, sync: Callable[[], None] | None = None) -> float:
    """The median wall time of ``call()`` in milliseconds, after :data:`WARMUP` untimed calls;
    ``sync`` (``torch.cuda.synchronize``) runs before and after each timed call."""
    sync = sync or (lambda: None)
    for _ in range(WARMUP):
        call()
    times: list[float] = []
    begun = time.perf_counter()
    while len(times) < MAX_CALLS and (len(times) < MIN_CALLS or time.perf_counter() - begun < TIME_LIMIT_S):
        sync()
        start = time.perf_counter()
        call()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def inference_cost(
    task: torch.nn.Module,
    datamodule: TestData | None,
    device: torch.device | str = "cpu",
    *,
    batch: int = COST_BATCH,
    stream: TextIO | None = None,
) -> dict[str, float]:
    """``parameters``, ``inference_ms`` and ``inference_ms_b{batch}`` of a tested task (the
    metrics' names, see the module). Never raises: what cannot be measured is left out, with one
    line on ``stream``."""
    import torch

    cost = {"parameters": float(parameter_count(task))}
    if callable(getattr(task, "generate", None)):
        _say(stream, "inference_ms not measured: the task samples (generate) rather than scores events")
        return cost
    try:
        x = _first_inputs(datamodule)
    except Exception as exc:  # noqa: BLE001 - a cost measure never fails a run
        _say(stream, f"inference_ms not measured: no test batch ({type(exc).__name__}: {exc})")
        return cost
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    was_training, where = task.training, _device_of(task)
    try:
        task.to(device).eval()
        with torch.no_grad():
            for n, key in ((1, "inference_ms"), (batch, f"inference_ms_b{batch}")):
                cost[key] = time_calls(partial(task, _to(_rows(x, n), device)), sync=sync)
    except Exception as exc:  # noqa: BLE001
        _say(stream, f"inference_ms not measured: the forward pass failed ({type(exc).__name__}: {exc})")
    finally:
        task.to(where).train(was_training)
    return cost


def _say(stream: TextIO | None, line: str) -> None:
    if stream is not None:
        print(f"labkit: {line}", file=stream, flush=True)


def _device_of(module: torch.nn.Module) -> torch.device:
    import torch

    first = next(iter(module.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def _first_inputs(datamodule: TestData | None) -> Any:
    """The inputs of the first test batch (a tensor, or a dict of tensors for named inputs)."""
    if datamodule is None:
        raise ValueError("no data module")
    batch = next(iter(datamodule.test_dataloader()))
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _rows(x: Any, n: int) -> Any:
    """The first ``n`` events of ``x``, repeated when it holds fewer."""
    import torch

    if isinstance(x, dict):
        return {k: _rows(v, n) for k, v in x.items()}
    assert isinstance(x, torch.Tensor) and len(x) > 0, "an empty test batch"
    if len(x) < n:
        x = x.repeat(-(-n // len(x)), *([1] * (x.dim() - 1)))
    return x[:n]


def _to(x: Any, device: torch.device) -> Any:
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    return x.to(device)
