"""Data from one file: the experiment names the inputs, the targets and (optionally) the weights."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from labkit.data._assemble import assemble as _assemble
from labkit.data._assemble import fields_of, keys_of
from labkit.data._base import Arrays
from labkit.data._blocks import Part, StreamSource
from labkit.data._files import count_rows, detect_format, event_nbytes, expand_paths
from labkit.data._read_events import EventSource, input_keys, load_events, load_part, names_files
from labkit.data._staging import default_stage_dir, stage_files, unstage
from labkit.data._stream import StreamingDataModule

__all__ = ["ArrayDataModule", "FileDataModule", "assemble", "fields_of", "keys_of"]


def assemble(*args: Any, **kwargs: Any) -> Arrays:
    """:func:`labkit.data._assemble.assemble` (same arguments), as :class:`Arrays`."""
    return Arrays(**_assemble(*args, **kwargs).fields())


class FileDataModule(StreamingDataModule):
    """Events from HDF5, ROOT, ``.npz``, Parquet or CSV files: one file, a glob or a list of
    them, with the files' own split (``splits``) or a seeded random one. HDF5 files whose
    selected arrays exceed ``memory_limit`` are streamed (:class:`StreamingDataModule`)."""

    def __init__(
        self,
        *,
        path: str | Sequence[str],
        inputs: str | Sequence[str],
        targets: str | Sequence[str],
        weights: str | None = None,
        format: str = "auto",
        tree: str | None = None,
        labels: Mapping[int, str] | None = None,
        constituents: Mapping[str, Mapping[str, Any]] | None = None,
        nan: str | Mapping[str, str] = "error",
        fill_value: float = 0.0,
        memory_limit: int | None = None,
        shuffle_buffer: int = 100_000,
        splits: Mapping[str, str | Sequence[str]] | None = None,
        stage: bool | str = False,
        **kwargs: object,
    ) -> None:
        super().__init__(memory_limit=memory_limit, shuffle_buffer=shuffle_buffer, **kwargs)
        self.paths: str | tuple[str, ...] = path if isinstance(path, str) else tuple(path)
        self.path = Path(path if isinstance(path, str) else path[0]).expanduser()
        self.inputs, self.targets, self.weights = inputs, targets, weights
        self.format, self.tree = format, tree
        self.labels = dict(labels or {})
        self.constituents = {k: dict(v) for k, v in (constituents or {}).items()}
        self.nan: str | dict[str, str] = nan if isinstance(nan, str) else dict(nan)
        self.fill_value = fill_value
        self.splits = (
            {k: v if isinstance(v, str) else tuple(v) for k, v in splits.items()} if splits else None
        )
        self.stage = stage
        self.source = str(self.path)
        self._staged: dict[Path, Path] = {}  #: source file -> its node-local copy (data.stage)

    def event_source(self) -> EventSource:
        """What this module reads, as plain options (no torch): the check reads the same. With
        ``stage`` the files are read from their node-local copies once :meth:`stage_inputs` ran."""
        source = self._source()
        if not self._staged:
            return source

        def moved(value: str | Sequence[str], field: str) -> tuple[str, ...]:
            return tuple(str(self._staged.get(p, p)) for p in expand_paths(value, field=field))

        splits = {
            k: moved(v, f"data.splits.{k}") if names_files(v) else v for k, v in (self.splits or {}).items()
        }
        return dataclasses.replace(source, path=moved(self.paths, "data.path"), splits=splits or None)

    def stage_inputs(self) -> None:
        """Copy the files to node-local disk (``stage``: true → the system's temporary directory,
        which labkit's runner sets to ``$SLURM_TMPDIR``/``$TMPDIR``; or the directory given) once."""
        if not self.stage or self._staged:
            return
        target = Path(self.stage) if isinstance(self.stage, str) else default_stage_dir(None)
        files = list(dict.fromkeys(p.path for p in self._source().parts()))
        copies = stage_files(files, target=target, progress=sys.stderr, field="data.stage")
        self._staged = dict(zip(files, copies, strict=True))

    def unstage(self) -> None:
        """Remove the node-local copies (the runner calls it when a run ends, not on preemption)."""
        unstage(list(self._staged.values()))
        self._staged = {}

    def prepare_data(self) -> None:
        self.stage_inputs()

    def setup(self, stage: str | None = None) -> None:
        self.stage_inputs()
        super().setup(stage)

    def _source(self) -> EventSource:
        return EventSource(
            path=self.paths,
            inputs=self.inputs if isinstance(self.inputs, str) else tuple(self.inputs),
            targets=self.targets if isinstance(self.targets, str) else tuple(self.targets),
            weights=self.weights,
            format=self.format,
            tree=self.tree,
            labels=self.labels,
            spectators=tuple(self.spectators),
            extras=tuple(self.extras),
            constituents=self.constituents,
            nan=self.nan,
            fill_value=self.fill_value,
            splits=self.splits,
            names=self.fields(),
        )

    def load(self) -> Arrays:
        return Arrays(**load_events(self.event_source()).fields())

    def stream_source(self) -> StreamSource | None:
        """The files as blocks of rows, to stream when they exceed ``memory_limit`` (HDF5 only):
        each block read and cleaned as :meth:`load` reads a whole file."""
        source = self.event_source()
        parts = source.parts()
        if any(detect_format(p.path, self.format) != "hdf5" for p in parts):
            return None
        inputs = input_keys(source, parts[0])
        sets = [str(c["dataset"]) for c in self.constituents.values()]
        keys = tuple(dict.fromkeys(keys_of(inputs, self.targets, self.weights) + sets))
        named = {str(c["dataset"]): f"data.constituents.{g}.dataset" for g, c in self.constituents.items()}
        named |= fields_of(inputs, self.targets, self.weights) | self.fields()

        def layout(part: Part, keys: Sequence[str]) -> tuple[int, int]:
            full, fields = [part.key(k) for k in keys], {part.key(k): v for k, v in named.items()}
            n = count_rows(part.path, full[0], self.format, self.tree, fields)
            return n, n * event_nbytes(part.path, full, self.format, self.tree, fields)

        def rows(i: int, start: int, stop: int) -> Arrays:
            return Arrays(**load_part(source, parts[i], rows=slice(start, stop), inputs=inputs).fields())

        given = {n: tuple(i for i, p in enumerate(parts) if p.split == n) for n in ("train", "val", "test")}
        return StreamSource(
            parts=tuple(Part(p.path, p.group or "") for p in parts),
            keys=keys,
            splits={n: ids for n, ids in given.items() if ids} if source.splits else None,
            layout=layout,
            rows=rows,
        )

    def fields(self) -> dict[str, str]:
        """Each key and the experiment field that named it, for error messages."""
        return fields_of(self.inputs, self.targets, self.weights, self.spectators)


class ArrayDataModule(FileDataModule):
    """``data: {name: arrays, path, x_key, y_key}``: inputs and labels from one ``.npz``/HDF5 file."""

    def __init__(self, *, path: str, x_key: str = "x", y_key: str = "y", **kwargs: object) -> None:
        super().__init__(path=path, inputs=x_key, targets=y_key, **kwargs)  # type: ignore[arg-type]

    def fields(self) -> dict[str, str]:
        return {str(self.inputs): "data.x_key", str(self.targets): "data.y_key"}
