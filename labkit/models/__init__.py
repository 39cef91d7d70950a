"""Plain ``torch.nn.Module`` models; no Lightning, no tracking.

Every model takes ``in_shape`` (the shape of one sample) and ``out_features`` first, then its
own options (the fields of its spec, e.g. :class:`labkit.config.MLPSpec`). torch is imported only
when a model class is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_getattr

__all__ = ["MLP", "Autoencoder", "ConditionalVAE", "SmallCNN", "UNet"]

if TYPE_CHECKING:
    from labkit.models._autoencoder import Autoencoder
    from labkit.models._cnn import SmallCNN
    from labkit.models._cvae import ConditionalVAE
    from labkit.models._mlp import MLP
    from labkit.models._unet import UNet

_LAZY = {
    "Autoencoder": "labkit.models._autoencoder",
    "ConditionalVAE": "labkit.models._cvae",
    "MLP": "labkit.models._mlp",
    "SmallCNN": "labkit.models._cnn",
    "UNet": "labkit.models._unet",
}

__getattr__ = lazy_getattr(__name__, _LAZY)
