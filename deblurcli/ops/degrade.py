"""Photo degradations for training and testing an enhancer: the inverse problem of retouching.

A well-exposed photo ``s`` in [0, 1] (sRGB-encoded) becomes a dull one::

    L = srgb_to_linear(s) · wb · 2^ev              (white balance, exposure: linear light)
    d = linear_to_srgb(clamp(L, 0, 1))
    d = m + contrast · (d − m)                       (m: the image's mean luma)
    d = y + saturation · (d − y)                     (y: each pixel's luma)
    d = (1 − haze) · d + haze · airlight             (veiling haze)
    d = clamp(d, 0, 1)

``wb`` is a gain per channel, ``(2^t, 2^g, 2^−t)`` divided by its luma so
that a colour cast does not also change the exposure. Every value is drawn
per image from a range in :class:`DegradeConfig`, from a generator the caller
seeds, so a seed always makes the same degradation. The identity sits inside
every default range, so a model also learns to leave good photos alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from deblurcli.ops.color import linear_to_srgb, rgb_to_gray, srgb_to_linear


@dataclass(frozen=True)
class DegradeConfig:
    """Ranges (low, high) of the per-image degradation values, drawn uniformly."""

    exposure_ev: tuple[float, float] = (-1.5, 0.7)
    temperature: tuple[float, float] = (-0.35, 0.35)  # log2 red/blue gain
    tint: tuple[float, float] = (-0.12, 0.12)  # log2 green gain
    contrast: tuple[float, float] = (0.55, 1.15)
    saturation: tuple[float, float] = (0.45, 1.2)
    haze: tuple[float, float] = (0.0, 0.3)
    airlight: tuple[float, float] = (0.7, 1.0)


@dataclass(frozen=True)
class Degradation:
    """The values one image was degraded with."""

    exposure_ev: float
    temperature: float
    tint: float
    contrast: float
    saturation: float
    haze: float
    airlight: float

    def as_json(self) -> dict[str, float]:
        return {k: round(v, 5) for k, v in asdict(self).items()}


def draw_degradation(config: DegradeConfig, generator: torch.Generator) -> Degradation:
    """One set of values from ``config``'s ranges (seven uniform draws, in field order)."""
    draws = torch.rand(7, dtype=torch.float64, generator=generator).tolist()
    ranges = [
        config.exposure_ev, config.temperature, config.tint, config.contrast,
        config.saturation, config.haze, config.airlight,
    ]  # fmt: skip
    values = [low + u * (high - low) for u, (low, high) in zip(draws, ranges, strict=True)]
    return Degradation(*values)


def white_balance_gains(temperature: float, tint: float) -> torch.Tensor:
    """(3,) linear-light channel gains with unit luma: a colour cast, not a brightness change."""
    gains = torch.tensor([2.0**temperature, 2.0**tint, 2.0**-temperature])
    return gains / float(rgb_to_gray(gains.view(3, 1, 1)).squeeze())


def apply_degradation(image: torch.Tensor, degradation: Degradation) -> torch.Tensor:
    """Degrade (3, H, W) or (N, 3, H, W) sRGB in [0, 1] by ``degradation``; same shape."""
    d = degradation
    gains = white_balance_gains(d.temperature, d.tint).to(image).view(3, 1, 1)
    light = srgb_to_linear(image) * gains * math.pow(2.0, d.exposure_ev)
    out = linear_to_srgb(light.clamp(0.0, 1.0))
    mean = rgb_to_gray(out).mean(dim=(-3, -2, -1), keepdim=True)
    out = mean + d.contrast * (out - mean)
    luma = rgb_to_gray(out)
    out = luma + d.saturation * (out - luma)
    out = (1 - d.haze) * out + d.haze * d.airlight
    return out.clamp(0.0, 1.0)


def degrade(
    image: torch.Tensor, generator: torch.Generator, config: DegradeConfig | None = None
) -> tuple[torch.Tensor, Degradation]:
    """Draw a degradation and apply it to (3, H, W) sRGB in [0, 1]; returns both."""
    degradation = draw_degradation(config or DegradeConfig(), generator)
    return apply_degradation(image, degradation), degradation
