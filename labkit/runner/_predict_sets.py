"""``labkit predict`` for runs whose model reads named inputs (``data.constituents``: set models).

The events are read as the run's data module reads them (the same files, compound fields and
constituent sets, ``data.nan`` and ``data.labels``), through a :class:`~labkit.data.FileDataModule`
over the run's files (or the ``--data`` file): HDF5 a chunk of rows at a time, other formats
whole. Each chunk's named inputs are standardised with the run's fitted per-name scaling
(constituents over their real entries; padding stays 0; masks as they are) and scored by the
task's model as dicts of tensors; the output columns are those of the one-array path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.data import scale_inputs
from labkit.errors import DataError, LabkitError
from labkit.runner._predict import (
    CHUNK_BYTES,
    MAX_CHUNK,
    PredictSummary,
    Scorer,
    _kept,
    _layout,
    _metadata,
    _truth,
)
from labkit.runner._predict_io import add_spectators, open_writer

if TYPE_CHECKING:
    from labkit.data import FileDataModule
    from labkit.runner._trained import TrainedRun

__all__ = ["predict_sets"]


def predict_sets(
    trained: TrainedRun,
    *,
    out: Path,
    data: Path | None,
    split: str,
    spectators: Sequence[str],
    batch_size: int,
    chunk_events: int | None,
    scorer: Scorer,
    fmt: str,
    started: float,
) -> PredictSummary:
    """Score the run's own events (``split``: ``test`` or ``all``) or those of ``data`` and write
    one row per event to ``out`` (as :func:`labkit.runner.predict`)."""
    layout = _layout(trained)
    if layout is None:
        raise LabkitError(f"run {trained.run_dir}: its data module reads no files; labkit predict needs them")
    spectators = list(dict.fromkeys(s.strip() for s in spectators if s.strip()))
    reader = _reader(trained, data, spectators)
    dm: Any = trained.datamodule
    rows = np.sort(dm.split_indices("test")) if split == "test" and data is None else None
    if rows is not None and not len(rows):
        raise DataError(f"{reader.source}: no events to predict")
    event_bytes = sum(4 * int(np.prod(s)) for s in trained.info.input_shapes.values())
    size = chunk_events or int(np.clip(CHUNK_BYTES // max(event_bytes, 1), 1, MAX_CHUNK))
    scalings: Mapping[str, tuple[np.ndarray, np.ndarray]] = getattr(dm, "input_scalings", {})
    where = str(data.expanduser()) if data is not None else reader.source
    out = out.expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    writer = open_writer(tmp, fmt, _metadata(trained, layout, where, split))
    written, columns = 0, ()
    try:
        for start, a in _chunks(reader, size):
            n = len(a.y)
            keep = _kept(rows, start, n)
            if keep is not None and not len(keep):
                continue
            index = np.arange(start, start + n, dtype=np.int64)
            x = scale_inputs(a.x, scalings)  # type: ignore[arg-type]
            y, w, extras = np.asarray(a.y), a.w, a.extras
            if keep is not None:
                x, y, index = {k: v[keep] for k, v in x.items()}, y[keep], index[keep]
                w = None if w is None else np.asarray(w)[keep]
                extras = {k: np.asarray(v)[keep] for k, v in extras.items()}
            table = {"event": index} | _score_named(scorer, x, batch_size)
            table |= _truth(trained, _targets(y, layout.targets), layout.targets)
            if w is not None and layout.weights:
                table["weight"] = np.asarray(w, dtype=np.float64)
            add_spectators(table, {key: extras[key] for key in spectators}, fmt)
            writer.write(table)
            written += len(index)
            columns = tuple(table)
        if not written:
            raise DataError(f"{where}: no events to predict")
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return PredictSummary(out, written, columns, split, where, time.perf_counter() - started)


def _reader(trained: TrainedRun, data: Path | None, spectators: Sequence[str]) -> FileDataModule:
    """A data module reading the run's files (its own split) or ``data`` (no split), unset up."""
    from labkit.data import FileDataModule, SimulatedDataModule

    dm: Any = trained.datamodule
    if isinstance(dm, FileDataModule):
        path, fmt, tree, splits = dm.paths, dm.format, dm.tree, dm.splits
    elif isinstance(dm, SimulatedDataModule):
        path, fmt, tree, splits = str(dm.cache_file()), "hdf5", None, None
    else:
        raise LabkitError(
            f"run {trained.run_dir}: labkit predict reads set-model inputs from data: {{name: file}} or "
            f"{{name: simulated}}, not {type(dm).__name__}"
        )
    if data is not None:
        path, splits = str(data.expanduser()), None
        fmt = "auto" if data.suffix else fmt
    return FileDataModule(
        path=path,
        inputs=dm.inputs,
        targets=dm.targets,
        weights=dm.weights,
        format=fmt,
        tree=tree,
        labels=dm.labels,
        constituents=dm.constituents,
        nan=dm.nan,
        fill_value=dm.fill_value,
        splits=splits,
        spectators=tuple(spectators),
    )


def _chunks(reader: FileDataModule, size: int) -> Iterator[tuple[int, Any]]:
    """``(index of the first event, Arrays)`` for consecutive chunks of at most ``size`` events,
    numbered through the parts one after the other as the data module loads them."""
    from dataclasses import replace

    source = reader.stream_source()
    if source is None or source.rows is None:  # not HDF5: read whole, served in chunks
        a = reader.load()
        n = len(a.y)
        for lo in range(0, n, size):
            at = slice(lo, lo + size)
            x = {k: v[at] for k, v in a.x.items()} if isinstance(a.x, Mapping) else a.x[at]
            w = None if a.w is None else a.w[at]
            yield lo, replace(a, x=x, y=a.y[at], w=w, extras={k: v[at] for k, v in a.extras.items()})
        return
    first = 0
    for i, part in enumerate(source.parts):
        n = source.layout(part, source.keys)[0]
        for lo in range(0, n, size):
            a = source.rows(i, lo, min(n, lo + size))
            yield first, a
            first += len(a.y)


def _targets(y: np.ndarray, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The targets of a chunk by the keys the run names them with."""
    if len(keys) == 1:
        return {keys[0]: y}
    flat = y.reshape(len(y), -1)
    return {k: flat[:, i] for i, k in enumerate(keys)}


def _score_named(scorer: Scorer, x: Mapping[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    import torch

    n = len(next(iter(x.values())))
    found: dict[str, list[np.ndarray]] = {}
    with torch.inference_mode():
        for lo in range(0, n, batch_size):
            batch = {k: torch.from_numpy(np.ascontiguousarray(v[lo : lo + batch_size])) for k, v in x.items()}
            for name, value in scorer(batch).items():  # type: ignore[arg-type]
                found.setdefault(name, []).append(value)
    return {name: np.concatenate(parts) for name, parts in found.items()}
