"""The per-event test outputs a run stores (``outputs/test_outputs.npz``), read into a typed
:class:`RunOutputs`: what ``labkit plot`` and the report's physics curves are drawn from.

The layout (format 1) is written by the run's test step: ``task``, ``format``; for
classification ``probs`` (N, K), ``labels`` (N,), ``class_names`` (K,), ``signal_class``; for
regression ``pred`` and ``truth`` (N, T) in physical units, ``target_names`` (T,); for anomaly
``score`` (N,), ``is_signal`` (N,) and optionally ``in_signal_region`` (N,) (the events its
test metrics use: the curves use them too); and when the data has them ``weights`` (N,) and
``spectator.<name>`` (N,). numpy only: no mlflow, no torch.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from labkit.errors import ConfigError, DataError

if TYPE_CHECKING:
    from labkit.tracking.query import RunRecord

__all__ = ["OUTPUTS_ARTIFACT", "RunOutputs", "load_outputs", "read_outputs"]

#: where a run's per-event test outputs live among its MLflow artifacts
OUTPUTS_ARTIFACT = "outputs/test_outputs.npz"
OUTPUTS_FILE = "test_outputs.npz"
_FORMATS = (1,)
_TASKS = ("classification", "regression", "anomaly")


@dataclass(frozen=True)
class RunOutputs:
    """One run's test split, one entry per event (see the module doc for the arrays)."""

    run_id: str
    task: str  #: "classification" | "regression" | "anomaly"
    weights: np.ndarray | None = None
    spectators: dict[str, np.ndarray] = field(default_factory=dict)
    # classification
    probs: np.ndarray | None = None
    labels: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    signal_class: int = -1
    # regression
    pred: np.ndarray | None = None
    truth: np.ndarray | None = None
    target_names: tuple[str, ...] = ()
    # anomaly
    score: np.ndarray | None = None
    is_signal: np.ndarray | None = None

    @property
    def events(self) -> int:
        for array in (self.probs, self.pred, self.score):
            if array is not None:
                return int(array.shape[0])
        return 0

    def signal_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """``(score, is_signal)`` per event: the signal-class probability and whether the event is
        signal (classification), or the anomaly score and the truth (anomaly). DataError when the
        run has no signal class (a multi-class task without ``signal_class``)."""
        if self.task == "anomaly" and self.score is not None and self.is_signal is not None:
            return self.score.astype(np.float64), self.is_signal.astype(bool)
        if self.task == "classification" and self.probs is not None and self.labels is not None:
            if not 0 <= self.signal_class < self.probs.shape[1]:
                raise DataError(
                    f"run {self.run_id}: a {self.probs.shape[1]}-class task without a signal class "
                    "(set task.signal_class): no signal efficiency to draw"
                )
            scores = self.probs[:, self.signal_class].astype(np.float64)
            return scores, self.labels == self.signal_class
        raise DataError(f"run {self.run_id}: a {self.task} run has no signal score")


def _scalar_str(data: dict[str, np.ndarray], key: str) -> str:
    return str(np.asarray(data[key]).reshape(()))


def read_outputs(source: bytes | Path, *, run_id: str) -> RunOutputs:
    """The :class:`RunOutputs` of one ``test_outputs.npz`` (a file, or its bytes). DataError,
    naming the run, when the file is not one (damaged, an unknown format, a key missing)."""
    try:
        opened = np.load(io.BytesIO(source) if isinstance(source, bytes) else source, allow_pickle=False)
        with opened as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"run {run_id}: {OUTPUTS_FILE} cannot be read ({type(exc).__name__}: {exc})"
        ) from None
    try:
        task = _scalar_str(data, "task")
        version = int(np.asarray(data["format"]).reshape(()))
    except (KeyError, ValueError, TypeError):
        raise DataError(f"run {run_id}: {OUTPUTS_FILE} has no 'task' and 'format' entries") from None
    if version not in _FORMATS:
        raise DataError(
            f"run {run_id}: {OUTPUTS_FILE} has format {version}; this labkit reads format "
            f"{', '.join(map(str, _FORMATS))} (update labkit)"
        )
    if task not in _TASKS:
        raise DataError(
            f"run {run_id}: {OUTPUTS_FILE} names task {task!r}; expected one of {', '.join(_TASKS)}"
        )
    need = {
        "classification": ("probs", "labels", "class_names", "signal_class"),
        "regression": ("pred", "truth", "target_names"),
        "anomaly": ("score", "is_signal"),
    }[task]
    missing = [k for k in need if k not in data]
    if missing:
        raise DataError(f"run {run_id}: {OUTPUTS_FILE} of a {task} run lacks {', '.join(missing)}")
    spectators = {
        k.removeprefix("spectator."): data[k].astype(np.float64) for k in data if k.startswith("spectator.")
    }
    weights = data["weights"].astype(np.float64) if "weights" in data else None
    out = RunOutputs(run_id=run_id, task=task, weights=weights, spectators=spectators)
    if task == "classification":
        probs = np.asarray(data["probs"], dtype=np.float64)
        probs = probs.reshape(len(probs), -1)
        out = _replace(
            out,
            probs=probs,
            labels=np.asarray(data["labels"]).astype(np.int64).ravel(),
            class_names=tuple(str(c) for c in np.asarray(data["class_names"]).ravel()),
            signal_class=int(np.asarray(data["signal_class"]).reshape(())),
        )
    elif task == "regression":
        pred = np.asarray(data["pred"], dtype=np.float64)
        truth = np.asarray(data["truth"], dtype=np.float64)
        out = _replace(
            out,
            pred=pred.reshape(len(pred), -1),
            truth=truth.reshape(len(truth), -1),
            target_names=tuple(str(c) for c in np.asarray(data["target_names"]).ravel()),
        )
    else:
        out = _replace(
            out,
            score=np.asarray(data["score"], dtype=np.float64).ravel(),
            is_signal=np.asarray(data["is_signal"]).astype(bool).ravel(),
        )
    n = out.events
    for name, array in [("weights", weights), *((f"spectator.{k}", v) for k, v in spectators.items())]:
        if array is not None and array.shape != (n,):
            raise DataError(f"run {run_id}: {OUTPUTS_FILE}: {name} has shape {array.shape}, expected ({n},)")
    if task == "anomaly" and "in_signal_region" in data:  # the events the run's test metrics use
        region = np.asarray(data["in_signal_region"]).astype(bool).ravel()
        if region.shape != (n,):
            raise DataError(
                f"run {run_id}: {OUTPUTS_FILE}: in_signal_region has shape {region.shape}, expected ({n},)"
            )
        assert out.score is not None and out.is_signal is not None
        out = _replace(
            out,
            score=out.score[region],
            is_signal=out.is_signal[region],
            weights=None if weights is None else weights[region],
            spectators={k: v[region] for k, v in spectators.items()},
        )
    return out


def _replace(out: RunOutputs, **changes: object) -> RunOutputs:
    from dataclasses import replace

    return replace(out, **changes)  # type: ignore[arg-type]


def load_outputs(
    run: str | RunRecord,
    *,
    uri: str,
    cache_dir: Path,
    runs_root: Path | None = None,
) -> RunOutputs:
    """The test outputs of ``run`` (an MLflow run id or its record): from its run directory under
    ``runs_root`` when it is there (an offline run not yet synced), else the run's artifact
    ``outputs/test_outputs.npz`` on the tracking server at ``uri`` (kept in ``cache_dir``).

    DataError, in one line naming the run, when the run stored none: a run older than the
    outputs file, or a segmentation or surrogate run (they write none)."""
    run_id = run if isinstance(run, str) else run.run_id
    local = _local_file(run_id, runs_root) if runs_root is not None else None
    if local is None:
        from labkit.tracking.query import fetch_artifact_file

        local = fetch_artifact_file(uri, run_id, OUTPUTS_ARTIFACT, cache_dir=cache_dir)
    if local is None:
        task = "" if isinstance(run, str) else run.tags.get("labkit.task", "")
        why = (
            f"a {task} run stores no per-event outputs"
            if task in ("segmentation", "surrogate")
            else "the run stored none (it ran before labkit kept them, or its test did not finish)"
        )
        raise DataError(f"run {run_id}: no {OUTPUTS_ARTIFACT} artifact: {why}")
    return read_outputs(local, run_id=run_id)


def _local_file(run_id: str, runs_root: Path) -> Path | None:
    """``test_outputs.npz`` of the run directory ``run_id`` names (the directory itself, or the
    run under ``runs_root`` with that MLflow run id or run key), if it has one."""
    from labkit._rundir import RunDir

    given = Path(run_id).expanduser()
    if RunDir.is_run_dir(given):
        found = given / OUTPUTS_FILE
        return found if found.is_file() else None
    if not runs_root.is_dir():
        return None
    for rdir in RunDir.scan(runs_root):
        if run_id in (rdir.mlflow_run_id, rdir.run_key):
            found = rdir.path / OUTPUTS_FILE
            return found if found.is_file() else None
    return None


def check_same_task(outputs: list[RunOutputs]) -> str:
    """The task the runs share; ConfigError in one line listing the runs by task when they mix."""
    tasks: dict[str, list[str]] = {}
    for out in outputs:
        tasks.setdefault(out.task, []).append(out.run_id[:8])
    if len(tasks) > 1:
        listing = "; ".join(f"{task}: {', '.join(ids)}" for task, ids in sorted(tasks.items()))
        raise ConfigError(f"the runs mix task kinds ({listing}); plot runs of one task at a time")
    if not tasks:
        raise ConfigError("no runs to plot")
    return next(iter(tasks))
