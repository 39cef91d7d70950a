"""``labkit.run`` training real (small) models into a local MLflow store: what a run logs, seeds,
failures in training, progress output. The checks that stop a run before it trains are in
tests/unit/runner/test_run.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import labkit
from labkit.config import Experiment, dump_experiment
from labkit.tracking import git_state
from tests.conftest import REPO, SMOKE

Load = Callable[..., Experiment]


def _only_run(store: str):  # type: ignore[no-untyped-def]
    client = MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return client, runs[0]


def test_run_logs_config_metrics_tags_and_artifacts(load: Load, store: str) -> None:
    exp = load("digits_mlp", *SMOKE, "seed=7")
    result = labkit.run(
        exp, progress="none", command="labkit run x", source=REPO / "experiments/digits_mlp.yaml"
    )

    client, run = _only_run(store)
    assert run.info.run_id == result.run_id
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "digits_mlp"
    params = run.data.params
    assert params["trainer.max_epochs"] == "2" and params["seed"] == "7"
    assert params["model.hidden"] == "[16, 16]" and params["data.name"] == "digits"
    assert params["tracking.uri"] == store
    metrics = run.data.metrics
    assert {"train_loss", "val_loss", "val_acc", "test_loss", "test_acc", "test_auc"} <= set(metrics)
    assert 0.0 <= metrics["test_acc"] <= 1.0
    assert metrics["test_acc"] == pytest.approx(result.metrics["test_acc"])
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 2  # one point per epoch

    tags = run.data.tags
    assert tags["labkit.version"] == labkit.__version__
    assert tags["labkit.command"] == "labkit run x"
    assert tags["mlflow.source.name"].endswith("digits_mlp.yaml")
    for key in (
        "mlflow.user",
        "labkit.host",
        "labkit.torch_version",
        "labkit.lightning_version",
        "labkit.run_key",
    ):
        assert tags[key]
    git = git_state(REPO)
    if git is not None:
        assert tags["mlflow.source.git.commit"] == git.commit
        assert tags["labkit.git_dirty"] == str(git.dirty).lower()

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "figures", "checkpoints"} <= artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "figures")] == [
        "figures/confusion_matrix.png"
    ]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == [
        "checkpoints/best.ckpt"
    ]
    config = Path(client.download_artifacts(run.info.run_id, "config.yaml"))
    assert config.read_text() == dump_experiment(exp)

    state = json.loads((result.run_dir / "run.json").read_text())
    assert state["status"] == "FINISHED" and state["mlflow_run_id"] == result.run_id
    assert state["run_key"] == tags["labkit.run_key"] == result.run_key
    assert (result.run_dir / "checkpoints" / "best.ckpt").is_file()
    assert (result.run_dir / "checkpoints" / "last.ckpt").is_file()
    assert result.run_dir.parent == Path(exp.runs_root) / "digits_mlp"


def test_same_seed_same_metrics(load: Load) -> None:
    first = labkit.run(load("digits_mlp", *SMOKE), progress="none")
    second = labkit.run(load("digits_mlp", *SMOKE), progress="none")
    assert first.run_id != second.run_id
    assert first.metrics == second.metrics


def test_other_seed_other_metrics(load: Load) -> None:
    first = labkit.run(load("digits_mlp", *SMOKE, "seed=1"), progress="none")
    second = labkit.run(load("digits_mlp", *SMOKE, "seed=2"), progress="none")
    assert first.metrics != second.metrics


def test_failure_in_training_marks_run_failed(load: Load, store: str) -> None:
    exp = load("digits_mlp", *SMOKE, "model={class_path: tests.user_models.Exploding, init_args: {after: 3}}")
    with pytest.raises(RuntimeError, match="exploded after 3 batches"):
        labkit.run(exp, progress="none")
    _, run = _only_run(store)
    assert run.info.status == "FAILED"
    assert run.data.tags["labkit.error"] == "RuntimeError: exploded after 3 batches"
    (run_dir,) = (Path(exp.runs_root) / "digits_mlp").iterdir()
    state = json.loads((run_dir / "run.json").read_text())
    assert state["status"] == "FAILED" and "exploded" in state["error"]
    assert "Traceback" in (run_dir / "error.txt").read_text()


def test_class_path_module_gets_shapes_from_data(load: Load) -> None:
    exp = load("digits_mlp", *SMOKE, "model={class_path: tests.user_models.TinyNet, init_args: {width: 4}}")
    result = labkit.run(exp, progress="none")
    assert {"test_acc", "test_auc", "test_loss"} <= set(result.metrics)


def test_class_path_lightning_module_is_the_task(load: Load) -> None:
    exp = load("digits_mlp", *SMOKE, "model={class_path: tests.user_models.OwnTask, init_args: {lr: 0.1}}")
    result = labkit.run(exp, progress="none")
    assert set(result.metrics) == {"test_acc"}


def test_plain_progress_lines(load: Load) -> None:
    import io

    out = io.StringIO()
    labkit.run(load("digits_mlp", *SMOKE), progress="plain", stream=out)
    lines = out.getvalue().splitlines()
    assert any("epoch 1/2" in line and "val_loss" in line for line in lines)
    assert any("epoch 2/2" in line for line in lines)
    assert any(line.strip().split("] ", 1)[-1].startswith("test: test_acc") for line in lines)
    assert "\r" not in out.getvalue()


@pytest.mark.slow
def test_digits_cnn_reaches_95_percent(load: Load) -> None:
    result = labkit.run(load("digits_cnn"), progress="none")
    assert result.metrics["test_acc"] >= 0.95


def test_plain_progress_reports_inside_long_epochs() -> None:
    import io

    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from labkit.config import OptimizerConfig
    from labkit.models import MLP
    from labkit.runner._progress import PlainProgress
    from labkit.tasks import ClassificationTask

    out = io.StringIO()
    data = DataLoader(TensorDataset(torch.randn(40, 3), torch.arange(40) % 2), batch_size=10)
    task = ClassificationTask(MLP((3,), 2, hidden=()), OptimizerConfig(), num_classes=2)
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[PlainProgress(out, interval=0.0)],
    )
    trainer.fit(task, data, data)
    text = out.getvalue()
    assert "epoch 1/1  batch 1/4  train_loss" in text and "epoch 1/1  batch 4/4" in text


def test_config_artifact_hides_passwords(load: Load, store: str) -> None:
    import uuid

    from labkit.runner import RunDir

    password = uuid.uuid4().hex  # appears in no source file (git.diff holds this test's source)
    exp = load("digits_mlp", *SMOKE)
    secret = exp.model_copy(
        update={"tracking": exp.tracking.model_copy(update={"uri": f"http://u:{password}@127.0.0.1:1"})}
    )
    result = labkit.run(secret, progress="none")  # no server there: the run goes on offline
    assert result.run_id is None
    (run_dir,) = (Path(exp.runs_root) / "digits_mlp").iterdir()
    text = RunDir.open(run_dir).config_file.read_text()
    assert password not in text and "http://u:***@127.0.0.1:1" in text
    for path in run_dir.rglob("*"):  # the spool, run.json, config, checkpoints, figures
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_one_epoch_on_a_gpu(load: Load, precision: str) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    exp = load(
        "digits_cnn",
        "trainer.max_epochs=1",
        "trainer.accelerator=gpu",
        "trainer.devices=1",
        f"trainer.precision={precision}",
        "trainer.deterministic=false",
    )
    result = labkit.run(exp, progress="none")
    assert 0.0 <= result.metrics["test_acc"] <= 1.0
