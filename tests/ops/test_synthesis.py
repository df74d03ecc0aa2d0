"""The camera model of realistic blur synthesis, step by step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deblurcli.ops.blur import blur, linear_kernels
from deblurcli.ops.color import linear_to_srgb
from deblurcli.ops.synthesis import (
    SynthesisConfig,
    SynthesisDraws,
    jpeg_roundtrip,
    synthesize_blur,
)

OFF = SynthesisConfig(linear_light=False, saturation=False, noise=False)


def _draws(batch: int, config: SynthesisConfig, seed: int = 0) -> SynthesisDraws:
    return SynthesisDraws.sample(batch, config, torch.Generator().manual_seed(seed))


def test_with_every_step_off_it_is_a_plain_convolution():
    g = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, 40, 50, generator=g, dtype=torch.float64)
    kernels = linear_kernels(torch.tensor([7.0, 12.0]), torch.tensor([10.0, 100.0]), 2)
    out = synthesize_blur(sharp, kernels, OFF, _draws(2, OFF))
    torch.testing.assert_close(out, blur(sharp, kernels).clamp(0, 1))


def test_linear_light_blurs_an_edge_to_the_encoded_mean_of_light():
    """A black/white edge blurred in linear light is sRGB(0.5) ≈ 0.735 halfway, not 0.5."""
    sharp = torch.zeros(1, 1, 25, 41, dtype=torch.float64)
    sharp[..., 21:] = 1.0
    box = torch.zeros(1, 21, 21, dtype=torch.float64)
    box[0, 10, :] = 1 / 21  # horizontal box of 21 px
    config = SynthesisConfig(saturation=False, noise=False)
    out = synthesize_blur(sharp, box, config, _draws(1, config))
    # pixel 20 sees 10 white of 21 -> linear 10/21
    expected = float(linear_to_srgb(torch.tensor(10 / 21, dtype=torch.float64)))
    assert float(out[0, 0, 12, 20]) == pytest.approx(expected, abs=1e-9)
    naive = synthesize_blur(sharp, box, OFF, _draws(1, OFF))
    assert float(naive[0, 0, 12, 20]) == pytest.approx(10 / 21, abs=1e-9)


def test_saturated_highlights_are_boosted_before_the_blur_and_clipped_after():
    sharp = torch.zeros(1, 1, 31, 31, dtype=torch.float64)
    sharp[..., 15, 15] = 1.0  # one saturated point light
    box = torch.zeros(1, 11, 11, dtype=torch.float64)
    box[0, 5, :] = 1 / 11
    config = SynthesisConfig(linear_light=False, noise=False, saturation_gain=(2.5, 2.5))
    draws = _draws(1, config)
    assert float(draws.saturation_gain[0]) == 2.5
    out = synthesize_blur(sharp, box, config, draws)
    plain = synthesize_blur(sharp, box, OFF, _draws(1, OFF))
    assert float(plain[0, 0, 15, 15]) == pytest.approx(1 / 11)
    assert float(out[0, 0, 15, 15]) == pytest.approx(2.5 / 11)  # the streak is brighter
    # a pixel below the threshold is not boosted
    sharp[..., 15, 15] = 0.5
    dim = synthesize_blur(sharp, box, config, draws)
    assert float(dim[0, 0, 15, 15]) == pytest.approx(0.5 / 11)


def test_noise_variance_follows_the_poisson_gaussian_model():
    config = SynthesisConfig(
        linear_light=False, saturation=False, shot_noise=(0.01, 0.01), read_noise=(0.02, 0.02)
    )
    levels = torch.tensor([0.1, 0.4, 0.7], dtype=torch.float64).view(3, 1, 1, 1)
    sharp = levels.expand(3, 1, 200, 200).clone()
    delta = linear_kernels(0.0, 0.0, 3)
    out = synthesize_blur(
        sharp, delta, config, _draws(3, config), generator=torch.Generator().manual_seed(5)
    )
    variance = (out - levels).var(dim=(1, 2, 3))
    expected = 0.01 * levels.flatten() + 0.02**2
    torch.testing.assert_close(variance, expected, rtol=0.05, atol=0)


def test_draws_stay_in_their_ranges_and_off_steps_draw_nothing_visible():
    config = SynthesisConfig(jpeg_quality=(70, 72))
    draws = _draws(400, config)
    assert set(draws.jpeg_quality.tolist()) == {70, 71, 72}
    assert float(draws.saturation_gain.min()) >= 1.5 and float(draws.saturation_gain.max()) <= 3
    assert float(draws.shot_noise.min()) >= 1e-4 and float(draws.shot_noise.max()) <= 4e-3
    off = _draws(400, OFF)
    assert off.saturation_gain is None and off.shot_noise is None and off.jpeg_quality is None
    assert off.row(0) == dict.fromkeys(
        ("saturation_gain", "shot_noise", "read_noise", "jpeg_quality")
    )


def test_jpeg_roundtrip_compresses_rgb_and_gray():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    low = jpeg_roundtrip(rgb, 30)
    high = jpeg_roundtrip(rgb, 100)
    assert low.shape == rgb.shape and low.dtype == np.uint8
    error = lambda x: np.abs(x.astype(int) - rgb).mean()  # noqa: E731
    assert error(high) < error(low)
    # channel order survives: a pure red image stays red
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    assert jpeg_roundtrip(red, 90)[..., 0].mean() > 240
    gray = jpeg_roundtrip(rgb[:, :, :1], 80)
    assert gray.shape == (32, 48, 1)
    with pytest.raises(ValueError):
        jpeg_roundtrip(rgb.astype(np.uint16), 80)
