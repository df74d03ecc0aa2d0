"""Wrong kernels for training the refiner: each error does what its name says."""

from __future__ import annotations

import numpy as np
import pytest

from deblurcli.ops.blur_estimate import directional_extents, kernel_extent
from deblurcli.train.kernel_errors import ERROR_KINDS, perturb_kernel


def _horizontal_line(length: int = 13, side: int = 21) -> np.ndarray:
    kernel = np.zeros((side, side), np.float32)
    start = (side - length) // 2
    kernel[side // 2, start : start + length] = 1
    return kernel / kernel.sum()


def _centroid(kernel: np.ndarray) -> tuple[float, float]:
    axis = np.arange(kernel.shape[0])
    return float(kernel.sum(1) @ axis), float(kernel.sum(0) @ axis)


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_every_wrong_kernel_is_odd_normalised_and_centred(kind):
    wrong = perturb_kernel(_horizontal_line(), np.random.default_rng(0), (kind,))
    side = wrong.shape[0]
    assert wrong.shape == (side, side) and side % 2 == 1
    assert wrong.dtype == np.float32 and wrong.min() >= 0
    assert wrong.sum() == pytest.approx(1, abs=1e-5)
    cy, cx = _centroid(wrong)
    assert abs(cy - side // 2) < 0.6 and abs(cx - side // 2) < 0.6


def test_each_error_changes_the_kernel_the_way_it_says():
    line = _horizontal_line()
    rng = np.random.default_rng(3)
    area = 1 / (line**2).sum()  # 13 px: one row
    assert kernel_extent(perturb_kernel(line, rng, ("shrink",))) <= 0.8 * kernel_extent(line)
    assert kernel_extent(perturb_kernel(line, rng, ("blob",))) > kernel_extent(line)
    assert 1 / (perturb_kernel(line, rng, ("blob",)) ** 2).sum() > 3 * area
    assert 1 / (perturb_kernel(line, rng, ("smear",)) ** 2).sum() > 1.5 * area
    turned = perturb_kernel(line, rng, ("turn",))
    # A horizontal line turned by 15-45 degrees reaches over more rows.
    vertical = directional_extents(turned)[2]  # DIRECTIONS_DEG: 0, 45, 90, 135
    assert vertical >= 13 * np.sin(np.deg2rad(15))
    lengths = [kernel_extent(perturb_kernel(line, rng, ("stretch",))) for _ in range(20)]
    assert max(lengths) > 13 and min(lengths) >= 12


def test_by_default_errors_are_drawn_and_the_draw_repeats_for_a_seed():
    line = _horizontal_line()
    first = perturb_kernel(line, np.random.default_rng(5))
    again = perturb_kernel(line, np.random.default_rng(5))
    other = perturb_kernel(line, np.random.default_rng(6))
    np.testing.assert_array_equal(first, again)
    assert first.shape != other.shape or not np.allclose(first, other)


def test_an_unknown_error_is_refused():
    with pytest.raises(ValueError, match="unknown kernel errors"):
        perturb_kernel(_horizontal_line(), np.random.default_rng(0), ("wobble",))
