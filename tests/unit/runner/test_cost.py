"""inference_ms and parameters (labkit/runner/_cost.py): measured on a tiny model, no training."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
import torch
from torch import nn

from labkit.runner._cost import COST_BATCH, WARMUP, inference_cost, parameter_count, time_calls


class _Data:
    """The one thing the measure asks of a data module: a test loader."""

    def __init__(self, *batches: Any) -> None:
        self.batches = batches

    def test_dataloader(self) -> list[Any]:
        return list(self.batches)


class _Named(nn.Module):
    """A model of named inputs (features and constituents)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(3, 2), nn.Linear(4, 2)
        self.seen: list[int] = []

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        self.seen.append(len(x["jets"]))
        out: torch.Tensor = self.a(x["jets"]) + self.b(x["parts"].sum(dim=1))
        return out


def test_parameter_count_counts_only_trainable() -> None:
    model = nn.Sequential(nn.Linear(10, 5), nn.Linear(5, 2))  # 55 + 12
    assert parameter_count(model) == 67
    model[0].requires_grad_(False)
    assert parameter_count(model) == 12


def test_time_calls_is_the_median_after_warmup() -> None:
    calls: list[float] = []

    def call() -> None:
        calls.append(0.0)
        time.sleep(0.002 if len(calls) % 7 else 0.05)  # a rare slow call does not move the median

    ms = time_calls(call)
    assert 1.5 < ms < 20
    assert len(calls) >= WARMUP + 5


def test_inference_cost_of_a_small_model_is_cheap_and_leaves_it_as_it_was() -> None:
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    model.train()
    x = torch.randn(50, 8)  # shorter than COST_BATCH: repeated
    start = time.perf_counter()
    cost = inference_cost(model, _Data((x, torch.zeros(50))), "cpu")
    assert time.perf_counter() - start < 1.0
    assert set(cost) == {"parameters", "inference_ms", f"inference_ms_b{COST_BATCH}"}
    assert cost["parameters"] == 8 * 32 + 32 + 32 * 2 + 2
    assert 0 < cost["inference_ms"] < 50 and 0 < cost[f"inference_ms_b{COST_BATCH}"] < 100
    assert model.training and next(model.parameters()).requires_grad


def test_named_inputs_are_cut_to_the_batch_size() -> None:
    model = _Named()
    batch = ({"jets": torch.randn(300, 3), "parts": torch.randn(300, 5, 4)}, torch.zeros(300))
    cost = inference_cost(model, _Data(batch), "cpu", batch=64)
    assert "inference_ms_b64" in cost
    assert set(model.seen) == {1, 64}


def test_a_sampling_task_gets_only_its_parameters() -> None:
    class Sampler(nn.Linear):
        def generate(self, energy: Any) -> None: ...

    out = io.StringIO()
    cost = inference_cost(Sampler(3, 2), _Data(), "cpu", stream=out)
    assert cost == {"parameters": 8.0}
    assert "inference_ms not measured: the task samples (generate)" in out.getvalue()


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (None, "no test batch (ValueError: no data module)"),
        (_Data(), "no test batch (StopIteration"),
        (_Data((torch.randn(4, 7), torch.zeros(4))), "the forward pass failed (RuntimeError"),
    ],
)
def test_what_cannot_be_measured_is_said_and_left_out(data: Any, said: str) -> None:
    out = io.StringIO()
    model = nn.Linear(3, 2).train()
    cost = inference_cost(model, data, "cpu", stream=out)
    assert cost == {"parameters": 8.0}
    assert said in out.getvalue() and model.training
