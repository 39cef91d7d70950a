"""What everyone ran: runs read from MLflow into plain records, through a local cache.

A group server holds thousands of runs; reading them all for every ``labkit compare`` takes
seconds to minutes. :class:`RunCache` keeps every run it has read in a SQLite file per server
(under ``$LABKIT_CACHE_DIR/runs``) and refreshes incrementally: it asks the server only for runs
started since the last refresh (less an hour, for clocks that disagree) and for runs it last saw
unfinished. A full refresh happens when asked (``refresh="full"``) or once a day, so that runs
deleted on the server, or uploaded long after they ran (``labkit sync`` of an offline run keeps
its original start time), appear within a day at most.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labkit.errors import TrackingError
from labkit.tracking._provenance import redact_uri

__all__ = ["RunCache", "RunRecord"]

_TERMINAL = ("FINISHED", "FAILED", "KILLED")


@dataclass(frozen=True)
class RunRecord:
    """One MLflow run as ``labkit compare`` sees it: no mlflow objects, only plain values."""

    run_id: str
    experiment: str
    status: str
    start_ms: int | None
    end_ms: int | None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    name: str = ""

    @property
    def user(self) -> str:
        return self.tags.get("mlflow.user", "")

    def to_json(self) -> str:
        return json.dumps(
            {
                "run_id": self.run_id,
                "experiment": self.experiment,
                "status": self.status,
                "start_ms": self.start_ms,
                "end_ms": self.end_ms,
                "params": self.params,
                "metrics": self.metrics,
                "tags": self.tags,
                "name": self.name,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        return cls(**json.loads(text))


class RunCache:
    """The runs of one tracking server, kept in ``<cache_dir>/runs/<hash of the URI>.db``."""

    def __init__(self, uri: str, cache_dir: Path) -> None:
        self.uri = uri
        digest = hashlib.sha256(redact_uri(uri).encode()).hexdigest()[:16]
        self.path = cache_dir / "runs" / f"{digest}.db"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._open()
        except (OSError, sqlite3.OperationalError) as exc:  # unwritable, locked, a full disk
            raise self._unusable(exc) from None
        except sqlite3.DatabaseError:  # a damaged cache file: it is only a cache, start it again
            for stale in self.path.parent.glob(f"{self.path.name}*"):
                stale.unlink(missing_ok=True)
            try:
                self._db = self._open()
            except (OSError, sqlite3.Error) as exc:
                raise self._unusable(exc) from None

    def _unusable(self, exc: BaseException) -> TrackingError:
        return TrackingError(
            f"the run cache {self.path} cannot be used ({exc}); set LABKIT_CACHE_DIR to a writable folder"
        )

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0)
        try:
            self._init_schema(db)
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _init_schema(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(
            """
            CREATE TABLE IF NOT EXISTS runs (
                run_id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL, status TEXT NOT NULL,
                start_ms INTEGER, record TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (experiment_id, start_ms);
            CREATE TABLE IF NOT EXISTS experiments (
                experiment_id TEXT PRIMARY KEY, name TEXT NOT NULL,
                refreshed_ms INTEGER, full_at REAL);
            """
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RunCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------
    def records(self, experiment_ids: Sequence[str]) -> list[RunRecord]:
        marks = ",".join("?" * len(experiment_ids))
        rows = self._db.execute(
            f"SELECT record FROM runs WHERE experiment_id IN ({marks}) ORDER BY start_ms DESC",
            tuple(experiment_ids),
        )
        return [RunRecord.from_json(text) for (text,) in rows]

    def state(self, experiment_id: str) -> tuple[int | None, float | None]:
        row = self._db.execute(
            "SELECT refreshed_ms, full_at FROM experiments WHERE experiment_id = ?", (experiment_id,)
        ).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def unfinished(self, experiment_id: str) -> list[str]:
        marks = ",".join("?" * len(_TERMINAL))
        rows = self._db.execute(
            f"SELECT run_id FROM runs WHERE experiment_id = ? AND status NOT IN ({marks})",
            (experiment_id, *_TERMINAL),
        )
        return [r for (r,) in rows]

    # -- writing ---------------------------------------------------------------------------
    def store(
        self,
        experiment_id: str,
        name: str,
        records: Iterable[RunRecord],
        *,
        refreshed_ms: int,
        full: bool,
    ) -> int:
        with self._db:
            if full:
                self._db.execute("DELETE FROM runs WHERE experiment_id = ?", (experiment_id,))
            count = 0
            for rec in records:
                self._db.execute(
                    "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?)",
                    (rec.run_id, experiment_id, rec.status, rec.start_ms, rec.to_json()),
                )
                count += 1
            _, full_at = self.state(experiment_id)
            self._db.execute(
                "INSERT OR REPLACE INTO experiments VALUES (?, ?, ?, ?)",
                (experiment_id, name, refreshed_ms, time.time() if full else full_at),
            )
        return count
