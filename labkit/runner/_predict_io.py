"""Event files read and written in chunks, for ``labkit predict``: a file larger than memory
goes through a chunk of events at a time (HDF5 by slicing, ROOT with ``uproot.iterate``,
Parquet with ``iter_batches``; ``.npz`` and CSV are read whole), and the output is appended a
chunk at a time (resizable HDF5 datasets, ``uproot`` ``mktree`` + ``extend``, a pyarrow
``ParquetWriter``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labkit.data import detect_format
from labkit.errors import DataError, LabkitError, did_you_mean

__all__ = [
    "OUTPUT_FORMATS",
    "EventFile",
    "Writer",
    "add_spectators",
    "column_name",
    "open_events",
    "open_writer",
]

OUTPUT_FORMATS = {".h5": "hdf5", ".hdf5": "hdf5", ".root": "root", ".parquet": "parquet", ".pq": "parquet"}
#: the TTree of a ROOT output file
TREE = "predictions"


def _listing(names: Sequence[str], most: int = 20) -> str:
    shown = ", ".join(str(n)[:60] for n in names[:most])
    return (shown + (f" ... and {len(names) - most} more" if len(names) > most else "")) or "nothing"


class EventFile:
    """Named per-event arrays of one file, served a chunk of events at a time."""

    def __init__(self, path: Path, available: Sequence[str], where: str) -> None:
        self.path = path
        self.available = list(available)
        self.where = where  #: how messages name the file (and tree)

    def has(self, key: str) -> bool:
        return key in self.available

    def require(self, key: str, field: str) -> None:
        """DataError naming ``field`` and the file's columns when ``key`` is not in the file."""
        if key not in self.available:
            hint = did_you_mean(key, [n for n in self.available[:10_000] if len(n) <= 60])
            raise DataError(
                f"{self.where}: no {key!r} ({field}){hint}; the file holds: {_listing(self.available)}"
            )

    def count(self, keys: Sequence[str]) -> int:
        raise NotImplementedError

    def row_bytes(self, keys: Sequence[str]) -> int:
        """Bytes of one event of ``keys`` (an estimate where the format does not say)."""
        return 8 * len(keys)

    def chunks(self, keys: Sequence[str], size: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """``(first event, {key: rows})`` for consecutive chunks of at most ``size`` events."""
        raise NotImplementedError

    def close(self) -> None:
        return None


class _Memory(EventFile):
    """Arrays already in memory (``.npz``, CSV, a data module's own arrays)."""

    def __init__(self, path: Path, arrays: Mapping[str, np.ndarray], where: str) -> None:
        super().__init__(path, list(arrays), where)
        self.arrays = dict(arrays)

    def count(self, keys: Sequence[str]) -> int:
        return _same_length(self.where, {k: len(self.arrays[k]) for k in keys})

    def chunks(self, keys: Sequence[str], size: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        n = self.count(keys)
        for start in range(0, n, size):
            yield start, {k: np.asarray(self.arrays[k][start : start + size]) for k in keys}


class _Hdf5(EventFile):
    def __init__(self, path: Path) -> None:
        import h5py

        self.file = h5py.File(path, "r")
        found: list[str] = []
        self.file.visit(
            lambda name: found.append(name) if isinstance(self.file[name], h5py.Dataset) else None
        )
        super().__init__(path, found, str(path))

    def count(self, keys: Sequence[str]) -> int:
        lengths = {}
        for k in keys:
            shape = self.file[k].shape
            if not shape:
                raise DataError(f"{self.where}: {k!r} is a single value, not one row per event")
            lengths[k] = int(shape[0])
        return _same_length(self.where, lengths)

    def row_bytes(self, keys: Sequence[str]) -> int:
        total = 0
        for k in keys:
            d = self.file[k]
            total += int(np.prod(d.shape[1:], dtype=np.int64)) * d.dtype.itemsize
        return max(total, 1)

    def chunks(self, keys: Sequence[str], size: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        n = self.count(keys)
        for start in range(0, n, size):
            yield start, {k: np.asarray(self.file[k][start : start + size]) for k in keys}

    def close(self) -> None:
        self.file.close()


class _Root(EventFile):
    def __init__(self, path: Path, tree: str | None) -> None:
        import uproot

        self.file = uproot.open(path)
        trees = list(
            dict.fromkeys(
                name.split(";")[0]
                for name, cls in self.file.classnames().items()
                if cls in ("TTree", "ROOT::RNTuple")
            )
        )
        if tree is None or tree not in trees:
            if tree is None and len(trees) == 1:
                tree = trees[0]
            else:
                self.file.close()
                what = f"no TTree {tree!r} (data.tree)" if tree else "set data.tree to one of its TTrees"
                raise DataError(f"{path}: {what}; the file holds: {_listing(trees) if trees else 'no TTree'}")
        self.tree = self.file[tree]
        super().__init__(path, [str(k) for k in self.tree.keys()], f"{path} (TTree {tree})")  # noqa: SIM118

    def count(self, keys: Sequence[str]) -> int:
        return int(self.tree.num_entries)

    def chunks(self, keys: Sequence[str], size: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        start = 0
        for arrays in self.tree.iterate(list(keys), step_size=size, library="np"):
            out = {}
            for k in keys:
                value = np.asarray(arrays[k])
                if value.dtype == object:
                    raise DataError(
                        f"{self.where}: branch {k!r} has a different length in each event (a jagged "
                        "array); labkit reads branches with one value or a fixed-size array per event"
                    )
                out[k] = value
            yield start, out
            start += len(out[keys[0]])

    def close(self) -> None:
        self.file.close()


class _Parquet(EventFile):
    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        self.file = pq.ParquetFile(path)
        super().__init__(path, list(self.file.schema_arrow.names), str(path))

    def count(self, keys: Sequence[str]) -> int:
        return int(self.file.metadata.num_rows)

    def chunks(self, keys: Sequence[str], size: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        start = 0
        for batch in self.file.iter_batches(batch_size=size, columns=list(keys)):
            out = {k: _arrow_numpy(batch.column(k), self.where, k) for k in keys}
            yield start, out
            start += batch.num_rows

    def close(self) -> None:
        self.file.close()


def _arrow_numpy(column: Any, where: str, key: str) -> np.ndarray:
    """A pyarrow column as numpy: numbers, or fixed-size lists of numbers as (N, k)."""
    import pyarrow as pa  # type: ignore[import-untyped]

    if pa.types.is_fixed_size_list(column.type):
        width = column.type.list_size
        return np.asarray(column.flatten().to_numpy(zero_copy_only=False)).reshape(len(column), width)
    if column.null_count:
        raise DataError(f"{where}: column {key!r} holds {column.null_count} missing values (nulls)")
    value = np.asarray(column.to_numpy(zero_copy_only=False))
    if value.dtype == object:
        raise DataError(f"{where}: column {key!r} is not numeric (arrow type {column.type})")
    return value


def _same_length(where: str, lengths: Mapping[str, int]) -> int:
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k!r}: {n}" for k, n in lengths.items())
        raise DataError(f"{where}: the arrays hold different numbers of events ({shown})")
    return next(iter(lengths.values()), 0)


def open_events(path: Path, fmt: str = "auto", tree: str | None = None) -> EventFile:
    """The event file ``path``, opened for chunked reading; DataError when it cannot be read."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}" if not path.exists() else f"{path} is not a file")
    fmt = detect_format(path, fmt)
    try:
        if fmt == "hdf5":
            return _Hdf5(path)
        if fmt == "root":
            return _Root(path, tree)
        if fmt == "parquet":
            return _Parquet(path)
        if fmt == "npz":
            with np.load(path, allow_pickle=False) as f:
                return _Memory(path, {k: f[k] for k in f.files}, str(path))
        import pandas as pd

        frame = pd.read_csv(path)
        return _Memory(path, {str(c): frame[c].to_numpy() for c in frame.columns}, str(path))
    except LabkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DataError(f"{path}: not a readable {fmt} file ({type(exc).__name__}: {first})") from None


def memory_events(arrays: Mapping[str, np.ndarray], where: str) -> EventFile:
    """Arrays in memory, served like a file."""
    return _Memory(Path(where), arrays, where)


# -- writing -----------------------------------------------------------------------------------
class Writer:
    """Appends chunks of named columns (one row per event) to an output file."""

    def __init__(self, path: Path, metadata: Mapping[str, str]) -> None:
        self.path = path
        self.metadata = dict(metadata)

    def write(self, columns: Mapping[str, np.ndarray]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Hdf5Writer(Writer):
    def __init__(self, path: Path, metadata: Mapping[str, str]) -> None:
        import h5py

        super().__init__(path, metadata)
        self.file = h5py.File(path, "w", track_order=True)  # columns listed in the order written
        for key, value in self.metadata.items():
            self.file.attrs[key] = value
        self.rows = 0

    def write(self, columns: Mapping[str, np.ndarray]) -> None:
        n = len(next(iter(columns.values())))
        for name, values in columns.items():
            if name not in self.file:
                per_event = values.shape[1:]
                self.file.create_dataset(
                    name,
                    shape=(0, *per_event),
                    maxshape=(None, *per_event),
                    dtype=values.dtype,
                    chunks=(max(1, min(65536 // max(1, int(np.prod(per_event))), 65536)), *per_event),
                    compression="gzip" if per_event else None,
                )
            dataset = self.file[name]
            dataset.resize(self.rows + n, axis=0)
            dataset[self.rows : self.rows + n] = values
        self.rows += n

    def close(self) -> None:
        self.file.close()


class _RootWriter(Writer):
    def __init__(self, path: Path, metadata: Mapping[str, str]) -> None:
        import uproot

        super().__init__(path, metadata)
        self.file = uproot.recreate(path)
        self.file["labkit_metadata"] = json.dumps(self.metadata, sort_keys=True)
        self.tree: Any = None

    def write(self, columns: Mapping[str, np.ndarray]) -> None:
        if self.tree is None:
            self.tree = self.file.mktree(
                TREE, {k: v.dtype for k, v in columns.items()}, title="labkit predict"
            )
        self.tree.extend(dict(columns))

    def close(self) -> None:
        self.file.close()


class _ParquetWriter(Writer):
    def __init__(self, path: Path, metadata: Mapping[str, str]) -> None:
        super().__init__(path, metadata)
        self.writer: Any = None

    def write(self, columns: Mapping[str, np.ndarray]) -> None:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        table = pa.table(dict(columns))
        if self.writer is None:
            schema = table.schema.with_metadata({k: str(v) for k, v in self.metadata.items()})
            self.writer = pq.ParquetWriter(self.path, schema)
        self.writer.write_table(table.cast(self.writer.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def output_format(path: Path) -> str:
    found = OUTPUT_FORMATS.get(path.suffix.lower())
    if found is None:
        raise LabkitError(
            f"-o {path}: write predictions to .h5 (HDF5), .root (a TTree) or .parquet; "
            f"got the suffix {path.suffix or 'none'!r}"
        )
    return found


def open_writer(path: Path, fmt: str, metadata: Mapping[str, str]) -> Writer:
    cls = {"hdf5": _Hdf5Writer, "root": _RootWriter, "parquet": _ParquetWriter}[fmt]
    return cls(path, metadata)


def add_spectators(table: dict[str, np.ndarray], values: Mapping[str, Any], fmt: str) -> None:
    """Add each spectator's values to ``table`` as a column; refuse one that would overwrite an output."""
    for key, value in values.items():
        name = column_name(key)
        if name in table:
            raise DataError(
                f"--spectators: {key!r} would overwrite the output column {name!r}; "
                f"the outputs are: {', '.join(table)}"
            )
        table[name] = _flat(np.asarray(value), key, fmt)


def column_name(name: str) -> str:
    """A name usable as an HDF5 dataset, ROOT branch and Parquet column."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "column"


def _flat(values: np.ndarray, key: str, fmt: str) -> np.ndarray:
    if values.ndim > 1 and fmt != "hdf5":
        raise DataError(
            f"--spectators: {key!r} holds {values.shape[1:]} values per event; .root and .parquet "
            "outputs take one value per event (use an .h5 output, or name a column with one value)"
        )
    return values
