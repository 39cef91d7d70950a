"""Options of the registered datasets, as users write them under ``data:`` (no torch here)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, PositiveInt, model_validator

from labkit.config._base import ComponentSpec

__all__ = ["DATA_SPECS", "ArraysSpec", "DataSpec", "DigitsSpec"]


class DataSpec(ComponentSpec):
    """Options every dataset has: batching and the deterministic train/val/test split."""

    name: str
    batch_size: PositiveInt = 64
    val_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    test_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    num_workers: int = Field(default=0, ge=0, description="DataLoader worker processes")

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> DataSpec:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:g} "
                "leaves no training data; their sum must be below 1"
            )
        return self


class DigitsSpec(DataSpec):
    """scikit-learn's bundled handwritten digits: 1797 images of 8x8 pixels, 10 classes."""

    target: ClassVar[str] = "labkit.data._digits:DigitsDataModule"
    name: Literal["digits"]


class ArraysSpec(DataSpec):
    """Samples ``x`` and integer labels ``y`` from one ``.npz`` or HDF5 file."""

    target: ClassVar[str] = "labkit.data._arrays:ArrayDataModule"
    name: Literal["arrays"]
    path: str = Field(min_length=1, description="the .npz or .h5/.hdf5 file")
    x_key: str = "x"
    y_key: str = "y"
    format: Literal["auto", "npz", "hdf5"] = "auto"
    standardize: bool = Field(
        default=False, description="scale each input feature to mean 0, std 1 (fitted on train)"
    )

    def anchored(self, cwd: Path) -> ArraysSpec:
        path = Path(self.path).expanduser()
        return self.model_copy(update={"path": str(path if path.is_absolute() else (cwd / path).resolve())})


DATA_SPECS: tuple[type[ComponentSpec], ...] = (DigitsSpec, ArraysSpec)
