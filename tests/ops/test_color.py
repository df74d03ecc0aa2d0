"""The sRGB transfer curve and integer <-> float pixel conversions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from deblurcli.ops.color import (
    linear_to_srgb,
    pixels_to_tensor,
    rgb_to_gray,
    srgb_to_linear,
    tensor_to_pixels,
)


def test_srgb_curve_known_values_and_round_trip():
    encoded = torch.tensor([0.0, 0.04045, 0.5, 1.0], dtype=torch.float64)
    linear = srgb_to_linear(encoded)
    # IEC 61966-2-1: 0.04045 / 12.92 at the break, ((0.5 + 0.055) / 1.055) ** 2.4 mid-grey
    assert linear.tolist() == pytest.approx([0.0, 0.04045 / 12.92, 0.21404114, 1.0], abs=1e-8)
    grid = torch.linspace(0, 1, 10001, dtype=torch.float64)
    torch.testing.assert_close(linear_to_srgb(srgb_to_linear(grid)), grid, atol=1e-12, rtol=0)
    # continuous across the break (no jump between the two segments)
    around = torch.tensor([0.0031308 - 1e-9, 0.0031308 + 1e-9], dtype=torch.float64)
    assert abs(float(linear_to_srgb(around).diff())) < 1e-7


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_pixels_round_trip_through_tensors(dtype):
    peak = np.iinfo(dtype).max
    pixels = np.random.default_rng(0).integers(0, peak + 1, (5, 7, 3)).astype(dtype)
    tensor = pixels_to_tensor(pixels)
    assert tensor.shape == (3, 5, 7)
    assert float(tensor.max()) <= 1.0
    assert float(tensor[1, 2, 3]) == pytest.approx(pixels[2, 3, 1] / peak)
    back = tensor_to_pixels(tensor, dtype)
    assert back.dtype == dtype and np.array_equal(back, pixels)
    clipped = tensor_to_pixels(torch.full((1, 1, 1), 1.7), dtype)
    assert int(clipped[0, 0, 0]) == peak


def test_gray_uses_bt601_weights():
    image = torch.zeros(3, 1, 1)
    image[1] = 1.0
    assert float(rgb_to_gray(image)) == pytest.approx(0.587)
    assert rgb_to_gray(torch.ones(2, 3, 4, 5)).shape == (2, 1, 4, 5)


def test_read_only_pixels_convert_without_a_warning():
    # torch warns about a non-writable array once per process, so a fresh one checks it.
    code = (
        "import numpy as np; from deblurcli.ops.color import pixels_to_tensor; "
        "p = np.arange(18, dtype=np.uint8).reshape(2, 3, 3); p.flags.writeable = False; "
        "t = pixels_to_tensor(p); assert abs(float(t[2, 1, 2]) - p[1, 2, 2] / 255) < 1e-6"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
