"""``labkit predict``: a trained run's outputs for every event of a file, one row per event.

The run's best weights and its fitted input standardisation score the events of its own data
(its test split, or all of it) or of a new file in the same layout, read and written a chunk of
events at a time. Each row holds the event's index in the file, the model's outputs as named
columns (class probabilities by class name, regression targets in physical units, the anomaly
score, a segmentation mask), the truth where the file has it, the event weight, and the
spectator columns asked for, copied through.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.data import FORMATS
from labkit.errors import DataError, LabkitError
from labkit.runner._predict_io import (
    EventFile,
    add_spectators,
    column_name,
    memory_events,
    open_events,
    open_writer,
    output_format,
)

if TYPE_CHECKING:
    import torch

    from labkit.runner._trained import TrainedRun

__all__ = ["SPLITS", "PredictSummary", "predict"]

SPLITS = ("test", "all")
#: the most bytes of input read in one chunk (the chunk is also at most this many events)
CHUNK_BYTES, MAX_CHUNK = 64 * 2**20, 65536

#: a batch of inputs (one tensor, or named tensors for a set model) -> named output columns
Scorer = Callable[[Any], dict[str, np.ndarray]]


@dataclass(frozen=True)
class PredictSummary:
    """What ``labkit predict`` wrote."""

    path: Path
    events: int
    columns: tuple[str, ...]
    split: str  #: ``test`` or ``all``
    source: str  #: the file the events came from
    seconds: float


@dataclass(frozen=True)
class Layout:
    """Which keys of an event file hold what (the run's data section)."""

    inputs: tuple[str, ...]
    single: bool  #: one input key of any shape (else several (N,)/(N, k) keys side by side)
    targets: tuple[str, ...]
    weights: str | None
    fmt: str = "auto"
    tree: str | None = None


def predict(
    trained: TrainedRun,
    *,
    out: Path,
    data: Path | None = None,
    split: str | None = None,
    spectators: Sequence[str] = (),
    batch_size: int = 1024,
    chunk_events: int | None = None,
) -> PredictSummary:
    """Score the events of ``data`` (default: the run's own data, its ``test`` split unless
    ``split="all"``) with the trained run and write one row per event to ``out`` (``.h5``,
    ``.root`` or ``.parquet``), ``chunk_events`` events at a time (default: as many as fit in
    64 MiB of input, at most 65536)."""
    started = time.perf_counter()
    kind = trained.experiment.task.kind
    if kind == "surrogate":
        raise LabkitError(
            f"run {trained.run_dir} trained a surrogate, which makes showers rather than scoring "
            "events: use labkit generate RUN -n EVENTS -o FILE"
        )
    if batch_size < 1:
        raise LabkitError(f"--batch-size must be >= 1, got {batch_size}")
    if split is not None and split not in SPLITS:
        raise LabkitError(f"--split: no split {split!r}; choose one of: {', '.join(SPLITS)}")
    if data is not None and split == "test":
        raise LabkitError(
            "--split test picks the run's own test events; a --data file is predicted whole (--split all)"
        )
    split = split or ("all" if data is not None else "test")
    fmt = output_format(out)
    scorer, per_event = _scorer(trained)
    if per_event and fmt != "hdf5":
        raise LabkitError(
            f"-o {out}: a {kind} run writes one mask per event, which only HDF5 holds as a dataset; "
            "use an .h5 output"
        )
    if trained.info.input_shapes:  # named inputs (data.constituents): a set model
        from labkit.runner._predict_sets import predict_sets

        return predict_sets(
            trained,
            out=out,
            data=data,
            split=split,
            spectators=spectators,
            batch_size=batch_size,
            chunk_events=chunk_events,
            scorer=scorer,
            fmt=fmt,
            started=started,
        )
    found = _layout(trained)
    events, rows = _events(trained, found, data, split)
    layout = found or MEMORY
    try:
        return _write(
            trained,
            layout=layout,
            events=events,
            rows=rows,
            scorer=scorer,
            out=out,
            fmt=fmt,
            spectators=spectators,
            batch_size=batch_size,
            chunk_events=chunk_events,
            split=split,
            started=started,
        )
    finally:
        events.close()


def _write(
    trained: TrainedRun,
    *,
    layout: Layout,
    events: EventFile,
    rows: np.ndarray | None,
    scorer: Scorer,
    out: Path,
    fmt: str,
    spectators: Sequence[str],
    batch_size: int,
    chunk_events: int | None,
    split: str,
    started: float,
) -> PredictSummary:
    for key in layout.inputs:
        events.require(key, "data.inputs")
    spectators = list(dict.fromkeys(s.strip() for s in spectators if s.strip()))
    for key in spectators:
        events.require(key, "--spectators")
    truth = [k for k in layout.targets if events.has(k)]
    weights = layout.weights if layout.weights and events.has(layout.weights) else None
    keys = list(dict.fromkeys([*layout.inputs, *truth, *([weights] if weights else []), *spectators]))
    total = events.count(keys)
    if total == 0 or (rows is not None and len(rows) == 0):
        raise DataError(f"{events.where}: no events to predict")
    size = chunk_events or int(np.clip(CHUNK_BYTES // events.row_bytes(keys), 1, MAX_CHUNK))
    out = out.expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    writer = open_writer(tmp, fmt, _metadata(trained, layout, events.where, split))
    written = 0
    columns_written: tuple[str, ...] = ()
    try:
        for start, read in events.chunks(keys, size):
            n = len(read[keys[0]])
            keep = _kept(rows, start, n)
            if keep is not None and not len(keep):
                continue
            chunk = read if keep is None else {k: v[keep] for k, v in read.items()}
            index = np.arange(start, start + n, dtype=np.int64)
            table = {"event": index if keep is None else index[keep]}
            table |= _score(scorer, trained.standardise(_inputs(chunk, layout, events.where)), batch_size)
            table |= _truth(trained, chunk, truth)
            if weights:
                table["weight"] = np.asarray(chunk[weights], dtype=np.float64)
            add_spectators(table, {key: chunk[key] for key in spectators}, fmt)
            for name, value in table.items():
                if value.ndim > 1 and fmt != "hdf5":
                    raise LabkitError(
                        f"-o {out}: {name!r} holds {value.shape[1:]} values per event; .root and .parquet "
                        "take one value per column and event: use an .h5 output"
                    )
            writer.write(table)
            written += len(table["event"])
            columns_written = tuple(table)
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return PredictSummary(out, written, columns_written, split, events.where, time.perf_counter() - started)


def _kept(rows: np.ndarray | None, start: int, n: int) -> np.ndarray | None:
    """The positions in the chunk ``[start, start + n)`` of the sorted event indices ``rows``."""
    if rows is None:
        return None
    lo, hi = np.searchsorted(rows, [start, start + n])
    return rows[lo:hi] - start


# -- where the events come from -----------------------------------------------------------------
def _layout(trained: TrainedRun) -> Layout | None:
    """The keys the run's data section names, None when its data has no file layout."""
    spec = trained.experiment.data
    name = getattr(spec, "name", None)
    if name == "arrays":
        x_key, y_key = spec.x_key, spec.y_key  # type: ignore[union-attr]
        return Layout((x_key,), True, (y_key,), None, spec.format)  # type: ignore[union-attr]
    if name in ("file", "simulated"):
        inputs = spec.inputs  # type: ignore[union-attr]
        targets = spec.targets  # type: ignore[union-attr]
        return Layout(
            (inputs,) if isinstance(inputs, str) else tuple(inputs),
            isinstance(inputs, str),
            (targets,) if isinstance(targets, str) else tuple(targets),
            spec.weights,  # type: ignore[union-attr]
            getattr(spec, "format", "hdf5" if name == "simulated" else "auto"),
            getattr(spec, "tree", None),
        )
    return None  # digits, a data module of the user's: no file layout


#: the arrays of a data module without a file (digits, a subclass of ArraySplitDataModule)
MEMORY = Layout(("x",), True, ("y",), "w")


def _events(
    trained: TrainedRun, layout: Layout | None, data: Path | None, split: str
) -> tuple[EventFile, np.ndarray | None]:
    """The events to score and, for the test split, their (sorted) indices."""
    from labkit.data import ArraySplitDataModule

    dm = trained.datamodule
    if data is not None:
        if layout is None:
            raise LabkitError(
                f"--data {data}: the run trained on data with no file layout ({_data_name(trained)}); "
                "--data needs a run trained on data: {name: file}, {name: simulated} or {name: arrays}"
            )
        fmt = "auto" if data.suffix.lower() in FORMATS else layout.fmt
        return open_events(data.expanduser(), fmt, layout.tree), None
    if not isinstance(dm, ArraySplitDataModule):
        raise LabkitError(
            f"the run's data module ({_data_name(trained)}) is not a labkit ArraySplitDataModule; "
            "name the events to predict with --data FILE"
        )
    rows = np.sort(dm.split_indices("test")) if split == "test" else None
    path = getattr(trained.experiment.data, "path", None)
    if layout is not None and isinstance(path, str):
        return open_events(Path(path), layout.fmt, layout.tree), rows
    cache = getattr(dm, "cache_file", None)
    if layout is not None and callable(cache):  # simulated events: the cached HDF5 file
        return open_events(Path(cache()), "hdf5"), rows
    loaded: Any = dm.load()
    x, y, w = (loaded.x, loaded.y, loaded.w) if hasattr(loaded, "x") else (*loaded, None)
    arrays = {"x": np.asarray(x), "y": np.asarray(y)} | ({"w": np.asarray(w)} if w is not None else {})
    return memory_events(arrays, f"{dm.source}"), rows


def _data_name(trained: TrainedRun) -> str:
    spec = trained.experiment.data
    return f"data.name: {spec.name}" if hasattr(spec, "name") else f"data.class_path: {spec.class_path}"  # type: ignore[union-attr]


def _inputs(chunk: Mapping[str, np.ndarray], layout: Layout, where: str) -> np.ndarray:
    """The inputs of a chunk as the data module assembles them (before standardisation)."""
    if layout.single:
        return np.asarray(chunk[layout.inputs[0]]).astype(np.float32, copy=False)
    parts = []
    for key in layout.inputs:
        a = np.asarray(chunk[key])
        if a.ndim > 2:
            raise DataError(
                f"{where}: input {key!r} has shape {a.shape}; several inputs must each be (N,) or (N, k)"
            )
        parts.append(a.reshape(len(a), -1).astype(np.float64))
    return np.concatenate(parts, axis=1).astype(np.float32)


# -- what the model gives --------------------------------------------------------------------------
def _score(scorer: Scorer, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    import torch

    found: dict[str, list[np.ndarray]] = {}
    with torch.inference_mode():
        for lo in range(0, len(x), batch_size):
            for name, value in scorer(
                torch.from_numpy(np.ascontiguousarray(x[lo : lo + batch_size]))
            ).items():
                found.setdefault(name, []).append(value)
    return {name: np.concatenate(parts) for name, parts in found.items()}


def _scorer(trained: TrainedRun) -> tuple[Scorer, bool]:
    """How to turn a batch of standardised inputs into named columns; True when the outputs are
    one array per event (a segmentation mask)."""
    import torch

    from labkit.tasks import AnomalyTask, ClassificationTask, RegressionTask, SegmentationTask, Task

    task: Any = trained.task
    if isinstance(task, ClassificationTask):
        names = _unique([f"p_{column_name(c)}" for c in task.class_names])

        def classify(x: torch.Tensor) -> dict[str, np.ndarray]:
            out = task.model(x)
            p = torch.softmax(out.reshape(len(out), -1).float(), dim=1).numpy()
            return {name: p[:, i] for i, name in enumerate(names)}

        return classify, False
    if isinstance(task, RegressionTask):
        return _regression(task), False
    if isinstance(task, AnomalyTask):

        def anomaly(x: torch.Tensor) -> dict[str, np.ndarray]:
            mass, _ = task.split(x)
            score = task(x).float().numpy()
            return {"anomaly_score": score, "signal_region": task.in_signal_region(mass).numpy()}

        return anomaly, False
    if isinstance(task, SegmentationTask):
        return (lambda x: {"mask": task.model(x).argmax(dim=1).to(torch.uint8).numpy()}), True
    if isinstance(task, Task):
        raise LabkitError(
            f"labkit predict does not score {type(task).__name__} runs "
            f"(task.kind: {trained.experiment.task.kind})"
        )
    return _user_module(task), False


def _regression(task: Any) -> Scorer:
    """Predicted targets in their physical units: the test step's ``physical`` of the mean; with
    ``gaussian_nll`` also σ (of the value, or of its log for a target learnt in log)."""
    import torch
    import torch.nn.functional as F

    names = [column_name(t) for t in task.targets]
    k = len(names)
    logs = task.target_log.bool().tolist()

    def regress(x: torch.Tensor) -> dict[str, np.ndarray]:
        out = task.model(x)
        out = out.reshape(len(out), -1)
        value = task.physical(out[:, :k]).double().numpy()
        found = {f"pred_{name}": value[:, i] for i, name in enumerate(names)}
        if task.loss_name == "gaussian_nll":
            sigma = (torch.sqrt(F.softplus(out[:, k:]) + 1e-6) * task.target_std).double().numpy()
            for i, name in enumerate(names):
                found[f"sigma_log_{name}" if logs[i] else f"sigma_{name}"] = sigma[:, i]
        return found

    return regress


def _user_module(module: Any) -> Scorer:
    """A user's own LightningModule: ``predict_step(x, batch_idx)`` gets a batch of standardised
    inputs and returns a tensor (N,) or (N, K), or a dict of named tensors (N,) or (N, k)."""
    import lightning.pytorch as pl
    import torch

    cls = type(module)
    where = cls.__name__
    if cls.predict_step is pl.LightningModule.predict_step and cls.forward is pl.LightningModule.forward:
        raise LabkitError(
            f"{where} defines neither predict_step nor forward: labkit predict calls "
            "predict_step(x, batch_idx) (Lightning's default calls forward(x)), which must return a "
            "tensor (N,) or (N, K) or a dict of such tensors"
        )
    counter = iter(range(2**62))

    def named(name: str, value: Any) -> dict[str, np.ndarray]:
        if not isinstance(value, torch.Tensor):
            raise LabkitError(
                f"{where}.predict_step returned {type(value).__name__} for {name!r}; expected a tensor"
            )
        array = value.detach().cpu().numpy()
        if array.ndim == 2:
            return {f"{name}_{i}": array[:, i] for i in range(array.shape[1])}
        return {name: array}

    def user(x: torch.Tensor) -> dict[str, np.ndarray]:
        result = module.predict_step(x, next(counter))
        found = (
            {k: v for key, value in result.items() for k, v in named(column_name(str(key)), value).items()}
            if isinstance(result, Mapping)
            else named("output", result)
        )
        for name, value in found.items():
            if value.ndim == 0 or len(value) != len(x):
                raise LabkitError(
                    f"{where}.predict_step gave {name!r} of shape {value.shape} for {len(x)} events; "
                    "it must return a tensor (N,) or (N, K), or a dict of such tensors"
                )
        return found

    return user


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


def _truth(
    trained: TrainedRun, chunk: Mapping[str, np.ndarray], keys: Sequence[str]
) -> dict[str, np.ndarray]:
    """``truth_<key>`` as in the file; for classification also ``truth_class``, the class index
    (-1 for a label the run did not train on)."""
    found: dict[str, np.ndarray] = {}
    for key in keys:
        value = np.asarray(chunk[key])
        if value.ndim == 2 and trained.experiment.task.kind == "regression":
            found |= {f"truth_{column_name(key)}{i}": value[:, i] for i in range(value.shape[1])}
        else:
            found[f"truth_{column_name(key)}"] = value
    if trained.experiment.task.kind == "classification" and len(keys) == 1:
        found["truth_class"] = _class_index(trained, np.asarray(chunk[keys[0]]).reshape(-1))
    return found


def _class_index(trained: TrainedRun, label: np.ndarray) -> np.ndarray:
    labels: Mapping[int, str] = getattr(trained.experiment.data, "labels", None) or {}
    names = trained.info.class_names
    if labels:
        values = sorted(labels)
    elif names and all(re.fullmatch(r"-?\d+", n) for n in names):
        values = [int(n) for n in names]
    else:
        values = list(range(len(names)))
    if not values or not np.issubdtype(label.dtype, np.number):
        return np.full(len(label), -1, dtype=np.int64)
    known = np.asarray(values, dtype=np.int64)
    order = np.argsort(known)
    at = np.clip(np.searchsorted(known[order], label), 0, len(known) - 1)
    return np.where(known[order][at] == label, order[at], -1).astype(np.int64)


def _metadata(trained: TrainedRun, layout: Layout, where: str, split: str) -> dict[str, str]:
    import json

    import labkit

    names = trained.info.input_names or layout.inputs
    return {
        "labkit_run_id": trained.run_id,
        "labkit_run_key": trained.run_key,
        "labkit_git_commit": trained.git_commit,
        "labkit_version": labkit.__version__,
        "labkit_experiment": trained.experiment.name,
        "labkit_task": trained.experiment.task.kind,
        "labkit_checkpoint": str(trained.checkpoint),
        "labkit_input_names": json.dumps(list(names)),
        "labkit_source": where,
        "labkit_split": split,
    }
