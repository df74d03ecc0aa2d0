"""The weights we ship: intact, documented, the defaults, inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open

from deblurcli import hub
from deblurcli.download import file_digest
from deblurcli.models import get_spec
from deblurcli.models._builder import load_model
from deblurcli.models.blur_detector import ARCHITECTURE as BLUR_DETECTOR_ARCHITECTURE

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [e for e in hub.manifest().values() if not e.urls]
# Not trained by deblur train: the blind deconvolution's settings and refiner (own test below).
SETTINGS_ONLY = {"deconv"}
# Not a restorer: the blur detector of deblur triage (its own test below).
DETECTOR = BLUR_DETECTOR_ARCHITECTURE
TRAINED = [e for e in SHIPPED if e.architecture not in SETTINGS_ONLY | {DETECTOR}]


def test_every_architecture_we_train_ships_weights():
    assert {e.architecture for e in TRAINED} == {"mobilenet", "mobilenet-dsc", "dpe", "curves"}


@pytest.mark.parametrize("entry", TRAINED, ids=lambda e: e.name)
def test_shipped_weights_are_intact_fp16_documented_and_the_default(entry):
    path = hub.location(entry)
    assert path == ROOT / "weights" / entry.file
    assert path.stat().st_size == entry.size and file_digest(path) == entry.digest
    with safe_open(str(path), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118
    assert torch.float16 in dtypes and torch.float32 not in dtypes
    model, info = load_model(path, entry.architecture)
    assert not info.official and model.statistics == "running"
    assert get_spec(entry.architecture).default_weights == entry.name
    training = entry.training
    assert "CC-BY-SA-4.0" in training["photographs"] and "GPL-2+" in training["photographs"]
    assert any(c.startswith(("deblur train ", "OMP_NUM_THREADS=1 deblur train")) for c in
               training["commands"])  # fmt: skip
    assert training["steps"] >= training["best_step"] > 0
    validation = training["validation"]
    assert validation["best"]["psnr"] > validation["before"]["psnr"]  # training helped


def test_the_blind_deconvolution_settings_ship_documented_and_as_the_default():
    (entry,) = [e for e in SHIPPED if e.architecture == "deconv"]
    path = hub.location(entry)
    assert path.stat().st_size == entry.size and file_digest(path) == entry.digest
    with safe_open(str(path), "pt") as f:
        keys = list(f.keys())
        dtypes = {f.get_tensor(k).dtype for k in keys}
    assert keys and all(k.startswith("refiner.") for k in keys) and dtypes == {torch.float16}
    model, info = load_model(path)
    assert info.architecture == "deconv" and not model.local
    assert get_spec("deconv").default_weights == entry.name
    from deblurcli.models.blind import BlindDeconvolution

    assert isinstance(model, BlindDeconvolution) and model.iterations == 10
    assert model.refiner is not None
    training = entry.training
    held_out = [name.split(" (")[0] for name in training["held_out"].replace(";", ",").split(", ")]
    assert len(held_out) == 8 and not any(name in training["photographs"] for name in held_out)
    assert any(c.startswith("python benchmarks/quality.py") for c in training["commands"])
    assert any(c.startswith("python -m deblurcli.train.deconv_refiner") for c in
               training["commands"])  # fmt: skip
    validation = training["validation"]
    assert validation["best"]["gain_db"] > validation["before"]["gain_db"]  # the refiner helps


def test_the_blur_detector_ships_intact_and_documented():
    from deblurcli.models.blur_detector import WEIGHTS_NAME, BlurDetector

    (entry,) = [e for e in SHIPPED if e.architecture == DETECTOR]
    assert entry.name == WEIGHTS_NAME
    path = hub.location(entry)
    assert path.stat().st_size == entry.size and file_digest(path) == entry.digest
    detector = BlurDetector.load()
    assert 0 < detector.settings.quantile < 0.1 and 4 < detector.threshold < 16
    training = entry.training
    held_out = [name.split(" (")[0] for name in training["held_out"].replace(";", ",").split(", ")]
    assert len(held_out) == 8
    for name in held_out:  # kept out of both training and calibration
        assert name not in training["photographs"] and name not in training["calibration"]
    assert any(c.startswith("python -m deblurcli.train.blur_detector") for c in
               training["commands"])  # fmt: skip
    assert "ROC AUC" in training["held_out_result"]


def test_the_built_wheel_carries_the_weights(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("deblurcli-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for entry in SHIPPED:
        assert f"deblurcli/weights/{entry.file}" in names
    assert "deblurcli/weights/manifest.json" in names


@pytest.mark.parametrize(("command", "backbone"), [
    ("deblur", None), ("deblur", "mobilenet"), ("deblur", "mobilenet-dsc"), ("enhance", None),
])  # fmt: skip
def test_the_quickstart_runs_offline_on_the_example_photos(
    monkeypatch, capsys, tmp_path, command, backbone
):
    from PIL import Image

    from tests.cli import run_cli

    examples = ROOT / "docs" / "examples"
    extra = ["-b", backbone] if backbone else []
    code, _, stderr = run_cli(
        monkeypatch, capsys, command, str(examples), "-o", str(tmp_path / "out"), *extra
    )
    assert code == 0, stderr
    sharpness = {"in": 0.0, "out": 0.0}
    for photo in examples.glob("*.jpg"):
        with Image.open(photo) as source, Image.open(tmp_path / "out" / photo.name) as result:
            assert result.size == source.size
            before, after = np.asarray(source, float), np.asarray(result, float)
        if command == "enhance" and photo.stem.endswith("_dull"):
            assert np.abs(after - before).mean() > 10  # the dull ladybird is brightened
            assert after.std() > 1.3 * before.std()  # and its contrast restored
        elif photo.stem.endswith("_shaken"):
            sharpness["in"] += cv2.Laplacian(before.mean(axis=2), cv2.CV_64F).var()
            sharpness["out"] += cv2.Laplacian(after.mean(axis=2), cv2.CV_64F).var()
    if command == "deblur" and backbone is None:  # the default, blind deconvolution
        assert sharpness["out"] > 5 * sharpness["in"], sharpness  # measured: 19 times
    elif command == "deblur":  # the networks sharpen far less (measured: +8 % and +13 %)
        assert sharpness["out"] > 1.05 * sharpness["in"], sharpness
