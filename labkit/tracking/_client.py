"""One MLflow run's lifecycle and batched logging (MLflow only: no torch, no Lightning).

Metric points are buffered and sent with ``log_batch`` (at most 1000 metrics, 100 params and
100 tags a call, as MLflow allows), never one HTTP call per value. The buffer is flushed when
it is full, every ``flush_seconds``, and when the run ends.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path

# MLflow 3 sends usage telemetry from a background thread, decided when mlflow is imported.
# labkit's promise is no network traffic but the tracking server's: off unless a user opts in
# (MLFLOW_DISABLE_TELEMETRY=false).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from labkit.errors import TrackingError
from labkit.tracking._provenance import redact_uri

__all__ = ["RunClient", "end_abandoned_run"]

MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100
MAX_TAG_LENGTH = 8000  # MLflow stores tag values up to 8000 characters
# MLflow 3's UI shows an experiment without this tag as a GenAI "evaluation" experiment
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


class RunClient:
    """Creates or resumes one MLflow run and logs to it in batches.

    Lifecycle: :meth:`start` (or :meth:`resume`), :meth:`log_values` / :meth:`set_tags` /
    :meth:`log_artifact`, then :meth:`finish`, :meth:`fail` or :meth:`suspend`.
    """

    def __init__(self, uri: str, experiment: str, *, flush_seconds: float = 10.0) -> None:
        self.uri = uri
        self.experiment_name = experiment
        self.flush_seconds = flush_seconds
        # "Creating initial MLflow database tables..." on every new SQLite store is noise to users
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        try:
            self.client = MlflowClient(tracking_uri=uri)
        except Exception as exc:  # noqa: BLE001 - e.g. an SQLite path that cannot be created
            raise self._unusable(exc) from None
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self._pending: list[Metric] = []
        self._last_flush = time.monotonic()
        self._logged_up_to: dict[str, int] = {}  # a resumed run: the last step of each metric

    # ------------------------------------------------------------------ lifecycle
    def start(self, run_name: str, params: Mapping[str, str], tags: Mapping[str, str]) -> str:
        """Create the run, log ``params`` and ``tags``; return the MLflow run id."""
        try:
            self.experiment_id = self._experiment_id()
            run = self.client.create_run(
                self.experiment_id, run_name=run_name, tags={"mlflow.runName": run_name}
            )
        except TrackingError:
            raise
        except Exception as exc:  # noqa: BLE001 - store back-ends raise many kinds; all mean "unusable"
            raise self._unusable(exc) from None
        self.run_id = run.info.run_id
        self._send(
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, _clip(v)) for k, v in tags.items()],
        )
        return self.run_id

    def _unusable(self, exc: Exception) -> TrackingError:
        return TrackingError(
            f"cannot start a run in MLflow experiment {self.experiment_name!r} at "
            f"{redact_uri(self.uri)}: {type(exc).__name__}: {_first_line(exc)} "
            "(set tracking.uri or MLFLOW_TRACKING_URI)"
        )

    def resume(self, run_id: str) -> None:
        """Continue an existing run: a study's parent run, or a job restarted after a requeue.

        Points at steps the run already has are dropped, so a run resumed from a checkpoint
        older than its last logged step holds no (key, step) twice.
        """
        try:
            run = self.client.get_run(run_id)
            self.client.update_run(run_id, status="RUNNING")
            for stale in ("labkit.error", "labkit.error_type"):  # from an earlier, interrupted session
                if stale in run.data.tags:
                    self.client.delete_tag(run_id, stale)
            for key in run.data.metrics:
                history = self.client.get_metric_history(run_id, key)
                if history:
                    self._logged_up_to[key] = max(m.step for m in history)
        except Exception as exc:  # noqa: BLE001
            raise self._unusable(exc) from None
        self.run_id, self.experiment_id = run_id, run.info.experiment_id

    def suspend(self, reason: str) -> None:
        """Flush and mark the run SCHEDULED: its job is requeued and will resume it."""
        if self.run_id is None:
            return
        try:
            self._send(tags=[RunTag("labkit.suspended", _clip(reason))])
        finally:
            self._end(RunStatus.to_string(RunStatus.SCHEDULED))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._send(tags=[RunTag(k, _clip(v)) for k, v in tags.items()])

    def finish(self) -> None:
        """Flush what is pending and mark the run FINISHED."""
        self._end(RunStatus.to_string(RunStatus.FINISHED))

    def fail(self, exc: BaseException, *, killed: bool | None = None) -> None:
        """Flush, record the error as tags and mark the run FAILED, or KILLED when it was stopped
        from outside (Ctrl-C, SIGTERM; ``killed`` decides when given)."""
        if self.run_id is None:
            return
        if killed is None:
            killed = isinstance(exc, (KeyboardInterrupt, SystemExit))
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip() or type(exc).__name__
        tags = [RunTag("labkit.error", _clip(text)), RunTag("labkit.error_type", type(exc).__name__)]
        try:
            self._send(tags=tags)
        finally:
            self._end(RunStatus.to_string(RunStatus.KILLED if killed else RunStatus.FAILED))

    def _end(self, status: str) -> None:
        if self.run_id is None:
            return
        try:
            self.flush()
        finally:
            self.client.set_terminated(self.run_id, status=status)

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment_name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                raise TrackingError(
                    f"MLflow experiment {self.experiment_name!r} is deleted; restore it "
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
                    self.experiment_name, artifact_location=location, tags={EXPERIMENT_KIND: MODEL_TRAINING}
                )
            )
        except MlflowException:  # created concurrently by another process
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is None:
                raise
            return str(found.experiment_id)

    def log_values(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Queue metric points (flushed in batches)."""
        now = int(time.time() * 1000)
        floor = self._logged_up_to
        self._pending.extend(
            Metric(k, float(v), now, step) for k, v in metrics.items() if step > floor.get(k, -1)
        )
        self._maybe_flush()

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        assert self.run_id is not None, "start() the run first"
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def flush(self) -> None:
        """Send every pending metric point now."""
        pending, self._pending = self._pending, []
        self._send(metrics=pending)
        self._last_flush = time.monotonic()

    def _maybe_flush(self) -> None:
        if len(self._pending) >= MAX_METRICS or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def _send(
        self, metrics: Iterable[Metric] = (), params: Iterable[Param] = (), tags: Iterable[RunTag] = ()
    ) -> None:
        run_id = self.run_id
        assert run_id is not None
        metric_list, param_list, tag_list = list(metrics), list(params), list(tags)
        for i in range(0, len(metric_list), MAX_METRICS):
            self.client.log_batch(run_id, metrics=metric_list[i : i + MAX_METRICS])
        for i in range(0, len(param_list), MAX_PARAMS):
            self.client.log_batch(run_id, params=param_list[i : i + MAX_PARAMS])
        for i in range(0, len(tag_list), MAX_TAGS):
            self.client.log_batch(run_id, tags=tag_list[i : i + MAX_TAGS])


def _clip(value: str) -> str:
    return value if len(value) <= MAX_TAG_LENGTH else value[: MAX_TAG_LENGTH - 15] + "\n[... clipped]"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def end_abandoned_run(uri: str, run_id: str, reason: str) -> None:
    """Mark a run whose process died (SIGKILL, node failure) KILLED, with the reason as a tag."""
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    if run.info.status in ("RUNNING", "SCHEDULED"):  # SCHEDULED: preempted, its job did not come back
        client.set_tag(run_id, "labkit.error", _clip(reason))
        client.set_terminated(run_id, status="KILLED")
