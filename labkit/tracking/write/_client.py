"""One run's logging: everything goes to the run's spool first, a background thread ships it.

:class:`RunClient` appends params, tags, metric points, artifacts and status changes to the
run's :class:`~labkit.tracking.write._spool.Spool` (a local SQLite file) and never waits on the
network while the run trains. A :class:`~labkit.tracking.write._shipper.BackgroundShipper` sends them
to MLflow in batches. ``tracking.mode``:

* ``auto`` (default) — ship while the run trains; a server that cannot be reached makes the run
  continue offline (the shipper keeps retrying);
* ``online`` — a server that cannot be reached when the run starts is an error;
* ``offline`` — nothing is sent; ``labkit sync`` uploads the run later.

At the end the client waits a bounded time for the spool to drain and reports what is left.
"""

from __future__ import annotations

import contextlib
import shlex
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from labkit.errors import TrackingError
from labkit.tracking._provenance import redact_uri
from labkit.tracking.write._spool import SPOOL_FILE, Pending, Spool

if TYPE_CHECKING:
    from labkit.tracking.write._shipper import BackgroundShipper

__all__ = ["DrainReport", "RunClient", "end_abandoned_run"]

MODES = ("auto", "online", "offline")
LOCAL_STORE_WAIT = 120.0  #: seconds a run waits for a local store (SQLite) to be created
_STALE_TAGS = ("labkit.error", "labkit.error_type")  # from an earlier, interrupted session


@dataclass(frozen=True)
class DrainReport:
    """What a run left in its spool when it ended."""

    spool: Path
    pending: Pending
    reason: str | None = None  #: why it is not shipped (offline mode, the last error)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)
    dest: str | None = None  #: the run's tracking URI (without credentials)

    def lines(self) -> list[str]:
        out = []
        if self.pending.total:
            why = f" ({self.reason})" if self.reason else ""
            out.append(
                f"labkit: {self.pending.describe()} not yet on the MLflow server{why}; they are "
                f"safe in {self.spool}: upload them with `{sync_command(self.spool.parent, self.dest)}`"
            )
        for kind, key, error in self.rejected[:5]:
            out.append(f"labkit: the MLflow server refused {kind} {key!r}: {error}")
        return out


class RunClient:
    """The spool-backed logging of one run (no torch, no Lightning).

    Lifecycle: :meth:`start` (or :meth:`resume`), :meth:`log_values` / :meth:`set_tags` /
    :meth:`log_artifact`, then :meth:`finish`, :meth:`fail` or :meth:`suspend`, each of which
    drains the spool (bounded by ``drain_timeout``) and returns a :class:`DrainReport`.
    ``notify`` receives one-line messages for the user (offline mode, what is left).
    """

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_dir: str | Path,
        *,
        mode: str = "auto",
        connect_timeout: float = 10.0,
        drain_timeout: float = 60.0,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        if mode not in MODES:
            raise TrackingError(f"tracking.mode: {mode!r} is not one of {', '.join(MODES)}")
        self.uri, self.dest = uri, redact_uri(uri)
        self.experiment_name = experiment
        self.spool_path = Path(run_dir) / SPOOL_FILE
        self.mode = mode
        self.connect_timeout, self.drain_timeout = connect_timeout, drain_timeout
        self.notify = notify or (lambda line: None)
        self.spool: Spool | None = None
        self.last_report: DrainReport | None = None
        self._shipper: BackgroundShipper | None = None  # while the run is open
        self._floor: dict[str, int] = {}  # a resumed run: the last step of each metric
        self._ended: dict[str, str | None] = {}  # run_id and experiment_id when the spool closed
        self._run_key: str | None = None

    # ------------------------------------------------------------------ identity
    @property
    def run_id(self) -> str | None:
        """The MLflow run id, once the run exists on the server (None while offline)."""
        return self._known("run_id")

    @property
    def experiment_id(self) -> str | None:
        return self._known("experiment_id")

    def _known(self, key: str) -> str | None:
        """``run_id`` or ``experiment_id`` on the server: the shipper's, else the spool's."""
        value = getattr(self._shipper, key, None)
        if value:
            return str(value)
        if self.spool is None or self.spool.closed:
            return self._ended.get(key)
        return self.spool.dest_meta(self.dest).get(key)

    @property
    def run_key(self) -> str:
        if self._run_key is None:
            self._run_key = self._spool().meta()["run_key"]
        return self._run_key

    # ------------------------------------------------------------------ lifecycle
    def start(
        self,
        run_name: str,
        params: Mapping[str, str],
        tags: Mapping[str, str],
        *,
        run_key: str | None = None,
        parent_key: str | None = None,
    ) -> str | None:
        """Open the run's spool, log ``params`` and ``tags``, start shipping; return the MLflow
        run id if the server has the run already (None offline). ``parent_key``: the run key of
        a study's run, which this run is linked to on the server."""
        spool = self._open()
        if spool.meta().get("run_key") is None:
            spool.close()
            spool = Spool.create(
                self.spool_path,
                uri=self.dest,
                experiment=self.experiment_name,
                run_name=run_name,
                run_key=run_key,
                parent_key=parent_key,
            )
            self.spool = spool
        spool.log_params(params)
        spool.set_tags({"labkit.run_key": spool.meta()["run_key"], **tags})
        spool.set_status("RUNNING")
        self._go_online()
        return self.run_id

    def resume(self) -> str | None:
        """Continue the run whose spool is in the run directory (a requeued job, a study's run).

        Points at steps the run already has are dropped, so a run resumed from a checkpoint older
        than its last logged step holds no (key, step) twice."""
        spool = self._open()
        if spool.meta().get("run_key") is None:
            raise TrackingError(f"{self.spool_path} holds no run to resume")
        self._floor = spool.last_steps()
        spool.delete_tags(_STALE_TAGS)
        spool.set_status("RUNNING")
        self._go_online()
        return self.run_id

    def _open(self) -> Spool:
        if self.spool is None:
            self.spool_path.parent.mkdir(parents=True, exist_ok=True)
            self.spool = Spool(self.spool_path)
        return self.spool

    def _go_online(self) -> None:
        from labkit.tracking.write._shipper import BackgroundShipper

        if self.mode == "offline":
            self.notify(
                f"labkit: tracking.mode is offline: the run logs to {self.spool_path}; "
                f"upload it with `{sync_command(self.spool_path.parent, self.dest)}`"
            )
            return
        shipper = BackgroundShipper(self.spool_path, self.uri)
        shipper.start()
        self._shipper = shipper
        local = is_local_store(self.uri)
        # a new SQLite store takes seconds to create (MLflow's migrations): not a server that
        # does not answer, so it is waited for (bounded: a hung network file system)
        wait = max(self.connect_timeout, LOCAL_STORE_WAIT) if local else self.connect_timeout
        shipper.wait_for(1, wait)
        if shipper.state == "online":
            return
        if shipper.state == "failed" or self.mode == "online":
            self._stop_shipper()
            error = shipper.error or TrackingError(
                f"MLflow at {self.dest} did not answer in {wait:g} s"
                if not local
                else f"the local MLflow store {self.dest} was not ready after {wait:g} s"
            )
            hint = (
                "" if shipper.state == "failed" else " (tracking.mode: auto logs to the run's spool instead)"
            )
            raise TrackingError(
                f"cannot start a run in MLflow experiment {self.experiment_name!r}: {error}{hint}"
            ) from None
        why = shipper.error or (
            f"the local MLflow store {self.dest} is not ready after {wait:g} s"
            if local
            else f"no answer in {wait:g} s"
        )
        self.notify(
            f"labkit: {why}; the run goes on offline, logging to {self.spool_path} "
            "(shipping is retried in the background)"
        )

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._spool().set_tags(tags)
        self._poke()

    def log_values(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log metric points at ``step`` (dropped where a resumed run has that step already)."""
        floor = self._floor
        kept = {k: v for k, v in metrics.items() if step > floor.get(k, -1)}
        self._spool().log_metrics(kept, step)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Upload ``path`` (a file or a folder, in the run directory) with the next shipment."""
        from labkit.tracking.write._sync import artifact_inside

        if not artifact_inside(self.spool_path.parent, str(Path(path).absolute())):
            raise TrackingError(
                f"artifact {path}: not inside the run directory {self.spool_path.parent} (a run "
                "uploads only its own files, links resolved); copy it there first"
            )
        self._spool().log_artifact(path, artifact_path)
        self._poke()

    def flush(self) -> None:
        """Ship now rather than at the shipper's next interval."""
        self._poke()

    def suspend(self, reason: str) -> DrainReport | None:
        """Mark the run SCHEDULED: its job is requeued and will resume it."""
        if self.spool is None:
            return None
        self._spool().set_tags({"labkit.suspended": reason})
        return self._end("SCHEDULED")

    def finish(self) -> DrainReport | None:
        """Mark the run FINISHED and drain the spool."""
        return self._end("FINISHED")

    def fail(self, exc: BaseException, *, killed: bool | None = None) -> DrainReport | None:
        """Record the error as tags and mark the run FAILED, or KILLED when it was stopped from
        outside (Ctrl-C, SIGTERM; ``killed`` decides when given)."""
        if self.spool is None:
            return None
        if killed is None:
            killed = isinstance(exc, (KeyboardInterrupt, SystemExit))
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip() or type(exc).__name__
        self._spool().set_tags({"labkit.error": text, "labkit.error_type": type(exc).__name__})
        return self._end("KILLED" if killed else "FAILED")

    def _end(self, status: str) -> DrainReport | None:
        if self.spool is None:
            return None
        self._spool().set_status(status)
        report = self.close()
        for line in report.lines():
            self.notify(line)
        return report

    def close(self) -> DrainReport:
        """Wait (at most ``drain_timeout`` seconds) for the spool to drain, stop shipping and say
        what is left. A server that is down when the run ends is tried once more, not waited for."""
        spool = self._spool()
        shipper = self._shipper
        reason: str | None = "tracking.mode is offline" if self.mode == "offline" else None
        if shipper is not None:
            first = shipper.attempts
            shipper.poke()
            deadline = time.monotonic() + self.drain_timeout
            while spool.pending(self.dest).total and shipper.is_alive():
                error = shipper.error
                if (
                    shipper.attempts > first
                    and shipper.state == "offline"
                    and getattr(error, "refused", False)
                ):
                    break  # tried again since the run ended: nothing listens there
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                shipper.wait_for(shipper.attempts + 1, min(left, 1.0))
            if shipper.error is not None and shipper.state != "online":
                reason = str(shipper.error)
            elif spool.pending(self.dest).total:
                reason = f"still uploading after {self.drain_timeout:g} s"
            self._stop_shipper()
        elif self.mode != "offline" and spool.pending(self.dest).total:
            # ended again after an earlier end stopped the shipper (a failed requeue): one try
            from labkit.tracking.write._sync import sync_spool

            try:
                reason = sync_spool(self.spool_path, self.uri, timeout=self.drain_timeout).error
            except TrackingError as exc:  # refused (the run directory is writable by others)
                reason = str(exc)
        report = DrainReport(
            self.spool_path, spool.pending(self.dest), reason, spool.rejected(self.dest), self.dest
        )
        self.last_report = report
        self._ended = {"run_id": self.run_id, "experiment_id": self.experiment_id}
        spool.close()
        return report

    def _stop_shipper(self) -> None:
        shipper, self._shipper = self._shipper, None
        if shipper is not None:
            shipper.stop()
            shipper.join(timeout=5.0)

    def _spool(self) -> Spool:
        assert self.spool is not None, "start() the run first"
        return self.spool.reopen()

    def _poke(self) -> None:
        if self._shipper is not None:
            self._shipper.poke()


def is_local_store(uri: str) -> bool:
    """A tracking URI of a store on this machine's file system (SQLite, a folder), not a server."""
    if ":" not in uri:
        return not uri.startswith("databricks")  # a path; "databricks" is a hosted server
    return uri.split(":", 1)[0].lower() in ("sqlite", "file")


def sync_command(run_dir: Path, dest: str | None) -> str:
    """The ``labkit sync`` command that uploads a run: with ``--uri`` unless its URI is the
    configured one (``labkit sync`` sends a run only where the user points it)."""
    from labkit.config import default_tracking_uri

    if dest and dest.rstrip("/") != redact_uri(default_tracking_uri()).rstrip("/"):
        return f"labkit sync --uri {shlex.quote(dest)} {shlex.quote(str(run_dir))}"
    return f"labkit sync {shlex.quote(str(run_dir))}"


def end_abandoned_run(run_dir: str | Path, reason: str, uri: str | None = None) -> None:
    """Mark the run of a process that died (SIGKILL, node failure) KILLED, with the reason as a
    tag, and upload what its spool still holds (one attempt; ``labkit sync`` does the rest)."""
    from labkit.tracking.write._sync import sync_spool

    path = Path(run_dir) / SPOOL_FILE
    if not path.is_file():
        return
    spool = Spool(path)
    try:
        if spool.last_status() in ("RUNNING", "SCHEDULED"):  # SCHEDULED: preempted, did not come back
            spool.set_tags({"labkit.error": reason})
            spool.set_status("KILLED")
    finally:
        spool.close()
    with contextlib.suppress(TrackingError):  # refused: `labkit sync` says why
        sync_spool(path, uri=uri)
