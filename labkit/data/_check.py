"""``labkit check --data`` and the check ``labkit run`` makes before torch loads: the files of a
``data: {name: file}`` section opened with h5py/uproot/pyarrow/pandas only (no torch, no
Lightning), read the way the DataModule reads them (in chunks for HDF5), every problem a
:class:`~labkit.errors.DataError` naming the YAML field and the file."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labkit.data._assemble import SPLITS, Events
from labkit.data._files import count_rows, detect_format, event_nbytes, listing
from labkit.data._read_events import EventSource, Part, input_keys, load_part, same_layout
from labkit.errors import DataError

__all__ = ["CHUNK_BYTES", "DataSummary", "check_data"]

#: bytes of one event's arrays read at a time (HDF5)
CHUNK_BYTES = 256 * 2**20
#: events read from each file when the data are too large to read whole (``scan_bytes``)
PARTIAL_EVENTS = 10_000


@dataclass(frozen=True)
class DataSummary:
    """What the check found: the files, events per split, the inputs and the classes."""

    files: tuple[str, ...]
    events: int
    sizes: dict[str, int]
    given_split: bool
    inputs: tuple[str, ...]
    constituents: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    #: events read per file when the check read only the first ones (``full=False``), else None
    partial: int | None = None
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """The summary as short lines, for the command line."""
        shown = listing(list(self.files), most=3)
        how = "the files' own split" if self.given_split else "seeded random split"
        out = [
            f"data: {len(self.files)} file{'s' if len(self.files) != 1 else ''} ({shown}), "
            f"{self.events} events checked in {self.seconds:.2f} s"
            + (f" (the first {self.partial} events of each file)" if self.partial else ""),
            "splits: " + ", ".join(f"{k} {v}" for k, v in self.sizes.items()) + f" ({how})",
            f"inputs: {len(self.inputs)} ({listing(list(self.inputs), most=8)})",
        ]
        for name, (m, fields) in self.constituents.items():
            out.append(f"constituents {name}: up to {m} per event, features {listing(list(fields))}")
        if self.classes:
            out.append(f"classes: {len(self.classes)} ({listing(list(self.classes))})")
        return out


def check_data(
    spec: Any,
    *,
    target_kind: str = "labels",
    num_classes: int | None = None,
    extras: Sequence[str] = (),
    scan_bytes: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> DataSummary:
    """Check the files ``spec`` (a ``FileSpec``, as loaded) names: keys, fields, shapes, dtypes,
    NaN/inf (first bad event), labels (vs ``data.labels`` and ``num_classes``), weights (finite,
    >= 0) and constituents. When the selected arrays take more than ``scan_bytes`` (None: no
    limit), only the first chunk of each file is read (the layout is checked, not every value)."""
    start = time.perf_counter()
    source = EventSource.from_options(spec.options(), extras)
    parts = source.parts()
    inputs = input_keys(source, parts[0])
    first: dict[str, tuple[str, tuple[int, ...]]] = {}
    counts = dict.fromkeys(SPLITS, 0)
    values: set[Any] = set()
    total, partial = 0, None
    constituents: dict[str, tuple[int, tuple[str, ...]]] = {}
    plan = [(_rows(source, part, inputs), *_chunk(source, part, inputs, chunk_bytes)) for part in parts]
    full = scan_bytes is None or sum(n * per_event for n, _, per_event in plan) <= scan_bytes
    for i, (part, (rows_in_file, chunk, _)) in enumerate(zip(parts, plan, strict=True)):
        step = chunk if full else min(chunk, PARTIAL_EVENTS)
        n = rows_in_file if full else min(step, rows_in_file)
        if not full:
            partial = step
        for lo in range(0, max(n, 1), step):
            layout: dict[str, tuple[str, tuple[int, ...]]] = {}
            rows = None if step >= n and full else slice(lo, lo + step)
            events = load_part(source, part, rows=rows, inputs=inputs, layout=layout)
            if i == 0 and lo == 0:
                first = layout
            else:
                same_layout(first, layout, part, parts[0])
            total += len(events)
            if events.split is not None:
                for name, code in SPLITS.items():
                    counts[name] += int(np.sum(events.split == code))
            _weights(events, source, lo)
            if target_kind == "labels":
                values |= _labels(events, source, lo)
            if isinstance(events.x, Mapping):
                constituents = {
                    g: (int(np.shape(events.x[g])[1]), fl) for g, fl in events.constituents.items()
                }
    classes = _classes(values, source, num_classes, parts[0]) if target_kind == "labels" else ()
    sizes = _sizes(spec, total, counts if source.splits else None)
    return DataSummary(
        files=tuple(dict.fromkeys(str(p.path) for p in parts)),
        events=total,
        sizes=sizes,
        given_split=bool(source.splits),
        inputs=tuple(inputs),
        constituents=constituents,
        classes=classes,
        partial=partial,
        seconds=time.perf_counter() - start,
    )


def _keys(source: EventSource, part: Part, inputs: Sequence[str]) -> list[str]:
    targets = [source.targets] if isinstance(source.targets, str) else list(source.targets)
    keys = [*inputs, *targets, *([source.weights] if source.weights else []), *source.spectators]
    if detect_format(part.path, source.format) == "hdf5":  # jagged branches: counted by the read
        keys += [str(c["dataset"]) for c in source.constituents.values()]
    prefix = f"{part.group}/" if part.group else ""
    return [prefix + k for k in dict.fromkeys(keys)]


def _rows(source: EventSource, part: Part, inputs: Sequence[str]) -> int:
    try:
        return count_rows(part.path, _keys(source, part, inputs)[0], source.format, source.tree)
    except DataError:
        _probe(source, part, inputs)
        raise


def _probe(source: EventSource, part: Part, inputs: Sequence[str]) -> None:
    """Read the first event the DataModule's way: its error names the experiment's field."""
    load_part(source, part, rows=slice(0, 1), inputs=inputs)


def _chunk(source: EventSource, part: Part, inputs: Sequence[str], chunk_bytes: int) -> tuple[int, int]:
    """Events read at a time and bytes per event: a chunk of ``chunk_bytes`` for HDF5 and ROOT
    (they read only those rows); the whole file for the other formats (they read every row)."""
    try:
        per_event = event_nbytes(part.path, _keys(source, part, inputs), source.format, source.tree)
    except DataError:
        _probe(source, part, inputs)
        raise
    if detect_format(part.path, source.format) not in ("hdf5", "root"):
        return _rows(source, part, inputs), per_event
    return max(1, chunk_bytes // max(per_event, 1)), per_event


def _weights(events: Events, source: EventSource, offset: int) -> None:
    if events.w is None:
        return
    negative = events.w < 0
    if negative.any():
        raise DataError(
            f"{events.source}: {source.weights!r} (data.weights) holds {int(negative.sum())} negative "
            f"weights (first in event {offset + int(np.argmax(negative))}); event weights must be >= 0"
        )


def _labels(events: Events, source: EventSource, offset: int) -> set[Any]:
    y = events.y[:, 0] if events.y.ndim == 2 and events.y.shape[1] == 1 else events.y
    target = source.targets if isinstance(source.targets, str) else ", ".join(source.targets)
    if y.ndim != 1:
        raise DataError(
            f"{events.source}: {target!r} (data.targets) has shape {events.y.shape}; class labels are "
            "one integer per event, shape (N,)"
        )
    if not np.issubdtype(y.dtype, np.integer):
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            first = int(np.argmax(bad))
            raise DataError(
                f"{events.source}: {target!r} (data.targets) holds {y[first]!r} in event {offset + first}; "
                "class labels must be integers"
            )
    found = set(np.unique(y).tolist())
    if source.labels:
        unknown = sorted(found - {int(k) for k in source.labels})
        if unknown:
            first = int(np.argmax(np.isin(y, unknown)))
            raise DataError(
                f"{events.source}: {target!r} (data.targets) holds label {unknown[0]} (first in event "
                f"{offset + first}), which data.labels does not name (it names: "
                f"{listing([str(k) for k in source.labels])})"
            )
    return found


def _classes(values: set[Any], source: EventSource, num_classes: int | None, part: Part) -> tuple[str, ...]:
    if source.labels:
        names = tuple(source.labels[k] for k in sorted(source.labels))
    else:
        names = tuple(str(v) for v in sorted(values))
    if num_classes is not None and len(names) > num_classes:
        raise DataError(
            f"{part.path}: data.targets holds {len(names)} classes ({listing(list(names))}), more than "
            f"task.num_classes: {num_classes}"
        )
    return names


def _sizes(spec: Any, n: int, given: Mapping[str, int] | None) -> dict[str, int]:
    """Events per split as the DataModule will cut them (labkit.data._base: the same rounding)."""
    val_fraction, test_fraction = float(spec.val_fraction), float(spec.test_fraction)
    if given is None:
        n_test = max(1, round(test_fraction * n))
        n_val = max(1, round(val_fraction * n))
        return {"train": n - n_test - n_val, "val": n_val, "test": n_test}
    train = given["train"]
    sizes = dict(given)
    for name, fraction in (("test", test_fraction), ("val", val_fraction)):
        if given[name] == 0:
            k = max(1, round(fraction * train)) if train else 0
            sizes[name], train = k, train - k
    if train <= 0:
        raise DataError("data.splits: the files leave no events for the train split")
    return {"train": train, "val": sizes["val"], "test": sizes["test"]}
