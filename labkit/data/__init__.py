"""Lightning DataModules: bundled datasets and array files (``.npz``, HDF5).

Importing this package is cheap; the modules holding DataModules import Lightning and are
loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_getattr

__all__ = ["ArrayDataModule", "ArraySplitDataModule", "DataInfo", "DigitsDataModule"]

if TYPE_CHECKING:
    from labkit.data._arrays import ArrayDataModule
    from labkit.data._base import ArraySplitDataModule, DataInfo
    from labkit.data._digits import DigitsDataModule

_LAZY = {
    "ArrayDataModule": "labkit.data._arrays",
    "ArraySplitDataModule": "labkit.data._base",
    "DataInfo": "labkit.data._base",
    "DigitsDataModule": "labkit.data._digits",
}

__getattr__ = lazy_getattr(__name__, _LAZY)
