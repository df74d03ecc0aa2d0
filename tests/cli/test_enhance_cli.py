"""The real ``deblur enhance`` command: the deblur batch path with an enhancer and --strength."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deblurcli.models import build_model
from deblurcli.models._builder import save_weights
from tests.cli import run_cli


def enhance(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    return run_cli(monkeypatch, capsys, "enhance", *args)


@pytest.fixture(scope="module")
def dpe_weights(tmp_path_factory) -> Path:
    """Random eval-mode DPE weights (global path at 128 px) with a visible residual."""
    torch.manual_seed(5)
    model = build_model("dpe", {"global_size": 128})
    with torch.no_grad():
        model.output.weight.mul_(20)
    path = tmp_path_factory.mktemp("w") / "dpe.safetensors"
    save_weights(model.eval(), path, "dpe", {"global_size": 128})
    return path


@pytest.fixture
def inputs(tmp_path, photos) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    with Image.open(photos[0]) as photo:
        photo.convert("RGB").resize((300, 200)).save(folder / "a.jpg", exif=exif, dpi=(240, 240))
    with Image.open(photos[1]) as photo:
        photo.convert("RGB").resize((150, 100)).save(folder / "b.png")
    (folder / "broken.jpg").write_text("not an image")
    return folder


def test_enhances_at_full_size_keeping_metadata_and_reports_bad_files(
    monkeypatch, capsys, tmp_path, inputs, dpe_weights
):
    out = tmp_path / "out"
    code, stdout, stderr = enhance(
        monkeypatch, capsys, str(inputs), "-o", str(out), "-w", str(dpe_weights), "--json"
    )
    assert code == 1  # the broken file failed, the others were written
    assert "broken.jpg" in stderr
    report = json.loads(stdout)
    assert {Path(r["input"]).name: r["status"] for r in report["results"]} == {
        "a.jpg": "ok", "b.png": "ok", "broken.jpg": "failed",
    }  # fmt: skip
    with Image.open(out / "a.jpg") as a, Image.open(inputs / "a.jpg") as source:
        assert a.size == (300, 200)
        assert a.getexif()[0x010F] == "TestCam" and round(a.info["dpi"][0]) == 240
        changed = np.abs(np.asarray(a, float) - np.asarray(source, float)).mean()
        assert changed > 5
    with Image.open(out / "b.png") as b:
        assert b.size == (150, 100)


def test_strength_zero_leaves_the_photo_unchanged(
    monkeypatch, capsys, tmp_path, inputs, dpe_weights
):
    out = tmp_path / "out"
    code, _, stderr = enhance(
        monkeypatch, capsys, str(inputs / "b.png"), "-o", str(out), "-w", str(dpe_weights),
        "--strength", "0",
    )  # fmt: skip
    assert code == 0, stderr
    with Image.open(out / "b.png") as b, Image.open(inputs / "b.png") as source:
        assert np.array_equal(np.asarray(b), np.asarray(source))


def test_deblur_weights_are_refused_by_enhance_and_the_other_way_round(
    monkeypatch, capsys, tmp_path, inputs, dpe_weights, dsc_weights
):
    code, _, stderr = enhance(
        monkeypatch, capsys, str(inputs), "-o", str(tmp_path / "o"), "-w", str(dsc_weights)
    )
    assert code == 2 and "holds deblur weights" in stderr and "deblur deblur" in stderr
    code, _, stderr = run_cli(
        monkeypatch, capsys, "deblur", str(inputs), "-o", str(tmp_path / "o"), "-w",
        str(dpe_weights),
    )  # fmt: skip
    assert code == 2 and "holds enhance weights" in stderr and "deblur enhance" in stderr
    code, _, stderr = enhance(
        monkeypatch, capsys, str(inputs), "-o", str(tmp_path / "o"), "--strength", "1.5"
    )
    assert code == 2 and "--strength" in stderr and "Traceback" not in stderr
