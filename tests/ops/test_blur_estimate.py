"""The fixed steps of the blur estimate: extents, tiles, the photo's quantile."""

from __future__ import annotations

import numpy as np
import pytest

from deblurcli.ops.blur_estimate import (
    MIN_TILES,
    TILE,
    analysis_gray,
    kernel_extent,
    photo_extent,
    textured_tiles,
)


def test_kernel_extent_is_the_side_of_the_kernels_support():
    delta = np.zeros((5, 5))
    delta[2, 2] = 1
    assert kernel_extent(delta) == 1
    box = np.zeros((15, 15))
    box[7, 3:12] = 1 / 9
    assert kernel_extent(box) == 9 and kernel_extent(box.T) == 9
    box[0, 0] = 0.019 * box.max()  # a trace under 2 % of the peak does not count
    assert kernel_extent(box) == 9
    box[14, 14] = 0.021 * box.max()
    assert kernel_extent(box) == 12  # columns 3 to 14


def test_large_photos_are_analysed_at_768_px_small_ones_as_they_are(rng):
    big, scale = analysis_gray(rng.integers(0, 256, (1500, 3000), dtype=np.uint8))
    assert big.shape == (384, 768) and scale == pytest.approx(768 / 3000)
    assert big.dtype == np.float32 and big.min() >= 0 and big.max() <= 1
    small, scale = analysis_gray(np.full((300, 400), 255, np.uint8))
    assert small.shape == (300, 400) and scale == 1 and small.max() == 1


def test_flat_tiles_are_left_out_and_the_rest_normalised(rng):
    gray = np.full((3 * TILE, 4 * TILE), 0.5, np.float32)
    gray[:TILE, :TILE] += rng.normal(0, 0.1, (TILE, TILE)).astype(np.float32)  # textured
    for index in range(5):  # five more textured tiles, of growing contrast
        row, col = 1 + index // 4, index % 4
        gray[row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE] += np.float32(
            0.05 * (index + 1)
        ) * np.sign(rng.normal(size=(TILE, TILE))).astype(np.float32)
    tiles = textured_tiles(gray)
    assert tiles.shape == (6, 1, TILE, TILE)
    assert np.allclose(tiles.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    assert np.allclose(tiles.std(axis=(1, 2, 3)), 1, atol=0.02)


def test_a_flat_photo_is_judged_by_its_most_textured_tiles():
    gray = np.zeros((2 * TILE, 3 * TILE), np.float32)
    gray[TILE + 5, 7] = 0.01
    assert len(textured_tiles(gray)) == MIN_TILES


def test_each_direction_takes_a_low_quantile_of_its_tiles_and_the_photo_the_largest():
    # Eleven tiles; along 0° they read 1..11 px, along 90° half that, the diagonals 1 px.
    tiles = np.ones((11, 4))
    tiles[:, 0] = np.arange(1, 12)
    tiles[:, 2] = np.arange(1, 12)[::-1] / 2
    logs = np.log(tiles)
    assert photo_extent(logs, 0.5) == pytest.approx(6.0)
    assert photo_extent(logs, 1.0) == pytest.approx(11.0)
    # Never below the third-smallest tile: one or two odd tiles do not decide.
    assert photo_extent(logs, 0.0) == pytest.approx(3.0)
    tiles[:, 0] = 1.0  # now the 90° direction is the longest
    assert photo_extent(np.log(tiles), 0.5) == pytest.approx(3.0)
    assert photo_extent(np.log(tiles[:2]), 0.0) == pytest.approx(5.5)  # two tiles: the larger


def test_directional_extents_measure_the_support_along_each_direction():
    from deblurcli.ops.blur_estimate import DIRECTIONS_DEG, directional_extents

    assert DIRECTIONS_DEG == (0, 45, 90, 135)
    line = np.zeros((15, 15))
    line[7, 3:12] = 1  # horizontal, 9 px
    diagonal_length = 1 + 8 / np.sqrt(2)
    assert directional_extents(line) == pytest.approx([9, diagonal_length, 1, diagonal_length])
    diagonal = np.eye(9)[::-1]  # bottom-left to top-right: the 45° direction
    along = directional_extents(diagonal)
    assert along[1] == pytest.approx(1 + 8 * np.sqrt(2)) and along[3] == pytest.approx(1)
