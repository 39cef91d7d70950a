"""``labkit sync --follow``: a relay on a login node that makes network-less jobs live.

A job with ``tracking.mode: offline`` logs into its spool on the shared file system and sends
nothing. A :class:`Follower` on a node that can reach the server watches the runs roots: every
``interval`` seconds it finds the spools under them and ships what each one gained, through
:func:`~labkit.tracking.write._sync.sync_spool`, so everything ``labkit sync`` promises holds
for every round:

* **one shipper per spool.** The follower holds the spool's shipping lock while it ships; a
  spool that a live process ships itself (an online run, another sync or follower) is *busy*
  and skipped this round;
* **no duplicate, no loss.** What has been shipped is the spool's per-server high-water mark,
  moved after each request the server accepts: a follower killed (even ``kill -9``) and started
  again, or a server restarted, goes on from the marks; a request sent twice is harmless;
* **a run ends.** Once a spool records a final status (FINISHED, FAILED, KILLED) and a round
  finds nothing new in it, the run is no longer followed (SCHEDULED, a requeued job, still is;
  a follower started again looks at every run once more);
* **a spool is data.** A spool :func:`~labkit.tracking.write._sync.check_spool` refuses (someone
  else's, writable by others, listing files outside its run directory, started with another
  server than the one configured or named) is reported once and nothing of it is shipped while
  it is refused (it is checked again each round: one its owner has made private is followed).

It prints one line per run when something about it changes, one line when the server cannot be
reached (the round stops there, nothing is lost, the next round tries again) and one when it
answers again. Plain Python: mlflow loads with the first shipment.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from labkit.errors import SpoolRefused, TrackingError
from labkit.tracking.write._spool import SPOOL_FILE, find_spools
from labkit.tracking.write._sync import SyncResult, sync_spool

__all__ = ["ENDED", "FollowedRun", "Follower"]

#: the statuses after which a run logs nothing more (SCHEDULED, a requeued job, comes back)
ENDED = ("FINISHED", "FAILED", "KILLED")


@dataclass
class FollowedRun:
    """What the follower knows of one spool."""

    spool: Path
    name: str  #: the run's name (from its spool), else its directory's
    sent: int = 0  #: items this follower shipped
    run_id: str | None = None
    status: str | None = None  #: the run's last status in the spool
    done: bool = False  #: ended and fully shipped: no longer followed
    refused: bool = False  #: refused by :func:`check_spool` in the last round (nothing sent)
    line: str = ""  #: the last status line printed (a line is printed when it changes)


class Follower:
    """Ship the spools under ``roots`` as they grow, every ``interval`` seconds.

    ``uri``: the tracking URI to ship to (default: the configured one, and then only runs that
    were started with it, as ``labkit sync``). ``out``: where the status lines go (flushed
    at once: a log file under ``nohup`` shows them as they come). ``ship`` and ``discover``
    are :func:`sync_spool` and :func:`find_spools` unless a test replaces them.
    """

    def __init__(
        self,
        *,
        roots: Sequence[str | os.PathLike[str]],
        uri: str | None = None,
        interval: float = 30.0,
        out: TextIO | None = None,
        ship: Callable[..., SyncResult] = sync_spool,
        discover: Callable[[Iterable[Path]], list[Path]] = find_spools,
    ) -> None:
        if not interval > 0:
            raise TrackingError(f"--interval {interval:g}: the seconds between rounds must be > 0")
        if not roots:
            raise TrackingError("name at least one runs root to follow (--runs-root DIR)")
        for root in map(Path, roots):
            if not root.is_dir():
                what = "a file, not a folder" if root.exists() else "no such folder"
                raise TrackingError(f"--runs-root {root}: {what}; give the folder that holds the runs")
        self.roots = [Path(r) for r in roots]
        self.uri, self.interval = uri, float(interval)
        self.out = out if out is not None else sys.stdout
        self._ship, self._discover = ship, discover
        self.runs: dict[Path, FollowedRun] = {}
        self.rounds = 0
        self.offline: str | None = None  #: why the server could not be reached in the last round

    # ------------------------------------------------------------------ the loop
    def run(self, *, stop: threading.Event | None = None, max_rounds: int | None = None) -> None:
        """Follow until ``stop`` is set (or after ``max_rounds`` rounds)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.round()
            except Exception as exc:  # noqa: BLE001 - a runs root gone unreadable: say so, go on
                self._say(
                    f"labkit sync --follow: this round failed ({type(exc).__name__}: {exc}); "
                    f"trying again in {self.interval:g} s"
                )
            if max_rounds is not None and self.rounds >= max_rounds:
                return
            stop.wait(self.interval)

    def round(self) -> None:
        """One pass over the spools under the roots: ship what is new, report what changed."""
        self.rounds += 1
        spools = [p for p in self._candidates() if not self._is_done(p)]
        reached = False
        for path in spools:
            run = self.runs.get(path) or self.runs.setdefault(path, FollowedRun(path, _run_name(path)))
            try:
                # what the run logged so far, in a bounded share of the round: a run that keeps
                # logging, or one with a large backlog, does not hold up the others
                result = self._ship(path, self.uri, timeout=max(self.interval, 30.0))
            except SpoolRefused as exc:  # checked before anything was sent: nothing is
                # checked again each round, said once: a spool seen while its job was creating
                # it, or one its owner has since made private (chmod go-w), is shipped then
                run.refused = True
                self._report(run, f"refused  {_where(path)}: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - one damaged spool never stops the relay
                self._report(run, f"error    {_where(path)}: {type(exc).__name__}: {exc}")
                continue
            if result.unreachable:
                if self.offline != result.error:
                    self._say(
                        f"labkit sync --follow: {result.error}; trying again in {self.interval:g} s "
                        "(nothing is lost: the runs keep logging to their spools)"
                    )
                self.offline = result.error
                return  # the others would wait on the same server: next round
            reached = reached or bool(result.dest)
            self._update(run, result)
        if reached and self.offline is not None:
            self._say("labkit sync --follow: the MLflow server answers again")
            self.offline = None

    def _candidates(self) -> list[Path]:
        found = {p.resolve() for root in self.roots for p in _spool_files(root)}
        fresh = [p for p in found if not self._is_done(p)]
        return self._discover(fresh) if fresh else []  # parents (a study's run) first

    def _is_done(self, path: Path) -> bool:
        run = self.runs.get(path)
        return run is not None and run.done

    # ------------------------------------------------------------------ reporting
    def _update(self, run: FollowedRun, result: SyncResult) -> None:
        run.refused = False
        if not result.dest:  # a spool that holds no run yet (the job is starting): next round
            return
        if run.name == run.spool.parent.name:  # first seen before its run was in it
            run.name = _run_name(run.spool)
        run.sent += result.sent
        run.run_id = result.run_id or run.run_id
        run.status = result.status
        ended = result.status in ENDED
        if result.busy:
            self._report(run, f"busy     {run.name} {_where(run.spool)}: {result.error}")
            return
        if ended and not result.pending.total and not result.error and not result.sent:
            # a round that found nothing new after the end: what a run writes right after its
            # final status (its last tags, a requeue's resume) is not left behind
            run.done = True
            shipped = f"{run.sent} items sent" if run.sent else "in sync"
            self._report(
                run,
                f"{result.status:<8} {run.name} {_where(run.spool)}: {shipped} → run {run.run_id}; "
                "no longer followed",
            )
            return
        line = (
            f"{result.status or 'new':<8} {run.name} {_where(run.spool)}: {run.sent} items sent, "
            f"pending {result.pending.describe()}"
        )
        if result.rejected:
            line += f", {result.rejected} refused by the server (kept in the spool)"
        if result.error:
            line += f"; {result.error}"
        elif run.run_id:
            line += f" → run {run.run_id}"
        self._report(run, line)

    def _report(self, run: FollowedRun, line: str) -> None:
        if line != run.line:
            run.line = line
            self._say(f"  {line}")

    def _say(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed terminal never stops the relay
            self.out.write(line + "\n")
            self.out.flush()

    def summary(self) -> str:
        """The last line: what this follower did."""
        sent = sum(r.sent for r in self.runs.values())
        following = sum(not (r.done or r.refused) for r in self.runs.values())
        return (
            f"labkit sync --follow: stopped after {self.rounds} round{'s' * (self.rounds != 1)}; "
            f"{sent} items sent, {following} run{'s' * (following != 1)} still being followed"
        )


def _spool_files(root: Path) -> list[Path]:
    if (root / SPOOL_FILE).is_file():
        return [root / SPOOL_FILE]
    try:
        return list(root.rglob(SPOOL_FILE))
    except OSError:  # a folder removed while it is walked: the next round sees the rest
        return []


def _run_name(path: Path) -> str:
    """The run's name from its spool (read only), else its directory's name."""
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=10)
        ) as db:
            row = db.execute("SELECT value FROM meta WHERE key='run_name'").fetchone()
    except sqlite3.Error:
        row = None
    name = str(row[0]) if row and row[0] else path.parent.name
    return "".join(c if c.isprintable() and not c.isspace() else "?" for c in name)[:80]


def _where(path: Path) -> str:
    """The run directory, relative to the working directory when it is under it."""
    folder = path.parent
    with contextlib.suppress(ValueError):
        return str(folder.relative_to(Path.cwd()))
    return str(folder)
