"""Pairing results with ground truth, and scoring rows in order with their errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from deblurcli.errors import UsageError
from deblurcli.pipelines import scoring
from deblurcli.pipelines.scoring import pair_files, score_rows, summarize


def _write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)
    return path


@pytest.fixture
def photo(photos) -> np.ndarray:
    return cv2.resize(cv2.imread(str(photos[5])), (96, 64))


def test_pairs_by_relative_path_then_stem_then_suffix(tmp_path, photo):
    for name in ("a.png", "sub/b.png", "c.png", "d.png"):
        _write(tmp_path / "gt" / name, photo)
    _write(tmp_path / "pred" / "a.png", photo)  # same path
    _write(tmp_path / "pred" / "sub" / "b.jpg", photo)  # same stem
    _write(tmp_path / "pred" / "c_deblurred.png", photo)  # needs --pred-suffix
    _write(tmp_path / "pred" / "zzz.png", photo)  # no partner
    (tmp_path / "pred" / "notes.txt").write_text("ignored")
    pairing = pair_files(tmp_path / "pred", tmp_path / "gt")
    assert {row.name: row.pred.name for row in pairing.rows} == {
        "a.png": "a.png",
        "sub/b.png": "b.jpg",
    }
    assert {p.name for p in pairing.unmatched_pred} == {"c_deblurred.png", "zzz.png"}
    with_suffix = pair_files(tmp_path / "pred", tmp_path / "gt", pred_suffix="_deblurred")
    assert "c.png" in {row.name for row in with_suffix.rows}
    assert {p.name for p in with_suffix.unmatched_gt} == {"d.png"}
    single = pair_files(tmp_path / "pred" / "zzz.png", tmp_path / "gt" / "d.png")
    assert [(r.pred.name, r.gt.name) for r in single.rows] == [("zzz.png", "d.png")]
    with pytest.raises(UsageError, match="does not exist"):
        pair_files(tmp_path / "pred", tmp_path / "missing")


def test_rows_keep_their_order_and_bad_pairs_become_error_rows(tmp_path, photo):
    rng = np.random.default_rng(0)
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    expected = {}
    for i in range(5):
        sharp = np.roll(photo, 7 * i, axis=1)
        noisy = np.clip(sharp + rng.normal(0, 6, sharp.shape), 0, 255).astype(np.uint8)
        _write(gt_dir / f"{i}.png", sharp)
        _write(pred_dir / f"{i}.png", noisy)
        expected[f"{i}.png"] = (
            peak_signal_noise_ratio(sharp, noisy, data_range=255),
            structural_similarity(
                noisy, sharp, gaussian_weights=True, sigma=1.5,
                use_sample_covariance=False, channel_axis=-1, data_range=255,
            ),
        )  # fmt: skip
    _write(pred_dir / "1.png", photo[:50])  # another size
    _write(pred_dir / "3.png", photo[:, :, 0])  # gray against colour
    _write(gt_dir / "5.png", photo)
    _write(pred_dir / "5.png", photo.astype(np.uint16) * 257)  # 16-bit against 8-bit
    (pred_dir / "6.png").write_bytes(b"broken")
    _write(gt_dir / "6.png", photo)
    results = score_rows(pair_files(pred_dir, gt_dir).rows, threads=2)
    assert [r.name for r in results] == [f"{i}.png" for i in range(7)]
    errors = {r.name: r.error for r in results if r.error}
    assert set(errors) == {"1.png", "3.png", "5.png", "6.png"}
    assert "96×50 px" in errors["1.png"] and str(pred_dir / "1.png") in errors["1.png"]
    assert "channel" in errors["3.png"]
    assert "16-bit" in errors["5.png"]
    assert str(pred_dir / "6.png") in errors["6.png"]
    for result in results:
        if result.name in expected and result.error is None:
            psnr, ssim = expected[result.name]
            assert result.scores.psnr == pytest.approx(psnr, abs=1e-4)
            assert result.scores.ssim == pytest.approx(ssim, abs=1e-4)
            assert result.sharpness_pred > result.sharpness_gt  # noise adds high frequencies


def test_batched_scoring_equals_one_at_a_time(tmp_path, photo, monkeypatch):
    rng = np.random.default_rng(1)
    for i in range(4):
        noisy = np.clip(photo + rng.normal(0, 4 + i, photo.shape), 0, 255).astype(np.uint8)
        _write(tmp_path / "gt" / f"{i}.png", photo)
        _write(tmp_path / "pred" / f"{i}.png", noisy)
        _write(tmp_path / "cmp" / f"{i}.png", cv2.GaussianBlur(photo, (0, 0), 1 + i))
    rows = pair_files(tmp_path / "pred", tmp_path / "gt", tmp_path / "cmp").rows
    batched = score_rows(rows, device=torch.device("cpu"))
    monkeypatch.setattr(scoring, "_BATCH_PIXELS", 1)
    alone = score_rows(rows)
    for a, b in zip(batched, alone, strict=True):
        assert a.scores.psnr == pytest.approx(b.scores.psnr, abs=1e-9)
        assert a.compare_scores.ssim == pytest.approx(b.compare_scores.ssim, abs=1e-7)
    assert len({round(r.compare_scores.psnr, 3) for r in batched}) == 4


def test_summary_leaves_out_infinite_psnr():
    summary = summarize([30.0, float("inf"), 20.0, 40.0])
    assert (summary.mean, summary.median, summary.minimum) == (30.0, 30.0, 20.0)
    assert summarize([float("inf")]) is None
