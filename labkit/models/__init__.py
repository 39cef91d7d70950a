"""Plain ``torch.nn.Module`` models; no Lightning, no tracking.

Every model takes ``in_shape`` (the shape of one sample) and ``out_features`` first, then its
own options; the set models (``DeepSets``, ``SetTransformer``) also ``input_shapes``, the shape of
each named input (jet features and constituents), and take a dict of tensors. The options are
the fields of its spec (e.g. :class:`labkit.config.MLPSpec`). torch is imported only
when a model class is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_exports

__all__, _lazy_getattr = lazy_exports(
    __name__,
    {
        "labkit.models._autoencoder": ("Autoencoder",),
        "labkit.models._cnn": ("SmallCNN",),
        "labkit.models._cvae": ("ConditionalVAE",),
        "labkit.models._two_stage": ("TwoStageShowerModel", "TwoStageTerms"),
        "labkit.models._mlp": ("MLP",),
        "labkit.models._sets": ("DeepSets", "SetTransformer"),
        "labkit.models._unet": ("UNet",),
    },
)

if TYPE_CHECKING:  # the same names for type checkers; test_public_surface checks they agree
    from labkit.models._autoencoder import Autoencoder as Autoencoder
    from labkit.models._cnn import SmallCNN as SmallCNN
    from labkit.models._cvae import ConditionalVAE as ConditionalVAE
    from labkit.models._mlp import MLP as MLP
    from labkit.models._sets import DeepSets as DeepSets
    from labkit.models._sets import SetTransformer as SetTransformer
    from labkit.models._two_stage import TwoStageShowerModel as TwoStageShowerModel
    from labkit.models._two_stage import TwoStageTerms as TwoStageTerms
    from labkit.models._unet import UNet as UNet
else:
    __getattr__ = _lazy_getattr
