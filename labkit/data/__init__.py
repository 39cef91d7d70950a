"""Lightning DataModules: bundled datasets, event files (HDF5, ROOT, ``.npz``, Parquet/CSV) and
events from labkit's simulators.

Importing this package is cheap; the modules holding DataModules import Lightning and are
loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_getattr

__all__ = [
    "ArrayDataModule",
    "ArraySplitDataModule",
    "DataInfo",
    "DigitsDataModule",
    "FileDataModule",
    "SimulatedDataModule",
]

if TYPE_CHECKING:
    from labkit.data._arrays import ArrayDataModule, FileDataModule
    from labkit.data._base import ArraySplitDataModule, DataInfo
    from labkit.data._digits import DigitsDataModule
    from labkit.data._simulated import SimulatedDataModule

_LAZY = {
    "ArrayDataModule": "labkit.data._arrays",
    "ArraySplitDataModule": "labkit.data._base",
    "DataInfo": "labkit.data._base",
    "DigitsDataModule": "labkit.data._digits",
    "FileDataModule": "labkit.data._arrays",
    "SimulatedDataModule": "labkit.data._simulated",
}

__getattr__ = lazy_getattr(__name__, _LAZY)
