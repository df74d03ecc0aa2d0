"""Tiled forward passes with overlap blending and out-of-memory back-off.

The image stays on the CPU; only one tile at a time travels to the device.
Tiles start at multiples of the model's stride multiple so that every tile
keeps the stride grid of the whole image, and neighbouring tiles are blended
with a raised-cosine window that fades each tile out towards its inner edges,
where its convolutions saw padding instead of the real neighbourhood.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from deblurcli.errors import OutOfMemoryError

TileFn = Callable[[torch.Tensor], torch.Tensor]


def plan_axis(size: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[int, int]]:
    """Split ``range(size)`` into overlapping ``(start, stop)`` spans.

    Every start is a multiple of ``multiple``; consecutive spans share at
    least ``overlap`` pixels; the last span ends at ``size`` and may be up to
    ``multiple - 1`` pixels longer than ``tile``.

    Example:
        >>> plan_axis(100, 48, 16, 8)
        [(0, 48), (32, 80), (48, 100)]
    """
    if tile <= 0 or size <= tile:
        return [(0, size)]
    stride = max(multiple, (tile - overlap) // multiple * multiple)
    last = (size - tile) // multiple * multiple
    starts = [*range(0, last, stride), last]
    return [(s, min(s + tile, size)) for s in starts[:-1]] + [(last, size)]


def axis_weights(spans: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """Blending weights along one axis, one 1-D tensor per span.

    Inside the region a span shares with its predecessor the weight rises as
    ``sin²`` from 0 to 1; inside the region shared with its successor it falls
    as ``cos²``; elsewhere it is 1. Where exactly two spans overlap their
    weights sum to 1; :func:`tiled_forward` still divides by the summed
    weights, so three-way overlaps (large overlaps, short last spans) blend
    correctly too.
    """
    weights = []
    for i, (start, stop) in enumerate(spans):
        w = torch.ones(stop - start)
        if i > 0:
            shared = spans[i - 1][1] - start
            w[:shared] = _rise(shared)
        if i + 1 < len(spans):
            shared = stop - spans[i + 1][0]
            w[len(w) - shared :] = w[len(w) - shared :] * _rise(shared).flip(0)
        weights.append(w)
    return weights


def _rise(length: int) -> torch.Tensor:
    t = (torch.arange(length, dtype=torch.float64) + 0.5) / length
    return torch.sin(t * math.pi / 2).pow(2).float()


RowSink = Callable[[int, torch.Tensor], None]


def tiled_forward(
    fn: TileFn,
    image: torch.Tensor,
    tile: int,
    overlap: int,
    multiple: int = 1,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    sink: RowSink | None = None,
) -> torch.Tensor | None:
    """Apply a size-preserving ``fn`` to ``image`` tile by tile.

    Tiles are run a row of tiles at a time; once a row is done, the image rows
    no later tile touches are blended (the weights are separable, so their sum
    is a product of two 1-D sums) and handed to ``sink``. Only a band of rows
    is ever held in float32, so the output need not be: with a ``sink`` that
    quantises each band, peak memory is the stored image and its result plus
    one band of tiles.

    Args:
        fn: maps (1, C, h, w) on ``device`` to (1, C_out, h, w).
        image: (1, C, H, W) tensor on the CPU, of any dtype ``fn`` accepts after
            the cast to ``dtype`` (uint8 pixels, say, that ``fn`` scales).
        tile: tile side in pixels; 0 or at least max(H, W) runs the whole image.
        overlap: pixels shared by neighbouring tiles.
        multiple: tile starts are multiples of this (the model's stride multiple).
        device: where ``fn`` runs; defaults to the image's device.
        dtype: dtype of the tiles sent to ``fn``.
        sink: called with (first row, (1, C_out, rows, W) float32 finished rows), top
            to bottom; rows may be sent again if the caller retries.

    Returns:
        (1, C_out, H, W) float32 on the CPU, or None when ``sink`` takes the rows.
    """
    device = device or image.device
    _, _, height, width = image.shape
    rows = plan_axis(height, tile, overlap, multiple)
    cols = plan_axis(width, tile, overlap, multiple)
    assembled: list[torch.Tensor] = []
    if sink is None:

        def sink(top: int, band: torch.Tensor) -> None:
            assembled.append(band)

    if len(rows) == 1 and len(cols) == 1:
        sink(0, fn(image.to(device, dtype)).float().cpu())
        return torch.cat(assembled, dim=2) if assembled else None
    row_w, col_w = axis_weights(rows), axis_weights(cols)
    total_y, total_x = torch.zeros(height), torch.zeros(width)
    for (y0, y1), wy in zip(rows, row_w, strict=True):
        total_y[y0:y1] += wy
    for (x0, x1), wx in zip(cols, col_w, strict=True):
        total_x[x0:x1] += wx
    band: torch.Tensor | None = None  # partial sums of rows [top, top + band height)
    top = 0
    for index, ((y0, y1), wy) in enumerate(zip(rows, row_w, strict=True)):
        for (x0, x1), wx in zip(cols, col_w, strict=True):
            result = fn(image[:, :, y0:y1, x0:x1].to(device, dtype)).float().cpu()
            if band is None:
                band = torch.zeros(1, result.shape[1], y1 - top, width)
            elif band.shape[2] < y1 - top:  # the new tile row reaches further down
                grown = torch.zeros(1, band.shape[1], y1 - top, width)
                grown[:, :, : band.shape[2]] = band
                band = grown
            weight = wy[:, None] * wx[None, :]
            band[:, :, y0 - top : y1 - top, x0:x1].addcmul_(result, weight)
        assert band is not None
        done = rows[index + 1][0] if index + 1 < len(rows) else height  # no later tile above
        finished = band[:, :, : done - top]
        sink(top, finished.div_(total_y[top:done, None] * total_x[None, :]))
        band, top = band[:, :, done - top :].clone(), done
    return torch.cat(assembled, dim=2) if assembled else None


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS out-of-memory errors and failed CPU allocations."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text.lower()
    )


def tiled_forward_with_backoff(
    fn: TileFn,
    image: torch.Tensor,
    tile: int,
    overlap: int,
    multiple: int = 1,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    min_tile: int = 128,
    on_retry: Callable[[int], None] | None = None,
    sink: RowSink | None = None,
) -> tuple[torch.Tensor | None, int]:
    """:func:`tiled_forward`, halving the tile after each out-of-memory error.

    Args:
        min_tile: the smallest tile tried before giving up.
        on_retry: called with the new tile size before each retry.

    Returns:
        The output (None with a ``sink``) and the tile size that worked (0 = whole image).

    Raises:
        OutOfMemoryError: even ``min_tile`` does not fit.
    """
    size = tile if tile > 0 else max(image.shape[-2:])
    while True:
        try:
            output = tiled_forward(fn, image, size, overlap, multiple, device, dtype, sink)
            return output, 0 if size >= max(image.shape[-2:]) else size
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            if not is_out_of_memory(exc):
                raise
        if device is not None and device.type == "cuda":
            torch.cuda.empty_cache()
        smaller = max(multiple, size // 2 // multiple * multiple)
        if size <= min_tile or smaller == size:
            raise OutOfMemoryError(
                f"out of memory even with {size}px tiles: free memory (close other programs) "
                "or use --precision fp16 on a GPU"
            )
        size = max(smaller, min(min_tile, size))
        if on_retry is not None:
            on_retry(size)


def auto_tile_size(
    free_bytes: int, bytes_per_pixel: float, multiple: int, limit: int, floor: int = 128
) -> int:
    """Largest tile whose activations fit in ``free_bytes``.

    Args:
        free_bytes: memory budget for one tile's activations.
        bytes_per_pixel: measured activation memory of the model per input pixel.
        multiple: the tile is a multiple of this.
        limit: never larger than this (beyond it tiles only cost latency).
        floor: never smaller than this.
    """
    side = int(math.sqrt(max(free_bytes, 0) / bytes_per_pixel))
    side = min(side, limit) // multiple * multiple
    return max(side, floor // multiple * multiple, multiple)
