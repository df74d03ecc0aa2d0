"""What a recipe asks of its data and arithmetic reaches the run: on-the-fly blur
settings, crop scales, whole-photo validation, autocast precision, warm starts.

These tests make their own images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from deblurcli import device as device_module
from deblurcli.errors import DeviceError, UsageError, WeightsError
from deblurcli.models import build_model
from deblurcli.models._builder import save_weights
from deblurcli.train.data import (
    TrainingPairs,
    ValidationPairs,
    find_data,
    rescale,
    synth_settings,
)
from deblurcli.train.loop import Trainer
from deblurcli.train.presets import FAST_SYNTH, resolve

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def textured_photos(tmp_path_factory) -> Path:
    """Six 200×160 photos of random smooth colour texture with sharp-edged blocks."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(5)
    for index in range(6):
        noise = rng.random((20, 25, 3)).astype(np.float32)
        image = cv2.resize(noise, (200, 160), interpolation=cv2.INTER_CUBIC)
        for _ in range(8):
            x, y = rng.integers(0, 170), rng.integers(0, 130)
            image[y : y + 30, x : x + 30] = rng.random(3)
        pixels = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
        cv2.imwrite(str(folder / f"p{index}.png"), pixels)
    return folder


def test_synth_settings_map_recipe_options_onto_synth_blur():
    settings = synth_settings(FAST_SYNTH)
    assert settings.kernels.types == ("shake", "shake", "shake", "linear", "defocus")
    assert (settings.kernels.max_len.low, settings.kernels.max_len.high) == (15.0, 100.0)
    assert settings.synthesis.read_noise == (2e-4, 3e-3)
    assert settings.synthesis.noise  # defaults kept for keys not given
    with pytest.raises(ValueError, match="unknown blur option 'shake_len'"):
        synth_settings({"shake_len": [1, 2]})


def test_the_recipes_blur_reaches_the_training_pairs(textured_photos):
    """Once the recipe's settings were dropped and every run blurred with the
    defaults; a near-delta Gaussian without noise must leave crops (almost) sharp."""
    source = find_data(textured_photos)
    gentle = synth_settings(
        {"types": ["gaussian"], "sigma": [0.1, 0.1], "noise": False, "saturation": False}
    )
    pairs = TrainingPairs(source, 64, seed=3, synth=gentle)
    default = TrainingPairs(source, 64, seed=3)
    for index in range(3):
        blurred, sharp = pairs[index]
        assert float((blurred - sharp).abs().max()) <= 2 / 255 * 2 + 1e-6
        blurred, sharp = default[index]
        assert float((blurred - sharp).abs().mean()) > 0.02


def test_crops_come_from_the_photo_at_the_drawn_scale(textured_photos):
    assert rescale(np.zeros((160, 200, 3), np.uint8), 0.5, 64).shape == (80, 100, 3)
    assert rescale(np.zeros((160, 200, 3), np.uint8), 0.1, 64).shape[0] == 64  # floor
    source = find_data(textured_photos)
    halved = TrainingPairs(source, 64, seed=1, scales=(0.5, 0.5))
    assert halved._photo(0, seed=9).shape == (80, 100, 3)
    varied = TrainingPairs(source, 64, seed=1, scales=(0.4, 1.0))
    sizes = {varied._photo(0, seed=s).shape for s in range(8)}
    assert len(sizes) > 4 and all(64 <= h <= 160 for h, _, _ in sizes)


def test_validation_on_whole_photos_with_the_recipes_blur(textured_photos):
    source = find_data(textured_photos)
    settings = synth_settings({"types": ["linear"], "length": [9, 9], "noise": False})
    whole = ValidationPairs(source, 0, seed=0, synth=settings)
    blurred, sharp = whole[0]
    assert blurred.shape == sharp.shape == (3, 160, 200)
    assert float((blurred - sharp).abs().mean()) > 0.01
    assert torch.equal(whole[0][0], blurred)  # fixed: every validation sees the same input


def test_training_precision_policy(monkeypatch):
    assert device_module.resolve_training_precision("fp32", CPU) == torch.float32
    assert device_module.resolve_training_precision("bf16", CPU) == torch.bfloat16
    with pytest.raises(DeviceError, match="fp16 training needs a GPU"):
        device_module.resolve_training_precision("fp16", CPU)
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: True)
    assert device_module.resolve_training_precision("auto", CPU) == torch.bfloat16
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: False)
    assert device_module.resolve_training_precision("auto", CPU) == torch.float32


def _config(**overrides):
    base = {"model": "mobilenet-dsc", "steps": 30, "batch_size": 4, "crop": 64, "val_crop": 96,
            "lr": 1e-3, "val_every": 30, "log_every": 10, "workers": 0,
            "synth": {"types": ["gaussian"], "sigma": [1.2, 1.8], "noise": False}}  # fmt: skip
    return resolve("fast", **{**base, **overrides})


def test_a_bf16_run_computes_in_bf16_and_still_learns(textured_photos, tmp_path):
    source = find_data(textured_photos)
    # Small: CPUs without native bf16 (AVX2 only) emulate it about 15x slower than fp32.
    config = _config(precision="bf16", steps=12, batch_size=2, crop=32, val_crop=48, val_every=12)
    trainer = Trainer(config, source, source, tmp_path / "run", CPU)
    seen = []
    first = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    hook = first.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    with trainer._autocast():
        trainer.model(torch.zeros(1, 3, 64, 64))
    hook.remove()
    assert seen == [torch.bfloat16]
    reports = list(trainer.run())
    assert reports[-1].validation["l1"] < reports[0].validation["l1"]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_warm_start_begins_from_the_file(textured_photos, tmp_path):
    torch.manual_seed(4)
    config = {"norm": "batch"}
    weights = tmp_path / "start.safetensors"
    start = build_model("mobilenet-dsc", config)
    save_weights(start, weights, "mobilenet-dsc", config)
    source = find_data(textured_photos)
    trainer = Trainer(_config(init=str(weights), steps=1), source, None, tmp_path / "run", CPU)
    for name, value in start.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[name], value), name
        assert torch.equal(trainer.ema.state_dict()[name], value), name
    with pytest.raises(WeightsError, match="'mobilenet-dsc' weights but 'mobilenet'"):
        Trainer(_config(model="mobilenet", init=str(weights)), source, None, tmp_path / "r2", CPU)


def test_bad_blur_options_are_a_usage_error(textured_photos, tmp_path):
    source = find_data(textured_photos)
    with pytest.raises(UsageError, match="unknown blur option"):
        Trainer(_config(synth={"blurr": 1}), source, None, tmp_path / "run", CPU)


@pytest.mark.parametrize("preset", ["fast", "dpe-2way"])
def test_every_trainer_validates_as_the_recipe_says(preset, textured_photos):
    from deblurcli.train.data import validation_set

    source = find_data(textured_photos)
    config = resolve(preset, val_crop=0, val_max_side=96, max_side=512)
    task = "enhance" if preset.startswith("dpe") else "deblur"
    pairs = validation_set(source, config, task)
    assert pairs.max_side == 96 and pairs.crop == 1 << 30  # whole photos, shrunk to 96 px
    assert max(pairs[0][0].shape[-2:]) == 96
    assert validation_set(find_data(textured_photos), resolve(preset), task).max_side == (
        resolve(preset).max_side
    )
    assert validation_set(None, config, task) is None


def test_sizes_are_checked_from_headers_by_the_one_reader(tmp_path):
    from deblurcli.errors import InputImageError
    from deblurcli.train.data import check_sizes

    good, broken = tmp_path / "good.png", tmp_path / "broken.png"
    cv2.imwrite(str(good), np.zeros((80, 120, 3), np.uint8))
    broken.write_bytes(b"not an image")
    check_sizes([good], crop=64)
    with pytest.raises(InputImageError, match="smaller than the 64 px training crop"):
        check_sizes([good], crop=64, max_side=90)  # 90×60 after shrinking
    with pytest.raises(InputImageError, match="cannot be read as an image") as error:
        check_sizes([good, broken], crop=16)
    assert str(broken) in str(error.value)
