"""Read named arrays from the files physicists have: HDF5, ROOT TTrees, ``.npz``, Parquet, CSV.

One function, :func:`read_arrays`, returns ``{key: array}`` for the keys an experiment names,
whatever the format; every problem (a missing file or key, a damaged file, ragged branches)
is a :class:`~labkit.errors.DataError` naming the file and the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labkit.errors import DataError, did_you_mean

__all__ = ["FORMATS", "column_names", "detect_format", "read_arrays"]

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
) -> dict[str, np.ndarray]:
    """The arrays ``keys`` from ``path`` (datasets, branches or columns), one row per event.

    ``fields`` names the experiment field each key came from (``data.inputs``), for messages.
    """
    try:
        if path.is_dir():
            raise DataError(f"data.path: {path} is a directory, not a file; name the data file in it")
        if not path.is_file():
            if path.exists():
                raise DataError(f"data.path: {path} is not a regular file")
            raise DataError(f"data file not found: {path} (set data.path)")
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a directory without access
        raise DataError(f"data.path: cannot use {str(path)!r} ({exc})") from None
    fmt = detect_format(path, fmt)
    reader = {"npz": _npz, "hdf5": _hdf5, "root": _root, "parquet": _table, "csv": _table}[fmt]
    try:
        return reader(path, list(dict.fromkeys(keys)), fmt=fmt, tree=tree, fields=dict(fields or {}))
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated files, bad compression...: the file is unusable
        shown = {"npz": ".npz", "hdf5": "HDF5", "root": "ROOT", "parquet": "Parquet", "csv": "CSV"}[fmt]
        raise DataError(f"{path}: not a readable {shown} file ({type(exc).__name__}: {exc})") from None


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


def _missing(
    path: Path, key: str, available: Sequence[str], what: str, fields: Mapping[str, str]
) -> DataError:
    field = f" ({fields[key]})" if key in fields else ""
    return DataError(
        f"{path}: no {what} {key!r}{field}{did_you_mean(key, available)}; the file holds: "
        f"{', '.join(available) or 'nothing'}"
    )


def _npz(path: Path, keys: list[str], fields: Mapping[str, str], **_: Any) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        available = list(f.files)
        out = {}
        for key in keys:
            if key not in available:
                raise _missing(path, key, available, "array", fields)
            out[key] = np.asarray(f[key])
        return out


def _hdf5(path: Path, keys: list[str], fields: Mapping[str, str], **_: Any) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as f:
        available: list[str] = []
        f.visit(lambda name: available.append(name) if isinstance(f[name], h5py.Dataset) else None)
        out = {}
        for key in keys:
            if key not in available:
                raise _missing(path, key, available, "dataset", fields)
            if f[key].shape is None:  # an HDF5 null dataspace: no values at all
                field = f" ({fields[key]})" if key in fields else ""
                raise DataError(f"{path}: dataset {key!r}{field} is empty (a null dataspace, no shape)")
            try:
                out[key] = np.asarray(f[key][()])
            except Exception as exc:  # noqa: BLE001 - a chunk cut off by a truncated copy
                raise DataError(f"{path}: cannot read dataset {key!r} ({exc})") from None
        return out


_TREES = ("TTree", "ROOT::RNTuple")  # ROOT's classic trees and their successor


def _root(
    path: Path, keys: list[str], fields: Mapping[str, str], tree: str | None = None, **_: Any
) -> dict[str, np.ndarray]:
    import uproot

    with uproot.open(path) as f:
        trees = list(
            dict.fromkeys(name.split(";")[0] for name, cls in f.classnames().items() if cls in _TREES)
        )
        if tree is None:
            if len(trees) != 1:
                listing = ", ".join(trees) or "none"
                raise DataError(f"{path}: set data.tree to one of the file's TTrees: {listing}")
            tree = trees[0]
        if tree not in trees:
            raise DataError(
                f"{path}: no TTree {tree!r} (data.tree){did_you_mean(tree, trees)}; "
                f"the file holds: {', '.join(trees) or 'no TTree'}"
            )
        t = f[tree]
        available = [str(k) for k in t.keys()]  # noqa: SIM118 - an uproot tree, not a dict
        for key in keys:
            if key not in available:
                raise _missing(path, key, available, f"branch (in TTree {tree!r})", fields)
        try:
            read = t.arrays(keys, library="np")
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"{path}: cannot read branches {keys} of TTree {tree!r} ({exc})") from None
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
        column = frame[key]
        if not pd.api.types.is_numeric_dtype(column):
            raise DataError(f"{path}: column {key!r} is not numeric (dtype {column.dtype})")
        out[key] = column.to_numpy()
    return out
