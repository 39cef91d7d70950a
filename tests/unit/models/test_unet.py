"""The U-Net: shapes, odd sizes, the skip connections, options, errors, and that it is built from
the experiment file with a clear message when it cannot be."""

from __future__ import annotations

import pytest
import torch

from labkit.models import UNet


@pytest.mark.parametrize(
    ("in_shape", "channels"),
    [((16, 16), (4, 8, 16)), ((1, 16, 16), (4, 8)), ((3, 32, 24), (4, 8, 16)), ((8, 8), (4,))],
)
def test_output_has_one_score_per_class_and_pixel(
    in_shape: tuple[int, ...], channels: tuple[int, ...]
) -> None:
    model = UNet(in_shape, 5, channels=channels)
    out = model(torch.randn(2, *in_shape))
    assert out.shape == (2, 5, *in_shape[-2:])


@pytest.mark.parametrize("size", [(13, 13), (30, 17), (5, 3), (1, 1)])
def test_sizes_not_divisible_by_the_poolings_are_padded_and_cropped(size: tuple[int, int]) -> None:
    model = UNet(size, 3, channels=(4, 8, 16))  # two poolings: multiples of 4 internally
    assert model.multiple == 4
    assert model(torch.randn(2, *size)).shape == (2, 3, *size)


def test_padding_does_not_leak_into_the_image() -> None:
    """Zero padding at the bottom/right edge: the scores of an image do not depend on whether
    it was padded, as long as the padded part is zeros anyway (what the model does itself)."""
    torch.manual_seed(0)
    model = UNet((14, 14), 2, channels=(4, 8, 16), batch_norm=False).eval()
    x = torch.randn(1, 14, 14)
    padded = torch.nn.functional.pad(x, (0, 2, 0, 2))
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded)[..., :14, :14])


def test_pooled_stages_give_context_beyond_the_full_resolution_convolutions() -> None:
    """One bright pixel changes the scores in the far corner of the image: the pooled stages
    carry context further than the convolutions at full resolution reach."""
    torch.manual_seed(1)
    model = UNet((16, 16), 2, channels=(4, 8, 16), batch_norm=False).eval()
    shallow = UNet((16, 16), 2, channels=(4,), batch_norm=False).eval()
    x = torch.zeros(1, 16, 16)
    bright = x.clone()
    bright[0, 7, 9] = 10.0
    with torch.no_grad():
        change = (model(bright) - model(x)).abs().sum(1)[0]
        local = (shallow(bright) - shallow(x)).abs().sum(1)[0]
    assert change[7, 9] > 0 and change[0, 0] > 0
    # a single stage: two 3x3 convolutions reach 2 pixels, no further
    assert local[7, 11] > 0 and local[7, 12] == 0 and local[0, 0] == 0


def test_layers_follow_the_options() -> None:
    model = UNet((16, 16), 4, channels=(4, 8, 16), activation="gelu", dropout=0.1, batch_norm=True)
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"GELU", "Dropout2d", "BatchNorm2d", "ConvTranspose2d"} <= kinds
    plain = UNet((16, 16), 4, channels=(4, 8, 16), batch_norm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    convs = [m for m in plain.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    # two 3x3 convolutions per encoder stage (3) and per decoder stage (2)
    assert [c.out_channels for c in convs] == [4, 4, 8, 8, 16, 16, 8, 8, 4, 4]
    assert convs[6].in_channels == 16  # 8 up-sampled + 8 from the skip connection
    assert plain.head.out_channels == 4


def test_rejects_flat_samples() -> None:
    with pytest.raises(
        ValueError, match=r"UNet needs images \(C, H, W\) or \(H, W\), got samples of shape \(64,\)"
    ):
        UNet((64,), 3)


def test_a_unet_on_flat_data_is_a_config_error(load, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """build_task turns the model's ValueError into a ConfigError that names the model."""
    from labkit.data._base import DataInfo
    from labkit.errors import ConfigError
    from labkit.runner._build import build_task

    exp = load("tracks_seg")
    info = DataInfo(in_shape=(64,), num_classes=4, class_names=("background", "track", "shower", "noise"))
    with pytest.raises(ConfigError, match=r"model: UNet needs images"):
        build_task(exp, info)
