from __future__ import annotations

from pathlib import Path

import numpy as np

from labkit.data._base import ArraySplitDataModule
from labkit.errors import DataError

_SUFFIXES = {".npz": "npz", ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5"}


class ArrayDataModule(ArraySplitDataModule):
    """Samples and labels from one ``.npz`` or HDF5 file, under the keys the experiment names."""

    def __init__(
        self,
        *,
        path: str,
        x_key: str = "x",
        y_key: str = "y",
        format: str = "auto",
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.path = Path(path).expanduser()
        self.x_key, self.y_key = x_key, y_key
        self.format = format
        self.source = str(self.path)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.path.is_file():
            raise DataError(f"data file not found: {self.path} (set data.path)")
        fmt = self.format
        if fmt == "auto":
            fmt = _SUFFIXES.get(self.path.suffix.lower(), "")
            if not fmt:
                raise DataError(
                    f"{self.path}: cannot tell the format from the suffix {self.path.suffix!r}; "
                    f"use one of {', '.join(_SUFFIXES)} or set data.format to npz or hdf5"
                )
        return self._read_npz() if fmt == "npz" else self._read_hdf5()

    def _read_npz(self) -> tuple[np.ndarray, np.ndarray]:
        try:
            with np.load(self.path, allow_pickle=False) as f:
                return tuple(self._get(f, k, list(f.files)) for k in (self.x_key, self.y_key))  # type: ignore[return-value]
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - zipfile/ValueError/OSError: a damaged file
            raise DataError(f"{self.path}: not a readable .npz file ({exc})") from None

    def _read_hdf5(self) -> tuple[np.ndarray, np.ndarray]:
        import h5py

        try:
            with h5py.File(self.path, "r") as f:
                keys: list[str] = []
                f.visit(lambda name: keys.append(name) if isinstance(f[name], h5py.Dataset) else None)
                return tuple(self._get(f, k, keys) for k in (self.x_key, self.y_key))  # type: ignore[return-value]
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - OSError from a truncated file, broken links...
            raise DataError(f"{self.path}: not a readable HDF5 file ({exc})") from None

    def _get(self, store: object, key: str, available: list[str]) -> np.ndarray:
        if key not in available:
            from labkit.errors import did_you_mean

            field = "data.x_key" if key == self.x_key else "data.y_key"
            raise DataError(
                f"{self.path}: no dataset {key!r} ({field}){did_you_mean(key, available)}; "
                f"the file holds: {', '.join(available) or 'nothing'}"
            )
        try:
            return np.asarray(store[key][()])  # type: ignore[index]
        except Exception as exc:  # noqa: BLE001 - any read failure is a damaged file
            raise DataError(f"{self.path}: cannot read dataset {key!r} ({exc})") from None
