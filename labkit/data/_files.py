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
        raise DataError(
            f"{path}: not a readable {shown} file ({type(exc).__name__}: {first_line(exc)})"
        ) from None


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


def _hdf5(path: Path, keys: list[str], fields: Mapping[str, str], **_: Any) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as f:
        available: list[str] = []
        f.visit(lambda name: available.append(name) if isinstance(f[name], h5py.Dataset) else None)
        out = {}
        for key in keys:
            if key not in available and not isinstance(_h5_get(f, key), h5py.Dataset):
                raise _h5_missing(f, path, key, available, fields)
            if f[key].shape is None:  # an HDF5 null dataspace: no values at all
                field = f" ({fields[key]})" if key in fields else ""
                raise DataError(f"{path}: dataset {key!r}{field} is empty (a null dataspace, no shape)")
            try:
                out[key] = np.asarray(f[key][()])
            except Exception as exc:  # noqa: BLE001 - a chunk cut off by a truncated copy
                raise DataError(f"{path}: cannot read dataset {key!r} ({first_line(exc)})") from None
        return out


def _h5_get(f: Any, key: str, getlink: bool = False) -> Any:
    """``f[key]`` (or its link), following soft links; None when missing, dangling or unreadable."""
    try:
        return f.get(key, getlink=getlink)
    except Exception:  # noqa: BLE001 - a bad path, an external file that cannot be opened
        return None


def _h5_missing(
    f: Any, path: Path, key: str, available: Sequence[str], fields: Mapping[str, str]
) -> DataError:
    """Why HDF5 ``key`` cannot be read as a dataset: a dangling link, a group, or no such name."""
    import h5py

    field = f" ({fields[key]})" if key in fields else ""
    link = _h5_get(f, key, getlink=True)
    if isinstance(link, h5py.SoftLink):
        return DataError(
            f"{path}: {key!r}{field} is a soft link to {short(link.path)!r}, an object the file does "
            f"not hold (a dangling link); the file's datasets: {listing(available)}"
        )
    if isinstance(link, h5py.ExternalLink):
        return DataError(
            f"{path}: {key!r}{field} is a link to {short(link.path)!r} in another file "
            f"{short(link.filename)!r}, which cannot be read; the file's datasets: {listing(available)}"
        )
    if isinstance(_h5_get(f, key), h5py.Group):
        return DataError(
            f"{path}: {key!r}{field} is a group, not a dataset; the file's datasets: {listing(available)}"
        )
    return _missing(path, key, available, "dataset", fields)


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
            read = t.arrays(keys, library="np")
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
            raise DataError(f"{path}: column {key!r} is not numeric (dtype {column.dtype})")
        out[key] = column.to_numpy()
    return out
