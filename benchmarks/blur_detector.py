"""How well and how fast the shipped blur detector finds shaky photos.

Accuracy, on the eight held-out photos of ``quality.py`` (never used to train or
calibrate it):
each photo through the training recipe's variants (``deblurcli.train.blur_detector``:
the photo itself, sharp copies with sensor noise, camera shake, linear motion and
defocus through ``synth-blur``'s camera model), plus shallow depth-of-field
copies (the most detailed part sharp, the rest defocused by 4 to 10 px). Reports ROC AUC of
sharp photos against shake of 8 px or more (at 1280 px), the share of sharp and
shallow-focus photos flagged at the shipped threshold, and how many shaken
photos are caught, by extent.

Speed: ``deblur triage``'s pipeline over 12-megapixel JPEGs (4000×3000, made by
enlarging the held-out photos), photos per second.

    python benchmarks/blur_detector.py [--copies 3] [--speed-photos 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from quality import DATASETS, HELD_OUT

from deblurcli.models.blur_detector import BlurDetector
from deblurcli.pipelines.triage import triage
from deblurcli.train.blur_detector import (
    photo_examples,
    reference_extent,
    roc_auc,
    shallow_focus_examples,
)

BINS = ((8, 12), (12, 20), (20, 999))


def accuracy(detector: BlurDetector, copies: int) -> None:
    truth, estimates, kinds, shallow = [], [], [], []
    for number, name in enumerate(HELD_OUT):
        path = DATASETS / f"{name}.jpg"
        for copy in range(copies):
            for example in photo_examples(path, 7_000_000 + 100 * number + copy):
                truth.append(reference_extent(example))
                estimates.append(detector.estimate(example.gray).reference_pixels)
                kinds.append(example.kind)
        for example in shallow_focus_examples(path, 7_000_000 + number):
            shallow.append(detector.estimate(example.gray).reference_pixels)
    truth, estimates, kinds = np.array(truth), np.array(estimates), np.array(kinds)
    shallow = np.array(shallow)
    sharp = np.isin(kinds, ("original", "sharp"))
    shaken = (kinds == "shake") & (truth >= 8)
    blurred = ~sharp & (truth >= 8)
    threshold = detector.threshold

    def flagged(values: np.ndarray) -> str:
        return f"{np.mean(values >= threshold):.3f} of {len(values)}"

    print(f"held-out photos: {len(HELD_OUT)}, variants: {len(truth)}, threshold {threshold} px")
    print(f"ROC AUC, sharp vs shake >= 8 px: {roc_auc(estimates[shaken], estimates[sharp]):.3f}")
    any_blur = roc_auc(estimates[blurred], estimates[sharp])
    print(f"ROC AUC, sharp vs any blur >= 8 px: {any_blur:.3f}")
    print(f"sharp photos flagged: {flagged(estimates[sharp])}")
    print(f"  the photos as they are: {flagged(estimates[kinds == 'original'])}")
    print(f"shallow-focus photos flagged: {flagged(shallow)}")
    for low, high in BINS:
        inside = (kinds == "shake") & (truth >= low) & (truth < high)
        if inside.any():
            median = np.median(estimates[inside])
            caught = flagged(estimates[inside])
            print(f"shake {low}-{high} px caught: {caught}; median {median:.1f} px")
    logs = np.log(estimates[~sharp]), np.log(truth[~sharp])
    error = np.median(np.abs(logs[0] - logs[1]))
    print(
        f"blurred photos: median |log(estimate / truth)| {error:.2f}, "
        f"correlation of the logs {np.corrcoef(*logs)[0, 1]:.2f}"
    )


def speed(detector: BlurDetector, photos: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index in range(photos):
            name = HELD_OUT[index % len(HELD_OUT)]
            rgb = cv2.imread(str(DATASETS / f"{name}.jpg"))
            big = cv2.resize(rgb, (4000, 3000), interpolation=cv2.INTER_CUBIC)
            path = Path(folder) / f"{index:03d}.jpg"
            cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
            paths.append(path)
        triage(paths[:2], detector, detector.threshold, workers)  # warm up
        started = time.perf_counter()
        rows = triage(paths, detector, detector.threshold, workers)
        seconds = time.perf_counter() - started
    assert not any(row.error for row in rows)
    print(f"triage, {photos} JPEGs of 12 MP, {workers} workers: {photos / seconds:.1f} photos/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--speed-photos", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    detector = BlurDetector.load()
    torch.set_num_threads(1)
    if args.speed_photos:
        speed(detector, args.speed_photos, args.workers)
    if args.copies:
        accuracy(detector, args.copies)


if __name__ == "__main__":
    main()
