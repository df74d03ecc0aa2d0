"""Dataset building: byte-identical reruns, the documented forward model, the
split by source, resuming with append, overwrite, and bad sources."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from deblurcli.errors import UsageError
from deblurcli.ops.pairs import KernelOptions, Range, SynthSettings, downscale
from deblurcli.ops.synthesis import SynthesisConfig
from deblurcli.pipelines.synth import build_dataset, pair_name, plan_sources

NO_NOISE = SynthesisConfig(noise=False)


@pytest.fixture
def sources(tmp_path, photos) -> list[tuple[Path, str]]:
    """Five small real photos (one 16-bit, one in a subfolder) as (path, relative)."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    found = []
    for i, photo in enumerate(photos[:5]):
        image = cv2.resize(cv2.imread(str(photo)), (120 + 8 * i, 96))
        relative = f"sub/p{i}.png" if i == 4 else f"p{i}.png"
        if i == 3:
            image = image.astype(np.uint16) * 257 + 100
        cv2.imwrite(str(folder / relative), image)
        found.append((folder / relative, relative))
    return found


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def _manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    return np.where(
        x <= 0.0031308, 12.92 * x, 1.055 * np.maximum(x, 0.0031308) ** (1 / 2.4) - 0.055
    )


def _forward_model(sharp: np.ndarray, kernel: np.ndarray, gain: float | None) -> np.ndarray:
    """The documented model, re-stated in NumPy/OpenCV float64 (noise and JPEG off).

    ``sharp`` is the photo the crop came from (float in [0, 1], H×W×C); the
    convolution extends it by mirroring (BORDER_REFLECT_101), so it can be
    applied to the whole photo and cropped afterwards.
    """
    light = _srgb_to_linear(sharp)
    if gain is not None:
        ramp = np.clip((light.max(axis=2, keepdims=True) - 0.9) / 0.1, 0, 1)
        light = light * (1 + (gain - 1) * ramp)
    flipped = kernel[::-1, ::-1].astype(np.float64)
    blurred = cv2.filter2D(light, -1, flipped, borderType=cv2.BORDER_REFLECT_101)
    return _linear_to_srgb(np.clip(blurred.reshape(sharp.shape), 0, 1))


def test_the_same_seed_gives_a_byte_identical_dataset(tmp_path, sources):
    settings = SynthSettings(per_image=2, seed=11, crop=(64, 48), val_fraction=0.4)
    build_dataset(sources, tmp_path / "a", settings)
    build_dataset(sources, tmp_path / "b", settings)
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(first) == 5 * 2 * 3 + 2  # three files per pair, manifest, settings
    assert first == second
    build_dataset(sources, tmp_path / "c", SynthSettings(per_image=2, seed=12, crop=(64, 48)))
    other = _files(tmp_path / "c")
    assert other["manifest.jsonl"] != first["manifest.jsonl"]


def test_worker_processes_do_not_change_a_single_byte(tmp_path, sources):
    settings = SynthSettings(per_image=1, seed=2, crop=(80, 64))
    build_dataset(sources, tmp_path / "one", settings, workers=1)
    build_dataset(sources, tmp_path / "two", settings, workers=2)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


@pytest.mark.parametrize("crop", [None, (72, 56)])
def test_blurred_images_follow_the_documented_forward_model(tmp_path, sources, crop):
    kernels = KernelOptions(types=("shake", "linear", "defocus", "gaussian"), max_len=Range(8, 20))
    settings = SynthSettings(per_image=3, seed=4, crop=crop, kernels=kernels, synthesis=NO_NOISE)
    out = tmp_path / "ds"
    build_dataset(sources, out, settings)
    records = _manifest(out)
    assert len(records) == 15
    assert {r["kernel_type"] for r in records} >= {"shake", "linear"}
    for record in records:
        source = next(path for path, rel in sources if rel == record["source"])
        photo = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
        peak = np.iinfo(photo.dtype).max
        assert record["bit_depth"] == (16 if peak > 255 else 8)
        kernel = np.load(out / record["kernel"])
        assert kernel.dtype == np.float32 and abs(float(kernel.sum()) - 1) < 1e-5
        assert kernel.shape == (record["kernel_size"],) * 2
        x, y, w, h = record["crop"]
        sharp = cv2.imread(str(out / record["sharp"]), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
        blurred = cv2.imread(str(out / record["blur"]), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
        assert np.array_equal(sharp, photo[y : y + h, x : x + w])
        expected = _forward_model(photo / peak, kernel, record["saturation_gain"])
        expected = np.rint(expected[y : y + h, x : x + w] * peak)
        difference = np.abs(blurred.astype(np.float64) - expected)
        assert difference.max() <= 1, record["name"]
        assert (difference == 0).mean() > 0.99, record["name"]
        assert np.abs(blurred.astype(float) - sharp).mean() > 0.2 * (peak / 255)  # it did blur


def test_split_is_by_source_photo(tmp_path, sources):
    settings = SynthSettings(per_image=3, seed=0, val_fraction=0.4, crop=(48, 48))
    build_dataset(sources, tmp_path / "ds", settings)
    records = _manifest(tmp_path / "ds")
    split_of: dict[str, set[str]] = {}
    for record in records:
        split_of.setdefault(record["source"], set()).add(record["split"])
        assert record["blur"].startswith(record["split"] + "/blur/")
    assert all(len(splits) == 1 for splits in split_of.values())
    assert sum(splits == {"val"} for splits in split_of.values()) == 2  # round(0.4 * 5)
    plans = plan_sources(sources, settings)
    assert plans[4].pairs[1].name == "sub__p4-001" == pair_name("sub/p4.png", 1)


def test_append_resumes_an_interrupted_run_without_duplicates(tmp_path, sources):
    settings = SynthSettings(per_image=2, seed=9, crop=(64, 64), val_fraction=0.2)
    build_dataset(sources, tmp_path / "full", settings)
    stopped = tmp_path / "stopped"
    build_dataset(sources, stopped, settings)
    # Stopped after 3 sources: the pairs of the last two are missing, and one pair
    # of the third had its files written but not its manifest line.
    lines = (stopped / "manifest.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["source"] in ("p0.png", "p1.png")]
    kept.append(next(line for line in lines if json.loads(line)["name"] == "p2-000"))
    for line in lines:
        record = json.loads(line)
        if record["source"] in ("p3.png", "sub/p4.png"):
            for kind in ("blur", "sharp", "kernel"):
                (stopped / record[kind]).unlink()
    (stopped / "manifest.jsonl").write_text("\n".join(kept) + "\n")
    summary = build_dataset(sources, stopped, settings, mode="append")
    assert summary.kept == 5 and summary.written == 5
    full, resumed = _files(tmp_path / "full"), _files(stopped)
    assert {k: v for k, v in resumed.items() if k != "synth-blur.json"} == {
        k: v for k, v in full.items() if k != "synth-blur.json"
    }
    assert len(json.loads(resumed["synth-blur.json"])["runs"]) == 2
    again = build_dataset(sources, stopped, settings, mode="append")
    assert again.written == 0 and again.kept == 10
    assert len(_manifest(stopped)) == 10


def test_a_non_empty_folder_needs_append_or_overwrite(tmp_path, sources):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="--append"):
        build_dataset(sources, out, SynthSettings())
    assert (out / "notes.txt").read_text() == "mine"


def test_overwrite_remakes_pairs_and_drops_the_ones_no_longer_made(tmp_path, sources):
    out = tmp_path / "ds"
    build_dataset(sources, out, SynthSettings(per_image=2, seed=1, crop=(48, 48)))
    (out / "notes.txt").write_text("mine")
    summary = build_dataset(
        sources, out, SynthSettings(per_image=1, seed=1, crop=(48, 48)), mode="overwrite"
    )
    assert summary.written == 5
    names = {r["name"] for r in _manifest(out)}
    assert names == {pair_name(rel, 0) for _, rel in sources}
    assert not list(out.rglob("*-001.*"))
    assert (out / "notes.txt").read_text() == "mine"


def test_photos_smaller_than_the_crop_fail_by_name_and_the_rest_is_made(tmp_path, sources):
    small = tmp_path / "photos" / "tiny.png"
    cv2.imwrite(str(small), np.full((40, 50, 3), 128, np.uint8))
    broken = tmp_path / "photos" / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    summary = build_dataset(
        [*sources, (small, "tiny.png"), (broken, "broken.jpg")],
        tmp_path / "ds",
        SynthSettings(crop=(64, 64)),
    )
    assert summary.written == 5
    failed = dict(summary.failures)
    assert "smaller than the 64x64 crop" in failed[str(small)]
    assert str(small) in failed[str(small)]
    assert str(broken) in failed
    assert len(_manifest(tmp_path / "ds")) == 5


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_downscale_keeps_aspect_and_never_enlarges(dtype):
    rng = np.random.default_rng(0)
    wide = rng.integers(0, np.iinfo(dtype).max, (300, 400, 3)).astype(dtype)
    small = downscale(wide, 200)
    assert small.shape == (150, 200, 3) and small.dtype == dtype
    assert np.array_equal(small, cv2.resize(wide, (200, 150), interpolation=cv2.INTER_AREA))
    gray = wide[:, :, 0].T.copy()  # 400 x 300, portrait, 2-D
    assert downscale(gray, 100).shape == (100, 75)
    assert downscale(wide, 400) is wide and downscale(wide, None) is wide
