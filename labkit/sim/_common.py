"""Argument checks and HDF5 helpers shared by the simulators (numpy only; h5py on write)."""

from __future__ import annotations

import contextlib
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from labkit.errors import ConfigError, DataError

__all__ = [
    "MAX_EVENTS",
    "SEED_LIMIT",
    "PathLike",
    "attr_value",
    "check_choice",
    "check_count",
    "check_edges",
    "check_number",
    "check_output",
    "check_range",
    "check_seed",
    "write_hdf5",
]

PathLike = str | os.PathLike[str]


#: the most events one simulation may ask for, whatever their size (memory is checked too)
MAX_EVENTS = 10**9
#: seeds are below 2**32, as the experiment's seed (the file attributes hold them as integers)
SEED_LIMIT = 2**32


def check_count(name: str, value: object, *, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer (not a bool) ``>= minimum`` (and ``<= maximum``), else :class:`ConfigError` naming
    ``name``; ``n`` is at most :data:`MAX_EVENTS` unless another maximum is given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if maximum is None and name == "n":
        maximum = MAX_EVENTS
    if maximum is not None and int(value) > maximum:
        raise ConfigError(f"{name} must be an integer <= {maximum:_}, got {value!r}")
    return int(value)


def check_seed(seed: object) -> int:
    """The seed of ``numpy.random.default_rng``: a non-negative integer below 2**32."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < SEED_LIMIT:
        raise ConfigError(f"seed must be a non-negative integer below 2**32 ({SEED_LIMIT}), got {seed!r}")
    return int(seed)


def check_output(path: PathLike, *, force: bool = False) -> Path:
    """``path`` as the HDF5 file to write, checked before any events are generated: not a
    directory, not an existing file unless ``force``, in a directory that exists (or can be
    made) and is writable; else :class:`DataError` naming the path."""
    target = Path(path).expanduser()
    try:
        if target.is_dir():
            raise DataError(
                f"{target} is a directory; give the HDF5 file to write, e.g. {target / 'events.h5'}"
            )
        if target.exists() and not force:
            raise DataError(f"{target} exists; choose another file or overwrite it (--force)")
        folder = target.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent  # the deepest directory that exists: the rest is created
        if not folder.is_dir():
            raise DataError(f"cannot write {target}: {folder} is not a directory")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise DataError(f"cannot write {target}: no permission to write in {folder}")
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long, a folder without access
        raise DataError(f"cannot write {str(target)!r} ({_reason(exc)})") from None
    return target


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__


def check_number(
    name: str,
    value: object,
    *,
    minimum: float | None = None,
    strict: bool = False,
    allow_inf: bool = False,
) -> float:
    """A real number (``>= minimum``, or ``> minimum`` when ``strict``), else :class:`ConfigError`."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    number = float(value) if ok else math.nan  # type: ignore[arg-type]
    if not ok or math.isnan(number) or (math.isinf(number) and not allow_inf):
        raise ConfigError(f"{name} must be a {'' if allow_inf else 'finite '}number, got {value!r}")
    if minimum is not None and (number <= minimum if strict else number < minimum):
        raise ConfigError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return number


def check_range(name: str, value: object, *, minimum: float | None = None) -> tuple[float, float]:
    """A pair ``(low, high)`` of finite numbers with ``minimum <= low <= high``."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(f"{name} must be a pair (low, high), got {value!r}")
    low = check_number(f"{name}[0]", value[0])
    high = check_number(f"{name}[1]", value[1])
    if low > high:
        raise ConfigError(f"{name} must have low <= high, got {value!r}")
    if minimum is not None and low < minimum:
        raise ConfigError(f"{name} must lie above {minimum:g}, got {value!r}")
    return low, high


def check_edges(name: str, value: object, *, minimum: float = 0.0) -> np.ndarray:
    """At least two finite, strictly increasing bin edges, all ``>= minimum``, as float64."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise ConfigError(f"{name} must be a sequence of bin edges, got {value!r}")
    try:
        edges = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a sequence of numbers, got {value!r}") from None
    if edges.ndim != 1 or edges.size < 2:
        raise ConfigError(f"{name} must hold at least two bin edges, got {value!r}")
    if not np.all(np.isfinite(edges)) or not np.all(np.diff(edges) > 0) or edges[0] < minimum:
        raise ConfigError(
            f"{name} must be finite, strictly increasing and >= {minimum:g}, got {edges.tolist()!r}"
        )
    return edges


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """One of ``choices``, else :class:`ConfigError` listing them."""
    if not isinstance(value, str) or value not in choices:
        from labkit.errors import did_you_mean

        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        valid = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{name} must be one of {valid}, got {value!r}{hint}")
    return value


def attr_value(value: object) -> object:
    """An option value as an HDF5 attribute: tuples become float64 arrays, the rest is unchanged."""
    return np.asarray(value, dtype=np.float64) if isinstance(value, tuple) else value


def write_hdf5(
    path: PathLike,
    datasets: Mapping[str, np.ndarray],
    attrs: Mapping[str, object],
    *,
    compress: Sequence[str] = (),
    dataset_attrs: Mapping[str, Mapping[str, object]] | None = None,
) -> Path:
    """Write ``datasets`` and file attributes ``attrs`` to ``path`` (replaced atomically).

    The file is written next to ``path`` under a temporary name and renamed when complete, so a
    crash never leaves a half-written file under the final name. Datasets named in ``compress``
    are stored with gzip (level 4) and the shuffle filter; every reader built on the HDF5 library
    decodes them transparently. ``dataset_attrs`` gives attributes of single datasets (e.g. the
    ``columns`` of a table, which labkit's data modules read as the input names).
    """
    import h5py

    target = Path(path).expanduser()
    if target.is_dir():
        raise DataError(f"cannot write {target}: it is a directory; give the HDF5 file to write")
    partial = target.with_name(f".{target.name}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(partial, "w") as f:
            for key, array in datasets.items():
                if key in compress and array.size:
                    chunks = (min(len(array), max(1, 2**20 // max(1, array[0].nbytes))), *array.shape[1:])
                    f.create_dataset(
                        key, data=array, chunks=chunks, compression="gzip", compression_opts=4, shuffle=True
                    )
                else:
                    f.create_dataset(key, data=array)
                for name, value in (dataset_attrs or {}).get(key, {}).items():
                    f[key].attrs[name] = value
            for key, value in attrs.items():
                f.attrs[key] = value
        os.replace(partial, target)
    except OSError as exc:  # no such directory, no permission, the disk full
        raise DataError(f"cannot write {target} ({_reason(exc)})") from None
    finally:
        with contextlib.suppress(OSError):  # e.g. a directory without write permission: nothing there
            partial.unlink(missing_ok=True)
    return target
