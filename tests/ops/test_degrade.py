"""Enhancer training degradations: identity, each step's closed form, reproducibility."""

from __future__ import annotations

import torch

from deblurcli.ops.color import linear_to_srgb, rgb_to_gray, srgb_to_linear
from deblurcli.ops.degrade import (
    Degradation,
    DegradeConfig,
    apply_degradation,
    degrade,
    white_balance_gains,
)

IDENTITY = Degradation(0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0)


def image(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, 32, 48, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_the_identity_degradation_changes_nothing():
    x = image()
    assert torch.allclose(apply_degradation(x, IDENTITY), x, atol=1e-9)


def test_exposure_scales_linear_light_and_clips():
    x = image() * 0.4  # dark enough that +1 EV does not clip
    out = apply_degradation(x, Degradation(1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0))
    assert torch.allclose(srgb_to_linear(out), 2 * srgb_to_linear(x), atol=1e-9)
    bright = apply_degradation(torch.ones(3, 4, 4, dtype=torch.float64), Degradation(
        2.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0))  # fmt: skip
    assert torch.allclose(bright, torch.ones_like(bright))


def test_white_balance_is_a_cast_without_a_brightness_change():
    gains = white_balance_gains(0.3, -0.1)
    assert abs(float(rgb_to_gray(gains.view(3, 1, 1))) - 1.0) < 1e-6
    assert gains[0] > gains[2]  # warm
    grey = torch.full((3, 2, 2), 0.2, dtype=torch.float64)
    out = apply_degradation(grey, Degradation(0.0, 0.3, -0.1, 1.0, 1.0, 0.0, 1.0))
    expected = linear_to_srgb(srgb_to_linear(grey) * gains.double().view(3, 1, 1))
    assert torch.allclose(out, expected, atol=1e-6)


def test_contrast_saturation_and_haze_follow_their_formulas():
    x = image() * 0.5 + 0.25
    flat = apply_degradation(x, Degradation(0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0))
    assert torch.allclose(flat, rgb_to_gray(x).mean().expand_as(x), atol=1e-9)
    grey = apply_degradation(x, Degradation(0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0))
    assert torch.allclose(grey, rgb_to_gray(x).expand_as(x), atol=1e-9)
    hazy = apply_degradation(x, Degradation(0.0, 0.0, 0.0, 1.0, 1.0, 0.25, 0.8))
    assert torch.allclose(hazy, 0.75 * x + 0.25 * 0.8, atol=1e-9)


def test_a_seed_always_makes_the_same_degradation_within_the_ranges():
    x = image()
    first, values = degrade(x, torch.Generator().manual_seed(3))
    again, same = degrade(x, torch.Generator().manual_seed(3))
    other, different = degrade(x, torch.Generator().manual_seed(4))
    assert values == same and torch.equal(first, again)
    assert values != different and not torch.equal(first, other)
    config = DegradeConfig()
    for field, value in values.as_json().items():
        low, high = getattr(config, field)
        assert low <= value <= high
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0


def test_batches_use_each_images_own_mean():
    a, b = image(1), image(2) * 0.3
    values = Degradation(0.0, 0.0, 0.0, 0.5, 1.0, 0.0, 1.0)
    batch = apply_degradation(torch.stack([a, b]), values)
    assert torch.allclose(batch[1], apply_degradation(b, values), atol=1e-12)
