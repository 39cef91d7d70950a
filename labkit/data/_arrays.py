"""Data from one file: the experiment names the inputs, the targets and (optionally) the weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from labkit.data._base import Arrays, ArraySplitDataModule
from labkit.data._files import column_names, expand_inputs, read_arrays
from labkit.errors import DataError

__all__ = ["ArrayDataModule", "FileDataModule", "assemble", "fields_of", "keys_of"]


def keys_of(inputs: str | Sequence[str], targets: str | Sequence[str], weights: str | None) -> list[str]:
    """Every key an experiment names: its inputs, its targets and its weights."""
    keys = [inputs] if isinstance(inputs, str) else list(inputs)
    keys += [targets] if isinstance(targets, str) else list(targets)
    return keys + ([weights] if weights else [])


def fields_of(
    inputs: str | Sequence[str],
    targets: str | Sequence[str],
    weights: str | None,
    spectators: Sequence[str] = (),
) -> dict[str, str]:
    """Each key an experiment names and the field that named it (``data.inputs``...), for messages."""
    found: dict[str, str] = {}
    for field, keys in (("data.inputs", inputs), ("data.targets", targets)):
        for key in [keys] if isinstance(keys, str) else keys:
            found.setdefault(key, field)
    if weights:
        found.setdefault(weights, "data.weights")
    for key in spectators:
        found.setdefault(key, "data.spectators")
    return found


def assemble(
    found: Mapping[str, np.ndarray],
    inputs: str | Sequence[str],
    targets: str | Sequence[str],
    weights: str | None,
    where: str,
    labels: Mapping[int, str] | None = None,
    fields: Mapping[str, str] | None = None,
    extras: Sequence[str] = (),
    input_names: Sequence[str] = (),
    spectators: Sequence[str] = (),
) -> Arrays:
    """Arrays from named columns: one input key of any shape (N, ...), or several (N,) / (N, k)
    keys side by side; one target key, or several (N,) keys as columns of (N, T). ``extras`` and
    the ``spectators`` (one number per event; NaN allowed: the model never sees them) are kept
    as they are in :attr:`Arrays.extras`."""
    in_keys = [inputs] if isinstance(inputs, str) else list(inputs)
    out_keys = [targets] if isinstance(targets, str) else list(targets)
    if not in_keys:
        raise DataError(f"{where}: data.inputs names no key; name the array(s) holding the inputs")
    if not out_keys:
        raise DataError(f"{where}: data.targets names no key; name the array(s) holding the targets")
    roles = [("data.inputs", k) for k in in_keys] + [("data.targets", k) for k in out_keys]
    roles += [("data.weights", weights)] if weights else []
    roles += [("the task", k) for k in extras]
    seen = roles + [("data.spectators", k) for k in spectators]
    for role, key in seen:
        a = found[key]
        if a.ndim == 0:
            field = (fields or {}).get(key, role)
            raise DataError(
                f"{where}: {key!r} ({field}) is a single value of shape {a.shape}; it must hold one "
                "row per event, shape (N, ...)"
            )
    n = len(found[in_keys[0]])
    if n == 0:
        raise DataError(f"{where}: {in_keys[0]!r} holds 0 events")
    for role, key in seen:
        field = (fields or {}).get(key, role)
        a = found[key]
        if len(a) != n:
            raise DataError(f"{where}: {key!r} ({field}) has shape {a.shape}, {in_keys[0]!r} has {n} rows")
        if a.dtype.names:
            shown = ", ".join(f"{key}.{n}" for n in a.dtype.names[:8])
            raise DataError(
                f"{where}: {key!r} ({field}) is a compound dataset with fields; name the field(s) to "
                f"use: {shown}"
            )
        number = np.issubdtype(a.dtype, np.number) or (role == "data.spectators" and a.dtype == np.bool_)
        if not number or np.issubdtype(a.dtype, np.complexfloating):
            raise DataError(f"{where}: {key!r} ({field}) must hold real numbers, not {a.dtype}")
        if role == "data.spectators":
            if a.ndim != 1 and a.shape[1:] != (1,):
                raise DataError(
                    f"{where}: {key!r} ({field}) has shape {a.shape}; a spectator is one number per "
                    "event, shape (N,)"
                )
            continue
        bad = ~np.isfinite(a)
        if bad.any():
            first = int(np.argwhere(bad)[0][0])
            raise DataError(
                f"{where}: {key!r} ({field}) holds {int(bad.sum())} NaN/inf values (first in event {first})"
            )
    names_in = tuple(input_names)
    if len(in_keys) == 1:
        x = found[in_keys[0]]
    else:
        names_in = ()
        parts = []
        for key in in_keys:
            a = found[key]
            if a.ndim > 2:
                raise DataError(
                    f"{where}: input {key!r} has shape {a.shape}; to combine several inputs "
                    "each must be one value (N,) or a vector (N, k) per event"
                )
            parts.append(a.reshape(n, -1).astype(np.float64))
        x = np.concatenate(parts, axis=1)
        if all(found[k].ndim == 1 for k in in_keys):
            names_in = tuple(in_keys)
    if len(out_keys) == 1:
        y = found[out_keys[0]]
        names = (out_keys[0],) if y.ndim == 1 else tuple(f"{out_keys[0]}{i}" for i in range(y.shape[1]))
    else:
        for key in out_keys:
            if found[key].ndim != 1:
                raise DataError(
                    f"{where}: target {key!r} has shape {found[key].shape}; several targets "
                    "must each be one value (N,) per event"
                )
        y = np.stack([found[k] for k in out_keys], axis=1)
        names = tuple(out_keys)
    w = found[weights].astype(np.float64) if weights else None
    if names_in and (np.asarray(x).ndim != 2 or len(names_in) != np.asarray(x).shape[1]):
        names_in = ()
    return Arrays(
        x=np.asarray(x),
        y=np.asarray(y),
        w=w,
        target_names=names,
        labels=dict(labels or {}),
        source=where,
        input_names=names_in,
        extras={k: found[k] for k in extras} | {k: found[k].reshape(n) for k in spectators},
    )


class FileDataModule(ArraySplitDataModule):
    """Events from one HDF5, ROOT, ``.npz``, Parquet or CSV file."""

    def __init__(
        self,
        *,
        path: str,
        inputs: str | Sequence[str],
        targets: str | Sequence[str],
        weights: str | None = None,
        format: str = "auto",
        tree: str | None = None,
        labels: Mapping[int, str] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.path = Path(path).expanduser()
        self.inputs, self.targets, self.weights = inputs, targets, weights
        self.format, self.tree = format, tree
        self.labels = dict(labels or {})
        self.source = str(self.path)

    def load(self) -> Arrays:
        inputs = self.inputs
        named = keys_of((), self.targets, self.weights) + list(self.spectators)
        given = [inputs] if isinstance(inputs, str) else list(inputs)
        expanded = expand_inputs(self.path, given, named, self.format)
        inputs = inputs if expanded == given else expanded
        keys = keys_of(inputs, self.targets, self.weights) + list(self.extras) + list(self.spectators)
        found = read_arrays(self.path, keys, self.format, self.tree, self.fields())
        where = str(self.path) + (f" (TTree {self.tree})" if self.tree else "")
        columns = column_names(self.path, inputs, self.format)
        return assemble(
            found,
            inputs,
            self.targets,
            self.weights,
            where,
            self.labels,
            self.fields(),
            extras=self.extras,
            input_names=columns,
            spectators=self.spectators,
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
