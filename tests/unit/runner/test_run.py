"""``labkit.run`` refusing an experiment before it trains, and recording a failure. Nothing here trains:
the runs that do are in tests/integration/runner/test_run.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import labkit
from labkit.config import Experiment
from labkit.errors import DataError, LabkitError, RegistryError
from tests.conftest import SMOKE

Load = Callable[..., Experiment]


@pytest.mark.parametrize(
    ("model", "pattern"),
    [
        ("tests.no_such_module.Net", r"model\.class_path: cannot import module 'tests\.no_such_module'"),
        (
            "tests.user_models.TinyNt",
            r"model\.class_path: module 'tests\.user_models' has no 'TinyNet'|has no 'TinyNt' \(did you mean 'TinyNet'\?\)",
        ),
        ("tests.user_models.NOT_A_CLASS", r"is neither a torch\.nn\.Module nor a LightningModule"),
    ],
)
def test_bad_class_path(model: str, pattern: str, load: Load, store: str) -> None:
    exp = load("digits_mlp", *SMOKE, f"model={{class_path: {model}}}")
    with pytest.raises(RegistryError, match=pattern):
        labkit.run(exp, progress="none")
    assert MlflowClient(store).search_runs(["0"]) == []  # nothing logged for a config mistake


def test_bad_init_args_name_the_field(load: Load) -> None:
    exp = load("digits_mlp", *SMOKE, "model={class_path: tests.user_models.TinyNet, init_args: {depth: 3}}")
    with pytest.raises(
        RegistryError,
        match=r"model\.init_args: TinyNet: got an unexpected keyword argument 'depth'; it accepts: in_shape, num_classes, width",
    ):
        labkit.run(exp, progress="none")


def test_data_problems_found_before_tracking(load: Load, store: str, tmp_path: Path) -> None:
    exp = load("digits_mlp", *SMOKE, "data={name: arrays, path: missing.h5}")
    with pytest.raises(DataError, match=r"data file not found: /.*/missing\.h5 \(set data\.path\)"):
        labkit.run(exp, progress="none")
    client = MlflowClient(store)
    assert all(not client.search_runs([e.experiment_id]) for e in client.search_experiments())


def test_more_labels_than_num_classes(load: Load) -> None:
    exp = load("digits_mlp", *SMOKE, "task.num_classes=5")
    with pytest.raises(DataError, match=r"labels up to 9, but task\.num_classes is 5"):
        labkit.run(exp, progress="none")


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        (
            "trainer.checkpoint.monitor=val_los",
            r"trainer\.checkpoint\.monitor: the classification task logs no metric 'val_los' \(did you mean 'val_loss'\?\); choose one of: train_loss, val_loss, val_acc",
        ),
        (
            "trainer.early_stopping={monitor: val_accuracy, mode: max}",
            r"trainer\.early_stopping\.monitor: .* no metric 'val_accuracy' \(did you mean 'val_acc'\?\)",
        ),
        (
            "optimizer.scheduler={name: plateau, monitor: loss}",
            r"optimizer\.scheduler\.monitor: .* no metric 'loss'",
        ),
    ],
)
def test_unknown_monitored_metric_found_before_training(
    override: str, pattern: str, load: Load, store: str
) -> None:
    from labkit.errors import ConfigError

    with pytest.raises(ConfigError, match=pattern):
        labkit.run(load("digits_mlp", *SMOKE, override), progress="none")
    client = MlflowClient(store)
    assert all(not client.search_runs([e.experiment_id]) for e in client.search_experiments())


def test_cnn_on_flat_data_is_a_config_error(load: Load, tmp_path: Path) -> None:
    import numpy as np

    from labkit.errors import ConfigError

    np.savez(tmp_path / "flat.npz", x=np.random.default_rng(0).normal(size=(30, 5)), y=np.arange(30) % 2)
    exp = load("digits_cnn", *SMOKE, f"data={{name: arrays, path: {tmp_path / 'flat.npz'}}}")
    with pytest.raises(ConfigError, match=r"model: SmallCNN needs images \(C, H, W\) or \(H, W\)"):
        labkit.run(exp, progress="none")


def test_single_class_data(load: Load, tmp_path: Path) -> None:
    import numpy as np

    np.savez(tmp_path / "one.npz", x=np.ones((30, 2)), y=np.zeros(30, dtype=int))
    exp = load("digits_mlp", *SMOKE, f"data={{name: arrays, path: {tmp_path / 'one.npz'}}}")
    with pytest.raises(DataError, match=r"the data holds a single class"):
        labkit.run(exp, progress="none")


def test_own_datamodule_gets_the_seed(load: Load) -> None:
    from labkit.config._base import ClassPathSpec
    from labkit.runner._build import build_datamodule

    exp = load(
        "digits_mlp", "data={class_path: labkit.data.DigitsDataModule, init_args: {batch_size: 8}}", "seed=9"
    )
    assert isinstance(exp.data, ClassPathSpec)
    dm = build_datamodule(exp)
    assert dm.seed == 9 and dm.batch_size == 8  # type: ignore[attr-defined]


def test_limits_keep_their_meaning() -> None:
    from labkit.runner._trainer import _limit

    assert _limit(1.0) is None  # all batches: Lightning's default
    assert _limit(1) == 1  # exactly one batch
    assert _limit(0.25) == 0.25


# ------------------------------------------------------------------ a failure while recording a failure
# (no training: record_failure is given the error, a run directory and a started MLflow run)


@pytest.fixture(scope="module")
def one_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for these tests (creating one takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


def _mlflow_run(store: str, run_id: str | None):  # type: ignore[no-untyped-def]
    return MlflowClient(store).get_run(run_id or "")


def _started(tmp_path: Path, store: str):  # type: ignore[no-untyped-def]
    from labkit.runner import RunDir
    from labkit.tracking import RunClient

    rdir = RunDir.create(tmp_path / "runs", "unit")
    client = RunClient(store, "unit", rdir.path)
    client.start("unit", {}, {}, run_key=rdir.run_key)
    rdir.mark("RUNNING", mlflow_run_id=client.run_id)
    return rdir, client


def test_unwritable_error_txt_still_marks_the_run_failed_everywhere(tmp_path: Path, one_store: str) -> None:
    from labkit.runner._failure import record_failure

    rdir, client = _started(tmp_path, one_store)
    (rdir.path / "error.txt").mkdir()  # writing it fails (as on a full disk), and must not stop the rest
    instead = record_failure(client, rdir, RuntimeError("boom"), 0.0)  # type: ignore[arg-type]
    assert instead is None  # not the machine's fault: the original error is raised
    assert rdir.state()["status"] == "FAILED" and rdir.state()["error"] == "RuntimeError: boom"
    run = _mlflow_run(one_store, client.run_id)
    assert run.info.status == "FAILED" and run.data.tags["labkit.error"] == "RuntimeError: boom"


def test_full_disk_marks_mlflow_failed_without_the_spool_and_says_so(
    tmp_path: Path, one_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from labkit.runner._failure import record_failure

    rdir, client = _started(tmp_path, one_store)

    def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(client, "fail", full)
    monkeypatch.setattr(client, "log_artifact", full)
    exc = OSError(28, "No space left on device")
    instead = record_failure(client, rdir, exc, 0.0)  # type: ignore[arg-type]
    assert isinstance(instead, LabkitError)
    assert str(instead) == (
        f"no space left on device writing to the run directory {rdir.path}; free space or move "
        "runs_root; the run is marked FAILED"
    )
    assert rdir.state()["status"] == "FAILED"
    run = _mlflow_run(one_store, client.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["labkit.error"] == "OSError: [Errno 28] No space left on device"


def test_read_only_run_directory_marks_mlflow_and_says_what_could_not_be_marked(
    tmp_path: Path, one_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import sqlite3

    from labkit.runner import RunDir
    from labkit.runner._failure import record_failure

    rdir, client = _started(tmp_path, one_store)
    run_json = rdir.path / "run.json"

    def read_only(self: RunDir, **fields: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(run_json))

    def no_spool(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(RunDir, "update", read_only)
    monkeypatch.setattr(client, "fail", no_spool)
    checkpoint = rdir.path / "checkpoints" / "last.ckpt"
    exc = OSError(errno.EROFS, "Read-only file system", str(checkpoint))
    instead = record_failure(client, rdir, exc, 0.0)  # type: ignore[arg-type]
    assert isinstance(instead, LabkitError)
    message = str(instead)
    assert message.startswith(
        f"read-only file system writing {checkpoint}; make it writable or set runs_root"
    )
    assert f"the run could not be marked FAILED in {run_json} (" in message
    assert _mlflow_run(one_store, client.run_id).info.status == "FAILED"


def test_an_ordinary_error_is_not_blamed_on_the_disk(tmp_path: Path) -> None:
    from labkit.runner import RunDir
    from labkit.runner._failure import disk_problem

    rdir = RunDir.create(tmp_path, "unit")
    assert disk_problem(RuntimeError("exploded after 3 batches"), rdir) is None
    assert disk_problem(KeyboardInterrupt(), rdir) is None
    assert disk_problem(PermissionError(13, "Permission denied", "/etc/shadow"), rdir) is None
    torch_full = RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
    assert disk_problem(torch_full, rdir) is None  # this disk has space


# ------------------------------------------------------------------ devices this machine does not have


def _no_data(*args: object) -> None:
    raise AssertionError("the data was built before the accelerator was checked")


def test_gpu_on_a_machine_without_one_names_the_field_before_the_data(
    load: Load, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from labkit.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("labkit.runner._build.build_datamodule", _no_data)
    exp = load("digits_mlp", "trainer.accelerator=gpu")
    with pytest.raises(
        ConfigError,
        match=r"^trainer\.accelerator: 'gpu' but no GPU is visible on this machine \(torch\.cuda\.is_available\(\) "
        r"is False\); use accelerator: auto .* or cpu",
    ):
        labkit.run(exp, progress="none")


@pytest.mark.parametrize(("devices", "shown"), [("3", "3"), ("[0,2]", r"\[0, 2\]")])
def test_more_gpus_than_the_machine_has_names_the_field(
    load: Load, monkeypatch: pytest.MonkeyPatch, devices: str, shown: str
) -> None:
    import torch

    from labkit.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setattr("labkit.runner._build.build_datamodule", _no_data)
    exp = load("digits_mlp", "trainer.accelerator=cuda", f"trainer.devices={devices}")
    with pytest.raises(
        ConfigError, match=rf"^trainer\.devices: {shown} but this machine has 2 GPUs \(indices 0 to 1\)"
    ):
        labkit.run(exp, progress="none")
