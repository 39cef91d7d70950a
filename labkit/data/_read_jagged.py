"""Constituents from jagged ROOT branches and Parquet list columns (uproot, awkward; no torch).

``data.constituents.<g>.dataset`` is the branch prefix: the feature ``pt`` of ``dataset: pfcand``
is the branch ``pfcand_pt`` (or ``pfcandpt``, ``pfcand.pt``), one variable-length list per
event. Each is padded (or cut) to ``max`` entries: (N, max, F) float32 and an (N, max) mask,
True for the entries the event has (and, with ``valid``, where that boolean branch is true).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labkit.data._files import first_line, listing, suggest
from labkit.errors import DataError

__all__ = ["read_jagged_constituents"]


def _branch(dataset: str, name: str, available: Sequence[str]) -> str | None:
    for candidate in (f"{dataset}_{name}", f"{dataset}{name}", f"{dataset}.{name}", f"{dataset}/{name}"):
        if candidate in available:
            return candidate
    return None


def read_jagged_constituents(
    path: Path,
    name: str,
    spec: Mapping[str, Any],
    fmt: str,
    tree: str | None = None,
    rows: slice | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Constituent set ``name`` from the jagged branches (ROOT) or list columns (Parquet) of
    ``path``: features (N, max, F) float32 and a mask (N, max) bool."""
    import awkward as ak  # type: ignore[import-untyped]

    field = f"data.constituents.{name}"
    dataset, wanted = str(spec["dataset"]), [str(x) for x in spec["fields"]]
    valid, most = spec.get("valid"), spec.get("max")
    if most is None:
        raise DataError(
            f"{path}: {field}.max: give the number of entries kept per event (e.g. max: 50); "
            "jagged branches have a different length in each event"
        )
    available = _columns(path, fmt, tree)
    names = []
    for fl, where in [(x, "fields") for x in wanted] + ([(str(valid), "valid")] if valid else []):
        found = _branch(dataset, fl, available)
        if found is None:
            close = [a for a in available if a.startswith(dataset)]
            raise DataError(
                f"{path}: no branch {dataset}_{fl} ({field}.{where}){suggest(f'{dataset}_{fl}', available)}; "
                f"branches starting with {dataset!r}: {listing(close, 'none')}"
            )
        names.append(found)
    try:
        arrays = _read(path, fmt, tree, names, rows)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file
        raise DataError(f"{path}: cannot read {listing(names)} ({field}) ({first_line(exc)})") from None
    columns = []
    counts = None
    for branch in names:
        values = arrays[branch]
        if values.ndim < 2:
            raise DataError(
                f"{path}: {branch!r} ({field}) holds one value per event, not a list; constituents "
                "are a jagged branch (a list per event) or a compound HDF5 dataset"
            )
        n = ak.num(values, axis=1)
        counts = n if counts is None else counts
        padded = ak.fill_none(ak.pad_none(values, most, axis=1, clip=True), 0)
        columns.append(np.asarray(ak.to_numpy(padded)))
    assert counts is not None
    entries = np.asarray(ak.to_numpy(counts))
    mask = np.arange(most)[None, :] < entries[:, None]
    if valid:
        mask &= columns.pop().astype(bool)
    features = np.stack([c.astype(np.float32) for c in columns], axis=-1)
    return features, mask


def _columns(path: Path, fmt: str, tree: str | None) -> list[str]:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return [str(n) for n in pq.ParquetFile(path).schema_arrow.names]
    import uproot

    from labkit.data._files import only_tree

    with uproot.open(path) as f:
        t = f[tree or only_tree(path, f)]
        return [str(k) for k in t.keys()]  # noqa: SIM118 - an uproot tree, not a dict


def _read(path: Path, fmt: str, tree: str | None, names: list[str], rows: slice | None) -> Any:
    import awkward as ak  # type: ignore[import-untyped]

    if fmt == "parquet":
        arrays = ak.from_parquet(path, columns=names)
        return arrays if rows is None else arrays[rows]
    import uproot

    from labkit.data._files import only_tree

    with uproot.open(path) as f:
        t = f[tree or only_tree(path, f)]
        start = None if rows is None else rows.start
        stop = None if rows is None else rows.stop
        return t.arrays(names, library="ak", entry_start=start, entry_stop=stop)
