"""The run's per-event test outputs: ``test_outputs.npz`` in the run directory, logged as the
artifact ``outputs/test_outputs.npz``, so that physics curves (rejection vs efficiency, efficiency
vs a spectator, resolution vs the true value, SIC) can be drawn later without retraining.

Layout (format 1, read by :mod:`labkit.report`): ``task`` (0-d str), ``format`` (0-d int), what
the task's :meth:`~labkit.tasks.Task.test_outputs` gives (``probs``/``labels``/``class_names``/
``signal_class``, ``pred``/``truth``/``target_names``, ``score``/``is_signal``/
``in_signal_region``, ``weights``), and one ``spectator.<name>`` float32 (N,) per spectator of the
data (``DataInfo.spectators``). One row per test event, in the order of the test loader.

The file never fails a run: a write error is a warning in the run's log, except a full or
read-only disk, which fails the run like any other write to the run directory does.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from labkit._rundir import RunDir
from labkit.runner._failure import disk_problem

if TYPE_CHECKING:
    from labkit.data import DataInfo
    from labkit.tracking import Tracker

__all__ = [
    "OUTPUTS_DIR",
    "OUTPUTS_FILE",
    "OUTPUTS_FORMAT",
    "loader_order",
    "output_arrays",
    "save_test_outputs",
]

OUTPUTS_FILE = "test_outputs.npz"
OUTPUTS_DIR = "outputs"  #: the artifact folder: ``outputs/test_outputs.npz``
OUTPUTS_FORMAT = 1  #: bumped when the layout changes
#: the task families whose test outputs are written (segmentation and surrogate runs write none)
KINDS = ("classification", "regression", "anomaly")


def loader_order(rows: int, n: int, world: int) -> np.ndarray | None:
    """Where each of the ``n`` test events (in the order of the test loader) lies among ``rows``
    rows gathered from ``world`` DDP ranks, rank by rank; None when the rows cannot be matched.

    Lightning tests each rank on a ``DistributedSampler`` share (not shuffled): the loader's
    events padded with its first ones to a multiple of ``world``, rank ``r`` taking every
    ``world``-th from ``r``. A padded (repeated) event is taken where it first appears."""
    if world <= 1:
        return np.arange(n) if rows == n else None
    per = math.ceil(n / world)
    if rows != per * world or n == 0:
        return None
    rank, step = np.divmod(np.arange(rows), per)  # row = rank * per + step
    event = (step * world + rank) % n
    _, first = np.unique(event, return_index=True)
    return first if len(first) == n else None


#: the arrays a task gives with one row per test event (the others describe the columns)
PER_EVENT = ("probs", "labels", "pred", "truth", "score", "is_signal", "in_signal_region", "weights")


def output_arrays(
    task: Any, info: DataInfo | None, kind: str, world: int = 1
) -> tuple[dict[str, np.ndarray], str]:
    """The arrays of ``test_outputs.npz`` for a tested ``task`` (empty when it keeps none) and a
    warning to print ("" when none): spectators that could not be matched to the events."""
    keep = getattr(task, "test_outputs", None)
    outputs: dict[str, np.ndarray] = dict(keep()) if callable(keep) and kind in KINDS else {}
    per_event = [k for k in PER_EVENT if k in outputs]
    if not per_event:
        return {}, ""
    rows = len(outputs[per_event[0]])
    spectators = {name: info.extras[name] for name in info.spectators if name in info.extras} if info else {}
    n = (info.sizes.get("test") if info else None) or (
        len(next(iter(spectators.values()))) if spectators else None
    )
    order = loader_order(rows, n, world) if n is not None else None
    warning = ""
    if order is not None and world > 1:  # DDP: the ranks' rows back in the order of the test loader
        outputs |= {k: outputs[k][order] for k in per_event}
    elif order is None and (spectators or world > 1):
        warning = (
            f"{rows} test outputs for {n or 'an unknown number of'} test events on {world} "
            "process(es): saved as they came" + (", without the spectators" if spectators else "")
        )
        spectators = {}
    out = {"task": np.array(kind), "format": np.array(OUTPUTS_FORMAT, dtype=np.int64)} | outputs
    for name, values in spectators.items():
        out[f"spectator.{name}"] = np.asarray(values, dtype=np.float32).reshape(-1)
    return out, warning


def save_test_outputs(
    *,
    task: Any,
    info: DataInfo | None,
    kind: str,
    world: int,
    run_dir: RunDir,
    tracker: Tracker,
    stream: TextIO,
) -> Path | None:
    """Write ``test_outputs.npz`` into the run directory and log it as ``outputs/``; its path, or
    None when the task keeps no outputs or the file could not be written (a warning in the run's
    log; a full or read-only disk raises, as it does for every file of the run)."""
    path = run_dir.path / OUTPUTS_FILE
    tmp = path.with_name(f".{OUTPUTS_FILE}.tmp{os.getpid()}")
    try:
        arrays, warning = output_arrays(task, info, kind, world)
        if warning:
            print(f"labkit: warning: {warning}", file=stream, flush=True)
        if not arrays:
            return None
        with tmp.open("wb") as handle:
            np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)  # complete or absent: a reader never sees half a file
        tracker.log_artifact(path, OUTPUTS_DIR)
    except Exception as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if disk_problem(exc, run_dir) is not None:
            raise
        print(
            f"labkit: warning: the per-event test outputs were not saved ({type(exc).__name__}: {exc}); "
            "the run goes on without them",
            file=stream,
            flush=True,
        )
        return None
    return path
