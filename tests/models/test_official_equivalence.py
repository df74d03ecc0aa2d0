"""Official DeblurGAN-v2 checkpoints give what the official predict.py writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deblurcli.io.images import read_image
from deblurcli.models._builder import load_model
from deblurcli.pipelines.restore import Restorer
from tests.conftest import official_state_dict, save_official_v2
from tests.reference.official_v2 import OfficialFPNMobileNet, official_predict


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_official_v2(tmp_path_factory.mktemp("w") / "fpn_mobilenet.h5", "fpn_mobilenet.json")


@pytest.fixture(scope="module")
def reference() -> OfficialFPNMobileNet:
    model = OfficialFPNMobileNet()
    model.load_state_dict(official_state_dict("fpn_mobilenet.json"), strict=True)
    return model


def test_reference_has_the_official_key_layout(reference):
    import json

    from tests.conftest import LAYOUTS

    entries = json.loads((LAYOUTS / "fpn_mobilenet.json").read_text())["entries"]
    assert list(reference.state_dict()) == [name for name, _, _ in entries]


@pytest.mark.parametrize("index,size", [(0, (333, 517)), (5, (256, 384)), (11, (401, 300))])
def test_mobilenet_matches_official_predict_within_one_grey_level(
    photos, checkpoint, reference, index, size, tmp_path
):
    # A crop of a real photograph at an odd size (and one that is a multiple of 32,
    # where predict.py still adds a full block of padding).
    photo = Image.open(photos[index]).convert("RGB")
    width, height = size[1], size[0]
    rgb = np.asarray(photo)[:height, :width].copy()
    path = tmp_path / "in.png"
    Image.fromarray(rgb).save(path)

    expected = official_predict(reference, rgb)
    model, info = load_model(checkpoint)
    restorer = Restorer(model, info.architecture, info, torch.device("cpu"))
    ours, report = restorer.restore_array(read_image(path).pixels)

    assert report.tile == 0  # whole image, as the official code runs it
    difference = np.abs(ours.astype(int) - expected.astype(int))
    assert difference.max() <= 1
    # The network really changed the picture (not an identity that trivially matches).
    assert np.abs(expected.astype(int) - rgb.astype(int)).mean() > 5
