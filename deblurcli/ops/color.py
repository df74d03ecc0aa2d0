"""Colour conversions on tensors: the sRGB transfer curve and integer <-> float pixels."""

from __future__ import annotations

import functools

import numpy as np
import torch

# IEC 61966-2-1 sRGB transfer function constants.
_SRGB_BREAK_LINEAR = 0.0031308
_SRGB_BREAK_ENCODED = 0.04045
_SRGB_SLOPE = 12.92
_SRGB_GAMMA = 2.4
_SRGB_OFFSET = 0.055


def srgb_to_linear(encoded: torch.Tensor) -> torch.Tensor:
    """Undo the sRGB curve: encoded values in [0, 1] -> linear light in [0, 1].

    Args:
        encoded: any shape, floating point, values in [0, 1].

    Returns:
        Same shape and dtype.

    Example:
        >>> srgb_to_linear(torch.tensor([0.0, 0.5, 1.0]))
        tensor([0.0000, 0.2140, 1.0000])
    """
    low = encoded / _SRGB_SLOPE
    high = ((encoded.clamp(min=_SRGB_BREAK_ENCODED) + _SRGB_OFFSET) / (1 + _SRGB_OFFSET)).pow(
        _SRGB_GAMMA
    )
    return torch.where(encoded <= _SRGB_BREAK_ENCODED, low, high)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """Apply the sRGB curve: linear light in [0, 1] -> encoded values in [0, 1].

    Negative inputs map through the linear segment; callers clip first when
    they need the [0, 1] range.

    Args:
        linear: any shape, floating point.

    Returns:
        Same shape and dtype.
    """
    low = linear * _SRGB_SLOPE
    high = (1 + _SRGB_OFFSET) * linear.clamp(min=_SRGB_BREAK_LINEAR).pow(
        1 / _SRGB_GAMMA
    ) - _SRGB_OFFSET
    return torch.where(linear <= _SRGB_BREAK_LINEAR, low, high)


def integer_max(dtype: np.dtype | type) -> int:
    """The largest value of an unsigned integer pixel type (255 or 65535)."""
    return int(np.iinfo(dtype).max)


@functools.lru_cache(maxsize=2)
def _decoding_table(levels: int) -> torch.Tensor:
    codes = torch.arange(levels, dtype=torch.float64) / (levels - 1)
    return srgb_to_linear(codes).float()


def pixels_to_linear(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, C) uint8/uint16 sRGB pixels -> (C, H, W) float32 linear light in [0, 1].

    A table lookup per pixel (the same values as :func:`srgb_to_linear` in
    float64, rounded to float32), about 4× faster than evaluating the curve.
    """
    table = _decoding_table(integer_max(pixels.dtype) + 1)
    codes = torch.from_numpy(np.ascontiguousarray(pixels).astype(np.int64, copy=False))
    return torch.take(table, codes).permute(2, 0, 1)


def pixels_to_tensor(pixels: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(H, W, C) uint8/uint16 pixels -> (C, H, W) floats in [0, 1].

    Read-only arrays (``np.asarray`` of a PIL image) are fine: they are
    copied rather than shared with torch, which warns about them.
    """
    scale = 1.0 / integer_max(pixels.dtype)
    pixels = np.require(pixels, requirements=("C_CONTIGUOUS", "WRITEABLE"))
    return torch.from_numpy(pixels).permute(2, 0, 1).to(dtype) * scale


def tensor_to_pixels(image: torch.Tensor, pixel_dtype: np.dtype | type) -> np.ndarray:
    """(C, H, W) floats in [0, 1] -> (H, W, C) ``pixel_dtype`` pixels, rounded and clipped."""
    peak = integer_max(pixel_dtype)
    scaled = (image.detach().float().cpu() * peak).round_().clamp_(0, peak)
    return scaled.permute(1, 2, 0).numpy().astype(pixel_dtype)


_GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma, as PIL's "L" conversion uses


def _weighted_channels(image: torch.Tensor, weights: tuple[float, float, float]) -> torch.Tensor:
    """(..., 3, H, W) -> (..., 1, H, W) weighted channel sum, without a 3-channel temporary."""
    red, green, blue = image.split(1, dim=-3)
    return (red * weights[0]).add_(green, alpha=weights[1]).add_(blue, alpha=weights[2])


def rgb_to_gray(image: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB -> (..., 1, H, W) BT.601 luma, same value range."""
    return _weighted_channels(image, _GRAY_WEIGHTS)


# ITU-R BT.601 studio-swing luma: Y = 16 + 65.481 R + 128.553 G + 24.966 B for R, G, B in
# [0, 1] and Y in 8-bit units -- what BasicSR and MATLAB's rgb2ycbcr compute for "Y channel".
_Y_OFFSET = 16.0
_Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y(image: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, data_range] -> (..., 1, H, W) BT.601 luma Y.

    Y spans [16, 235] / 255 · data_range. Not rounded, like BasicSR's
    ``to_y_channel`` on float input.
    """
    weights = (_Y_WEIGHTS[0] / 255, _Y_WEIGHTS[1] / 255, _Y_WEIGHTS[2] / 255)
    return _weighted_channels(image, weights).add_(_Y_OFFSET / 255 * data_range)
