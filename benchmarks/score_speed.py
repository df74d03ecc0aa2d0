"""Seconds to score PSNR/SSIM on image pairs: deblurcli against scikit-image, same values.

Pairs are cut from ../shared/datasets/photos (1280x720 PNGs, the ground
truth against a blurred and noisy copy). Both sides read the files from disk:

* ``scikit-image``: OpenCV decoding, then ``peak_signal_noise_ratio`` and
  ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, channel_axis=-1, data_range=255)``, one pair
  after another;
* ``deblurcli``: ``pipelines.scoring.score_rows``, as ``deblur score`` runs it
  (background decoding, batched metrics; it also computes two sharpness
  measures per image, which scikit-image's side does not).

    python benchmarks/score_speed.py --pairs 24
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "photos"


def prepare(root: Path, count: int, width: int, height: int) -> tuple[Path, Path]:
    gt, pred = root / "gt", root / "pred"
    gt.mkdir()
    pred.mkdir()
    sources = sorted(PHOTOS.glob("*.jpg"))
    rng = np.random.default_rng(0)
    for i in range(count):
        sharp = cv2.resize(cv2.imread(str(sources[i % len(sources)])), (width, height))
        noisy = cv2.GaussianBlur(sharp, (0, 0), 1.5) + rng.normal(0, 3, sharp.shape)
        cv2.imwrite(str(gt / f"{i:04d}.png"), sharp)
        cv2.imwrite(str(pred / f"{i:04d}.png"), np.clip(noisy, 0, 255).astype(np.uint8))
    return gt, pred


def run_skimage(gt: Path, pred: Path) -> tuple[float, list[tuple[float, float]]]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    started = time.perf_counter()
    values = []
    for truth_path in sorted(gt.glob("*.png")):
        truth = cv2.imread(str(truth_path))[:, :, ::-1]
        result = cv2.imread(str(pred / truth_path.name))[:, :, ::-1]
        values.append(
            (
                peak_signal_noise_ratio(truth, result, data_range=255),
                structural_similarity(
                    result,
                    truth,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                    channel_axis=-1,
                    data_range=255,
                ),
            )
        )
    return time.perf_counter() - started, values


def run_deblurcli(gt: Path, pred: Path) -> tuple[float, list[tuple[float, float]]]:
    from deblurcli.pipelines.scoring import pair_files, score_rows

    started = time.perf_counter()
    results = score_rows(pair_files(pred, gt).rows)
    seconds = time.perf_counter() - started
    return seconds, [(r.scores.psnr, r.scores.ssim) for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--size", default="1280x720")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    import torch  # imported before timing so neither side pays for it

    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        gt, pred = prepare(Path(tmp), args.pairs, width, height)
        run_deblurcli(gt, pred)  # warm-up: thread pools, first-call costs
        ours_seconds, ours = run_deblurcli(gt, pred)
        reference_seconds, reference = run_skimage(gt, pred)
    psnr_gap = max(abs(a[0] - b[0]) for a, b in zip(ours, reference, strict=True))
    ssim_gap = max(abs(a[1] - b[1]) for a, b in zip(ours, reference, strict=True))
    print(f"{args.pairs} pairs at {width}x{height}")
    print(f"{'method':<14} {'seconds':>8} {'pairs/s':>8} {'speed-up':>9}")
    for name, seconds in (("scikit-image", reference_seconds), ("deblurcli", ours_seconds)):
        speedup = reference_seconds / seconds
        print(f"{name:<14} {seconds:>8.2f} {args.pairs / seconds:>8.2f} {speedup:>8.1f}x")
    print(f"largest difference: PSNR {psnr_gap:.2e} dB, SSIM {ssim_gap:.2e}")


if __name__ == "__main__":
    main()
