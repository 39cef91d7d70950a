"""Events from the files of ``data: {name: file}`` (numpy, h5py, uproot, pyarrow: no torch).

``path`` may name several files and glob patterns (read in sorted order, one after another);
``splits`` takes the files' own train/val/test, either HDF5 groups inside the files (``train``
reads ``/train/<key>``) or files of their own. Shared by :class:`FileDataModule` and
``labkit check --data``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labkit.data._assemble import SPLITS, ConstituentSet, Events, assemble, concat_events, fields_of, keys_of
from labkit.data._files import (
    FORMATS,
    GLOB_CHARS,
    column_names,
    detect_format,
    expand_inputs,
    expand_paths,
    read_arrays,
)
from labkit.errors import DataError

__all__ = ["EventSource", "Part", "input_keys", "load_events", "load_part", "names_files", "same_layout"]


@dataclass(frozen=True)
class Part:
    """One file (or one HDF5 group of it) holding events of one split (None: no given split)."""

    path: Path
    group: str | None = None
    split: str | None = None

    def where(self, tree: str | None = None) -> str:
        inside = f" (group {self.group})" if self.group else (f" (TTree {tree})" if tree else "")
        return f"{self.path}{inside}"


@dataclass(frozen=True)
class EventSource:
    """What ``data:`` names in the files: which files, which keys, how to clean them."""

    path: str | tuple[str, ...]
    inputs: str | tuple[str, ...]
    targets: str | tuple[str, ...]
    weights: str | None = None
    format: str = "auto"
    tree: str | None = None
    labels: Mapping[int, str] = field(default_factory=dict)
    spectators: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    constituents: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    nan: str | Mapping[str, str] = "error"
    fill_value: float = 0.0
    splits: Mapping[str, str | tuple[str, ...]] | None = None
    #: how messages name a key's experiment field, where it is not ``data.inputs``... (``data.x_key``)
    names: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], extras: Sequence[str] = ()) -> EventSource:
        """From a data spec's ``options()`` (what the DataModule receives)."""
        names = {f for f in cls.__dataclass_fields__ if f not in ("extras", "names")}
        given = {k: v for k, v in options.items() if k in names and v is not None}
        for key in ("inputs", "targets", "path"):
            if isinstance(given.get(key), list):
                given[key] = tuple(given[key])
        given["spectators"] = tuple(given.get("spectators", ()))
        return cls(**given, extras=tuple(extras))

    def fields(self) -> dict[str, str]:
        return fields_of(self.inputs, self.targets, self.weights, self.spectators) | dict(self.names)

    def parts(self) -> list[Part]:
        """The files (and groups) to read, in order, with their split."""
        if not self.splits:
            return [Part(p) for p in expand_paths(self.path)]
        out = []
        files: list[Path] | None = None  # data.path, read only when a split names a group in it
        for name in ("train", "val", "test"):
            value = self.splits.get(name)  # type: ignore[call-overload]
            if value is None:
                continue
            if names_files(value):
                if isinstance(value, str) and not _looks_like_files(value):
                    raise DataError(
                        f"data.splits.{name}: {value!r} is not a file; an HDF5 group in data.path is "
                        f"written without slashes around it ({value.strip('/')}), files with their suffix "
                        "or a glob"
                    )
                out += [Part(p, None, name) for p in expand_paths(value, field=f"data.splits.{name}")]
                continue
            assert isinstance(value, str)
            files = expand_paths(self.path) if files is None else files
            for p in files:
                if p.is_file() and detect_format(p, self.format) != "hdf5":
                    raise DataError(
                        f"data.splits.{name}: {value!r} names an HDF5 group, but {p} is not an HDF5 "
                        "file; name the split's files instead (a path or a glob)"
                    )
                out.append(Part(p, value.strip("/"), name))
        return out


def _looks_like_files(value: str) -> bool:
    """A split value with a separator that can name files: it exists, has a glob character or a
    data-file suffix (``/train`` alone is a group written with a slash)."""
    p = Path(value).expanduser()
    return any(c in value for c in GLOB_CHARS) or p.suffix.lower() in FORMATS or p.exists()


def names_files(value: str | Sequence[str]) -> bool:
    """A split value names files (not an HDF5 group): a list, or a path separator, a glob
    character or a data file suffix in it."""
    if not isinstance(value, str):
        return True
    return any(c in value for c in "/\\" + GLOB_CHARS) or Path(value).suffix.lower() in FORMATS


def input_keys(source: EventSource, part: Part) -> list[str]:
    given = [source.inputs] if isinstance(source.inputs, str) else list(source.inputs)
    named = keys_of((), source.targets, source.weights) + list(source.spectators)
    path = part.path
    if part.group:
        inside = [f"{part.group}/{k}" for k in given]
        return [k.split("/", 1)[1] for k in expand_inputs(path, inside, [f"{part.group}/{k}" for k in named])]
    return expand_inputs(path, given, named, source.format)


def load_part(
    source: EventSource,
    part: Part,
    rows: slice | None = None,
    inputs: Sequence[str] | None = None,
    layout: dict[str, tuple[str, tuple[int, ...]]] | None = None,
) -> Events:
    """The events of one file (or group), only ``rows`` when given (messages count events from
    the start of the file). ``inputs``: the input keys (compound datasets already expanded);
    ``layout``, when given, receives each key's dtype and per-event shape as read."""
    for name, named in (("inputs", source.inputs), ("targets", source.targets)):
        if not named:
            raise DataError(f"{part.where()}: data.{name} names no key; name the array(s) holding the {name}")
    in_keys = list(inputs) if inputs is not None else input_keys(source, part)
    single = isinstance(source.inputs, str) and in_keys == [source.inputs]
    keys = keys_of(in_keys, source.targets, source.weights) + list(source.extras) + list(source.spectators)
    fields = fields_of(in_keys, source.targets, source.weights, source.spectators) | source.fields()
    prefix = f"{part.group}/" if part.group else ""
    found = read_arrays(
        part.path,
        [prefix + k for k in keys],
        source.format,
        source.tree,
        {prefix + k: v for k, v in fields.items()},
        rows,
    )
    found = {k[len(prefix) :]: v for k, v in found.items()}
    if layout is not None:
        layout |= {k: (v.dtype.str, tuple(v.shape[1:])) for k, v in found.items()}
    sets = {}
    if source.constituents:
        fmt = detect_format(part.path, source.format)
        if fmt not in ("hdf5", "root", "parquet"):
            raise DataError(
                f"data.constituents: {part.path} is a {fmt} file; constituents are read from HDF5 "
                "compound datasets, ROOT jagged branches or Parquet list columns"
            )
        from labkit.data._read_hdf5 import read_constituents
        from labkit.data._read_jagged import read_jagged_constituents

        for g, spec in source.constituents.items():
            if fmt == "hdf5":
                features, valid = read_constituents(part.path, g, spec, rows, part.group)
            else:
                features, valid = read_jagged_constituents(part.path, g, spec, fmt, source.tree, rows)
            sets[g] = ConstituentSet(features, valid, tuple(spec["fields"]))
    n = len(found[in_keys[0]]) if found[in_keys[0]].ndim else 0  # a scalar: assemble says so
    split = None if part.split is None else np.full(n, SPLITS[part.split], dtype=np.int8)
    columns = column_names(part.path, prefix + in_keys[0], source.format) if single else ()
    return assemble(
        found,
        in_keys[0] if single else in_keys,
        source.targets,
        source.weights,
        part.where(source.tree),
        source.labels,
        fields,
        extras=source.extras,
        input_names=columns,
        spectators=source.spectators,
        sets=sets,
        nan=source.nan,
        fill_value=source.fill_value,
        split=split,
        offset=0 if rows is None else int(rows.start or 0),
    )


def load_events(source: EventSource) -> Events:
    """Every event of every file (and split) ``source`` names, one after another."""
    parts = source.parts()
    inputs = input_keys(source, parts[0]) if source.inputs else None
    loaded: list[Events] = []
    first: dict[str, tuple[str, tuple[int, ...]]] = {}
    for part in parts:
        layout: dict[str, tuple[str, tuple[int, ...]]] = {}
        loaded.append(load_part(source, part, inputs=inputs, layout=layout))
        if len(loaded) == 1:
            first = layout
        else:
            same_layout(first, layout, part, parts[0])
    splits = sorted({p.split for p in parts if p.split})
    if source.splits and "train" not in splits:
        raise DataError("data.splits.train: no training events were read")
    where = str(parts[0].path) if len(parts) == 1 else f"{parts[0].path} and {len(parts) - 1} more files"
    return concat_events(loaded, loaded[0].source if len(parts) == 1 else where)


def same_layout(
    first: Mapping[str, tuple[str, tuple[int, ...]]],
    this: Mapping[str, tuple[str, tuple[int, ...]]],
    part: Part,
    reference: Part,
) -> None:
    for key, (dtype, shape) in first.items():
        got = this.get(key)
        if got != (dtype, shape):
            shown = f"dtype {np.dtype(got[0])}, per-event shape {got[1]}" if got else "nothing"
            raise DataError(
                f"data.path: {part.where()} holds {key!r} as {shown}, but {reference.where()} holds "
                f"dtype {np.dtype(dtype)}, per-event shape {shape}; every file must hold the same keys "
                "with the same dtypes"
            )
