"""The durable spool of one run: an SQLite database (WAL mode) in its run directory.

Every param, tag, metric point, artifact and status change of a run is appended here first, in
one local transaction, before anything goes over a network; a shipper (:mod:`._shipper`) sends
what is pending to MLflow and records how far it got. A process killed at any moment leaves
every point it had logged in the spool; ``labkit sync`` ships the rest later.

Plain Python (sqlite3): no mlflow, no torch.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import sqlite3
import stat
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.errors import SpoolBusy, TrackingError

__all__ = ["KINDS", "POINTS_SUFFIX", "SPOOL_FILE", "Op", "Pending", "Spool", "SpoolBusy", "find_spools"]

SPOOL_FILE = "spool.db"
POINTS_SUFFIX = ".points"  # spool.db.points: metric points appended by the training loop
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ops (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    kind  TEXT NOT NULL,     -- metric | param | tag | delete_tag | artifact | status
    key   TEXT NOT NULL,     -- the name; an artifact's local path; a status
    value TEXT,              -- param/tag value; an artifact's folder in the run
    num   REAL,              -- a metric's value
    step  INTEGER,
    ts    INTEGER            -- milliseconds since the epoch
);
-- what a server refused for good (an invalid value), per destination
CREATE TABLE IF NOT EXISTS rejected (
    dest TEXT, seq INTEGER, kind TEXT, key TEXT, error TEXT, PRIMARY KEY (dest, seq)
);
"""
_UPSERT = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value"
KINDS = ("metric", "param", "tag", "delete_tag", "artifact", "status")


@dataclass(frozen=True)
class Op:
    """One logged item, in the order it was logged."""

    seq: int
    kind: str
    key: str
    value: str | None
    num: float | None
    step: int | None
    ts: int | None


@dataclass(frozen=True)
class Pending:
    """What a spool still has to ship, by kind."""

    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        names = {"metric": "metric point", "param": "param", "tag": "tag", "artifact": "artifact"}
        parts = []
        for kind, n in self.counts.items():
            word = names.get(kind, f"{kind.replace('_', ' ')} change")
            parts.append(f"{n} {word}{'s' * (n != 1)}")
        return ", ".join(parts) or "nothing"


def _point(key: str, value: float, step: int, ts: int) -> tuple[str, float | None, str | None, int, int]:
    """An ops row of a metric point. SQLite stores NaN as NULL: a value that is not finite goes
    into the text column as ``NaN``, ``Infinity`` or ``-Infinity`` (read back by ``float()``)."""
    if math.isfinite(value):
        return key, value, None, step, ts
    return key, None, "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity"), step, ts


def metric_value(op: Op) -> float:
    """The value of a metric op (see :func:`_point`)."""
    return float(op.num) if op.num is not None else float(op.value or "nan")


def _now_ms() -> int:
    return int(time.time() * 1000)


class Spool:
    """The spool database of one run, opened by one thread (open one :class:`Spool` per thread).

    Writes are short transactions; ``synchronous=NORMAL`` in WAL mode keeps every committed
    write through a process kill (an operating-system crash may lose the last few)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.points_path = self.path.with_name(self.path.name + POINTS_SUFFIX)
        self._points_fd: int | None = None
        self.db = self._connect()
        self.closed = False

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise TrackingError(f"cannot open the logging spool {self.path}: {exc}") from None
        return db

    def reopen(self) -> Spool:
        """Connect again after :meth:`close` (a run that ends a second time)."""
        if self.closed:
            self.db, self.closed = self._connect(), False
        return self

    # ------------------------------------------------------------------ create / describe
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        uri: str,
        experiment: str,
        run_name: str,
        run_key: str | None = None,
        parent_key: str | None = None,
    ) -> Spool:
        """A new run's spool; an existing spool at ``path`` is reopened unchanged."""
        spool = cls(path)
        if spool.meta().get("run_key"):
            return spool
        spool.set_meta(
            run_key=run_key or uuid.uuid4().hex,
            uri=uri,
            experiment=experiment,
            run_name=run_name,
            created_ms=str(_now_ms()),
            **({"parent_key": parent_key} if parent_key else {}),
        )
        spool.keep_private()
        return spool

    def keep_private(self) -> None:
        """Make the spool and its run directory writable by their owner only: ``labkit sync``
        refuses a spool others could have changed (a umask of 002 leaves them group-writable).
        A shared, sticky folder (``/tmp``) and what is not the user's are left alone."""
        suffixes = ("-wal", "-shm")
        for item in (
            self.path.parent,
            self.path,
            *(self.path.with_name(self.path.name + s) for s in suffixes),
        ):
            with contextlib.suppress(OSError):  # gone, or not ours: sync says so, with the reason
                st = os.lstat(item)
                ours = st.st_uid == os.getuid() and not stat.S_ISLNK(st.st_mode)
                if ours and st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
                    os.chmod(item, stat.S_IMODE(st.st_mode) & ~0o022)

    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, **values: str) -> None:
        with self._transaction():
            self.db.executemany(
                _UPSERT,
                list(values.items()),
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        """Release the database connection and the points file (a long-lived tuning worker
        runs many trials)."""
        if self._points_fd is not None:
            os.close(self._points_fd)
            self._points_fd = None
        if not self.closed:
            self.db.close()
            self.closed = True

    # ------------------------------------------------------------------ append
    def log_metrics(self, metrics: Mapping[str, float], step: int, ts: int | None = None) -> None:
        ts = ts or _now_ms()
        self.log_metric_rows([(k, float(v), step, ts) for k, v in metrics.items()])

    def log_metric_rows(self, rows: Iterable[tuple[str, float, int, int]]) -> None:
        """Append ``(key, value, step, timestamp_ms)`` points: one ``write`` to the points file
        (≈4 µs, where an SQLite commit costs ≈25–60 µs inside a training loop). A write the
        kernel has taken survives the process being killed; :meth:`ingest` moves the points
        into the ``ops`` table, in order, exactly once."""
        rows = list(rows)
        if not rows:
            return
        if self._points_fd is None:
            self._points_fd = os.open(self.points_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self._points_fd, json.dumps(rows, separators=(",", ":")).encode() + b"\n")

    def ingest(self) -> int:
        """Move the complete lines of the points file beyond the recorded offset into ``ops``
        (one transaction with the new offset: a crash ingests them again or not at all)."""
        try:
            size = self.points_path.stat().st_size
        except FileNotFoundError:
            return 0
        row = self.db.execute("SELECT value FROM meta WHERE key='points_offset'").fetchone()
        if row is not None and int(row[0]) >= size:
            return 0
        with self._transaction():
            row = self.db.execute("SELECT value FROM meta WHERE key='points_offset'").fetchone()
            offset = int(row[0]) if row else 0
            with self.points_path.open("rb") as f:
                f.seek(offset)
                data = f.read()
            end = data.rfind(b"\n")
            if end < 0:
                return 0
            try:
                points = [_point(*p) for line in data[:end].split(b"\n") if line for p in json.loads(line)]
            except (ValueError, TypeError) as exc:  # not what log_metric_rows writes
                raise TrackingError(
                    f"{self.points_path} holds a line that is not metric points ({exc}): a damaged "
                    "or foreign points file"
                ) from None
            self.db.executemany(
                "INSERT INTO ops(kind, key, num, value, step, ts) VALUES ('metric', ?, ?, ?, ?, ?)", points
            )
            self.db.execute(_UPSERT, ("points_offset", str(offset + end + 1)))
        return len(points)

    def log_params(self, params: Mapping[str, str]) -> None:
        self._append([("param", k, str(v), None, None, None) for k, v in params.items()])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._append([("tag", k, str(v), None, None, None) for k, v in tags.items()])

    def delete_tags(self, keys: Iterable[str]) -> None:
        self._append([("delete_tag", k, None, None, None, None) for k in keys])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._append([("artifact", str(Path(path).resolve()), artifact_path, None, None, None)])

    def set_status(self, status: str) -> None:
        self.ingest()  # the points logged before the status change come before it
        self._append([("status", status, None, None, None, _now_ms())])

    def _append(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        with self._transaction():
            self.db.executemany("INSERT INTO ops(kind, key, value, num, step, ts) VALUES (?,?,?,?,?,?)", rows)

    # ------------------------------------------------------------------ read
    def last_steps(self) -> dict[str, int]:
        """The last step logged of each metric (a resumed run drops points at or before it)."""
        self.ingest()
        rows = self.db.execute("SELECT key, MAX(step) FROM ops WHERE kind='metric' GROUP BY key")
        return {k: int(s) for k, s in rows.fetchall()}

    def last_status(self) -> str | None:
        row = self.db.execute("SELECT key FROM ops WHERE kind='status' ORDER BY seq DESC LIMIT 1").fetchone()
        return str(row[0]) if row else None

    # ------------------------------------------------------------------ per destination
    # A spool can be shipped to several tracking servers (a laptop's store, then the group's);
    # what has been shipped, and the run's id there, are kept per destination (a URI without
    # credentials).
    def dest_meta(self, dest: str) -> dict[str, str]:
        prefix = f"{dest}|"
        return {k.removeprefix(prefix): v for k, v in self.meta().items() if k.startswith(prefix)}

    def set_dest_meta(self, dest: str, **values: str) -> None:
        self.set_meta(**{f"{dest}|{k}": v for k, v in values.items()})

    def shipped_seq(self, dest: str) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (f"{dest}|shipped_seq",)).fetchone()
        return int(row[0]) if row else 0

    def pending_ops(self, dest: str, limit: int = 5000) -> list[Op]:
        self.ingest()
        rows = self.db.execute(
            "SELECT seq, kind, key, value, num, step, ts FROM ops WHERE seq > ? ORDER BY seq LIMIT ?",
            (self.shipped_seq(dest), limit),
        )
        return [Op(*row) for row in rows.fetchall()]

    def pending(self, dest: str | None = None) -> Pending:
        """What is not yet on ``dest`` (default: the URI the run was started with)."""
        dest = dest or self.meta().get("uri", "")
        self.ingest()
        rows = self.db.execute(
            "SELECT kind, COUNT(*) FROM ops WHERE seq > ? GROUP BY kind", (self.shipped_seq(dest),)
        ).fetchall()
        order = {k: i for i, k in enumerate(KINDS)}
        return Pending(dict(sorted(((k, int(n)) for k, n in rows), key=lambda kv: order.get(kv[0], 99))))

    def mark_shipped(self, dest: str, seq: int) -> None:
        self.set_dest_meta(dest, shipped_seq=str(seq))

    def reject(self, dest: str, ops: list[Op], error: str) -> None:
        """Ops the server refused for good (an invalid value): kept here, not retried."""
        with self._transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO rejected(dest, seq, kind, key, error) VALUES (?,?,?,?,?)",
                [(dest, op.seq, op.kind, op.key, error[:2000]) for op in ops],
            )
            self.db.execute(
                _UPSERT,
                (f"{dest}|shipped_seq", str(max(op.seq for op in ops))),
            )

    def rejected(self, dest: str) -> list[tuple[str, str, str]]:
        rows = self.db.execute("SELECT kind, key, error FROM rejected WHERE dest=? ORDER BY seq", (dest,))
        return [(str(k), str(n), str(e)) for k, n, e in rows.fetchall()]

    # ------------------------------------------------------------------ one shipper at a time
    @contextlib.contextmanager
    def shipping_lock(self) -> Iterator[None]:
        """Held by whoever ships this spool; a second shipper gets :class:`SpoolBusy`."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                raise SpoolBusy(f"{self.path} is being shipped by {holder}; try again when it ends") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": os.uname().nodename}).encode(), 0)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock


def find_spools(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every run spool in or under ``paths`` (run directories or folders of them), parents first:
    a study's parent run is shipped before its trials so that they can link to it."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if p.is_file() and p.name == SPOOL_FILE:
            found.add(p.resolve())
        elif (p / SPOOL_FILE).is_file():
            found.add((p / SPOOL_FILE).resolve())
        elif p.is_dir():
            found.update(f.resolve() for f in p.rglob(SPOOL_FILE))
    return sorted(found, key=lambda f: (_has_parent(f), str(f)))


def _has_parent(path: Path) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db:
            return db.execute("SELECT 1 FROM meta WHERE key='parent_key'").fetchone() is not None
    except sqlite3.Error:
        return False
