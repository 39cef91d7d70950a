from __future__ import annotations

import numpy as np

from labkit.data._base import ArraySplitDataModule
from labkit.errors import DataError


class DigitsDataModule(ArraySplitDataModule):
    """scikit-learn's handwritten digits (shipped in its wheel; nothing is downloaded).

    1797 grey-scale images of 8×8 pixels, values scaled from 0..16 to 0..1, shape ``(1, 8, 8)``.
    """

    source = "digits (scikit-learn)"

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import load_digits

        if self.target_kind != "labels":
            raise DataError("data: digits holds class labels (0-9): use it with task: classification")
        digits = load_digits()
        return (digits.images[:, None, :, :] / 16.0).astype(np.float32), digits.target.astype(np.int64)
