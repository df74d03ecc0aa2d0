"""The real ``deblur score`` command: tables, CSV, JSON, --compare, sharpness, exit codes."""

from __future__ import annotations

import csv
import json
import re

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from tests.cli import run_cli


def score(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    return run_cli(monkeypatch, capsys, "score", *args)


@pytest.fixture
def folders(tmp_path, photos):
    gt, pred, blurred = tmp_path / "gt", tmp_path / "pred", tmp_path / "blurred"
    for folder in (gt, pred, blurred):
        folder.mkdir()
    for i, photo in enumerate(photos[:3]):
        sharp = cv2.resize(cv2.imread(str(photo)), (120, 80))
        cv2.imwrite(str(gt / f"p{i}.png"), sharp)
        cv2.imwrite(str(blurred / f"p{i}.png"), cv2.GaussianBlur(sharp, (0, 0), 2.5))
        cv2.imwrite(str(pred / f"p{i}_deblurred.png"), cv2.GaussianBlur(sharp, (0, 0), 0.8))
    return gt, pred, blurred


def test_scores_compare_csv_and_json(monkeypatch, capsys, tmp_path, folders):
    gt, pred, blurred = folders
    table_csv = tmp_path / "scores.csv"
    code, stdout, _ = score(
        monkeypatch, capsys, str(pred), str(gt), "--pred-suffix", "_deblurred",
        "--compare", str(blurred), "--csv", str(table_csv), "--json",
    )  # fmt: skip
    assert code == 0
    document = json.loads(stdout)
    rows = {row["name"]: row for row in document["rows"]}
    assert set(rows) == {"p0.png", "p1.png", "p2.png"}
    for name, row in rows.items():
        sharp = cv2.imread(str(gt / name))
        result = cv2.imread(str(pred / name.replace(".png", "_deblurred.png")))
        assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(sharp, result), abs=1e-4)
        assert row["psnr"] > row["compare_psnr"]  # less blur than the blurred copies
    summary = document["summary"]
    assert summary["psnr"]["mean"] == pytest.approx(np.mean([r["psnr"] for r in rows.values()]))
    assert summary["psnr"]["min"] == pytest.approx(min(r["psnr"] for r in rows.values()))
    with table_csv.open() as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 3
    gain = float(lines[0]["psnr_gain"])
    assert gain == pytest.approx(float(lines[0]["psnr"]) - float(lines[0]["compare_psnr"]))


def test_table_lists_unmatched_files_and_bad_pairs_exit_1(monkeypatch, capsys, folders):
    gt, pred, _ = folders
    cv2.imwrite(str(pred / "p0.png"), np.zeros((40, 40, 3), np.uint8))  # wrong size for gt p0
    cv2.imwrite(str(pred / "stray.png"), np.zeros((40, 40, 3), np.uint8))
    code, stdout, stderr = score(monkeypatch, capsys, str(pred), str(gt))
    assert code == 1
    assert "stray.png: result without ground truth" in stderr
    assert "p1.png: ground truth without result" in stderr
    mismatch = f"{pred / 'p0.png'}: cannot be compared: it is 40×40 px, {gt / 'p0.png'} is 120×80"
    assert mismatch in stdout + stderr
    assert re.search(r"p0\.png\s+│ error", stdout)  # the bad pair is a row, not a crash


def test_one_folder_gives_a_sharpness_report(monkeypatch, capsys, folders):
    gt, _, blurred = folders
    code, stdout, _ = score(monkeypatch, capsys, str(blurred), "--json")
    assert code == 0
    sharp_doc = json.loads(score(monkeypatch, capsys, str(gt), "--json")[1])
    blurred_doc = json.loads(stdout)
    assert all("psnr" not in row for row in blurred_doc["rows"])
    assert (
        blurred_doc["summary"]["sharpness_pred"]["mean"]
        < sharp_doc["summary"]["sharpness_pred"]["mean"]
    )


def test_nothing_to_pair_is_a_usage_error(monkeypatch, capsys, tmp_path, folders):
    gt, _, _ = folders
    other = tmp_path / "other"
    other.mkdir()
    cv2.imwrite(str(other / "x.png"), np.zeros((40, 40, 3), np.uint8))
    code, _, stderr = score(monkeypatch, capsys, str(other), str(gt))
    assert code == 2 and "no result matches" in stderr
