"""A spool is data, not instructions: `labkit sync` refuses a planted or foreign spool before it
contacts any server (nothing of it is sent, no credentials go anywhere)."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from labkit.errors import TrackingError
from labkit.tracking import RunClient, Spool, SpoolRefused, sync, sync_spool
from labkit.tracking.write import _shipper, _sync

ELSEWHERE = "http://collector.example:5000"


@pytest.fixture
def configured(store: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``store`` is the configured tracking URI; credentials are set, as on a user's machine."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "me")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "secret")
    return store


@pytest.fixture
def no_contact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any tracking client or network connection fails the test: refusals come before both."""

    def contact(*args: object, **kwargs: object) -> None:
        raise AssertionError("a refused spool reached a tracking store or the network")

    monkeypatch.setattr(_shipper, "mlflow_client", contact)
    monkeypatch.setattr(socket.socket, "connect", contact)


def planted(tmp_path: Path, uri: str, name: str = "run") -> Spool:
    """A spool with a run in it, as a run leaves it (params, a metric, an artifact of its own)."""
    spool = Spool.create(tmp_path / name / "spool.db", uri=uri, experiment="unit", run_name=name)
    spool.log_params({"lr": "0.1"})
    spool.log_metrics({"loss": 1.0}, 0)
    (spool.path.parent / "config.yaml").write_text("name: x\n")
    spool.log_artifact(spool.path.parent / "config.yaml")
    return spool


def nothing_sent(store: str) -> bool:
    return not Path(store.removeprefix("sqlite:///")).exists()  # no store was even created


# ---------------------------------------------------------------------------------------- URI
@pytest.mark.usefixtures("no_contact")
def test_a_spool_pointing_elsewhere_is_refused(tmp_path: Path, configured: str) -> None:
    spool = planted(tmp_path, ELSEWHERE)
    with pytest.raises(
        SpoolRefused,
        match=r"refusing to sync .*spool.db: its run was started with the tracking URI "
        r"http://collector.example:5000, not the configured one sqlite:.*MLFLOW_TRACKING_URI.*"
        r"labkit sync --uri http://collector.example:5000 .*run`.*nothing was sent",
    ):
        sync_spool(spool.path)
    assert nothing_sent(configured)


def test_a_spool_is_sent_where_uri_names_it(
    tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'configured.db'}")
    spool = planted(tmp_path, store)
    with pytest.raises(SpoolRefused, match="not the configured one"):
        sync_spool(spool.path)
    result = sync_spool(spool.path, store)  # named: accepted
    assert result.sent > 0 and result.pending.total == 0
    assert not (tmp_path / "configured.db").exists()


@pytest.mark.usefixtures("no_contact")
def test_a_spool_without_a_uri_is_refused(tmp_path: Path, configured: str) -> None:
    spool = planted(tmp_path, configured)
    spool.db.execute("DELETE FROM meta WHERE key = 'uri'")
    with pytest.raises(
        SpoolRefused, match=r"spool.db: its meta table is not a labkit run's \(no tracking URI\)"
    ):
        sync_spool(spool.path, configured)


# ---------------------------------------------------------------------------------------- artifacts
@pytest.mark.usefixtures("no_contact")
def test_an_artifact_outside_the_run_directory_is_refused(tmp_path: Path, configured: str) -> None:
    spool = planted(tmp_path, configured)
    spool.log_artifact(Path("/etc/hostname"))
    with pytest.raises(
        SpoolRefused,
        match=r"refusing to sync .*run/spool.db: artifact /etc/hostname resolves outside the run "
        r"directory; a spool uploads only files inside its own run directory .*run",
    ):
        sync_spool(spool.path)
    assert spool.pending(configured).total == 4  # nothing sent, not even the param before it


@pytest.mark.usefixtures("no_contact")
def test_a_link_out_of_the_run_directory_is_refused(tmp_path: Path, configured: str) -> None:
    secret = tmp_path / "netrc"
    secret.write_text("machine x password y\n")
    spool = planted(tmp_path, configured)
    (spool.path.parent / "model.ckpt").symlink_to(secret)
    spool.db.execute(
        "INSERT INTO ops(kind, key) VALUES ('artifact', ?)", (str(spool.path.parent / "model.ckpt"),)
    )  # as a planted spool names it (log_artifact would store the resolved path)
    with pytest.raises(
        SpoolRefused, match=r"artifact .*model.ckpt resolves outside the run directory \(to .*netrc\)"
    ):
        sync_spool(spool.path)


@pytest.mark.usefixtures("no_contact")
def test_a_folder_holding_a_link_out_is_refused(tmp_path: Path, configured: str) -> None:
    secret = tmp_path / "netrc"
    secret.write_text("machine x password y\n")
    spool = planted(tmp_path, configured)
    figures = spool.path.parent / "figures"
    figures.mkdir()
    (figures / "loss.png").symlink_to(secret)
    spool.log_artifact(figures, "figures")
    with pytest.raises(SpoolRefused, match=r"artifact .*figures holds .*loss.png, a link to .*netrc outside"):
        sync_spool(spool.path)


@pytest.mark.usefixtures("no_contact")
@pytest.mark.parametrize("folder", ["../../../elsewhere", "/etc", "a/../../b"])
def test_an_artifact_stored_outside_the_runs_artifacts_is_refused(
    tmp_path: Path, configured: str, folder: str
) -> None:
    spool = planted(tmp_path, configured)
    spool.log_artifact(spool.path.parent / "config.yaml", folder)
    with pytest.raises(SpoolRefused, match=r"config.yaml is to be stored at .*, outside the run's artifacts"):
        sync_spool(spool.path)


@pytest.mark.usefixtures("no_contact")
def test_a_relative_artifact_path_is_refused(tmp_path: Path, configured: str) -> None:
    spool = planted(tmp_path, configured)
    spool.db.execute("INSERT INTO ops(kind, key) VALUES ('artifact', '.netrc')")
    with pytest.raises(SpoolRefused, match=r"artifact .netrc is not an absolute path"):
        sync_spool(spool.path)


def test_the_shipper_checks_artifacts_again_as_it_sends(tmp_path: Path, store: str) -> None:
    from labkit.tracking.write._shipper import Shipper

    spool = planted(tmp_path, store)
    spool.log_artifact(Path("/etc/hostname"))
    result = Shipper(spool, store).ship()  # the run's own shipper: set aside, not sent
    assert result.rejected == 1
    assert "not inside the run directory" in spool.rejected(store)[0][2]


# ---------------------------------------------------------------------------------------- ownership
@pytest.mark.usefixtures("no_contact")
def test_a_spool_of_another_user_is_refused(
    tmp_path: Path, configured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = planted(tmp_path, configured)
    me = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: me + 4242)  # the spool is now someone else's
    with pytest.raises(
        SpoolRefused, match=r"run belongs to .*, not to you \(uid \d+\): sync uploads only your own"
    ):
        sync_spool(spool.path)


@pytest.mark.usefixtures("no_contact")
def test_a_world_writable_run_directory_is_refused(tmp_path: Path, configured: str) -> None:
    spool = planted(tmp_path, configured)
    os.chmod(spool.path.parent, 0o777)
    with pytest.raises(
        SpoolRefused, match=r"run is writable by every user \(mode 0777\).*`chmod go-w .*run` and sync again"
    ):
        sync_spool(spool.path)


@pytest.mark.usefixtures("no_contact")
def test_a_group_writable_spool_is_refused(
    tmp_path: Path, configured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = planted(tmp_path, configured)
    os.chmod(spool.path, 0o664)
    monkeypatch.setattr(_sync, "_group_is_yours", lambda gid, uid: False)  # a group shared with others
    with pytest.raises(SpoolRefused, match=r"spool.db is writable by group .* \(mode 0664\)"):
        sync_spool(spool.path)
    monkeypatch.setattr(_sync, "_group_is_yours", lambda gid, uid: True)  # the user's private group
    assert _sync.check_spool(spool.path) == configured


def test_a_new_spool_is_writable_by_its_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o002)  # a umask that makes files group-writable
    try:
        (tmp_path / "run").mkdir()
        spool = Spool.create(tmp_path / "run" / "spool.db", uri="x", experiment="e", run_name="r")
    finally:
        os.umask(old)
    for item in (spool.path, spool.path.parent):
        assert item.stat().st_mode & 0o022 == 0, item


# ---------------------------------------------------------------------------------------- not a spool
@pytest.mark.usefixtures("no_contact")
def test_a_sqlite_file_of_another_schema_is_refused_untouched(tmp_path: Path, configured: str) -> None:
    (tmp_path / "run").mkdir()
    path = tmp_path / "run" / "spool.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE ops (id INTEGER, what TEXT)")
    before = path.read_bytes()
    with pytest.raises(SpoolRefused, match=r"not a labkit spool of this version \(table 'meta' is missing\)"):
        sync_spool(path)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    with pytest.raises(SpoolRefused, match=r"table 'ops' lacks key, kind, num, seq, step, ts, value"):
        sync_spool(path)
    assert path.read_bytes() != before  # (changed by the test itself)
    assert "WAL" not in str(sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone())


@pytest.mark.usefixtures("no_contact")
def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path, configured: str) -> None:
    (tmp_path / "run").mkdir()
    path = tmp_path / "run" / "spool.db"
    path.write_bytes(b"not a database, " * 100)
    with pytest.raises(
        SpoolRefused, match=r"spool.db: it is not a labkit spool \(SQLite: file is not a database\)"
    ):
        sync_spool(path)
    assert path.read_bytes() == b"not a database, " * 100


@pytest.mark.usefixtures("no_contact")
def test_an_op_labkit_does_not_write_is_refused(tmp_path: Path, configured: str) -> None:
    spool = planted(tmp_path, configured)
    spool.db.execute("INSERT INTO ops(kind, key) VALUES ('exec', 'rm -rf ~')")
    with pytest.raises(SpoolRefused, match=r"op \d+ \(exec\) is not one labkit writes"):
        sync_spool(spool.path)


@pytest.mark.usefixtures("no_contact")
def test_a_metric_value_labkit_does_not_write_is_refused(tmp_path: Path, configured: str) -> None:
    spool = planted(tmp_path, configured)
    spool.db.execute("INSERT INTO ops(kind, key, value, step) VALUES ('metric', 'loss', 'lots', 0)")
    with pytest.raises(SpoolRefused, match=r"\(metric\) is not one labkit writes"):
        sync_spool(spool.path)


@pytest.mark.usefixtures("no_contact")
def test_a_damaged_points_file_is_refused(tmp_path: Path, configured: str) -> None:
    spool = planted(tmp_path, configured)
    spool.points_path.write_bytes(b'[["loss", 1.0, 1, 0]]\n{"not": "points"}\n')
    with pytest.raises(SpoolRefused, match=r"spool.db.points holds a line that is not metric points"):
        sync_spool(spool.path)


@pytest.mark.usefixtures("no_contact")
def test_control_characters_from_a_spool_are_not_printed(tmp_path: Path, configured: str) -> None:
    spool = planted(tmp_path, "http://x\x1b[2J.example")
    with pytest.raises(SpoolRefused) as info:
        sync_spool(spool.path)
    assert "\x1b" not in str(info.value) and "\\x1b[2J" in str(info.value)


# ---------------------------------------------------------------------------------------- many spools
def test_sync_refuses_a_planted_spool_and_ships_the_others(tmp_path: Path, configured: str) -> None:
    good = planted(tmp_path, configured, "good")
    bad = planted(tmp_path, configured, "bad")
    bad.log_artifact(Path("/etc/hostname"))
    results = {r.spool.parent.name: r for r in sync([tmp_path])}
    assert results["bad"].refused and "/etc/hostname" in (results["bad"].error or "")
    assert results["bad"].sent == 0 and bad.pending(configured).total == 4
    assert results["good"].sent == 3 and good.pending(configured).total == 0


def test_refused_is_a_tracking_error() -> None:
    assert issubclass(SpoolRefused, TrackingError)


# ---------------------------------------------------------------------------------------- local stores
class SlowShipper(threading.Thread):
    """A BackgroundShipper whose first attempt takes a while (a new SQLite store's migrations)."""

    def __init__(self, spool_path: Path, uri: str) -> None:
        super().__init__(daemon=True)
        self.state, self.error, self.attempts = "connecting", None, 0
        self.run_id = self.experiment_id = None
        self._done = threading.Event()

    def run(self) -> None:
        time.sleep(0.5)
        self.state, self.attempts = "online", 1
        self._done.set()

    def wait_for(self, attempts: int, timeout: float) -> bool:
        return self._done.wait(timeout)

    def poke(self) -> None:
        pass

    def stop(self) -> None:
        pass


@pytest.mark.parametrize(
    ("uri", "offline"), [("sqlite:////tmp/slow/mlflow.db", False), ("http://127.0.0.1:1", True)]
)
def test_a_slow_local_store_is_waited_for_a_server_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uri: str, offline: bool
) -> None:
    monkeypatch.setattr(_shipper, "BackgroundShipper", SlowShipper)
    said: list[str] = []
    client = RunClient(uri, "unit", tmp_path / "run", connect_timeout=0.1, notify=said.append)
    client.start("r", {}, {})
    assert any("the run goes on offline" in line for line in said) == offline
    if offline:
        assert "no answer in 0.1 s" in said[0]
    client._stop_shipper()
    client._spool().close()
