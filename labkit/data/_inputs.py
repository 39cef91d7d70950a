"""Checks of the loaded inputs and the figures fitted on them (no torch): named inputs with
constituents and masks, finiteness, the standardisation moments, the data's checksum."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from labkit.errors import DataError

if TYPE_CHECKING:
    from labkit.data._base import Arrays

__all__ = ["checksum", "finite", "moments", "named_inputs", "real", "scale_inputs"]


def named_inputs(x: Mapping[str, np.ndarray], n: int, src: str) -> dict[str, np.ndarray]:
    """Named inputs checked: one row per event each, masks ``g + "_valid"`` (N, M) bool beside
    each constituent set ``g`` (N, M, F), real finite values (in constituents, only the real
    entries are checked; padding is set to 0); float32 and bool copies."""
    if not x:
        raise DataError(f"{src}: no inputs")
    out: dict[str, np.ndarray] = {}
    for name, given in x.items():
        values = np.asarray(given)
        if values.ndim < 2 or len(values) != n:
            raise DataError(
                f"{src}: input {name!r} must have shape ({n}, ...), one row per event, got {values.shape}"
            )
        if name.endswith("_valid") and name[: -len("_valid")] in x:
            if values.dtype != np.bool_ or values.ndim != 2:
                raise DataError(
                    f"{src}: mask {name!r} must be bool of shape (N, M), got {values.dtype} {values.shape}"
                )
            out[name] = values
            continue
        real(values, f"{src}: input {name!r}")
        values = values.astype(np.float32)
        valid = x.get(name + "_valid")
        if valid is not None:
            if values.ndim != 3 or np.shape(valid) != values.shape[:2]:
                raise DataError(
                    f"{src}: constituents {name!r} {values.shape} and mask {name + '_valid'!r} "
                    f"{np.shape(valid)} must have shapes (N, M, F) and (N, M)"
                )
            mask = np.asarray(valid, dtype=bool)
            finite(values[mask], f"{src}: real entries of {name!r}")
            values[~mask] = 0.0  # padding may hold anything (NaN in some files)
        else:
            finite(values, f"{src}: input {name!r}")
        out[name] = values
    return out


def real(values: np.ndarray, what: str) -> None:
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
        raise DataError(f"{what} must be real numbers, got dtype {values.dtype}")


def moments(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and divisor (the standard deviation, 1 where it is 0) of ``train`` along axis 0."""
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    return mean, np.where(std > 0, std, np.ones_like(std))


def finite(values: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{what} hold {int(bad.sum())} NaN/inf values (first at index {first})")


def checksum(a: Arrays) -> str:
    """sha256 of the arrays' bytes, shapes and dtypes: the same data gives the same checksum."""
    digest = hashlib.sha256()
    named = sorted(a.x.items()) if isinstance(a.x, Mapping) else []
    arrays = [a.x] if not named else [v for _, v in named]
    for name, _ in named:
        digest.update(name.encode())
    for given in (*arrays, a.y, a.w, a.split):
        if given is None:
            continue
        array = np.ascontiguousarray(given)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def scale_inputs(
    x: Mapping[str, np.ndarray], scalings: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Named inputs as the network sees them: ``(x - mean) / divisor`` per name with the
    ``(mean, divisor)`` of ``scalings`` (a name without one is only made float32); a constituent
    set ``g`` only over its real entries ``g_valid``, its padding 0; masks stay bool. Training
    (:class:`ArraySplitDataModule`) and ``labkit predict`` scale with this one function."""
    out: dict[str, np.ndarray] = {}
    for name, given in x.items():
        values = np.asarray(given)
        if values.dtype == np.bool_ or (name.endswith("_valid") and name[: -len("_valid")] in x):
            out[name] = values.astype(bool, copy=False)
            continue
        f = values.astype(np.float32, copy=False)
        if name in scalings:
            mean, divisor = scalings[name]
            f = (f - mean) / divisor
        valid = x.get(name + "_valid")
        out[name] = f if valid is None else np.where(np.asarray(valid, bool)[..., None], f, np.float32(0))
    return out
