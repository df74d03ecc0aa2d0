"""Training the blur detector: variants, labels, tiles, calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deblurcli.ops.blur_estimate import TILE
from deblurcli.train.blur_detector import (
    calibrate,
    fit,
    in_focus,
    photo_examples,
    roc_auc,
    shallow_focus_examples,
    tile_dataset,
)


@pytest.fixture(scope="module")
def examples(photos):
    return photo_examples(photos[0], seed=3)


def test_every_photo_gives_the_recipes_variants_with_their_labels(examples, photos):
    kinds = [e.kind for e in examples]
    assert kinds == ["original", "sharp", "sharp"] + ["shake"] * 6 + ["linear", "defocus"]
    assert all(e.photo == photos[0].name for e in examples)
    for example in examples:
        assert example.gray.dtype == np.uint8 and max(example.gray.shape) <= 768
        if example.kind in ("original", "sharp"):
            assert np.all(example.extents == 1)
        else:
            assert example.extents.shape == (4,) and example.extents.max() > 1.5
    linear = examples[-2].extents  # one long direction, the others shorter
    assert linear.max() > 2 * np.sort(linear)[0]
    again = photo_examples(photos[0], seed=3)
    assert all(np.array_equal(a.gray, b.gray) for a, b in zip(examples, again, strict=True))


def test_only_detailed_tiles_of_the_original_are_taught(examples):
    focus = in_focus(examples[0].gray)
    rows, cols = (s // TILE for s in examples[0].gray.shape)
    assert focus.shape == (rows * cols,) and 0 < focus.sum() < len(focus)
    flat = np.full((2 * TILE, 2 * TILE), 128, np.uint8)
    assert not in_focus(flat).any()
    x, y = tile_dataset(examples)
    assert x.shape[1:] == (1, TILE, TILE) and y.shape == (len(x), 4)
    assert len(x) <= len(examples) * focus.sum()
    assert torch.allclose(x.mean(dim=(1, 2, 3)), torch.zeros(len(x)), atol=1e-4)


def test_shallow_focus_copies_keep_the_detailed_part_sharp(photos):
    copies = shallow_focus_examples(photos[1], seed=0)
    assert [c.kind for c in copies] == ["shallow-focus", "shallow-focus"]
    assert all(np.all(c.extents == 1) for c in copies)


def test_a_short_fit_and_calibration_give_a_usable_detector(examples):
    x, y = tile_dataset(examples)
    net = fit(x, y, epochs=1, seed=0, log=lambda _: None, batch=32)
    settings = calibrate(net, examples, quantile=0.02, false_alarms=0.05)
    assert math.isfinite(settings.threshold) and settings.threshold >= 1
    assert settings.slope > 0 and math.isfinite(settings.offset)


def test_roc_auc_counts_ordered_pairs_and_half_the_ties():
    assert roc_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert roc_auc(np.array([1.0]), np.array([2.0])) == 0.0
    assert roc_auc(np.array([2.0, 5.0]), np.array([2.0, 1.0])) == pytest.approx(0.875)
