"""The durable spool, the shipper and sync, against real local MLflow stores (SQLite)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from labkit.errors import TrackingError
from labkit.tracking import RunClient, Spool, find_spools, sync, sync_spool
from labkit.tracking.write._shipper import MAX_REQUEST_BYTES, Shipper, _chunks
from labkit.tracking.write._spool import Op, SpoolBusy

CLOSED = "http://127.0.0.1:1"  # nothing listens on port 1: connection refused at once


class CountingClient:
    """Counts the requests a Shipper makes, passing each to the real client."""

    def __init__(self, real: MlflowClient) -> None:
        self.real = real
        self.batches: list[dict[str, int]] = []

    def log_batch(self, run_id: str, metrics=(), params=(), tags=()):  # type: ignore[no-untyped-def]
        self.batches.append({"metrics": len(metrics), "params": len(params), "tags": len(tags)})
        return self.real.log_batch(run_id, metrics=metrics, params=params, tags=tags)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.real, name)


@pytest.fixture(autouse=True)
def _configured(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``store`` is the configured tracking URI: sync sends a spool only there unless told."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)


def new_spool(tmp_path: Path, uri: str, name: str = "run") -> Spool:
    return Spool.create(tmp_path / name / "spool.db", uri=uri, experiment="unit", run_name=name)


def history(store: str, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in MlflowClient(store).get_metric_history(run_id, key))


def runs_with_key(store: str, run_key: str) -> list[str]:
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("unit")
    assert experiment is not None
    found = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`labkit.run_key` = '{run_key}'"
    )
    return [r.info.run_id for r in found]


# ---------------------------------------------------------------------------------------- spool


def test_pending_is_counted_per_destination(tmp_path: Path, store: str) -> None:
    spool = new_spool(tmp_path, store)
    spool.log_params({"a": "1"})
    spool.log_metrics({"x": 1.0, "y": 2.0}, step=0)
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.png").write_bytes(b"png")
    spool.log_artifact(tmp_path / "figures")
    assert spool.pending().describe() == "2 metric points, 1 param, 1 artifact"
    Shipper(spool, store).ship()
    assert spool.pending().total == 0
    assert spool.pending("http://elsewhere:5000").total == 4  # another server has none of it


def test_one_shipper_at_a_time(tmp_path: Path) -> None:
    spool = new_spool(tmp_path, "x")
    other = Spool(spool.path)
    with (
        spool.shipping_lock(),
        pytest.raises(SpoolBusy, match=r"is being shipped by .*pid"),
        other.shipping_lock(),
    ):
        pass
    with other.shipping_lock():  # released
        pass


def test_find_spools_puts_parents_first(tmp_path: Path) -> None:
    Spool.create(tmp_path / "a-trial" / "spool.db", uri="x", experiment="e", run_name="t", parent_key="k")
    Spool.create(tmp_path / "z-study" / "spool.db", uri="x", experiment="e", run_name="s")
    found = find_spools([tmp_path])
    assert [p.parent.name for p in found] == ["z-study", "a-trial"]
    assert find_spools([tmp_path / "a-trial"]) == [found[1]]


# ---------------------------------------------------------------------------------------- batches
def _op(seq: int, kind: str, key: str = "k", value: str | None = None) -> Op:
    return Op(seq, kind, key, value, 1.0 if kind == "metric" else None, seq, 0)


def test_chunks_respect_mlflow_limits_and_order() -> None:
    ops = [_op(i, "metric") for i in range(2500)] + [_op(2500 + i, "tag", f"t{i}", "v") for i in range(150)]
    ops.append(_op(3000, "artifact", "/x"))
    ops += [_op(3001 + i, "param", f"p{i}", "v") for i in range(120)]
    chunks = list(_chunks(ops))
    kinds = [(c[0].kind, len(c)) for c in chunks]
    # 500 metrics and 100 tags share a request; then the other 50 tags; the artifact in its place
    assert kinds == [
        ("metric", 1000),
        ("metric", 1000),
        ("metric", 600),
        ("tag", 50),
        ("artifact", 1),
        ("param", 100),
        ("param", 20),
    ]
    assert [op.seq for c in chunks for op in c] == [op.seq for op in ops]  # nothing reordered


def test_chunks_stay_under_one_megabyte() -> None:
    ops = [_op(i, "tag", f"t{i}", "x" * 7999) for i in range(100)] + [
        _op(100 + i, "param", f"p{i}", "y" * 5999) for i in range(100)
    ]
    for chunk in _chunks(ops):
        assert sum(len(o.key) + len(o.value or "") for o in chunk) < MAX_REQUEST_BYTES


def test_params_tags_and_metrics_go_in_batches(tmp_path: Path, store: str) -> None:
    spool = new_spool(tmp_path, store)
    spool.log_params({f"p{i:03d}": str(i) for i in range(250)})
    for step in range(2500):
        spool.log_metrics({"loss": 1.0 / (step + 1)}, step)
    shipper = Shipper(spool, store)
    shipper.client = CountingClient(shipper.client)
    shipper.ship()
    sizes = [(b["params"], b["metrics"]) for b in shipper.client.batches]  # type: ignore[attr-defined]
    assert sizes == [(100, 0), (100, 0), (50, 950), (0, 1000), (0, 550)]
    assert shipper.run_id is not None
    assert history(store, shipper.run_id, "loss") == list(range(2500))
    assert MlflowClient(store).get_run(shipper.run_id).data.params["p249"] == "249"


# ---------------------------------------------------------------------------------------- idempotence
def test_sync_twice_sends_nothing_the_second_time(tmp_path: Path, store: str) -> None:
    client = RunClient(store, "unit", tmp_path / "run", mode="offline")
    assert client.start("r", {"lr": "0.1"}, {"who": "me"}) is None
    for step in range(1200):
        client.log_values({"loss": float(step)}, step)
    report = client.finish()
    assert report is not None and report.pending.counts["metric"] == 1200
    assert MlflowClient(store).get_experiment_by_name("unit") is None  # offline: nothing sent
    first = sync([tmp_path])
    assert len(first) == 1 and first[0].sent > 1200 and first[0].pending.total == 0 and first[0].error is None
    second = sync([tmp_path])
    assert second[0].sent == 0 and second[0].run_id == first[0].run_id
    run_id = first[0].run_id
    assert run_id is not None
    assert history(store, run_id, "loss") == list(range(1200))
    run = MlflowClient(store).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.1"} and run.data.tags["who"] == "me"


def test_sync_killed_between_request_and_mark_duplicates_nothing(
    tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = new_spool(tmp_path, store)
    for step in range(2500):
        spool.log_metrics({"loss": float(step)}, step)
    real_mark = Spool.mark_shipped
    calls = []

    def crash_after_the_second_request(self: Spool, dest: str, seq: int) -> None:
        calls.append(seq)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies after the server took the batch
        real_mark(self, dest, seq)

    monkeypatch.setattr(Spool, "mark_shipped", crash_after_the_second_request)
    with pytest.raises(KeyboardInterrupt):
        sync_spool(spool.path)
    monkeypatch.setattr(Spool, "mark_shipped", real_mark)
    result = sync_spool(spool.path)
    assert result.pending.total == 0 and result.run_id is not None
    assert history(store, result.run_id, "loss") == list(range(2500))  # each point once


def test_sync_killed_after_creating_the_run_creates_no_second_run(
    tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = new_spool(tmp_path, store)
    spool.log_metrics({"loss": 1.0}, 0)

    def die(self: Spool, dest: str, **values: str) -> None:
        raise KeyboardInterrupt  # killed before the run id was written down

    monkeypatch.setattr(Spool, "set_dest_meta", die)
    with pytest.raises(KeyboardInterrupt):
        sync_spool(spool.path)
    monkeypatch.undo()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # undone too
    result = sync_spool(spool.path)
    assert runs_with_key(store, spool.meta()["run_key"]) == [result.run_id]


def test_a_value_the_server_refuses_is_set_aside_and_the_rest_arrives(tmp_path: Path, store: str) -> None:
    spool = new_spool(tmp_path, store)
    spool.log_params({"lr": "0.1"})
    sync_spool(spool.path)
    spool.log_params({"ok": "1", "lr": "0.2"})  # MLflow params cannot change
    spool.log_metrics({"loss": 1.0}, 0)
    result = sync_spool(spool.path)
    assert result.rejected == 1 and result.pending.total == 0
    assert [kind_key[:2] for kind_key in spool.rejected(store)] == [("param", "lr")]
    run = MlflowClient(store).get_run(result.run_id or "")
    assert run.data.params == {"lr": "0.1", "ok": "1"} and run.data.metrics == {"loss": 1.0}


def test_sync_to_another_server_sends_everything_there(tmp_path: Path, store: str) -> None:
    client = RunClient(store, "unit", tmp_path / "run")
    client.start("r", {}, {})
    client.log_values({"loss": 1.0}, 0)
    client.finish()
    other = f"sqlite:///{tmp_path / 'other.db'}"
    result = sync_spool(client.spool_path, other)
    assert result.sent > 0 and result.pending.total == 0
    assert history(other, result.run_id or "", "loss") == [0]


def test_unreachable_server_leaves_everything_pending(tmp_path: Path) -> None:
    spool = new_spool(tmp_path, CLOSED)
    spool.log_metrics({"loss": 1.0}, 0)
    result = sync_spool(spool.path, CLOSED)
    assert result.sent == 0 and result.pending.counts == {"metric": 1}
    assert result.error is not None and "Connection refused" in result.error


def test_busy_spool_is_skipped(tmp_path: Path, store: str) -> None:
    spool = new_spool(tmp_path, store)
    with spool.shipping_lock():
        result = sync_spool(spool.path)
    assert result.busy and "being shipped" in (result.error or "")


# ---------------------------------------------------------------------------------------- modes
def test_auto_mode_goes_offline_when_the_server_is_unreachable(tmp_path: Path) -> None:
    said: list[str] = []
    client = RunClient(CLOSED, "unit", tmp_path / "run", notify=said.append)
    assert client.start("r", {}, {}) is None
    client.log_values({"loss": 1.0}, 0)
    report = client.finish()
    assert report is not None and report.pending.counts["metric"] == 1
    assert "Connection refused; the run goes on offline" in said[0]
    assert f"labkit sync --uri {CLOSED} {tmp_path / 'run'}" in said[-1]  # not the configured URI


def test_online_mode_refuses_an_unreachable_server(tmp_path: Path) -> None:
    client = RunClient(CLOSED, "unit", tmp_path / "run", mode="online")
    with pytest.raises(TrackingError, match=r"cannot start a run .*Connection refused.*tracking.mode: auto"):
        client.start("r", {}, {})


def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        TrackingError, match=r"tracking.mode: 'sometimes' is not one of auto, online, offline"
    ):
        RunClient("x", "unit", tmp_path, mode="sometimes")


def test_resume_drops_steps_the_run_has(tmp_path: Path, store: str) -> None:
    client = RunClient(store, "unit", tmp_path / "run")
    run_id = client.start("r", {}, {})
    for step in range(10):
        client.log_values({"loss": float(step)}, step)
    client.fail(RuntimeError("preempted"), killed=True)
    again = RunClient(store, "unit", tmp_path / "run")
    assert again.resume() == run_id
    for step in range(5, 15):  # from a checkpoint at step 5
        again.log_values({"loss": float(step)}, step)
    again.finish()
    assert history(store, run_id or "", "loss") == list(range(15))
    run = MlflowClient(store).get_run(run_id or "")
    assert run.info.status == "FINISHED" and "labkit.error" not in run.data.tags


def test_end_abandoned_run_marks_it_killed_and_ships_the_rest(tmp_path: Path, store: str) -> None:
    from labkit.tracking import end_abandoned_run

    spool = new_spool(tmp_path, store)
    spool.set_status("RUNNING")
    Shipper(spool, store).ship()
    spool.log_metrics({"loss": 2.0}, 7)  # logged, never shipped: the process was killed
    end_abandoned_run(tmp_path / "run", "worker died")
    run_id = spool.dest_meta(store)["run_id"]
    run = MlflowClient(store).get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags["labkit.error"] == "worker died"
    assert history(store, run_id, "loss") == [7]


def test_spool_files_are_created_with_the_run(tmp_path: Path, store: str) -> None:
    client = RunClient(store, "unit", tmp_path / "run")
    client.start("r", {}, {})
    client.finish()
    assert sorted(os.listdir(tmp_path / "run"))[0] == "spool.db"


def test_nan_and_infinite_values_survive_the_spool(tmp_path: Path, store: str) -> None:
    client = RunClient(store, "unit", tmp_path / "run", mode="offline")
    client.start("r", {}, {})
    client.log_values({"nan": float("nan"), "inf": float("inf"), "minus": float("-inf"), "x": 2.5}, 1)
    client.finish()
    (result,) = sync([tmp_path])
    values = MlflowClient(store).get_run(result.run_id or "").data.metrics
    assert values["nan"] != values["nan"]  # NaN (SQLite alone would have stored NULL)
    assert values["inf"] > 1e300 and values["minus"] < -1e300 and values["x"] == 2.5


def test_a_finished_run_leaves_no_file_open(tmp_path: Path, store: str) -> None:
    """A tuning worker runs trial after trial in one process: each run's spool is closed."""

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    def one_run(i: int) -> RunClient:
        client = RunClient(store, "unit", tmp_path / f"run{i}")
        client.start("r", {}, {})
        client.log_values({"loss": 1.0}, 0)
        client.finish()
        return client

    one_run(0)  # MLflow's own engine and files, once
    before = open_fds()
    clients = [one_run(i) for i in range(1, 11)]
    assert open_fds() - before < 5
    assert all(c.run_id for c in clients) and clients[0].run_id != clients[1].run_id
    again = clients[0].fail(RuntimeError("ended twice"))  # a closed spool opens again
    assert again is not None and again.pending.total == 0
