"""The run's side of notifications without training: the NaN stop, the preemption's announcement
before the requeue, and what a failure says (a fake trainer and run directory; no fit)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from labkit.errors import LabkitError, Preempted, TrainingDiverged
from labkit.runner import JobOptions, RunDir
from labkit.runner._failure import first_line, record_preemption
from labkit.runner._nan import NanStop


def _trainer(tmp_path: Path, saved: bool) -> Any:
    last = tmp_path / "last.ckpt"
    if saved:
        last.write_bytes(b"x")
    return SimpleNamespace(
        world_size=1,
        global_step=12,
        current_epoch=3,
        checkpoint_callback=SimpleNamespace(last_model_path=str(last)),
    )


@pytest.mark.parametrize("outputs", [torch.tensor(0.5), {"loss": torch.tensor(0.5)}, 0.5, None, {"x": 1}])
def test_a_finite_loss_or_none_goes_on(tmp_path: Path, outputs: Any) -> None:
    stop = NanStop()
    stop.on_train_batch_end(_trainer(tmp_path, True), None, outputs, None, 0)  # type: ignore[arg-type]
    assert stop.reason is None


@pytest.mark.parametrize(
    "outputs", [torch.tensor(float("nan")), {"loss": torch.tensor(float("inf"))}, float("nan")]
)
def test_a_non_finite_loss_stops_and_names_the_step_and_the_last_good_checkpoint(
    tmp_path: Path, outputs: Any
) -> None:
    stop = NanStop()
    with pytest.raises(
        TrainingDiverged,
        match=r"the training loss is (nan|inf) at step 12 \(epoch 3, batch 7\): training stopped",
    ) as caught:
        stop.on_train_batch_end(_trainer(tmp_path, True), None, outputs, None, 7)  # type: ignore[arg-type]
    assert str(caught.value) == stop.reason
    assert stop.reason.endswith(f"the last good checkpoint is {tmp_path / 'last.ckpt'}")
    with pytest.raises(TrainingDiverged, match="no checkpoint was saved before"):
        NanStop().on_train_batch_end(_trainer(tmp_path / "none", False), None, outputs, None, 7)  # type: ignore[arg-type]


def test_first_line_of_an_error() -> None:
    assert first_line(RuntimeError("boom\n  at line 3")) == "RuntimeError: boom"
    assert first_line(LabkitError("the training loss is nan\nmore")) == "the training loss is nan"
    assert first_line(KeyboardInterrupt()) == "KeyboardInterrupt"


def test_a_preemption_is_announced_after_marking_and_says_what_happens(tmp_path: Path) -> None:
    rdir = RunDir.create(tmp_path, "exp")
    said: list[tuple[str, str]] = []
    exc = Preempted("SIGTERM", tmp_path / "preempted.ckpt", requeue=False)

    def announce(what: str) -> None:
        said.append((rdir.state()["status"], what))

    record_preemption(None, rdir, exc, 1.0, JobOptions(), announce=announce)
    [(status, what)] = said
    assert status == "INTERRUPTED"
    assert "not requeued by labkit" in what and f"--run-dir {rdir.path}" in what
