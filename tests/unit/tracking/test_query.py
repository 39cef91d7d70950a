"""The run cache behind ``labkit compare``, on a real MLflow store (SQLite)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from labkit.errors import ConfigError
from labkit.tracking.query._cache import RunCache
from labkit.tracking.query._fetch import fetch_history, fetch_runs


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One store for the module (creating its schema takes seconds); each test its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _run(client: MlflowClient, exp: str, acc: float, *, start_ms: int | None = None, end: bool = True) -> str:
    run = client.create_run(
        exp, start_time=start_ms, tags={"mlflow.user": "ana", "labkit.task": "classification"}
    )
    client.log_param(run.info.run_id, "seed", "1")
    client.log_metric(run.info.run_id, "test_acc", acc)
    if end:
        client.set_terminated(run.info.run_id, "FINISHED")
    return str(run.info.run_id)


def test_incremental_refresh_sees_new_and_finished_runs(store: str, tmp_path: Path) -> None:
    client = MlflowClient(store)
    exp = client.create_experiment("digits")
    first = _run(client, exp, 0.9)
    running = _run(client, exp, 0.5, end=False)
    cache = tmp_path / "cache"
    runs = fetch_runs(store, ["digits"], cache_dir=cache)
    assert {r.run_id: r.status for r in runs} == {first: "FINISHED", running: "RUNNING"}

    new = _run(client, exp, 0.95)
    client.log_metric(running, "test_acc", 0.7)
    client.set_terminated(running, "FINISHED")
    runs = fetch_runs(store, ["digits"], cache_dir=cache)
    by_id = {r.run_id: r for r in runs}
    assert set(by_id) == {first, running, new}
    assert by_id[running].status == "FINISHED" and by_id[running].metrics["test_acc"] == 0.7
    assert by_id[new].user == "ana" and by_id[new].params == {"seed": "1"}
    assert next(r.run_id for r in fetch_runs(store, ["digits"], cache_dir=cache, refresh="none")) == new


def test_a_run_uploaded_late_with_an_old_start_appears_on_a_full_refresh(store: str, tmp_path: Path) -> None:
    client = MlflowClient(store)
    exp = client.create_experiment("late")
    _run(client, exp, 0.9)
    cache = tmp_path / "cache"
    fetch_runs(store, ["late"], cache_dir=cache)
    old = _run(client, exp, 0.8, start_ms=int(time.time() * 1000) - 10 * 86_400_000)  # synced offline run
    assert old not in {r.run_id for r in fetch_runs(store, ["late"], cache_dir=cache)}
    assert old in {r.run_id for r in fetch_runs(store, ["late"], cache_dir=cache, refresh="full")}


def test_the_cache_file_is_per_server_and_never_holds_the_password(tmp_path: Path) -> None:
    with (
        RunCache("http://ana:s3cret-pw@127.0.0.1:5000", tmp_path) as a,
        RunCache("http://127.0.0.1:5001", tmp_path) as b,
    ):
        assert a.path != b.path
        assert "s3cret" not in str(a.path)


def test_history_of_a_metric(store: str) -> None:
    client = MlflowClient(store)
    exp = client.create_experiment("history")
    run = _run(client, exp, 0.9, end=False)
    for step in range(3):
        client.log_metric(run, "val_loss", 1.0 / (step + 1), step=step)
    points = fetch_history(store, run, "val_loss")
    assert [(s, v) for s, _, v in points] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    with pytest.raises(ConfigError, match=r"logged no metric 'val_los' \(did you mean 'val_loss'\?\)"):
        fetch_history(store, run, "val_los")
    with pytest.raises(ConfigError, match=r"no run 'nope'"):
        fetch_history(store, "nope", "val_loss")


def test_an_unknown_experiment_lists_the_ones_there_are(store: str, tmp_path: Path) -> None:
    MlflowClient(store).create_experiment("dijets")
    with pytest.raises(
        ConfigError, match=r"no experiment 'dijet' on the tracking server \(did you mean 'dijets'"
    ):
        fetch_runs(store, ["dijet"], cache_dir=tmp_path)
