"""HDF5 reading (h5py and numpy only): plain datasets, fields of compound datasets, constituents.

A key names a dataset (``jets``, ``train/jets``) or one field of a compound dataset
(``jets.pt``, ``train/jets.pt``). A compound dataset named alone as the input expands to its
numeric fields (:func:`expand_compound`). Constituents (tracks, particles) are a compound
dataset of shape (N, M) read as an (N, M, F) float32 array and an (N, M) bool mask
(:func:`read_constituents`). ``rows`` reads only those events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labkit.data._files import first_line, listing, short, suggest
from labkit.errors import DataError

__all__ = [
    "compound_fields",
    "expand_compound",
    "hdf5_event_nbytes",
    "hdf5_rows",
    "read_constituents",
    "read_hdf5",
]


def _datasets(f: Any) -> list[str]:
    import h5py

    found: list[str] = []
    f.visit(lambda name: found.append(name) if isinstance(f.get(name), h5py.Dataset) else None)
    return found


def _get(f: Any, key: str, getlink: bool = False) -> Any:
    """``f[key]`` (or its link), following soft links; None when missing, dangling or unreadable."""
    try:
        return f.get(key, getlink=getlink)
    except Exception:  # noqa: BLE001 - a bad path, an external file that cannot be opened
        return None


def compound_fields(dset: Any) -> tuple[str, ...]:
    """The field names of a compound dataset (empty for a plain one)."""
    names = getattr(dset, "dtype", np.dtype(float)).names
    return tuple(names or ())


def _role(key: str, fields: Mapping[str, str]) -> str:
    return f" ({fields[key]})" if key in fields else ""


def _candidates(f: Any, available: Sequence[str]) -> list[str]:
    """Every name a key may use: datasets, and ``dataset.field`` for compound datasets."""
    out = list(available)
    for name in available[:1000]:
        out += [f"{name}.{field}" for field in compound_fields(f.get(name))]
    return out


def resolve(f: Any, path: Path, key: str, fields: Mapping[str, str]) -> tuple[str, str | None]:
    """(dataset, field or None) that ``key`` names, else :class:`DataError` saying why not."""
    import h5py

    if isinstance(_get(f, key), h5py.Dataset):
        return key, None
    for i in [i for i, c in enumerate(key) if c == "."][::-1]:  # a field name after the last dot first
        name, field = key[:i], key[i + 1 :]
        dset = _get(f, name)
        if isinstance(dset, h5py.Dataset) and compound_fields(dset):
            names = compound_fields(dset)
            if field in names:
                return name, field
            raise DataError(
                f"{path}: compound dataset {name!r} has no field {field!r}{_role(key, fields)}"
                f"{suggest(field, names)}; its fields: {listing(names)}"
            )
    head, _, tail = key.rpartition("/")
    dset = _get(f, head) if head else None
    if isinstance(dset, h5py.Dataset) and tail in compound_fields(dset):
        raise DataError(
            f"{path}: {key!r}{_role(key, fields)} names field {tail!r} of the compound dataset "
            f"{head!r}; write it {head}.{tail} (a dot between dataset and field)"
        )
    raise _missing(f, path, key, _datasets(f), fields)


def _missing(f: Any, path: Path, key: str, available: Sequence[str], fields: Mapping[str, str]) -> DataError:
    """Why HDF5 ``key`` cannot be read as a dataset: a dangling link, a group, or no such name."""
    import h5py

    field = _role(key, fields)
    link = _get(f, key, getlink=True)
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
    if isinstance(_get(f, key), h5py.Group):
        return DataError(
            f"{path}: {key!r}{field} is a group, not a dataset; the file's datasets: {listing(available)}"
        )
    compound = [name for name in available[:1000] if compound_fields(f.get(name))]
    hint = (
        f" (name a field of a compound dataset as dataset.field, e.g. {compound[0]}."
        f"{compound_fields(f.get(compound[0]))[0]})"
        if compound
        else ""
    )
    return DataError(
        f"{path}: no dataset {key!r}{field}{suggest(key, _candidates(f, available))}; "
        f"the file holds: {listing(available)}{hint}"
    )


def read_hdf5(
    path: Path, keys: list[str], fields: Mapping[str, str], rows: slice | None = None, **_: Any
) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (datasets or ``dataset.field``), only ``rows`` when given; the fields of
    one compound dataset are read together."""
    import h5py

    with h5py.File(path, "r") as f:
        plan: dict[str, list[tuple[str, str | None]]] = {}
        for key in keys:
            name, field = resolve(f, path, key, fields)
            plan.setdefault(name, []).append((key, field))
        out: dict[str, np.ndarray] = {}
        for name, wanted in plan.items():
            dset = f[name]
            if dset.shape is None:  # an HDF5 null dataspace: no values at all
                key = wanted[0][0]
                raise DataError(
                    f"{path}: dataset {key!r}{_role(key, fields)} is empty (a null dataspace, no shape)"
                )
            picked = [fl for _, fl in wanted if fl is not None]
            whole = any(fl is None for _, fl in wanted)
            selection: Any = () if dset.ndim == 0 or rows is None else rows
            source = dset if whole or not picked else dset.fields(list(dict.fromkeys(picked)))
            try:
                data = np.asarray(source[selection])
            except Exception as exc:  # noqa: BLE001 - a chunk cut off by a truncated copy
                raise DataError(f"{path}: cannot read dataset {name!r} ({first_line(exc)})") from None
            for key, fl in wanted:
                out[key] = data if fl is None else np.ascontiguousarray(data[fl])
        return out


def expand_compound(
    path: Path, inputs: Sequence[str], exclude: Sequence[str], group: str | None = None
) -> list[str]:
    """``inputs`` with each compound dataset named alone replaced by ``dataset.field`` for each of
    its numeric fields, in order, except the keys in ``exclude`` (targets, weights, spectators)."""
    import h5py

    out: list[str] = []
    with h5py.File(path, "r") as f:
        for key in inputs:
            dset = _get(f, f"{group}/{key}" if group else key)
            names = compound_fields(dset) if isinstance(dset, h5py.Dataset) else ()
            if not names:
                out.append(key)
                continue
            kept = [
                f"{key}.{n}"
                for n in names
                if f"{key}.{n}" not in exclude
                and dset.dtype[n].shape == ()
                and np.issubdtype(dset.dtype[n], np.number)
            ]
            if not kept:
                raise DataError(
                    f"{path}: data.inputs: compound dataset {key!r} has no numeric field left to use "
                    f"(its fields: {listing(names)})"
                )
            out += kept
    return out


def hdf5_rows(path: Path, key: str, fields: Mapping[str, str] | None = None) -> int:
    """How many events (rows) dataset or field ``key`` holds, without reading it."""
    import h5py

    with h5py.File(path, "r") as f:
        name, _ = resolve(f, path, key, fields or {})
        shape = f[name].shape
        return int(shape[0]) if shape else 1


def hdf5_event_nbytes(path: Path, keys: Sequence[str], fields: Mapping[str, str] | None = None) -> int:
    """Bytes one event of ``keys`` takes in memory (as stored), without reading data."""
    import h5py

    total = 0
    with h5py.File(path, "r") as f:
        for key in keys:
            name, field = resolve(f, path, key, fields or {})
            dset = f[name]
            dtype = dset.dtype if field is None else dset.dtype[field]
            total += dtype.itemsize * int(np.prod((dset.shape or (1,))[1:], dtype=np.int64))
    return total


def read_constituents(
    path: Path,
    name: str,
    spec: Mapping[str, Any],
    rows: slice | None = None,
    group: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Constituent set ``name`` (``data.constituents.<name>``: dataset, fields, valid, max) as
    features (N, M, F) float32 and a mask (N, M) bool (True: a real entry)."""
    import h5py

    field = f"data.constituents.{name}"
    dataset = str(spec["dataset"])
    wanted = [str(x) for x in spec["fields"]]
    valid, most = spec.get("valid"), spec.get("max")
    key = f"{group}/{dataset}" if group else dataset
    with h5py.File(path, "r") as f:
        dset = _get(f, key)
        if not isinstance(dset, h5py.Dataset):
            available = _datasets(f)
            raise DataError(
                f"{path}: no dataset {key!r} ({field}.dataset){suggest(key, available)}; "
                f"the file holds: {listing(available)}"
            )
        names = compound_fields(dset)
        if not names or dset.ndim != 2:
            raise DataError(
                f"{path}: dataset {key!r} ({field}.dataset) has shape {dset.shape} and dtype "
                f"{short(str(dset.dtype))}; constituents are read from a compound HDF5 dataset of shape "
                "(events, entries) with one named field per feature (ROOT/Parquet jagged branches: not yet)"
            )
        for fl, where in [(x, "fields") for x in wanted] + ([(valid, "valid")] if valid else []):
            if fl not in names:
                raise DataError(
                    f"{path}: compound dataset {key!r} has no field {fl!r} ({field}.{where})"
                    f"{suggest(fl, names)}; its fields: {listing(names)}"
                )
            if not (np.issubdtype(dset.dtype[fl], np.number) or dset.dtype[fl] == np.bool_):
                raise DataError(
                    f"{path}: field {fl!r} of {key!r} ({field}.{where}) holds {dset.dtype[fl]}, not numbers"
                )
        columns = slice(None, most)
        selection: Any = (rows if rows is not None else slice(None), columns)
        try:
            data = dset.fields(list(dict.fromkeys(wanted + ([valid] if valid else []))))[selection]
        except Exception as exc:  # noqa: BLE001 - a chunk cut off by a truncated copy
            raise DataError(f"{path}: cannot read dataset {key!r} ({first_line(exc)})") from None
    features = np.stack([np.asarray(data[fl], dtype=np.float32) for fl in wanted], axis=-1)
    mask = np.asarray(data[valid]).astype(bool) if valid else np.ones(data.shape, dtype=bool)
    return features, mask
