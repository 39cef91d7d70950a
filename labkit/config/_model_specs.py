"""Options of the registered models, as users write them under ``model:`` (no torch here)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from labkit.config._base import ComponentSpec

__all__ = [
    "MODEL_SPECS",
    "AutoencoderSpec",
    "CNNSpec",
    "CVAESpec",
    "TwoStageSpec",
    "DeepSetsSpec",
    "MLPSpec",
    "ModelSpec",
    "SetTransformerSpec",
    "UNetSpec",
]

#: widest layer, most channels or latent dimensions (2**16: far beyond what fits in memory usefully)
MAX_WIDTH = 2**16
#: most U-Net stages: images are padded to a multiple of 2**(stages - 1), so 9 stages already
#: pad a 1x1 image to 256x256 and 21 stages to a million squared (terabytes of activations)
MAX_UNET_STAGES = 8


#: a layer's width: at least 1
Width = Annotated[int, Field(gt=0, le=MAX_WIDTH)]

Activation = Literal["relu", "gelu", "silu", "tanh", "elu", "leaky_relu"]


class ModelSpec(ComponentSpec):
    """What every model spec provides: the ``name`` users write (a ``Literal`` in each spec)."""

    #: the model reads named inputs (``data.constituents``: jet features and per-event sets)
    reads_sets: ClassVar[bool] = False
    name: str


class MLPSpec(ModelSpec):
    """Fully connected network; the input is flattened, so any sample shape works."""

    target: ClassVar[str] = "labkit.models._mlp:MLP"
    name: Literal["mlp"]
    hidden: tuple[Width, ...] = Field(default=(64, 64), description="width of each hidden layer")
    activation: Activation = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    batch_norm: bool = False


class CNNSpec(ModelSpec):
    """Small convolutional network for images ``(C, H, W)`` (or ``(H, W)``, one channel)."""

    target: ClassVar[str] = "labkit.models._cnn:SmallCNN"
    name: Literal["cnn"]
    channels: tuple[Width, ...] = Field(default=(16, 32), min_length=1)
    kernel_size: Annotated[int, Field(gt=0, le=64)] = 3
    hidden: Width = Field(default=64, description="width of the dense layer after pooling")
    activation: Activation = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    batch_norm: bool = True


class UNetSpec(ModelSpec):
    """U-Net for per-pixel outputs on images ``(C, H, W)`` (or ``(H, W)``): one encoder stage per
    entry of ``channels`` with 2×2 pooling between stages, a decoder with skip connections back to
    full size; any image size (padded to a multiple of 2^(stages − 1) and cropped back)."""

    target: ClassVar[str] = "labkit.models._unet:UNet"
    name: Literal["unet"]
    channels: tuple[Width, ...] = Field(
        default=(16, 32, 64),
        min_length=1,
        description=f"width of each stage, at most {MAX_UNET_STAGES} stages (images are padded to a "
        "multiple of 2^(stages - 1))",
    )
    activation: Activation = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    batch_norm: bool = True

    @field_validator("channels")
    @classmethod
    def _few_stages(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(value) > MAX_UNET_STAGES:
            raise ValueError(
                f"{len(value)} stages, at most {MAX_UNET_STAGES}: each stage halves the image, so "
                f"images are padded to a multiple of 2^(stages - 1) = {2 ** (len(value) - 1)} pixels a side"
            )
        return value


class AutoencoderSpec(ModelSpec):
    """Fully connected autoencoder: ``hidden`` layers down to ``latent`` and mirrored back up;
    ``variational`` makes it a VAE (Gaussian latent, KL term in the loss)."""

    target: ClassVar[str] = "labkit.models._autoencoder:Autoencoder"
    name: Literal["autoencoder"]
    hidden: tuple[Width, ...] = Field(default=(64, 32), description="width of the encoder's layers")
    latent: Width = 4
    activation: Activation = "relu"
    variational: bool = False


class CVAESpec(ModelSpec):
    """Conditional VAE for showers (non-negative cells, exact zeros below the threshold): a
    Gaussian latent, a decoder giving each cell's probability to be non-zero and a Gamma for its
    energy, and the shower's total drawn separately (``sum_constraint``). For ``task: surrogate``."""

    target: ClassVar[str] = "labkit.models._cvae:ConditionalVAE"
    name: Literal["cvae"]
    hidden: tuple[Width, ...] = Field(
        default=(512, 512),
        min_length=1,
        description="width of the encoder's layers (the decoder mirrors them)",
    )
    latent: Width = Field(default=8, description="dimension of the latent space")
    activation: Activation = "silu"
    sum_constraint: bool = Field(
        default=True, description="draw the sum of the cells separately and rescale the cells to it"
    )


class TwoStageSpec(ModelSpec):
    """Two-stage shower model for ``task: surrogate``: the layer energies given the incident
    energy by a conditional neural spline flow, then each layer's cells from a shape network and
    compound-Poisson sampling (see docs/tasks.md)."""

    target: ClassVar[str] = "labkit.models._two_stage:TwoStageShowerModel"
    name: Literal["two_stage"]
    flow_transforms: Annotated[int, Field(gt=0, le=32)] = Field(
        default=6, description="spline (coupling) transforms of the layer-energy flow"
    )
    flow_hidden: tuple[Width, ...] = Field(
        default=(128, 128), min_length=1, description="hidden widths of each flow transform's network"
    )
    flow_bins: Annotated[int, Field(gt=1, le=64)] = Field(default=10, description="bins of each spline")
    shape_hidden: tuple[Width, ...] = Field(
        default=(256, 512), min_length=1, description="widths of the cell-shape network"
    )
    activation: Activation = "silu"


#: most attention heads and encoder layers of a set transformer
MAX_HEADS = 64
MAX_LAYERS = 32


class DeepSetsSpec(ModelSpec):
    """Deep Sets over the constituents (``data.constituents``): a network ``phi`` on each
    constituent, a masked sum (or mean) over each set, joined with the per-event features, then
    a network ``rho``. Padding never reaches the output; the constituents' order does not matter."""

    target: ClassVar[str] = "labkit.models._sets:DeepSets"
    reads_sets: ClassVar[bool] = True
    name: Literal["deepsets"]
    phi: tuple[Width, ...] = Field(
        default=(64, 64),
        min_length=1,
        description="widths of the per-constituent network (the last: pooled size)",
    )
    rho: tuple[Width, ...] = Field(default=(64, 64), description="widths of the network after pooling")
    pooling: Literal["sum", "mean"] = "sum"
    activation: Activation = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


class SetTransformerSpec(ModelSpec):
    """A small transformer encoder over the constituents (``data.constituents``) with masked
    self-attention, a masked mean over each set, joined with the per-event features, then an
    MLP ``head``."""

    target: ClassVar[str] = "labkit.models._sets:SetTransformer"
    reads_sets: ClassVar[bool] = True
    name: Literal["set_transformer"]
    dim: Annotated[int, Field(gt=0, le=4096)] = Field(
        default=64, description="embedding width (a multiple of heads)"
    )
    heads: Annotated[int, Field(gt=0, le=MAX_HEADS)] = 4
    layers: Annotated[int, Field(gt=0, le=MAX_LAYERS)] = 2
    feedforward: Width = Field(default=128, description="width of each encoder layer's feed-forward network")
    head: tuple[Width, ...] = Field(default=(64,), description="widths of the MLP after pooling")
    activation: Literal["relu", "gelu"] = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> SetTransformerSpec:
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of heads ({self.heads})")
        return self


MODEL_SPECS: tuple[type[ModelSpec], ...] = (
    MLPSpec,
    CNNSpec,
    UNetSpec,
    AutoencoderSpec,
    CVAESpec,
    TwoStageSpec,
    DeepSetsSpec,
    SetTransformerSpec,
)
