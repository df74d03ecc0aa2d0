"""Tile planning, blending weights, out-of-memory back-off, automatic tile size."""

from __future__ import annotations

import itertools

import pytest
import torch

from deblurcli.errors import OutOfMemoryError
from deblurcli.ops.tiling import (
    auto_tile_size,
    axis_weights,
    plan_axis,
    tiled_forward,
    tiled_forward_with_backoff,
)


@pytest.mark.parametrize("size", [1, 31, 100, 257, 1000, 4001])
@pytest.mark.parametrize("tile,overlap,multiple", [(64, 16, 8), (128, 64, 32), (96, 0, 32)])
def test_plan_covers_the_axis_with_aligned_overlapping_spans(size, tile, overlap, multiple):
    spans = plan_axis(size, tile, overlap, multiple)
    assert spans[0][0] == 0 and spans[-1][1] == size
    for (a0, a1), (b0, _) in itertools.pairwise(spans):
        assert b0 % multiple == 0
        assert a1 - b0 >= overlap  # neighbours share at least the overlap
        assert b0 > a0
    assert all(
        stop - start <= max(tile + multiple - 1, size if len(spans) == 1 else 0)
        for start, stop in spans
    )


@pytest.mark.parametrize("size,tile,overlap", [(300, 64, 16), (1000, 256, 64), (105, 48, 40)])
def test_axis_weights_sum_to_one_and_vanish_at_inner_edges(size, tile, overlap):
    spans = plan_axis(size, tile, overlap, 8)
    total = torch.zeros(size)
    cover = torch.zeros(size, dtype=torch.int64)
    for (start, stop), w in zip(spans, axis_weights(spans), strict=True):
        total[start:stop] += w
        cover[start:stop] += 1
        assert w.min() >= 0
    assert torch.all(total > 0)  # three-way overlaps: tiled_forward divides by the total
    two_way = cover <= 2
    torch.testing.assert_close(total[two_way], torch.ones(int(two_way.sum())))
    first = axis_weights(spans)[1]
    assert first[0] < 0.01  # a tile barely counts at its inner edge


def test_tiled_forward_of_a_pointwise_function_is_exact():
    image = torch.rand(1, 3, 123, 301)

    def fn(t: torch.Tensor) -> torch.Tensor:
        return t * 3 - 1

    out = tiled_forward(fn, image, tile=64, overlap=24, multiple=8)
    torch.testing.assert_close(out, image * 3 - 1, rtol=0, atol=1e-5)


def test_a_sink_gets_each_finished_row_once_top_to_bottom_from_stored_pixels():
    pixels = torch.randint(0, 256, (1, 3, 123, 301), dtype=torch.uint8)  # kept as stored
    expected = pixels.float() / 255 * 3 - 1
    bands: list[tuple[int, torch.Tensor]] = []
    returned = tiled_forward(
        lambda t: t / 255 * 3 - 1, pixels, tile=64, overlap=24, multiple=8,
        sink=lambda top, band: bands.append((top, band.clone())),
    )  # fmt: skip
    assert returned is None and len(bands) > 2  # several bands: never the whole image at once
    tops = [top for top, _ in bands]
    heights = [band.shape[2] for _, band in bands]
    assert tops == [sum(heights[:i]) for i in range(len(bands))] and sum(heights) == 123
    torch.testing.assert_close(torch.cat([b for _, b in bands], 2), expected, rtol=0, atol=1e-5)


def test_restoring_a_16_bit_gray_photo_keeps_depth_and_equals_the_float_path():
    import numpy as np

    from deblurcli.models import build_model
    from deblurcli.ops.color import rgb_to_gray
    from deblurcli.pipelines.restore import Restorer

    torch.manual_seed(0)
    model = build_model("mobilenet-dsc", {"norm": "batch"})
    with torch.no_grad():
        model.final.weight.mul_(30)
    restorer = Restorer(model, "mobilenet-dsc", None, torch.device("cpu"), tile=96, overlap=32)
    gray = np.random.default_rng(0).integers(0, 65536, (150, 170, 1), dtype=np.uint16)
    out, report = restorer.restore_array(gray)
    assert out.shape == gray.shape and out.dtype == np.uint16 and report.tile == 96
    as_float = torch.from_numpy(gray.astype(np.float32) / 65535).permute(2, 0, 1)
    whole, _ = restorer.restore_tensor(as_float.expand(3, -1, -1)[None])
    expected = rgb_to_gray(whole)[0, 0].numpy()  # the float path, tiled the same way
    assert np.abs(out[:, :, 0].astype(float) / 65535 - expected).max() < 2e-4
    assert np.abs(out.astype(float) - gray.astype(float)).mean() > 100  # the model did run


def test_only_tiles_reach_the_function():
    seen: list[tuple[int, int]] = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(t.shape[-2:]))
        return t

    tiled_forward(fn, torch.rand(1, 3, 500, 700), tile=256, overlap=32, multiple=32)
    assert len(seen) > 1 and max(max(s) for s in seen) < 256 + 32


def test_out_of_memory_halves_the_tile_and_retries():
    sizes: list[int] = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        if max(t.shape[-2:]) > 160:  # 128px tiles plus the last one, up to 159px
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return t + 1

    image = torch.rand(1, 3, 400, 400)
    out, used = tiled_forward_with_backoff(fn, image, 512, 16, 32, on_retry=sizes.append)
    assert used == 128 and sizes == [256, 128]
    torch.testing.assert_close(out, image + 1)


def test_out_of_memory_at_the_floor_is_a_clear_error():
    def fn(t: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate")

    with pytest.raises(OutOfMemoryError, match="out of memory even with"):
        tiled_forward_with_backoff(fn, torch.rand(1, 3, 300, 300), 256, 16, 32, min_tile=128)


def test_other_errors_are_not_mistaken_for_out_of_memory():
    def fn(t: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        tiled_forward_with_backoff(fn, torch.rand(1, 3, 64, 64), 32, 8, 8)


def test_auto_tile_size_fits_the_budget():
    tile = auto_tile_size(free_bytes=500 * 1024**2, bytes_per_pixel=540, multiple=32, limit=4096)
    assert tile % 32 == 0
    assert tile * tile * 540 <= 500 * 1024**2 < (tile + 32) ** 2 * 540
    assert auto_tile_size(10**12, 540, 32, limit=1024) == 1024
    assert auto_tile_size(0, 540, 32, limit=1024) == 128


def test_a_photo_near_the_free_memory_is_warned_about_before_it_runs(monkeypatch):
    import numpy as np

    from deblurcli.models import build_model
    from deblurcli.pipelines import restore

    restorer = restore.Restorer(build_model("curves"), "curves", None, torch.device("cpu"))
    pixels = np.zeros((64, 80, 3), np.uint8)
    assert restorer.memory_warning(pixels) is None
    monkeypatch.setattr(restore, "free_memory_bytes", lambda device: 40_000)
    warning = restorer.memory_warning(pixels)
    assert "for the photo's buffers" in warning and "GB free" in warning
