"""The relay's loop (`labkit sync --follow`) without a server: discovery, the busy rule, the
stop rules and its one status line per run; the shipping itself is `sync_spool`'s (a fake
shipper here, a real server in tests/integration/test_follow.py)."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from labkit.errors import SpoolBusy, TrackingError
from labkit.tracking.write import Follower, Spool, SpoolRefused, SyncResult, _shipper, _sync
from labkit.tracking.write._spool import Pending

URI = "http://mlflow.test:5000"


def make_spool(root: Path, name: str, *, status: str | None = "RUNNING", points: int = 3) -> Spool:
    spool = Spool.create(root / name / "spool.db", uri=URI, experiment="unit", run_name=name)
    spool.log_params({"lr": "0.1"})
    if status:
        spool.set_status(status)
    for step in range(points):
        spool.log_metrics({"loss": 1.0 / (step + 1)}, step)
    return spool


def result(path: Path, *, sent: int = 0, pending: int = 0, status: str = "RUNNING", **kw: Any) -> SyncResult:
    counts = {"metric": pending} if pending else {}
    return SyncResult(path, URI, "r1", sent, 0, Pending(counts), status=status, **kw)


class FakeShip:
    """Plays back the results a test gives per run directory name, counting the calls."""

    def __init__(self, script: dict[str, list[Any]]) -> None:
        self.script = script
        self.calls: list[str] = []

    def __call__(self, path: Path, uri: str | None, *, timeout: float | None = None) -> SyncResult:
        name = path.parent.name
        self.calls.append(name)
        steps = self.script[name]
        step = steps.pop(0) if len(steps) > 1 else steps[0]
        if isinstance(step, BaseException):
            raise step
        made: SyncResult = step(path) if callable(step) else step
        return made


def follower(root: Path, ship: Any, **kw: Any) -> tuple[Follower, io.StringIO]:
    out = io.StringIO()
    return Follower(roots=[root], uri=URI, interval=0.01, out=out, ship=ship, **kw), out


def lines(out: io.StringIO) -> list[str]:
    return [line.strip() for line in out.getvalue().splitlines()]


# ---------------------------------------------------------------------------------------- input
def test_bad_input_is_one_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(TrackingError, match=r"--interval 0: the seconds between rounds must be > 0"):
        Follower(roots=[tmp_path], interval=0)
    with pytest.raises(TrackingError, match=r"--interval -1: .* > 0"):
        Follower(roots=[tmp_path], interval=-1)
    with pytest.raises(TrackingError, match=r"--runs-root .*nowhere: no such folder"):
        Follower(roots=[tmp_path / "nowhere"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrackingError, match=r"--runs-root .*file: a file, not a folder"):
        Follower(roots=[tmp_path / "file"])
    with pytest.raises(TrackingError, match=r"at least one runs root"):
        Follower(roots=[])


# ---------------------------------------------------------------------------------------- rules
def test_a_running_run_gets_one_line_per_change_then_stops_being_followed(tmp_path: Path) -> None:
    make_spool(tmp_path, "a").close()
    ship = FakeShip(
        {
            "a": [
                lambda path: result(path, sent=10),
                result,  # nothing new: no line
                lambda path: result(path, sent=5),
                lambda path: result(path, sent=2, status="FINISHED"),
                lambda path: result(path, sent=1, status="FINISHED"),  # a tag after the end
                lambda path: result(path, status="FINISHED"),  # a round with nothing new
            ]
        }
    )
    f, out = follower(tmp_path, ship)
    for _ in range(7):
        f.round()
    shown = lines(out)
    assert len(shown) == 5, shown
    assert shown[0].startswith("RUNNING  a ") and "10 items sent, pending nothing → run r1" in shown[0]
    assert "15 items sent" in shown[1]
    assert shown[2].startswith("FINISHED a ") and "17 items sent, pending nothing" in shown[2]
    assert shown[3].startswith("FINISHED a ") and "18 items sent, pending nothing" in shown[3]
    assert shown[4].startswith("FINISHED a ") and "18 items sent → run r1; no longer followed" in shown[4]
    assert ship.calls == ["a"] * 6  # the seventh round does not touch the ended run
    assert f.runs[next(iter(f.runs))].done


def test_an_ended_run_with_something_pending_is_still_followed(tmp_path: Path) -> None:
    make_spool(tmp_path, "a").close()
    ship = FakeShip(
        {
            "a": [
                lambda path: result(path, sent=3, pending=7, status="FAILED"),  # its shipping deadline
                lambda path: result(path, sent=7, status="FAILED"),
                lambda path: result(path, status="FAILED"),
            ]
        }
    )
    f, out = follower(tmp_path, ship)
    for _ in range(4):
        f.round()
    shown = lines(out)
    assert "pending 7 metric points" in shown[0]
    assert shown[-1].startswith("FAILED   a ") and "10 items sent" in shown[-1]
    assert "no longer followed" in shown[-1]
    assert ship.calls == ["a", "a", "a"]


def test_a_requeued_run_scheduled_is_still_followed(tmp_path: Path) -> None:
    make_spool(tmp_path, "a").close()
    ship = FakeShip({"a": [lambda path: result(path, status="SCHEDULED")]})
    f, out = follower(tmp_path, ship)
    f.round()
    f.round()
    assert ship.calls == ["a", "a"]
    assert lines(out)[0].startswith("SCHEDULED a ")


def test_runs_ended_and_shipped_before_the_start_are_reported_once(tmp_path: Path) -> None:
    make_spool(tmp_path, "old").close()
    ship = FakeShip({"old": [lambda path: result(path, status="FINISHED")]})
    f, out = follower(tmp_path, ship)
    for _ in range(3):
        f.round()
    (line,) = lines(out)
    assert line.startswith("FINISHED old ") and "in sync → run r1; no longer followed" in line
    assert ship.calls == ["old"]


def test_a_refused_spool_is_reported_once_and_nothing_of_it_shipped(tmp_path: Path) -> None:
    make_spool(tmp_path, "planted").close()
    make_spool(tmp_path, "mine").close()
    refusal = SpoolRefused(
        "refusing to sync planted/spool.db: it is writable by every user (nothing was sent)"
    )
    ship = FakeShip({"planted": [refusal], "mine": [lambda path: result(path, sent=1)]})
    f, out = follower(tmp_path, ship)
    for _ in range(3):
        f.round()
    refused = [line for line in lines(out) if line.startswith("refused")]
    assert len(refused) == 1 and "writable by every user" in refused[0]
    assert ship.calls.count("mine") == 3
    assert f.summary().endswith("1 run still being followed")  # mine, not the refused one


def test_a_refused_spool_made_private_later_is_followed(tmp_path: Path) -> None:
    make_spool(tmp_path, "shared").close()
    refusal = SpoolRefused("refusing to sync shared/spool.db: writable by group users (nothing was sent)")
    ship = FakeShip({"shared": [refusal, refusal, lambda path: result(path, sent=5)]})
    f, out = follower(tmp_path, ship)
    for _ in range(3):
        f.round()
    first, second = lines(out)
    assert first.startswith("refused") and second.startswith("RUNNING  shared ") and "5 items sent" in second


def test_a_busy_spool_is_skipped_this_round_and_followed(tmp_path: Path) -> None:
    make_spool(tmp_path, "a").close()
    busy = lambda path: result(path, busy=True, error=f"{path} is being shipped by pid 7")  # noqa: E731
    ship = FakeShip({"a": [busy, busy, lambda path: result(path, sent=4)]})
    f, out = follower(tmp_path, ship)
    for _ in range(3):
        f.round()
    shown = lines(out)
    assert len(shown) == 2 and shown[0].startswith("busy     a ") and "pid 7" in shown[0]
    assert "4 items sent" in shown[1]


def test_an_unreachable_server_is_one_line_per_outage_and_ends_the_round(tmp_path: Path) -> None:
    make_spool(tmp_path, "a").close()
    make_spool(tmp_path, "b").close()
    down = lambda path: result(  # noqa: E731
        path,
        error="MLflow at http://mlflow.test:5000 cannot be reached: Connection refused",
        unreachable=True,
    )
    ship = FakeShip(
        {"a": [down, down, lambda path: result(path, sent=2)], "b": [lambda path: result(path, sent=1)]}
    )
    f, out = follower(tmp_path, ship)
    f.round()
    f.round()
    assert ship.calls == ["a", "a"]  # b waits for the next round, not for the same dead server
    f.round()
    shown = lines(out)
    assert shown[0].startswith("labkit sync --follow: MLflow at http://mlflow.test:5000 cannot be reached")
    assert "nothing is lost" in shown[0]
    assert sum("cannot be reached" in line for line in shown) == 1
    assert shown[-1] == "labkit sync --follow: the MLflow server answers again"
    assert ship.calls == ["a", "a", "a", "b"]


def test_an_unexpected_error_in_one_spool_does_not_stop_the_relay(tmp_path: Path) -> None:
    make_spool(tmp_path, "a").close()
    make_spool(tmp_path, "b").close()
    ship = FakeShip({"a": [OSError("disk I/O error")], "b": [lambda path: result(path, sent=1)]})
    f, out = follower(tmp_path, ship)
    f.round()
    f.round()
    shown = lines(out)
    assert sum(line.startswith("error    ") and "disk I/O error" in line for line in shown) == 1
    assert ship.calls == ["a", "b", "a", "b"]


def test_a_spool_without_a_run_yet_says_nothing(tmp_path: Path) -> None:
    Spool(tmp_path / "starting" / "spool.db").close()
    ship = FakeShip(
        {"starting": [lambda path: SyncResult(path, "", None, 0, 0, Pending({}), "holds no run")]}
    )
    f, out = follower(tmp_path, ship)
    f.round()
    assert out.getvalue() == "" and ship.calls == ["starting"]


def test_new_runs_are_found_in_later_rounds_and_run_stops_on_the_event(tmp_path: Path) -> None:
    ship = FakeShip({"late": [lambda path: result(path, sent=1)]})
    f, _ = follower(tmp_path, ship)
    f.run(max_rounds=2)
    assert ship.calls == [] and f.rounds == 2
    make_spool(tmp_path / "nested" / "deeper", "late").close()
    stop = threading.Event()
    stop.set()
    f.run(stop=stop)  # already set: not one more round
    assert f.rounds == 2
    f.run(max_rounds=3)
    assert ship.calls == ["late"]
    assert "1 items sent, 1 run still being followed" in f.summary()


# ---------------------------------------------------------------------------------------- real spools
class RecordingShipper:
    """Stands in for the MLflow shipper inside the real ``sync_spool``: marks what it would send."""

    seen_locked: ClassVar[list[bool]] = []

    def __init__(self, spool: Spool, uri: str) -> None:
        self.spool, self.dest = spool, uri
        self.run_id: str | None = "run-1"
        self.totals = _shipper.ShipResult()

    def ship(self, deadline: float | None = None, *, upto: int | None = None) -> _shipper.ShipResult:
        other = Spool(self.spool.path)
        try:
            with other.shipping_lock():
                RecordingShipper.seen_locked.append(False)
        except SpoolBusy:
            RecordingShipper.seen_locked.append(True)
        finally:
            other.close()
        ops = [op for op in self.spool.pending_ops(self.dest) if upto is None or op.seq <= upto]
        if ops:
            self.spool.mark_shipped(self.dest, ops[-1].seq)
            self.totals.sent += len(ops)
        return self.totals


def test_real_spools_the_follower_holds_the_claim_ships_the_growth_and_stops_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_shipper, "Shipper", RecordingShipper)
    RecordingShipper.seen_locked = []
    job = make_spool(tmp_path, "job", points=3)  # the training process, still open
    out = io.StringIO()
    f = Follower(roots=[tmp_path], uri=URI, interval=0.01, out=out)
    f.round()
    assert RecordingShipper.seen_locked == [True]  # nobody else could ship it meanwhile
    assert job.pending(URI).total == 0
    job.log_metrics({"loss": 0.1}, 3)  # the job goes on logging while it is followed
    f.round()
    assert job.pending(URI).total == 0
    job.set_status("FINISHED")
    job.close()
    for _ in range(3):
        f.round()
    shown = lines(out)
    assert "RUNNING  job" in shown[0] and "→ run run-1" in shown[0]
    assert shown[-1].startswith("FINISHED job ") and "no longer followed" in shown[-1]
    assert len(RecordingShipper.seen_locked) == 4  # the fifth round left the ended run alone
    assert f.runs[next(iter(f.runs))].sent == 1 + 1 + 3 + 1 + 1  # lr, RUNNING, 3 points, 1 more, FINISHED


def test_real_spools_a_spool_shipped_by_its_own_process_is_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_shipper, "Shipper", RecordingShipper)
    spool = make_spool(tmp_path, "online")
    out = io.StringIO()
    f = Follower(roots=[tmp_path], uri=URI, interval=0.01, out=out)
    with spool.shipping_lock():  # the live run's background shipper
        f.round()
    (line,) = lines(out)
    assert line.startswith("busy     online ") and "is being shipped by" in line
    assert spool.pending(URI).total > 0  # nothing was sent meanwhile
    f.round()
    assert spool.pending(URI).total == 0
    spool.close()


def test_a_round_ships_what_was_logged_when_it_started_not_what_comes_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = make_spool(tmp_path, "job", points=4)  # lr, RUNNING, 4 points: seq 1..6
    spool.set_dest_meta(URI, run_id="r1", experiment_id="1")  # the run exists there: no request
    shipper = _shipper.Shipper(spool, URI)
    sent: list[int] = []
    requests = []

    def send(chunk: list[Any]) -> None:  # the job logs one more point during each request
        sent.extend(op.seq for op in chunk)
        requests.append(chunk)
        spool.log_metrics({"loss": 0.5}, 100 + len(sent))

    monkeypatch.setattr(shipper, "_send", send)
    shipper.ship(upto=_sync.check_ops(spool))
    assert sent == [1, 2, 3, 4, 5, 6] and spool.shipped_seq(URI) == 6
    assert spool.pending(URI).total == len(requests)  # logged meanwhile: the next round's
    spool.close()


def test_the_job_writing_while_the_relay_ships_never_waits_long_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setattr(_shipper, "Shipper", RecordingShipper)
    make_spool(tmp_path, "job", points=0).close()
    waits: list[float] = []
    errors: list[BaseException] = []

    def job() -> None:  # the training process: its own connection, as in another process
        spool = Spool(tmp_path / "job" / "spool.db")
        try:
            for step in range(300):
                spool.log_metrics({"loss": 1.0, "acc": 0.5}, step)
                if step % 10 == 0:
                    start = time.perf_counter()
                    spool.set_tags({"progress": str(step)})  # an SQLite commit, as params and status
                    waits.append(time.perf_counter() - start)
                time.sleep(0.001)
            spool.set_status("FINISHED")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            spool.close()

    out = io.StringIO()
    f = Follower(roots=[tmp_path], uri=URI, interval=0.01, out=out)
    writer = threading.Thread(target=job)
    writer.start()
    while writer.is_alive():
        f.round()
    writer.join()
    for _ in range(3):
        f.round()
    assert errors == []
    assert max(waits) < 1.0, f"the job waited {max(waits):.2f} s for the spool"
    run = f.runs[next(iter(f.runs))]
    assert run.done and run.sent == 2 + 600 + 30 + 1  # lr and RUNNING, the points, the tags, FINISHED
    spool = Spool(tmp_path / "job" / "spool.db")
    assert spool.pending(URI).total == 0
    spool.close()


def test_a_round_that_fails_as_a_whole_is_one_line_and_the_relay_goes_on(tmp_path: Path) -> None:
    calls: list[int] = []

    def discover(paths: Any) -> list[Path]:
        calls.append(1)
        raise PermissionError(13, "Permission denied", str(tmp_path))

    make_spool(tmp_path, "a").close()
    f, out = follower(tmp_path, FakeShip({}), discover=discover)
    f.run(max_rounds=2)
    shown = lines(out)
    assert len(shown) == 2 and f.rounds == 2 and len(calls) == 2
    assert shown[0].startswith("labkit sync --follow: this round failed (PermissionError: ")
    assert shown[0].endswith("trying again in 0.01 s")


def test_a_run_first_seen_before_its_run_started_gets_its_name(tmp_path: Path) -> None:
    Spool(tmp_path / "20261207-1200-abcd" / "spool.db").close()  # the job is starting
    ship = FakeShip({"20261207-1200-abcd": [lambda path: result(path, sent=1)]})
    f, out = follower(tmp_path, ship)
    f.round()
    Spool.create(
        tmp_path / "20261207-1200-abcd" / "spool.db", uri=URI, experiment="unit", run_name="digits"
    ).close()
    f.round()
    first, last = lines(out)
    assert first.startswith("RUNNING  20261207-1200-abcd ") and last.startswith("RUNNING  digits ")


def test_real_spools_a_spool_writable_by_others_is_refused_until_made_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_shipper, "Shipper", RecordingShipper)
    spool = make_spool(tmp_path, "shared")
    spool.path.chmod(0o666)
    out = io.StringIO()
    f = Follower(roots=[tmp_path], uri=URI, interval=0.01, out=out)
    f.round()
    f.round()
    (line,) = lines(out)
    assert line.startswith("refused  ") and "is writable by every user (mode 0666)" in line
    assert spool.pending(URI).total > 0  # nothing of it was sent
    spool.path.chmod(0o644)  # its owner trusts it
    f.round()
    assert lines(out)[-1].startswith("RUNNING  shared ") and spool.pending(URI).total == 0
    spool.close()
