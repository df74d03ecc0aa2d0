"""The real ``deblur synth-blur`` command: layout, warnings, failures, exit codes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from deblurcli.io.images import read_image
from tests.cli import run_cli


def synth(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    return run_cli(monkeypatch, capsys, "synth-blur", *args)


@pytest.fixture
def folder(tmp_path, photos):
    folder = tmp_path / "sharp"
    folder.mkdir()
    for i, photo in enumerate(photos[:3]):
        cv2.imwrite(str(folder / f"s{i}.jpg"), cv2.resize(cv2.imread(str(photo)), (128, 96)))
    (folder / "README.txt").write_text("credits")  # skipped quietly
    (folder / "clip.mov").write_bytes(b"x")  # skipped with a warning
    return folder


def test_writes_the_documented_layout_and_manifest(monkeypatch, capsys, tmp_path, folder):
    out = tmp_path / "ds"
    code, stdout, stderr = synth(
        monkeypatch, capsys, str(folder), "-o", str(out), "--per-image", "2",
        "--crop", "64x48", "--val-fraction", "0.34", "--seed", "5",
        "--kernel", "shake", "--kernel", "defocus", "--jpeg-quality", "80-90",
    )  # fmt: skip
    assert code == 0, stderr
    assert "clip.mov: not an image" in stderr and "README.txt" not in stderr
    assert "pairs written" in stdout and "6" in stdout
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["name"] for r in records] == sorted(f"s{i}-00{c}" for i in range(3) for c in (0, 1))
    assert {r["split"] for r in records} == {"train", "val"}
    for r in records:
        assert r["kernel_type"] in ("shake", "defocus")
        assert 80 <= r["jpeg_quality"] <= 90
        assert r["noise"]["shot"] > 0 and r["linear_light"] is True
        blurred = cv2.imread(str(out / r["blur"]))
        assert blurred.shape == (48, 64, 3)
        assert (out / r["kernel"]).is_file() and (out / r["sharp"]).is_file()
    settings = json.loads((out / "synth-blur.json").read_text())["runs"][0]
    assert settings["seed"] == 5 and settings["crop"] == [64, 48]


def test_bad_photos_are_named_the_rest_is_made_and_the_exit_code_is_1(
    monkeypatch, capsys, tmp_path, folder
):
    cv2.imwrite(str(folder / "small.png"), np.zeros((40, 40, 3), np.uint8))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    out = tmp_path / "ds"
    code, stdout, stderr = synth(
        monkeypatch, capsys, str(folder), "-o", str(out), "--crop", "64x64", "--json"
    )
    assert code == 1
    document = json.loads(stdout)
    assert document["written"] == 3
    failed = {f["input"]: f["error"] for f in document["failures"]}
    assert "smaller than the 64x64 crop" in failed[str(folder / "small.png")]
    assert str(folder / "broken.jpg") in failed
    assert "small.png" in stderr


def test_a_non_empty_output_exits_2_and_append_resumes(monkeypatch, capsys, tmp_path, folder):
    out = tmp_path / "ds"
    assert synth(monkeypatch, capsys, str(folder), "-o", str(out), "--no-noise")[0] == 0
    before = (out / "manifest.jsonl").read_bytes()
    code, _, stderr = synth(monkeypatch, capsys, str(folder), "-o", str(out))
    assert code == 2 and "--append" in stderr
    code, stdout, _ = synth(
        monkeypatch, capsys, str(folder), "-o", str(out), "--append", "--no-noise"
    )
    assert code == 0
    assert (out / "manifest.jsonl").read_bytes() == before
    assert "pairs kept" in stdout


def test_an_unwritable_output_folder_stops_before_any_photo(monkeypatch, capsys, tmp_path, folder):
    # As root, permissions do not stop writes: fail the probe, as a read-only file system does.
    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("deblurcli.io.output.tempfile.TemporaryFile", read_only)
    out = tmp_path / "ds"
    code, _, stderr = synth(monkeypatch, capsys, str(folder), "-o", str(out))
    assert code == 2
    assert f"{out}: cannot be written to (Read-only file system)" in stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--crop", "64"], "--crop"),
        (["--kernel", "motion"], "--kernel motion"),
        (["--max-len", "30-10"], "--max-len"),
        (["--exposure", "0-2"], "--exposure"),
        (["--append", "--overwrite"], "exclude each other"),
    ],
)
def test_bad_options_are_usage_errors(monkeypatch, capsys, tmp_path, folder, args, message):
    code, _, stderr = synth(monkeypatch, capsys, str(folder), "-o", str(tmp_path / "ds"), *args)
    assert code == 2
    assert message in stderr
    assert not (tmp_path / "ds").exists()


def test_max_side_shrinks_photos_before_cropping(monkeypatch, capsys, tmp_path, folder):
    out = tmp_path / "ds"
    code, _, stderr = synth(
        monkeypatch, capsys, str(folder), "-o", str(out), "--max-side", "64", "--naive",
    )  # fmt: skip
    assert code == 0, stderr
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    source = read_image(folder / "s0.jpg").pixels[:, :, ::-1]
    for r in records:
        assert r["size"] == [64, 48]
        assert cv2.imread(str(out / r["sharp"])).shape == (48, 64, 3)
    sharp = cv2.imread(str(out / records[0]["sharp"]))
    expected = cv2.resize(source, (64, 48), interpolation=cv2.INTER_AREA)
    assert np.array_equal(sharp, expected)
    settings = json.loads((out / "synth-blur.json").read_text())["runs"][0]
    assert settings["max_side"] == 64
