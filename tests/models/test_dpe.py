"""Deep Photo Enhancer's global U-Net: the paper's shapes, any size, tiles that agree."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deblurcli.models import build_model, get_spec
from deblurcli.models.dpe import ENCODER_WIDTHS
from deblurcli.pipelines.restore import Restorer


def enhancer(global_size: int = 512) -> torch.nn.Module:
    """A random eval-mode DPE with running statistics and a residual large enough to matter."""
    torch.manual_seed(0)
    model = build_model("dpe", {"global_size": global_size})
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
    with torch.no_grad():
        model.output.weight.mul_(20)
    return model.eval()


def test_the_papers_shapes():
    model = enhancer()
    assert get_spec("dpe").task == "enhance"
    x = torch.rand(1, 3, 512, 512) * 2 - 1
    with torch.no_grad():
        features = model._encode(x)
        assert [f.shape[1] for f in features] == list(ENCODER_WIDTHS)
        assert [f.shape[-1] for f in features] == [512, 256, 128, 64, 32]
        assert model.global_features(x).shape == (1, 128, 1, 1)
    assert isinstance(model.enc0[2], torch.nn.SELU) and isinstance(
        model.enc0[1], torch.nn.BatchNorm2d
    )


@pytest.mark.parametrize("size", [(37, 53), (300, 200), (64, 700)])
def test_any_size_in_gives_the_same_size_out_in_range(size):
    model = enhancer(128)
    x = torch.rand(2, 3, *size) * 2 - 1
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    assert (y - x).abs().mean() > 0.01  # the residual is really there


def test_the_global_vector_carries_information_across_the_image():
    model = enhancer(128)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    changed = x.clone()
    changed[..., 192:, 192:] = 1.0  # far from the top-left corner's receptive field
    with torch.no_grad():
        same_context = model.forward_with_context(changed, model.global_features(x))
        own_context = model(changed)
        original = model(x)
    corner = (..., slice(0, 48), slice(0, 48))
    assert torch.allclose(same_context[corner], original[corner], atol=1e-5)
    assert (own_context[corner] - original[corner]).abs().max() > 1e-3


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(65535.0**2 / mse)


@pytest.mark.parametrize(("tile", "overlap"), [(256, 64), (192, 96)])
def test_tiles_share_one_global_vector_and_agree_with_the_whole_image(tile, overlap):
    pixels = np.random.default_rng(0).integers(0, 65536, (420, 610, 3), dtype=np.uint16)
    whole, report = Restorer(
        enhancer(), "dpe", None, torch.device("cpu"), tile=1 << 20
    ).restore_array(pixels)
    assert report.tile == 1 << 20 or report.tile == 0
    tiled, report = Restorer(
        enhancer(), "dpe", None, torch.device("cpu"), tile=tile, overlap=overlap
    ).restore_array(pixels)
    assert report.tile == tile
    assert np.abs(whole.astype(int) - pixels.astype(int)).mean() > 500  # it enhanced
    assert psnr(tiled, whole) >= 50.0


def test_strength_blends_the_result_with_the_input():
    pixels = np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    full, _ = Restorer(enhancer(128), "dpe", None, torch.device("cpu")).restore_array(pixels)
    none, _ = Restorer(enhancer(128), "dpe", None, torch.device("cpu"), strength=0.0).restore_array(
        pixels
    )
    half, _ = Restorer(enhancer(128), "dpe", None, torch.device("cpu"), strength=0.5).restore_array(
        pixels
    )
    assert np.array_equal(none, pixels)
    midway = (pixels.astype(float) + full.astype(float)) / 2
    assert np.abs(half - midway).max() <= 1.0
