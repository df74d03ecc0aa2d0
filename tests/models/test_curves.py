"""The image-adaptive curves enhancer: identity at zero, monotone curves, exact tiling,
parameters that follow the photo, and the degraded training data it learns from."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deblurcli.models import build_model
from deblurcli.models.curves import CurveEnhancer, apply_curves
from deblurcli.ops.degrade import DegradeConfig
from deblurcli.pipelines.restore import Restorer
from deblurcli.train.data import _degraded_pair, degrade_config
from deblurcli.train.loop import start_as_identity


def _photo(seed: int, height: int = 150, width: int = 230) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 6, 9, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic").clamp(0, 1)


def _full_range(photo: torch.Tensor) -> torch.Tensor:
    """The photo with a black and a white block, large enough to survive the small copy."""
    photo = photo.clone()
    h, w = photo.shape[-2:]
    photo[..., : h // 4, : w // 4] = 0
    photo[..., -h // 4 :, -w // 4 :] = 1
    return photo


def test_zero_last_layer_stretches_levels_and_leaves_full_range_photos_alone():
    model = start_as_identity(build_model("curves")).eval()
    for size in ((40, 46), (150, 230), (64, 700)):
        full = _full_range(_photo(0, *size)) * 2 - 1
        with torch.no_grad():
            assert torch.allclose(model(full), full, atol=1e-5)
    dull = 0.3 + 0.4 * _photo(1)  # levels in [0.3, 0.7] at most
    with torch.no_grad():
        context = model.global_features(dull * 2 - 1)
        out = (model.forward_with_context(dull * 2 - 1, context) + 1) / 2
    darkest, brightest = context[0, -6:-3, 0, 0], context[0, -3:, 0, 0]
    assert bool((darkest >= 0.29).all()) and bool((brightest <= 0.71).all())
    expected = (dull - darkest.view(1, 3, 1, 1)) / (brightest - darkest).view(1, 3, 1, 1)
    assert torch.allclose(out, expected.clamp(0, 1), atol=1e-5)
    assert float(out.amax()) > 0.95 and float(out.amin()) < 0.05  # stretched to full range


def test_channel_stretch_starts_near_each_channels_own_levels():
    """A cast photo (each channel over its own range): the shared stretch keeps the
    cast, the per-channel one (95 % of the way at zero) nearly removes it."""
    ranges = torch.tensor([[0.2, 0.6], [0.1, 0.9], [0.35, 0.5]]).view(1, 3, 2, 1, 1)
    cast = ranges[:, :, 0] + (ranges[:, :, 1] - ranges[:, :, 0]) * _photo(2)
    spans = {}
    for channel_stretch in (False, True):
        model = start_as_identity(build_model("curves", {"channel_stretch": channel_stretch}))
        with torch.no_grad():
            out = (model.eval()(cast * 2 - 1) + 1) / 2
        spans[channel_stretch] = out.amax(dim=(2, 3)) - out.amin(dim=(2, 3))  # (1, 3)
    assert spans[False][0, 0] < 0.6 and spans[False][0, 2] < 0.3  # the cast stays
    assert bool((spans[True] > 0.8).all())  # every channel nearly fills [0, 1]
    model = build_model("curves", {"channel_stretch": True})
    assert model.parameter_count == build_model("curves").parameter_count + 3


def test_curves_are_monotone_and_interpolate_their_knots():
    model = CurveEnhancer(knots=4)
    raw = torch.randn(2, 3, 6) * 3
    knots = model.curve_knots(raw)
    assert knots.shape == (2, 3, 5) and bool((knots.diff(dim=-1) >= 0).all())
    values = torch.rand(2, 3, 8, 9)
    mapped = apply_curves(values, knots)
    for n in range(2):
        for c in range(3):
            expected = np.interp(values[n, c].numpy(), np.linspace(0, 1, 5), knots[n, c].numpy())
            np.testing.assert_allclose(mapped[n, c].numpy(), np.clip(expected, 0, 1), atol=1e-6)


def test_the_matrix_and_curves_act_as_written():
    """A known parameter vector: levels 0 to 1 (no stretch), swap red and blue, add 0.1,
    then map [0, 1] onto [0.2, 0.8] with straight curves."""
    model = CurveEnhancer(knots=2)
    params = torch.zeros(1, model.parameter_count + 6, 1, 1)
    params[0, -3:, 0, 0] = 1.0  # brightest levels
    swap = torch.tensor([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]]) - torch.eye(3)
    params[0, :9, 0, 0] = swap.flatten()
    params[0, 9:12, 0, 0] = 0.1
    params[0, 12 : model.parameter_count, 0, 0] = torch.tensor([0.2, math.log(0.6), 0.0, 0.0] * 3)
    x = _photo(1, 20, 30) * 0.8
    out = (model.forward_with_context(x * 2 - 1, params) + 1) / 2
    expected = 0.2 + 0.6 * (x[:, [2, 1, 0]] + 0.1)
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize(("tile", "overlap"), [(64, 16), (96, 32)])
def test_tiles_share_the_photos_parameters_and_equal_the_whole(tile, overlap):
    torch.manual_seed(3)
    model = build_model("curves")
    whole = Restorer(build_model("curves"), "curves", None, torch.device("cpu"), tile=0)
    whole.model.load_state_dict(model.state_dict())
    tiled = Restorer(model, "curves", None, torch.device("cpu"), tile=tile, overlap=overlap)
    image = _photo(2, 200, 300)
    a, _ = whole.restore_tensor(image)
    b, report = tiled.restore_tensor(image)
    assert report.tile == tile
    assert float((a - b).abs().max()) < 1e-5


def test_the_parameters_follow_the_photo():
    torch.manual_seed(4)
    model = build_model("curves").eval()
    dark, bright = _photo(5) * 0.3, _photo(5) * 0.7 + 0.3
    with torch.no_grad():
        a = model.global_features(dark * 2 - 1)
        b = model.global_features(bright * 2 - 1)
    assert float((a - b).abs().max()) > 1e-3


def test_the_levels_show_how_the_channels_move_together():
    """Two photos with the same levels per channel, one grey and one coloured (the
    green channel's pixels shuffled): luma and chroma levels tell them apart."""
    model = build_model("curves").eval()
    grey = _photo(7)[:, :1].expand(-1, 3, -1, -1)
    generator = torch.Generator().manual_seed(0)
    shuffled = grey[0, 1].flatten()[torch.randperm(grey[0, 1].numel(), generator=generator)]
    coloured = grey.clone()
    coloured[0, 1] = shuffled.view_as(grey[0, 1])
    with torch.no_grad():
        inputs = []
        model.head.register_forward_hook(lambda module, args, out: inputs.append(args[0]))
        model.global_features(grey * 2 - 1)
        model.global_features(coloured * 2 - 1)
    q = model.QUANTILES
    grey_levels, coloured_levels = (x.view(model.LEVEL_MAPS, q) for x in inputs)
    assert torch.equal(grey_levels[:3], coloured_levels[:3])  # the same per channel
    assert torch.allclose(grey_levels[4], torch.full((q,), -1.0))  # grey: chroma 0, -1 in [-1, 1]
    assert float(coloured_levels[4].max()) > -0.5  # coloured pixels: chroma well above 0


def test_degrade_options_and_the_identity_share():
    config = degrade_config({"exposure_ev": [-2.0, 1.0], "haze": [0.0, 0.35]})
    assert config.exposure_ev == (-2.0, 1.0) and config.haze == (0.0, 0.35)
    assert config.saturation == DegradeConfig().saturation
    with pytest.raises(ValueError, match="unknown degradation 'gamma'"):
        degrade_config({"gamma": [0.5, 2]})
    pixels = (_photo(6)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    kept = changed = 0
    for seed in range(40):
        degraded, good = _degraded_pair(
            pixels, torch.Generator().manual_seed(seed), config, identity_share=0.25
        )
        if torch.equal(degraded, good):
            kept += 1
        else:
            changed += 1
    assert 4 <= kept <= 18 and changed > kept  # about a quarter left alone


def test_squashed_samples_are_whole_photos(tmp_path):
    """The curves recipe trains on whole photos resized to the crop: every level of the
    photo is in the sample (a crop would miss some)."""
    import cv2

    from deblurcli.train.data import TrainingPairs, find_data

    photo = np.zeros((120, 300, 3), np.uint8)
    photo[:, :100] = 255  # white only in the left third
    photo[:, 100:200] = 128
    cv2.imwrite(str(tmp_path / "p.png"), photo)
    source = find_data(tmp_path)
    whole = TrainingPairs(source, 64, seed=0, task="enhance", squash=True, identity_share=1.0)
    crops = TrainingPairs(source, 64, seed=0, task="enhance", identity_share=1.0)
    _, good = whole[0]
    assert good.shape == (3, 64, 64)
    assert float(good.max()) == 1.0 and float(good.min()) == -1.0  # white and black both kept
    _, cropped = crops[0]
    assert not (float(cropped.max()) == 1.0 and float(cropped.min()) == -1.0)  # 64 px cannot
