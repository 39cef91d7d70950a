"""Lightning DataModules: bundled datasets, event files (HDF5, ROOT, ``.npz``, Parquet/CSV) and
events from labkit's simulators.

Importing this package is cheap; the modules holding DataModules import Lightning and are
loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_exports

__all__, _lazy_getattr = lazy_exports(
    __name__,
    {
        "labkit.data._arrays": ("ArrayDataModule", "FileDataModule"),
        "labkit.data._base": ("ArraySplitDataModule", "DataInfo"),
        "labkit.data._check": ("DataSummary", "check_data"),
        "labkit.data._digits": ("DigitsDataModule",),
        "labkit.data._files": ("FORMATS", "detect_format"),
        "labkit.data._inputs": ("scale_inputs",),
        "labkit.data._simulated": ("SimulatedDataModule",),
        "labkit.data._staging": ("default_stage_dir", "stage_files", "unstage"),
    },
)

if TYPE_CHECKING:  # the same names for type checkers; test_public_surface checks they agree
    from labkit.data._arrays import ArrayDataModule as ArrayDataModule
    from labkit.data._arrays import FileDataModule as FileDataModule
    from labkit.data._base import ArraySplitDataModule as ArraySplitDataModule
    from labkit.data._base import DataInfo as DataInfo
    from labkit.data._check import DataSummary as DataSummary
    from labkit.data._check import check_data as check_data
    from labkit.data._digits import DigitsDataModule as DigitsDataModule
    from labkit.data._files import FORMATS as FORMATS
    from labkit.data._files import detect_format as detect_format
    from labkit.data._inputs import scale_inputs as scale_inputs
    from labkit.data._simulated import SimulatedDataModule as SimulatedDataModule
    from labkit.data._staging import default_stage_dir as default_stage_dir
    from labkit.data._staging import stage_files as stage_files
    from labkit.data._staging import unstage as unstage
else:
    __getattr__ = _lazy_getattr
