"""Columns read from a file made into events (numpy only, no torch): inputs side by side, targets,
weights, constituent sets, string labels mapped through ``data.labels``, NaN/inf handled by
``data.nan``. The DataModules and ``labkit check --data`` share it, so both say the same."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np

from labkit.data._files import listing
from labkit.errors import DataError

__all__ = [
    "SPLITS",
    "ConstituentSet",
    "Events",
    "assemble",
    "concat_events",
    "fields_of",
    "keys_of",
    "nan_policy",
]

#: codes of :attr:`Events.split` (the same as ``labkit.data._base.SPLIT_CODES``)
SPLITS = {"train": 0, "val": 1, "test": 2}

logger = logging.getLogger("labkit.data")


class ConstituentSet(NamedTuple):
    """One constituent set of every event: features (N, M, F) float32, mask (N, M) bool."""

    features: np.ndarray
    valid: np.ndarray
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Events:
    """The fields of ``labkit.data._base.Arrays``, made without torch (``Arrays(**events.fields())``)."""

    x: np.ndarray | Mapping[str, np.ndarray]
    y: np.ndarray
    w: np.ndarray | None = None
    target_names: tuple[str, ...] = ()
    labels: Mapping[int, str] = field(default_factory=dict)
    source: str = "data"
    input_names: tuple[str, ...] = ()
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)
    split: np.ndarray | None = None
    constituents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __len__(self) -> int:
        return len(self.y)


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
    for name, keys in (("data.inputs", inputs), ("data.targets", targets)):
        for key in [keys] if isinstance(keys, str) else keys:
            found.setdefault(key, name)
    if weights:
        found.setdefault(weights, "data.weights")
    for key in spectators:
        found.setdefault(key, "data.spectators")
    return found


def nan_policy(
    nan: str | Mapping[str, str], inputs: Sequence[str], sets: Sequence[str] = ()
) -> dict[str, str]:
    """``data.nan`` checked: the policy of every input key and constituent set. A key of the
    mapping names an input (``jets`` covers the fields ``jets.pt``... it expands to) or a set."""
    if isinstance(nan, str):
        return {k: nan for k in [*inputs, *sets]}
    for key, policy in nan.items():
        if policy not in ("error", "drop", "fill"):
            raise DataError(f"data.nan.{key}: {policy!r} is not a policy; choose error, drop or fill")
        if key not in sets and not any(k == key or k.startswith(key + ".") for k in inputs):
            named = listing([*inputs, *sets])
            raise DataError(
                f"data.nan: {key!r} is not an input; name a key of data.inputs or data.constituents ({named})"
            )
    out = {}
    for key in inputs:
        base = key.rpartition(".")[0]
        out[key] = nan.get(key, nan.get(base, "error") if base else "error")
    return out | {s: nan.get(s, "error") for s in sets}


def _texts(a: np.ndarray) -> bool:
    if a.dtype.kind in "SU":
        return True
    return a.dtype.kind == "O" and a.size > 0 and isinstance(a.flat[0], (str, bytes))


def _label_codes(a: np.ndarray, key: str, role: str, labels: Mapping[int, str], where: str) -> np.ndarray:
    """String class labels (``b``, ``light``) as the numbers ``data.labels`` gives them."""
    if a.dtype.kind == "O":
        a = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in a.ravel()]).reshape(a.shape)
    unique, inverse = np.unique(a, return_inverse=True)
    names = [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in unique.tolist()]
    if not labels:
        example = ", ".join(f"{i}: {n}" for i, n in enumerate(names[:3]))
        raise DataError(
            f"{where}: {key!r} ({role}) holds strings ({listing(names)}), not class numbers; give "
            f"each a number with data.labels, e.g. labels: {{{example}}}"
        )
    number = {name: value for value, name in labels.items()}
    unknown = [n for n in names if n not in number]
    if unknown:
        raise DataError(
            f"{where}: {key!r} ({role}) holds {listing(unknown)}, which data.labels does not name "
            f"(it names: {listing(list(number))})"
        )
    return np.array([number[n] for n in names], dtype=np.int64)[inverse.reshape(a.shape)]


def _nonfinite_rows(a: np.ndarray) -> np.ndarray:
    if not np.issubdtype(a.dtype, np.inexact):
        return np.zeros(len(a), dtype=bool)
    bad = ~np.isfinite(a)
    return np.asarray(bad.reshape(len(a), -1).any(axis=1) if a.ndim > 1 else bad)


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
    *,
    sets: Mapping[str, ConstituentSet] | None = None,
    nan: str | Mapping[str, str] = "error",
    fill_value: float = 0.0,
    split: np.ndarray | None = None,
    offset: int = 0,
) -> Events:
    """Events from named columns: one input key of any shape (N, ...), or several (N,) / (N, k)
    keys side by side; one target key, or several (N,) keys as columns of (N, T). ``extras`` and
    the ``spectators`` (one number per event; NaN allowed: the model never sees them) are kept
    as they are in :attr:`Events.extras`. With constituent ``sets`` the inputs become named
    arrays: ``features`` and, per set ``g``, ``g`` and ``g_valid``. ``nan`` (``data.nan``) says
    what NaN/inf in an input does; ``offset`` is the file's first event here (for messages)."""
    in_keys = [inputs] if isinstance(inputs, str) else list(inputs)
    out_keys = [targets] if isinstance(targets, str) else list(targets)
    sets = dict(sets or {})
    fields = dict(fields or {})
    if not in_keys:
        raise DataError(f"{where}: data.inputs names no key; name the array(s) holding the inputs")
    if not out_keys:
        raise DataError(f"{where}: data.targets names no key; name the array(s) holding the targets")
    found = dict(found)
    for key in out_keys:
        if _texts(found[key]):
            found[key] = _label_codes(found[key], key, fields.get(key, "data.targets"), labels or {}, where)
    roles = [("data.inputs", k) for k in in_keys] + [("data.targets", k) for k in out_keys]
    roles += [("data.weights", weights)] if weights else []
    roles += [("the task", k) for k in extras]
    seen = roles + [("data.spectators", k) for k in spectators]
    for role, key in seen:
        a = found[key]
        if a.ndim == 0:
            raise DataError(
                f"{where}: {key!r} ({fields.get(key, role)}) is a single value of shape {a.shape}; it must "
                "hold one row per event, shape (N, ...)"
            )
    n = len(found[in_keys[0]])
    if n == 0:
        raise DataError(f"{where}: {in_keys[0]!r} holds 0 events")
    policy = nan_policy(nan, in_keys, list(sets))
    drop = np.zeros(n, dtype=bool)
    for role, key in seen:
        name = fields.get(key, role)
        a = found[key]
        if len(a) != n:
            raise DataError(f"{where}: {key!r} ({name}) has shape {a.shape}, {in_keys[0]!r} has {n} rows")
        if a.dtype.names:
            shown = ", ".join(f"{key}.{f}" for f in a.dtype.names[:8])
            raise DataError(
                f"{where}: {key!r} ({name}) is a compound dataset with fields; name the field(s) to "
                f"use: {shown}"
            )
        number = np.issubdtype(a.dtype, np.number) or (role == "data.spectators" and a.dtype == np.bool_)
        if not number or np.issubdtype(a.dtype, np.complexfloating):
            raise DataError(f"{where}: {key!r} ({name}) must hold real numbers, not {a.dtype}")
        if role == "data.spectators":
            if a.ndim != 1 and a.shape[1:] != (1,):
                raise DataError(
                    f"{where}: {key!r} ({name}) has shape {a.shape}; a spectator is one number per "
                    "event, shape (N,)"
                )
            continue
        bad = _nonfinite_rows(a)
        if not bad.any():
            continue
        how = policy.get(key, "error") if role == "data.inputs" else "error"
        if how == "drop":
            drop |= bad
        elif how == "fill":
            found[key] = np.where(np.isfinite(a), a, fill_value)
        else:
            hint = "; set data.nan: drop or fill to clean it" if role == "data.inputs" else ""
            raise DataError(
                f"{where}: {key!r} ({name}) holds {int(np.sum(~np.isfinite(a)))} NaN/inf values "
                f"(first in event {offset + int(np.argmax(bad))}){hint}"
            )
    kept_sets = {}
    for g, s in sets.items():
        if s.features.shape[:1] != (n,) or s.valid.shape != s.features.shape[:2]:
            raise DataError(
                f"{where}: data.constituents.{g} has shape {s.features.shape} with mask {s.valid.shape}; "
                f"the inputs have {n} events"
            )
        features = np.where(s.valid[..., None], s.features, np.float32(0.0))  # padding: zeros
        bad = _nonfinite_rows(features)
        if bad.any():
            if policy[g] == "drop":
                drop |= bad
            elif policy[g] == "fill":
                features = np.where(np.isfinite(features), features, np.float32(fill_value))
            else:
                raise DataError(
                    f"{where}: data.constituents.{g} holds NaN/inf in valid entries of {int(bad.sum())} "
                    f"events (first in event {offset + int(np.argmax(bad))}); set data.nan: drop or fill"
                )
        kept_sets[g] = ConstituentSet(features.astype(np.float32, copy=False), s.valid, s.fields)
    events = _build(found, in_keys, out_keys, weights, where, labels, extras, input_names, spectators, n)
    if kept_sets:
        x = {"features": np.asarray(events.x).reshape(n, -1)}
        for g, s in kept_sets.items():
            x |= {g: s.features, f"{g}_valid": s.valid}
        events = Events(
            **(events.fields() | {"x": x, "constituents": {g: s.fields for g, s in kept_sets.items()}})
        )
    if split is not None:
        events = Events(**(events.fields() | {"split": np.asarray(split, dtype=np.int8)}))
    if drop.any():
        logger.warning(
            "%s: dropped %d of %d events with NaN/inf in an input (data.nan: drop)",
            where,
            int(drop.sum()),
            n,
        )
        if drop.all():
            raise DataError(f"{where}: every event holds NaN/inf in an input; data.nan: drop leaves none")
        events = take(events, ~drop)
    return events


def _build(
    found: Mapping[str, np.ndarray],
    in_keys: list[str],
    out_keys: list[str],
    weights: str | None,
    where: str,
    labels: Mapping[int, str] | None,
    extras: Sequence[str],
    input_names: Sequence[str],
    spectators: Sequence[str],
    n: int,
) -> Events:
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
    return Events(
        x=np.asarray(x),
        y=np.asarray(y),
        w=w,
        target_names=names,
        labels=dict(labels or {}),
        source=where,
        input_names=names_in,
        extras={k: found[k] for k in extras} | {k: found[k].reshape(n) for k in spectators},
    )


def take(events: Events, rows: np.ndarray) -> Events:
    """The events ``rows`` (a boolean mask or indices) of ``events``."""
    x = events.x
    return Events(
        **(
            events.fields()
            | {
                "x": {k: v[rows] for k, v in x.items()} if isinstance(x, Mapping) else x[rows],
                "y": events.y[rows],
                "w": None if events.w is None else events.w[rows],
                "extras": {k: v[rows] for k, v in events.extras.items()},
                "split": None if events.split is None else events.split[rows],
            }
        )
    )


def concat_events(parts: Sequence[Events], source: str) -> Events:
    """Events of several files (or splits) one after another, as one."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]

    def cat(arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(arrays, axis=0)

    if isinstance(first.x, Mapping):
        x: np.ndarray | dict[str, np.ndarray] = {
            k: cat([p.x[k] for p in parts if isinstance(p.x, Mapping)]) for k in first.x
        }
    else:
        x = cat([np.asarray(p.x) for p in parts])
    splits = [p.split for p in parts]
    return Events(
        **(
            first.fields()
            | {
                "x": x,
                "y": cat([p.y for p in parts]),
                "w": None if first.w is None else cat([p.w for p in parts if p.w is not None]),
                "extras": {k: cat([np.asarray(p.extras[k]) for p in parts]) for k in first.extras},
                "split": None
                if any(s is None for s in splits)
                else cat([s for s in splits if s is not None]),
                "source": source,
            }
        )
    )
