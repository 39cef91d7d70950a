"""Read named arrays from the files physicists have: HDF5, ROOT TTrees, ``.npz``, Parquet, CSV.

One function, :func:`read_arrays`, returns ``{key: array}`` for the keys an experiment names,
whatever the format; every problem (a missing file or key, a damaged file, ragged branches)
is a :class:`~labkit.errors.DataError` naming the file and the key.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labkit.errors import DataError, did_you_mean

__all__ = [
    "FORMATS",
    "column_names",
    "count_rows",
    "detect_format",
    "event_nbytes",
    "expand_inputs",
    "expand_paths",
    "only_tree",
    "read_arrays",
]

#: file suffix → format
FORMATS = {
    ".npz": "npz",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
    ".root": "root",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
}


def detect_format(path: Path, fmt: str = "auto") -> str:
    if fmt != "auto":
        return fmt
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise DataError(
            f"{path}: cannot tell the format from the suffix {path.suffix!r}; use one of "
            f"{', '.join(FORMATS)} or set data.format to one of: {', '.join(sorted(set(FORMATS.values())))}"
        )
    return found


def read_arrays(
    path: Path,
    keys: Sequence[str],
    fmt: str = "auto",
    tree: str | None = None,
    fields: Mapping[str, str] | None = None,
    rows: slice | None = None,
) -> dict[str, np.ndarray]:
    """The arrays ``keys`` from ``path`` (datasets, branches or columns), one row per event.

    ``fields`` names the experiment field each key came from (``data.inputs``), for messages.
    An HDF5 key may name a field of a compound dataset (``jets.pt``). ``rows`` keeps only those
    events (HDF5 and ROOT read only them; the other formats read all and slice).
    """
    fmt = _usable(path, fmt)
    reader = {"npz": _npz, "hdf5": _hdf5, "root": _root, "parquet": _table, "csv": _table}[fmt]
    try:
        extra: dict[str, Any] = {"rows": rows} if fmt in ("hdf5", "root") else {}
        wanted = list(dict.fromkeys(keys))
        found = reader(path, wanted, fmt=fmt, tree=tree, fields=dict(fields or {}), **extra)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated files, bad compression...: the file is unusable
        raise _unreadable(path, fmt, exc) from None
    if rows is not None and fmt not in ("hdf5", "root"):
        found = {k: v[rows] if v.ndim else v for k, v in found.items()}
    return found


def _unreadable(path: Path, fmt: str, exc: BaseException) -> DataError:
    shown = {"npz": ".npz", "hdf5": "HDF5", "root": "ROOT", "parquet": "Parquet", "csv": "CSV"}[fmt]
    return DataError(f"{path}: not a readable {shown} file ({type(exc).__name__}: {first_line(exc)})")


def _usable(path: Path, fmt: str) -> str:
    """The format of ``path``, once it is known to be a regular file (else a DataError)."""
    try:
        if path.is_dir():
            raise DataError(f"data.path: {path} is a directory, not a file; name the data file in it")
        if not path.is_file():
            if path.exists():
                raise DataError(f"data.path: {path} is not a regular file")
            raise DataError(f"data file not found: {path} (set data.path)")
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a directory without access
        raise DataError(f"data.path: cannot use {str(path)!r} ({exc})") from None
    return detect_format(path, fmt)


def count_rows(
    path: Path, key: str, fmt: str = "auto", tree: str | None = None, fields: Mapping[str, str] | None = None
) -> int:
    """How many events ``key`` holds in ``path``; HDF5, ROOT and Parquet read no data for it.
    ``fields``: the experiment field of each key, for messages."""
    fmt = _usable(path, fmt)
    try:
        if fmt == "hdf5":
            from labkit.data._read_hdf5 import hdf5_rows

            return hdf5_rows(path, key, fields or {})
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if fmt == "root":
            import uproot

            with uproot.open(path) as f:
                name = tree or only_tree(path, f)
                return int(f[name].num_entries)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _unreadable(path, fmt, exc) from None
    value = read_arrays(path, [key], fmt, tree, fields)[key]
    return len(value) if value.ndim else 1


def event_nbytes(
    path: Path,
    keys: Sequence[str],
    fmt: str = "auto",
    tree: str | None = None,
    fields: Mapping[str, str] | None = None,
) -> int:
    """Bytes one event of ``keys`` takes in memory, as stored (HDF5: from the dtypes, no data
    read; the other formats: from one event read)."""
    fmt = _usable(path, fmt)
    if fmt == "hdf5":
        from labkit.data._read_hdf5 import hdf5_event_nbytes

        try:
            return hdf5_event_nbytes(path, keys, fields or {})
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _unreadable(path, fmt, exc) from None
    one = read_arrays(path, keys, fmt, tree, fields, rows=slice(0, 1))
    return sum(a.itemsize * int(np.prod(a.shape[1:], dtype=np.int64)) for a in one.values())


#: characters that make a path a glob pattern
GLOB_CHARS = "*?["


def expand_paths(paths: str | Sequence[str], field: str = "data.path") -> list[Path]:
    """The files ``paths`` names (a path, a glob pattern or a list of both): sorted, each once;
    a pattern matching nothing is a DataError naming ``field`` and the pattern."""
    import glob

    out: list[Path] = []
    for given in [paths] if isinstance(paths, str) else list(paths):
        text = str(Path(given).expanduser())
        if any(c in text for c in GLOB_CHARS):
            matched = sorted(glob.glob(text, recursive=True))
            if not matched:
                raise DataError(f"{field}: the pattern {given!r} matches no file")
            out += [Path(m) for m in matched]
        else:
            out.append(Path(text))
    return sorted(dict.fromkeys(out))


def only_tree(path: Path, f: Any) -> str:
    trees = list(dict.fromkeys(name.split(";")[0] for name, cls in f.classnames().items() if cls in _TREES))
    if len(trees) != 1:
        raise DataError(f"{path}: set data.tree to one of the file's TTrees: {listing(trees, 'none')}")
    return str(trees[0])


def expand_inputs(path: Path, inputs: Sequence[str], exclude: Sequence[str], fmt: str = "auto") -> list[str]:
    """``inputs`` with each compound HDF5 dataset named alone replaced by its numeric fields
    (``jets`` -> ``jets.pt``, ``jets.eta``, ...) except the keys in ``exclude``; other formats
    and unreadable files: ``inputs`` as given (reading them says what is wrong)."""
    try:
        if not path.is_file() or detect_format(path, fmt) != "hdf5":
            return list(inputs)
        from labkit.data._read_hdf5 import expand_compound

        return expand_compound(path, inputs, exclude)
    except DataError:
        raise
    except Exception:  # noqa: BLE001 - the read that follows reports the damaged file
        return list(inputs)


def column_names(path: Path, inputs: str | Sequence[str], fmt: str = "auto") -> tuple[str, ...]:
    """The column names of a single table-shaped HDF5 input (N, F), from its ``columns`` attribute
    (how labkit's simulators name the columns of ``features``); empty when there are none."""
    if not isinstance(inputs, str) or detect_format(path, fmt) != "hdf5":
        return ()
    import h5py

    try:
        with h5py.File(path, "r") as f:
            names = f[inputs].attrs.get("columns") if inputs in f else None
    except OSError:
        return ()
    if names is None:
        return ()
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in np.atleast_1d(names))


#: how many names a message lists, and how many characters of each it shows
MOST_NAMES, NAME_CHARS = 20, 60


def short(name: str, most: int = NAME_CHARS) -> str:
    """``name`` cut to ``most`` characters (a name read from a file can be any length)."""
    return name if len(name) <= most else name[: most - 3] + "..."


def listing(names: Sequence[str], empty: str = "nothing", most: int = MOST_NAMES) -> str:
    """Names read from a file, for a message: the first ``most``, each cut to :data:`NAME_CHARS`,
    then how many more (a file's header can be anything, e.g. ``/proc/self/environ`` read as CSV)."""
    shown = ", ".join(short(str(n)) for n in names[:most])
    more = f" ... and {len(names) - most} more" if len(names) > most else ""
    return (shown + more) or empty


def suggest(key: str, available: Sequence[str]) -> str:
    """``did_you_mean`` among the (not too long) names of a file: its suggestion stays short."""
    return did_you_mean(key, [n for n in available[:10_000] if len(n) <= NAME_CHARS])


def first_line(exc: BaseException, most: int = 200) -> str:
    """An exception from a file reader for a message: its first line, at most ``most`` characters."""
    return short((str(exc).strip().splitlines() or [""])[0], most)


def _missing(
    path: Path, key: str, available: Sequence[str], what: str, fields: Mapping[str, str]
) -> DataError:
    field = f" ({fields[key]})" if key in fields else ""
    return DataError(
        f"{path}: no {what} {key!r}{field}{suggest(key, available)}; the file holds: {listing(available)}"
    )


def _npz(path: Path, keys: list[str], fields: Mapping[str, str], **_: Any) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):  # else numpy reads it as a pickle and suggests loading it unsafely
        with path.open("rb") as handle:
            npy = handle.read(6) == b"\x93NUMPY"
        what = "a single .npy array" if npy else "not a zip archive"
        raise DataError(
            f"{path}: not a readable .npz file (it is not an .npz archive: {what}); "
            "write one with numpy.savez(path, name=array, ...) "
            "and name its arrays in data.inputs and data.targets"
        )
    with np.load(path, allow_pickle=False) as f:
        available = list(f.files)
        out = {}
        for key in keys:
            if key not in available:
                raise _missing(path, key, available, "array", fields)
            try:
                out[key] = np.asarray(f[key])
            except ValueError as exc:
                if "pickle" not in str(exc):
                    raise
                field = f" ({fields[key]})" if key in fields else ""
                raise DataError(
                    f"{path}: array {key!r}{field} holds Python objects, not numbers; labkit reads "
                    "numeric arrays only (save it with a numeric dtype)"
                ) from None
        return out


def _hdf5(path: Path, keys: list[str], fields: Mapping[str, str], **kwargs: Any) -> dict[str, np.ndarray]:
    from labkit.data._read_hdf5 import read_hdf5

    return read_hdf5(path, keys, fields, **kwargs)


_TREES = ("TTree", "ROOT::RNTuple")  # ROOT's classic trees and their successor


def _root(
    path: Path,
    keys: list[str],
    fields: Mapping[str, str],
    tree: str | None = None,
    rows: slice | None = None,
    **_: Any,
) -> dict[str, np.ndarray]:
    import uproot

    with uproot.open(path) as f:
        trees = list(
            dict.fromkeys(name.split(";")[0] for name, cls in f.classnames().items() if cls in _TREES)
        )
        if tree is None:
            if len(trees) != 1:
                raise DataError(
                    f"{path}: set data.tree to one of the file's TTrees: {listing(trees, 'none')}"
                )
            tree = trees[0]
        if tree not in trees:
            raise DataError(
                f"{path}: no TTree {tree!r} (data.tree){suggest(tree, trees)}; "
                f"the file holds: {listing(trees, 'no TTree')}"
            )
        t = f[tree]
        available = [str(k) for k in t.keys()]  # noqa: SIM118 - an uproot tree, not a dict
        for key in keys:
            if key not in available:
                raise _missing(path, key, available, f"branch (in TTree {tree!r})", fields)
        try:
            span = {} if rows is None else {"entry_start": rows.start, "entry_stop": rows.stop}
            read = t.arrays(keys, library="np", **span)
        except Exception as exc:  # noqa: BLE001
            raise DataError(
                f"{path}: cannot read branches {listing(keys)} of TTree {tree!r} ({first_line(exc)})"
            ) from None
        out = {}
        for key in keys:
            value = read[key]
            if value.dtype == object:  # a vector of different length in each event
                raise DataError(
                    f"{path}: branch {key!r} has a different length in each event (a jagged array); "
                    "labkit reads branches with one value or a fixed-size array per event"
                )
            out[key] = np.asarray(value)
        return out


def _table(
    path: Path, keys: list[str], fields: Mapping[str, str], fmt: str = "csv", **_: Any
) -> dict[str, np.ndarray]:
    import pandas as pd

    frame = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
    available = [str(c) for c in frame.columns]
    out = {}
    for key in keys:
        if key not in available:
            raise _missing(path, key, available, "column", fields)
        if frame.empty:  # a header and no rows: every column is read as dtype object
            raise DataError(
                f"{path}: the file has no rows, only a header ({listing(available)}); "
                "data.path must name a file with one row per event"
            )
        column = frame[key]
        if not pd.api.types.is_numeric_dtype(column):
            if fields.get(key) == "data.targets" and pd.api.types.is_string_dtype(column):
                out[key] = column.to_numpy(dtype=object)  # class names: mapped through data.labels
                continue
            raise DataError(f"{path}: column {key!r} is not numeric (dtype {column.dtype})")
        out[key] = column.to_numpy()
    return out
