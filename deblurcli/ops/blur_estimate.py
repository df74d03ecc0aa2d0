"""Reference-free blur estimate, the parts that are not learned: tiles in, one number out.

A photo is analysed in gray at :data:`ANALYSIS_SIDE` px on the longer side
(shrinking also averages the sensor noise away), cut into :data:`TILE`-px
tiles. Flat tiles (sky, walls) cannot show blur and are left out. Each
textured tile is normalised to zero mean and unit standard deviation, so a
learned regressor (:class:`deblurcli.models.blur_detector.BlurNet`) sees its
structure and its noise, not its brightness or contrast, and predicts the
log of the blur extent along four directions (:data:`DIRECTIONS_DEG`).

The photo's estimate (:func:`photo_extent`) takes, direction by direction, a
low quantile over the tiles, then the largest direction:

- camera shake blurs every tile, while a photo with a shallow depth of field
  still has a sharp subject somewhere, so a low quantile ignores soft
  backgrounds;
- a tile whose edges all run along the motion looks sharp, but only along
  the motion's perpendicular, so each direction is judged by the tiles that
  can show it.

Extents are taken from the kernel's support (its weights above 2 % of the
peak): the side of its bounding box (:func:`kernel_extent`), or its length
along a direction (:func:`directional_extents`); 1 px is sharp.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Longer side, px, at which photos are analysed (larger ones are shrunk first).
ANALYSIS_SIDE = 768
# Longer side, px, at which thresholds and the ``blur_px_1280`` figure are stated.
REFERENCE_SIDE = 1280
TILE = 64
# Tiles with a smaller standard deviation (of [0, 1] gray values) are flat.
MIN_TILE_STD = 0.02
# A photo with fewer textured tiles is estimated from its most textured ones.
MIN_TILES = 4
# Each direction's estimate is at least its third-smallest tile's (0-based rank).
MIN_RANK = 2
_STD_FLOOR = 1e-3
# Directions the extents are measured along, degrees anticlockwise from the x axis.
DIRECTIONS_DEG = (0, 45, 90, 135)
# How the directions are reordered when a tile is mirrored left-right (45° <-> 135°),
# or transposed (0° <-> 90°).
FLIP_DIRECTIONS = [0, 3, 2, 1]
TRANSPOSE_DIRECTIONS = [2, 1, 0, 3]


@dataclass(frozen=True)
class BlurEstimate:
    """One photo's blur estimate.

    Attributes:
        pixels: blur extent at the photo's own size, px (about 1 = sharp).
        reference_pixels: the same at :data:`REFERENCE_SIDE` px on the longer side.
        tiles: how many tiles it was taken from.
    """

    pixels: float
    reference_pixels: float
    tiles: int


def kernel_extent(kernel: np.ndarray) -> int:
    """Side of the box holding every value of a (K, K) blur kernel above 2 % of its
    peak, px; 1 for a sharp (delta) kernel."""
    rows, cols = np.nonzero(kernel > 0.02 * kernel.max())
    return int(max(rows.max() - rows.min(), cols.max() - cols.min())) + 1


def directional_extents(kernel: np.ndarray) -> np.ndarray:
    """(K, K) kernel -> (4,) length of its support (values above 2 % of the peak) along
    each of :data:`DIRECTIONS_DEG`, px."""
    rows, cols = np.nonzero(kernel > 0.02 * kernel.max())
    angles = np.deg2rad(np.array(DIRECTIONS_DEG, dtype=np.float64))
    along = cols[:, None] * np.cos(angles) - rows[:, None] * np.sin(angles)
    return along.max(axis=0) - along.min(axis=0) + 1


def analysis_gray(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """(H, W) uint8 gray pixels -> float32 [0, 1] at the analysis size, and the scale
    applied (at most 1: small photos are not enlarged)."""
    height, width = gray.shape
    scale = min(1.0, ANALYSIS_SIDE / max(height, width))
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray.astype(np.float32) * np.float32(1 / 255), scale


def tile_grid(image: np.ndarray) -> np.ndarray:
    """(H, W) -> (rows * cols, TILE, TILE): the whole tiles, row by row."""
    rows, cols = image.shape[0] // TILE, image.shape[1] // TILE
    return (
        image[: rows * TILE, : cols * TILE]
        .reshape(rows, TILE, cols, TILE)
        .transpose(0, 2, 1, 3)
        .reshape(-1, TILE, TILE)
    )


def textured_tiles(gray: np.ndarray) -> np.ndarray:
    """The tiles a photo is judged by, each normalised.

    Args:
        gray: (H, W) float32 in [0, 1].

    Returns:
        (N, 1, TILE, TILE) float32, zero mean and unit standard deviation each: the
        tiles whose standard deviation reaches :data:`MIN_TILE_STD`, or the
        :data:`MIN_TILES` most textured when fewer do (N = 0 only for a photo
        smaller than one tile).
    """
    tiles = tile_grid(gray)
    std = tiles.std(axis=(1, 2))
    keep = np.flatnonzero(std >= MIN_TILE_STD)
    if len(keep) < MIN_TILES:
        keep = np.argsort(std)[-MIN_TILES:]
    chosen = tiles[keep]
    chosen = (chosen - chosen.mean(axis=(1, 2), keepdims=True)) / (
        std[keep, None, None] + _STD_FLOOR
    )
    return np.ascontiguousarray(chosen[:, None], dtype=np.float32)


def photo_extent(log_extents: np.ndarray, quantile: float) -> float:
    """The photo's raw blur extent, px at the analysis size, from its tiles' predicted
    log extents (N, 4): each direction's ``quantile`` (0-1) over the tiles, but never
    below its :data:`MIN_RANK` + 1st smallest (one or two odd tiles must not make a
    small photo sharp), then the largest direction."""
    ordered = np.sort(log_extents, axis=0)
    position = min(max(quantile * (len(ordered) - 1), MIN_RANK), len(ordered) - 1)
    low, high = int(np.floor(position)), int(np.ceil(position))
    values = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return float(np.exp(values.max()))
