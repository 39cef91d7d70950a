"""Ship a run's spool to an MLflow tracking server: batched, in order, idempotent.

A :class:`Shipper` sends what a spool holds beyond its high-water mark for one destination, in
requests within MLflow's limits (≤1000 metrics, ≤100 params, ≤100 tags, ≤1000 entities and
≤1 MB a request), and moves the mark after each accepted request. Sending a request twice is
harmless (MLflow keeps one copy of a metric point with the same key, value, step and timestamp;
params and tags are set to the same value; artifacts overwrite), so a shipper killed between a
request and its mark duplicates nothing. The run is found again by its ``labkit.run_key`` tag
before one is created, so a sync killed after creating the run creates no second one.

:class:`BackgroundShipper` runs a shipper in a thread with retry and backoff: training never
waits on the network.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from labkit.errors import Denied, TrackingError, Unreachable
from labkit.tracking._provenance import redact_uri
from labkit.tracking.write._spool import Op, Spool, metric_value
from labkit.tracking.write._sync import artifact_inside

__all__ = ["BackgroundShipper", "Denied", "Shipper", "Unreachable", "mlflow_client"]

MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ENTITIES = 1000, 100, 100, 1000
MAX_REQUEST_BYTES = 900_000  # MLflow refuses requests over 1 MB; leave room for the JSON around
MAX_TAG_LENGTH = 8000  # MLflow stores tag values up to 8000 characters
# MLflow 3's UI shows an experiment without this tag as a GenAI "evaluation" experiment
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
RUN_KEY = "labkit.run_key"


# A server whose database is busy says so with HTTP 400 (MLflow wraps every SQLAlchemy error as
# BAD_REQUEST): a QueuePool timeout under load is not an invalid request, and must be retried
_BUSY = ("sqlalche", "queuepool", "database is locked", "deadlock", "could not connect", "timed out")
_REFUSED = (
    "connection refused",
    "no route to host",
    "network is unreachable",
    "name or service not known",
    "temporary failure in name resolution",
    "connecttimeout",
)


def mlflow_client(uri: str):  # type: ignore[no-untyped-def]
    """An ``MlflowClient`` that fails fast: labkit retries (with backoff) itself."""
    # MLflow's own retries of a dead server take ≈4 min, and its telemetry thread sends usage
    # data to a third party: both off unless the user has set them
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # "View run ..." on stdout
    import logging

    from labkit.tracking._mlflow import MlflowClient

    # "Creating initial MLflow database tables..." on every new SQLite store is noise to users
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri)


@dataclass
class ShipResult:
    sent: int = 0  #: ops the server accepted
    rejected: int = 0  #: ops the server refused for good (kept in the spool's ``rejected``)


class Shipper:
    """Ships one spool to one tracking URI. Open it in the thread that uses it."""

    def __init__(self, spool: Spool, uri: str) -> None:
        self.spool = spool
        self.uri = uri
        self.dest = redact_uri(uri)
        try:
            self.client = mlflow_client(uri)
        except Exception as exc:  # noqa: BLE001 - e.g. an SQLite path that cannot be created
            raise TrackingError(f"cannot use the tracking URI {self.dest}: {exc}") from None
        self.run_id: str | None = self.spool.dest_meta(self.dest).get("run_id")
        self.experiment_id: str | None = self.spool.dest_meta(self.dest).get("experiment_id")
        self.totals = ShipResult()  #: what this shipper has sent so far, over all calls
        # An http(s) server gets log_batch as JSON built here: MLflow's client goes through
        # protobuf objects and their JSON conversion, ≈60 µs of CPU (and the GIL) per metric point,
        # which a training loop logging every step pays for in its own process
        store = getattr(getattr(self.client, "_tracking_client", None), "store", None)
        self._host_creds = (
            getattr(store, "get_host_creds", None) if type(store).__name__ == "RestStore" else None
        )

    # ------------------------------------------------------------------ the run
    def ensure_run(self) -> str:
        """The MLflow run of this spool on this server: recorded, found by its run key, or created."""
        meta = self.spool.meta()
        if self.run_id is None:
            with _translated(self.dest):
                self.experiment_id = self._experiment_id(meta["experiment"])
                found = self._find(self.experiment_id, meta["run_key"])
                if found is None:
                    run = self.client.create_run(
                        self.experiment_id,
                        start_time=int(meta["created_ms"]),
                        tags={"mlflow.runName": meta["run_name"], RUN_KEY: meta["run_key"]},
                        run_name=meta["run_name"],
                    )
                    found = run.info.run_id
            self.run_id = found
            self.spool.set_dest_meta(self.dest, run_id=found, experiment_id=str(self.experiment_id))
        if meta.get("parent_key") and not self.spool.dest_meta(self.dest).get("parent_run_id"):
            self._link_parent(meta["parent_key"])
        return self.run_id

    def _find(self, experiment_id: str, run_key: str) -> str | None:
        from labkit.tracking._mlflow import ViewType

        runs = self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{RUN_KEY}` = '{run_key}'",
            run_view_type=ViewType.ALL,
            max_results=1,
        )
        return str(runs[0].info.run_id) if runs else None

    def _link_parent(self, parent_key: str) -> None:
        """A tuning trial names its study's run by run key; link it once that run is on the server."""
        assert self.run_id is not None and self.experiment_id is not None
        with _translated(self.dest):
            parent = self._find(self.experiment_id, parent_key)
            if parent is not None:
                self.client.set_tag(self.run_id, "mlflow.parentRunId", parent)
        if parent is not None:
            self.spool.set_dest_meta(self.dest, parent_run_id=parent)

    def _experiment_id(self, name: str) -> str:
        from labkit.tracking._mlflow import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                raise TrackingError(
                    f"MLflow experiment {name!r} at {self.dest} is deleted; restore it "
                    "(mlflow experiments restore) or set tracking.experiment to another name"
                )
            if EXPERIMENT_KIND not in found.tags:
                self.client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
            return str(found.experiment_id)
        location = None
        if self.uri.startswith("sqlite:///"):  # artifacts beside the database, not in the cwd
            location = (Path(self.uri.removeprefix("sqlite:///")).parent / "mlruns").as_uri()
        try:
            return str(
                self.client.create_experiment(
                    name, artifact_location=location, tags={EXPERIMENT_KIND: MODEL_TRAINING}
                )
            )
        except MlflowException:  # created concurrently by another process
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    # ------------------------------------------------------------------ shipping
    def ship(self, deadline: float | None = None, *, upto: int | None = None) -> ShipResult:
        """Send everything pending (until ``deadline``, a ``time.monotonic()``; only ops up to
        the sequence number ``upto``: a run that keeps logging is not chased). Raises
        :class:`Unreachable` or :class:`Denied`; what was sent before stays sent."""
        result = self.totals
        self.ensure_run()
        while deadline is None or time.monotonic() < deadline:
            ops = self.spool.pending_ops(self.dest)
            if upto is not None:
                ops = [op for op in ops if op.seq <= upto]
            if not ops:
                break
            for chunk in _chunks(ops):
                self._ship_or_split(chunk, result)
                if deadline is not None and time.monotonic() >= deadline:
                    break
        return result

    def _ship_or_split(self, chunk: list[Op], result: ShipResult) -> None:
        """Send ``chunk``; a chunk the server refuses as invalid is split until the bad op is found
        and set aside, so that one bad value loses nothing else."""
        try:
            with _translated(self.dest, invalid=True):
                self._send(chunk)
        except _Invalid as exc:
            if len(chunk) == 1:
                self.spool.reject(self.dest, chunk, str(exc))
                result.rejected += 1
                return
            half = len(chunk) // 2
            self._ship_or_split(chunk[:half], result)
            self._ship_or_split(chunk[half:], result)
            return
        self.spool.mark_shipped(self.dest, chunk[-1].seq)
        result.sent += len(chunk)

    def _send(self, chunk: list[Op]) -> None:
        from labkit.tracking._mlflow import Metric, Param, RunTag

        run_id = self.run_id
        assert run_id is not None
        first = chunk[0]
        if first.kind == "artifact":
            path = Path(first.key)
            if not artifact_inside(self.spool.path.parent, first.key):  # checked again, as it goes
                raise _Invalid(f"{path} is not inside the run directory {self.spool.path.parent}")
            if not path.exists():
                raise _Invalid(f"{path} no longer exists")
            if path.is_dir():
                self.client.log_artifacts(run_id, str(path), first.value)
            else:
                self.client.log_artifact(run_id, str(path), first.value)
        elif first.kind == "status":
            if first.key == "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            else:
                self.client.set_terminated(run_id, status=first.key, end_time=first.ts)
        elif first.kind == "delete_tag":
            from labkit.tracking._mlflow import MlflowException

            try:
                self.client.delete_tag(run_id, first.key)
            except MlflowException as exc:
                if exc.get_http_status_code() not in (400, 404):  # 404: the run has no such tag
                    raise
        elif self._host_creds is not None:
            self._post_batch(run_id, chunk)
        else:
            metrics = [
                Metric(o.key, metric_value(o), o.ts or 0, o.step or 0) for o in chunk if o.kind == "metric"
            ]
            params = [Param(o.key, o.value or "") for o in chunk if o.kind == "param"]
            tags = [RunTag(o.key, _clip(o.value or "")) for o in chunk if o.kind == "tag"]
            self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)

    def _post_batch(self, run_id: str, chunk: list[Op]) -> None:
        """``runs/log-batch`` with a JSON body built directly (what MLflow's client sends)."""
        from labkit.tracking._mlflow import http_request, verify_rest_response

        assert self._host_creds is not None
        body = {
            "run_id": run_id,
            "metrics": [
                {
                    "key": o.key,
                    "value": _json_number(metric_value(o)),
                    "timestamp": o.ts or 0,
                    "step": o.step or 0,
                }
                for o in chunk
                if o.kind == "metric"
            ],
            "params": [{"key": o.key, "value": o.value or ""} for o in chunk if o.kind == "param"],
            "tags": [{"key": o.key, "value": _clip(o.value or "")} for o in chunk if o.kind == "tag"],
        }
        endpoint = "/api/2.0/mlflow/runs/log-batch"
        response = http_request(self._host_creds(), endpoint, "POST", json=body)
        verify_rest_response(response, endpoint)


def _chunks(ops: list[Op]) -> Iterator[list[Op]]:
    """Consecutive ops grouped into requests: metrics, params and tags batched within MLflow's
    limits; an artifact, a status change or a tag deletion alone, in its place in the order."""
    chunk: list[Op] = []
    counts = {"metric": 0, "param": 0, "tag": 0}
    size = 0
    limits = {"metric": MAX_METRICS, "param": MAX_PARAMS, "tag": MAX_TAGS}
    for op in ops:
        if op.kind not in counts:
            if chunk:
                yield chunk
            yield [op]
            chunk, counts, size = [], dict.fromkeys(counts, 0), 0
            continue
        op_size = len(op.key) + len(op.value or "") + 64
        if chunk and (
            counts[op.kind] >= limits[op.kind]
            or len(chunk) >= MAX_ENTITIES
            or size + op_size > MAX_REQUEST_BYTES
        ):
            yield chunk
            chunk, counts, size = [], dict.fromkeys(counts, 0), 0
        chunk.append(op)
        counts[op.kind] += 1
        size += op_size
    if chunk:
        yield chunk


class _Invalid(Exception):
    """The server refused a request as invalid (HTTP 400/404/409): retrying cannot help."""


@contextlib.contextmanager
def _translated(dest: str, *, invalid: bool = False) -> Iterator[None]:
    """MLflow's and the network's errors as labkit's: :class:`Denied`, :class:`Unreachable`, or
    (``invalid``) :class:`_Invalid` for a request the server refuses as malformed."""
    from labkit.tracking._mlflow import MlflowException

    try:
        yield
    except MlflowException as exc:
        status = exc.get_http_status_code()
        text, full = _first_line(exc), str(exc).lower()
        if status in (401, 403):
            raise Denied(
                f"the MLflow server at {dest} refused {'the credentials' if status == 401 else 'access'} "
                f"(HTTP {status}): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
                f"MLFLOW_TRACKING_TOKEN) for a user with EDIT permission on the experiment; {text}"
            ) from None
        transport = "max retries" in full or "failed with exception" in full
        busy = any(marker in full for marker in _BUSY)
        if status in (400, 404, 409, 413) and not transport and not busy:
            if invalid:
                raise _Invalid(text) from None
            raise TrackingError(f"the MLflow server at {dest} refused a request: {text}") from None
        refused = transport and any(marker in full for marker in _REFUSED)
        raise Unreachable(
            f"MLflow at {dest} cannot be reached: {_network_cause(text)}", refused=refused
        ) from None
    except OSError as exc:  # a local store on a full or missing disk, a socket error
        raise Unreachable(f"MLflow at {dest} cannot be reached: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.startswith(("sqlalchemy", "requests", "urllib3")):
            raise Unreachable(
                f"MLflow at {dest} cannot be reached: {type(exc).__name__}: {_first_line(exc)}"
            ) from None
        raise


def _network_cause(text: str) -> str:
    """The cause in one of urllib3's long messages: "[Errno 111] Connection refused", "timed out"."""
    import re

    found = re.search(r"\[Errno -?\d+\] ([^'\"()]+)", text) or re.search(r"(Read timed out|timed out)", text)
    if found:
        return found.group(1).strip().rstrip(".")
    status = re.search(r"error code (\d{3})", text)
    return f"HTTP {status.group(1)}" if status else text


def _json_number(v: float) -> float | str:
    """A metric value as protobuf's JSON writes a double: NaN and infinities as strings."""
    if math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def _clip(value: str) -> str:
    return value if len(value) <= MAX_TAG_LENGTH else value[: MAX_TAG_LENGTH - 15] + "\n[... clipped]"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]


class BackgroundShipper(threading.Thread):
    """Ships a spool from a daemon thread: every ``interval`` seconds and whenever poked; after a
    failure it retries with exponential backoff (up to ``max_backoff`` seconds).

    ``state`` is ``connecting``, ``online``, ``offline`` (the last attempt failed: retrying) or
    ``failed`` (denied or refused: stopped).
    """

    def __init__(
        self, spool_path: Path, uri: str, *, interval: float = 1.0, max_backoff: float = 5.0
    ) -> None:
        super().__init__(name=f"labkit-shipper-{spool_path.parent.name}", daemon=True)
        self.spool_path, self.uri = spool_path, uri
        self.interval, self.max_backoff = interval, max_backoff
        self.state = "connecting"
        self.error: TrackingError | None = None
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.attempts = 0  #: finished attempts (successful or not)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._changed = threading.Condition()

    def poke(self) -> None:
        """Ship now rather than at the next interval."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def wait_for(self, attempts: int, timeout: float) -> bool:
        """Wait until ``attempts`` attempts have finished (or the thread ended); False on timeout."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self.attempts >= attempts or not self.is_alive(), timeout=max(0.0, timeout)
            )

    def run(self) -> None:
        spool = Spool(self.spool_path)
        try:
            with spool.shipping_lock():
                shipper = Shipper(spool, self.uri)
                self.run_id, self.experiment_id = shipper.run_id, shipper.experiment_id
                self._loop(shipper)
        except TrackingError as exc:  # busy spool, unusable URI
            self._finish_attempt("failed", exc)
        except (sqlite3.Error, OSError) as exc:  # the spool's disk is full or read-only: stop, say so
            why = f"cannot write the logging spool {self.spool_path}: {exc}"
            self._finish_attempt("failed", TrackingError(why))
        finally:
            spool.close()
            with self._changed:
                self._changed.notify_all()

    def _loop(self, shipper: Shipper) -> None:
        backoff = 0.0
        while not self._stopping.is_set():
            try:
                shipper.ship()
            except Unreachable as exc:
                backoff = min(max(0.5, 2 * backoff), self.max_backoff)
                self._finish_attempt("offline", exc)
            except TrackingError as exc:  # denied, or refused: retrying cannot help
                self._finish_attempt("failed", exc)
                return
            else:
                backoff = 0.0
                self.run_id, self.experiment_id = shipper.run_id, shipper.experiment_id
                self._finish_attempt("online", None)
            self._wake.wait(timeout=backoff or self.interval)
            self._wake.clear()

    def _finish_attempt(self, state: str, error: TrackingError | None) -> None:
        with self._changed:
            self.state, self.error = state, error
            self.attempts += 1
            self._changed.notify_all()
