from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from labkit.errors import TrackingError
from labkit.tracking import Tracker, redact_uri


@pytest.fixture
def tracker(store: str, tmp_path: Path) -> Tracker:
    return Tracker(store, "unit", tmp_path / "run")


def test_epoch_kept_once_per_step(tracker: Tracker, store: str) -> None:
    run_id = tracker.start("r", {}, {})
    tracker.log_metrics({"train_loss": 1.0, "epoch": 0}, step=10)
    tracker.log_metrics({"val_loss": 1.0, "epoch": 0}, step=10)
    tracker.log_metrics({"val_loss": 0.5, "epoch": 1}, step=20)
    tracker.finish()
    steps = [m.step for m in MlflowClient(store).get_metric_history(run_id, "epoch")]
    assert steps == [10, 20]


def test_fail_marks_run_failed_with_error_tag(tracker: Tracker, store: str) -> None:
    run_id = tracker.start("r", {}, {})
    tracker.log_metrics({"loss": 1.0}, step=0)
    tracker.fail(RuntimeError("exploded at step 3"))
    run = MlflowClient(store).get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["labkit.error"] == "RuntimeError: exploded at step 3"
    assert run.data.tags["labkit.error_type"] == "RuntimeError"
    assert run.data.metrics["loss"] == 1.0  # what was logged before the failure is kept


def test_interrupt_marks_run_killed(tracker: Tracker, store: str) -> None:
    run_id = tracker.start("r", {}, {})
    assert run_id is not None
    tracker.fail(KeyboardInterrupt())
    assert MlflowClient(store).get_run(run_id).info.status == "KILLED"


def test_long_tags_are_clipped(tracker: Tracker, store: str) -> None:
    run_id = tracker.start("r", {}, {"long": "x" * 20000})
    assert len(MlflowClient(store).get_run(run_id).data.tags["long"]) <= 8000


def test_sqlite_artifacts_live_beside_the_database(tracker: Tracker, store: str, tmp_path: Path) -> None:
    run_id = tracker.start("r", {}, {})
    note = tmp_path / "run" / "note.txt"
    note.write_text("hello")
    tracker.log_artifact(note)
    tracker.finish()
    assert (tmp_path / "mlruns").is_dir()
    assert [a.path for a in MlflowClient(store).list_artifacts(run_id)] == ["note.txt"]


def test_an_artifact_outside_the_run_directory_is_refused(tracker: Tracker, tmp_path: Path) -> None:
    tracker.start("r", {}, {})
    outside = tmp_path / "note.txt"
    outside.write_text("hello")
    with pytest.raises(TrackingError, match=r"artifact .*note.txt: not inside the run directory"):
        tracker.log_artifact(outside)
    (tmp_path / "run" / "link.txt").symlink_to(outside)  # a link out: resolved
    with pytest.raises(TrackingError, match=r"link.txt: not inside the run directory"):
        tracker.log_artifact(tmp_path / "run" / "link.txt")
    tracker.finish()


def test_deleted_experiment_is_a_clear_error(store: str, tmp_path: Path) -> None:
    client = MlflowClient(store)
    client.delete_experiment(client.create_experiment("gone"))
    with pytest.raises(TrackingError, match=r"experiment 'gone' at sqlite.* is deleted; restore it"):
        Tracker(store, "gone", tmp_path / "run").start("r", {}, {})


def test_unusable_store_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    uri = f"sqlite:///{tmp_path / 'file' / 'inside-a-file.db'}"
    with pytest.raises(
        TrackingError,
        match=r"cannot start a run in MLflow experiment 'x': cannot use the tracking URI sqlite",
    ):
        Tracker(uri, "x", tmp_path / "run").start("r", {}, {})


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("https://alice:s3cret@mlflow.lab:5000/x", "https://alice:***@mlflow.lab:5000/x"),
        ("postgresql://exp:pw@127.0.0.1/mlflow", "postgresql://exp:***@127.0.0.1/mlflow"),
        ("sqlite:////tmp/m.db", "sqlite:////tmp/m.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
)
def test_redact_uri(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown


def test_experiments_are_marked_model_training_for_the_ui(store: str, tmp_path: Path) -> None:
    client = MlflowClient(store)
    old = client.create_experiment("old")  # made by someone else, without the tag
    Tracker(store, "old", tmp_path / "a").start("r", {}, {})
    Tracker(store, "new", tmp_path / "b").start("r", {}, {})
    for name in ("old", "new"):
        experiment = client.get_experiment_by_name(name)
        assert (
            experiment is not None and experiment.tags["mlflow.experimentKind"] == "custom_model_development"
        )
    assert client.get_experiment(old).experiment_id == old


def test_redact_command() -> None:
    from labkit.tracking import redact_command

    cmd = "labkit run e.yaml tracking.uri=https://bob:pw@mlflow.lab/ seed=3 'model.hidden=[1, 2]'"
    shown = "labkit run e.yaml 'tracking.uri=https://bob:***@mlflow.lab/' seed=3 'model.hidden=[1, 2]'"
    assert redact_command(cmd) == shown
    assert redact_command("labkit run https://bob:pw@h/x") == "labkit run 'https://bob:***@h/x'"
