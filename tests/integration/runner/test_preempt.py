"""Preemption without a cluster: signals to this process, then a resume in the same run directory."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
from mlflow.tracking import MlflowClient

from labkit.config import Experiment
from labkit.errors import LabkitError
from labkit.runner import run
from labkit.runner._preempt import Preempted, PreemptionCallback

Load = Callable[..., Experiment]
LONG = ["trainer.max_epochs=6", "trainer.early_stopping=null"]


class Kick(pl.Callback):
    """Sends ``signum`` to this process once, after training step ``at``."""

    def __init__(self, signum: int, at: int) -> None:
        self.signum, self.at, self.sent = signum, at, False

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step >= self.at and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)


@pytest.fixture
def in_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as a SLURM batch job (no srun: Lightning's SLURM environment stays off)."""
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_JOB_NAME", "unit")
    monkeypatch.delenv("SLURM_NTASKS", raising=False)


@pytest.mark.parametrize(("signum", "requeue"), [(signal.SIGUSR1, True), (signal.SIGTERM, False)])
def test_signal_saves_a_checkpoint_at_the_next_step_and_stops(
    load: Load, tmp_path: Path, signum: int, requeue: bool
) -> None:
    from labkit.runner._build import build_datamodule, build_task, data_info

    exp = load("digits_mlp")
    dm = build_datamodule(exp)
    task = build_task(exp, data_info(dm, exp))
    path = tmp_path / "preempted.ckpt"
    before = signal.getsignal(signal.SIGUSR1)
    trainer = pl.Trainer(
        max_epochs=3,
        callbacks=[Kick(signum, at=5), PreemptionCallback(path)],
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    with pytest.raises(Preempted) as caught:
        trainer.fit(task, datamodule=dm)
    assert caught.value.requeue is requeue and caught.value.signame == signal.Signals(signum).name
    assert torch_step(path) == 5  # the step the signal arrived after, not a later one
    assert signal.getsignal(signal.SIGUSR1) == before  # handlers restored


def torch_step(path: Path) -> int:
    import torch

    return int(torch.load(path, weights_only=False)["global_step"])


def _history(store: str, run_id: str) -> dict[str, list[Any]]:
    c = MlflowClient(store)
    return {k: c.get_metric_history(run_id, k) for k in c.get_run(run_id).data.metrics}


@pytest.mark.parametrize("at", [100, 80], ids=["mid-epoch", "last-batch-of-an-epoch"])
def test_killed_job_resumes_into_the_same_run(
    load: Load, store: str, in_job: None, monkeypatch: pytest.MonkeyPatch, at: int
) -> None:
    """At step 80 (the last of epoch 2's 40 batches) the checkpoint waits for the epoch's
    validation: a resumed run would start epoch 3 and never validate epoch 2."""
    exp = load("digits_mlp", *LONG)
    with pytest.raises(Preempted):
        run(exp, progress="none", hooks=_kick(signal.SIGTERM, at=at))
    (run_dir,) = Path(exp.runs_root, exp.name).iterdir()
    state = json.loads((run_dir / "run.json").read_text())
    assert state["status"] == "INTERRUPTED" and state["checkpoint"].endswith("preempted.ckpt")
    c = MlflowClient(store)
    first = c.get_run(state["mlflow_run_id"])
    assert first.info.status == "KILLED" and "SIGTERM" in first.data.tags["labkit.error"]

    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    result = run(exp, progress="none", run_dir=run_dir)  # the requeued job
    assert result.run_id == state["mlflow_run_id"]
    again = c.get_run(result.run_id)
    assert again.info.status == "FINISHED" and "labkit.error" not in again.data.tags
    assert again.data.tags["labkit.resumed_from"].endswith("preempted.ckpt")
    assert again.data.tags["slurm.restarts"] == "1" and again.data.tags["slurm.job_id"] == "4242"
    _assert_one_point_per_step(store, result.run_id, epochs=6)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "FINISHED"


def test_resume_from_an_older_checkpoint_logs_no_step_twice(load: Load, store: str, in_job: None) -> None:
    """A node that died: only the last epoch's checkpoint, the run has points logged after it."""
    exp = load("digits_mlp", *LONG, "trainer.log_every_n_steps=5")
    with pytest.raises(Preempted):
        run(exp, progress="none", hooks=_kick(signal.SIGTERM, at=100))  # epoch 3, step 100
    (run_dir,) = Path(exp.runs_root, exp.name).iterdir()
    (run_dir / "checkpoints" / "preempted.ckpt").unlink()  # as if the node died without it
    assert torch_step(run_dir / "checkpoints" / "last.ckpt") == 80
    result = run(exp, progress="none", run_dir=run_dir)
    assert MlflowClient(store).get_run(result.run_id).data.tags["labkit.resumed_from"].endswith("last.ckpt")
    _assert_one_point_per_step(store, result.run_id, epochs=6)


def test_requeue_signal_outside_a_real_job_keeps_the_checkpoint_and_says_how_to_go_on(
    load: Load, store: str, in_job: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    fake = tmp_path / "scontrol"  # job 4242 does not exist: scontrol refuses, as it would
    fake.write_text("#!/bin/sh\necho 'slurm_requeue error: Invalid job id specified' >&2\nexit 1\n")
    fake.chmod(0o755)
    exp = load("digits_mlp", *LONG)
    with pytest.raises(
        LabkitError,
        match=r"scontrol requeue 4242 failed: .*Invalid job id.* continue with labkit run .*--run-dir",
    ):
        run(exp, progress="none", hooks=_kick(signal.SIGUSR1, at=30))
    (run_dir,) = Path(exp.runs_root, exp.name).iterdir()
    state = json.loads((run_dir / "run.json").read_text())
    assert state["status"] == "INTERRUPTED" and (run_dir / "checkpoints" / "preempted.ckpt").is_file()
    assert MlflowClient(store).get_run(state["mlflow_run_id"]).info.status == "KILLED"


def _kick(signum: int, at: int) -> Any:
    from labkit.runner import RunHooks

    return RunHooks(callbacks=[Kick(signum, at)])


def _assert_one_point_per_step(store: str, run_id: str, epochs: int) -> None:
    history = _history(store, run_id)
    for key, points in history.items():
        twice = [s for s, n in Counter(p.step for p in points).items() if n > 1]
        assert twice == [], f"{key}: steps {twice} logged twice"
    by_step = [int(p.value) for p in sorted(history["epoch"], key=lambda p: p.step)]
    assert by_step == sorted(by_step) and sorted(set(by_step)) == list(range(epochs + 1))
    assert len(history["val_loss"]) == epochs


class KickDuringTest(pl.Callback):
    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        os.kill(os.getpid(), signal.SIGUSR1)


def test_requeue_signal_after_training_is_noted_and_the_run_finishes(
    load: Load, store: str, in_job: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from labkit.runner import RunHooks

    result = run(
        load("digits_mlp", "trainer.max_epochs=1"),
        progress="none",
        hooks=RunHooks(callbacks=[KickDuringTest()]),
    )
    assert MlflowClient(store).get_run(result.run_id).info.status == "FINISHED"
    assert "SIGUSR1 outside training: finishing first" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
