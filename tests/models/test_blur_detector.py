"""The blur detector: its file format, and the shipped one judging real photographs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from deblurcli.errors import WeightsError
from deblurcli.models.blur_detector import BlurDetector, BlurNet, DetectorSettings
from deblurcli.ops.blur_estimate import REFERENCE_SIDE


def test_a_saved_detector_loads_back_with_its_settings(tmp_path, rng):
    torch.manual_seed(3)
    detector = BlurDetector(BlurNet(), DetectorSettings(quantile=0.05, threshold=7.5))
    detector.save(tmp_path / "d.safetensors")
    loaded = BlurDetector.load(tmp_path / "d.safetensors")
    assert loaded.settings == detector.settings and loaded.threshold == 7.5
    gray = rng.integers(0, 256, (300, 500), dtype=np.uint8)
    assert loaded.estimate(gray) == detector.estimate(gray)


def test_a_detector_file_given_as_restoration_weights_is_refused_by_name(tmp_path):
    from deblurcli.models._builder import load_model

    path = tmp_path / "d.safetensors"
    BlurDetector(BlurNet(), DetectorSettings(quantile=0.05, threshold=7.5)).save(path)
    with pytest.raises(WeightsError, match="blur detector's file"):
        load_model(path)


def test_the_estimate_scales_with_the_photo_it_came_from(rng):
    detector = BlurDetector(BlurNet(), DetectorSettings(quantile=0.5, threshold=6.0))
    with torch.no_grad():
        detector.net.head.bias.fill_(np.log(4.0))
        detector.net.head.weight.zero_()  # every tile: 4 px at the analysis size
    reduced = rng.integers(0, 256, (256, 512), dtype=np.uint8)
    estimate = detector.estimate(reduced, photo_side=2048)
    assert estimate.pixels == pytest.approx(16.0)  # the photo is 4 times larger
    assert estimate.reference_pixels == pytest.approx(4.0 * REFERENCE_SIDE / 512)
    with pytest.raises(ValueError, match="too small"):
        detector.estimate(np.zeros((40, 400), np.uint8))


def test_other_files_are_refused_with_their_name(tmp_path):
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match=r"other\.safetensors: not a blur detector"):
        BlurDetector.load(tmp_path / "other.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(WeightsError, match=r"broken\.safetensors"):
        BlurDetector.load(tmp_path / "broken.safetensors")
