"""Train and calibrate the blur detector on ``synth-blur`` pairs made from good photos.

Run as ``python -m deblurcli.train.blur_detector --help``. Three disjoint sets
of photographs are used:

- **training** photos teach :class:`~deblurcli.models.blur_detector.BlurNet`;
- **calibration** photos, never seen in training, set the threshold of the
  verdict and the mapping from the tiles' quantile to pixels;
- held-out photos are left for ``benchmarks/blur_detector.py``.

Each photo is shrunk to a random size (1024 to 1600 px on the longer side,
like the photos users shoot at reduced size) and made into variants through
``synth-blur``'s camera model (linear light, clipped highlights,
Poisson-Gaussian noise at its default levels, then JPEG 80-95): the photo as
it is, two sharp copies, six camera shakes, one linear motion and one defocus.
Tiles are labelled with the kernel's extent along four directions. Only
tiles that hold fine detail in the original photo are used for training, so
a soft background is never taught as "sharp" or "blurred by the kernel": its
blur is the lens's, not the kernel's.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from deblurcli.io.discovery import list_images
from deblurcli.models.blur_detector import BlurDetector, BlurNet, DetectorSettings
from deblurcli.ops.blur import blur, defocus_kernels
from deblurcli.ops.blur_estimate import (
    ANALYSIS_SIDE,
    FLIP_DIRECTIONS,
    MIN_TILE_STD,
    REFERENCE_SIDE,
    TRANSPOSE_DIRECTIONS,
    analysis_gray,
    directional_extents,
    tile_grid,
)
from deblurcli.ops.color import linear_to_srgb, srgb_to_linear
from deblurcli.ops.pairs import KernelOptions, Range, SynthSettings, downscale
from deblurcli.ops.pairs import synthesize_pairs as synthesize
from deblurcli.ops.synthesis import SynthesisConfig

# Longer sides, px, the photos are shrunk to before blurring.
PHOTO_SIDES = (1024, 1600)
# (kind, kernel options, copies per photo); "sharp" is a near-delta Gaussian: noise only.
RECIPE = (
    ("sharp", KernelOptions(types=("gaussian",), sigma=Range(0.3, 0.7)), 2),
    ("shake", KernelOptions(types=("shake",), max_len=Range(5.0, 100.0)), 6),
    ("linear", KernelOptions(types=("linear",), length=Range(3.0, 35.0)), 1),
    ("defocus", KernelOptions(types=("defocus",), radius=Range(1.0, 5.0)), 1),
)
# synth-blur's default sensor noise, then JPEG. (Half the copies noise-free, as phones
# deliver photos after denoising, lowered the held-out ROC AUC from 0.972 to 0.945.)
CAMERA = SynthesisConfig(jpeg_quality=(80, 95))
# A tile of the original photo holds fine detail when smoothing it by 2 px removes
# this much of its gradient energy (log ratio).
FOCUS_LOG_RATIO = 1.5


@dataclass
class Example:
    """One photo variant at the analysis size.

    Attributes:
        gray: (h, w) uint8.
        extents: (4,) blur extent along :data:`DIRECTIONS_DEG`, px at the analysis size.
        kind: ``original``, ``sharp``, ``shake``, ``linear`` or ``defocus``.
        photo: the photo's file name.
        focus: (tiles,) bool, tiles of the original that hold fine detail.
    """

    gray: np.ndarray
    extents: np.ndarray
    kind: str
    photo: str
    focus: np.ndarray


def in_focus(gray: np.ndarray) -> np.ndarray:
    """(h, w) uint8 -> (tiles,) bool in :func:`tile_grid` order: tiles whose gradient
    energy falls by :data:`FOCUS_LOG_RATIO` (log) or more when smoothed by 2 px."""
    pixels = gray.astype(np.float32) / 255

    def energy(image: np.ndarray) -> np.ndarray:
        dx = np.zeros_like(image)
        dy = np.zeros_like(image)
        dx[:, :-1] = np.diff(image, axis=1) ** 2
        dy[:-1] = np.diff(image, axis=0) ** 2
        return tile_grid(dx + dy).mean(axis=(1, 2)) + 1e-8

    smooth = cv2.GaussianBlur(pixels, (0, 0), 2.0)
    return np.log(energy(pixels)) - np.log(energy(smooth)) > FOCUS_LOG_RATIO


def photo_examples(path: Path, seed: int) -> list[Example]:
    """Every variant of one photo (see the module docstring), reproducible from ``seed``."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ValueError(f"{path}: not an image OpenCV can read")
    pixels = np.ascontiguousarray(
        downscale(pixels[:, :, ::-1], int(rng.integers(PHOTO_SIDES[0], PHOTO_SIDES[1] + 1)))
    )
    original = _analysis_uint8(pixels)
    scale = original.shape[1] / pixels.shape[1]
    focus = in_focus(original)
    examples = [Example(original, np.ones(4), "original", path.name, focus)]
    for kind, kernels, copies in RECIPE:
        for _ in range(copies):
            settings = SynthSettings(kernels=kernels, synthesis=CAMERA)
            (made,) = synthesize(pixels, [int(rng.integers(0, 2**31))], settings)
            extents = (
                np.ones(4)
                if kind == "sharp"
                else np.maximum(1.0, directional_extents(made.kernel.numpy()) * scale)
            )
            gray = _analysis_uint8(made.blurred)
            examples.append(Example(gray, extents, kind, path.name, focus))
    return examples


def shallow_focus_examples(path: Path, seed: int) -> list[Example]:
    """Two shallow depth-of-field copies of a photo at 1280 px: its most detailed part
    left sharp (an ellipse of 10 % and 25 % of the frame, where a photographer would
    focus) and the rest defocused by 4 to 10 px in linear light, with mild noise.
    They are sharp photos: a detector must not flag them."""
    rng = np.random.default_rng(seed)
    rgb = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if rgb is None:
        raise ValueError(f"{path}: not an image OpenCV can read")
    rgb = np.ascontiguousarray(downscale(rgb[:, :, ::-1], REFERENCE_SIDE))
    height, width = rgb.shape[:2]
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    detail = cv2.GaussianBlur(np.abs(cv2.Laplacian(gray, cv2.CV_32F)), (0, 0), width / 16)
    centre = np.unravel_index(np.argmax(detail), detail.shape)
    light = srgb_to_linear(torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255)
    rows, cols = np.mgrid[:height, :width]
    examples = []
    for share in (0.1, 0.25):
        radius = float(rng.uniform(4, 10))
        soft = linear_to_srgb(blur(light, defocus_kernels(radius).float()))[0]
        axis = np.sqrt(share * height * width / np.pi)
        distance = np.hypot((rows - centre[0]) / axis, (cols - centre[1]) / axis)
        mask = np.clip((1.3 - distance) / 0.3, 0, 1)[:, :, None]
        mixed = mask * rgb / 255 + (1 - mask) * soft.permute(1, 2, 0).numpy()
        mixed += rng.normal(0, 0.004, mixed.shape)
        pixels = (np.clip(mixed, 0, 1) * 255).round().astype(np.uint8)
        gray_copy = _analysis_uint8(pixels)
        examples.append(
            Example(gray_copy, np.ones(4), "shallow-focus", path.name, in_focus(gray_copy))
        )
    return examples


def _analysis_uint8(rgb: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    height, width = gray.shape
    scale = ANALYSIS_SIDE / max(height, width)
    if scale >= 1:
        return gray
    size = (round(width * scale), round(height * scale))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def make_examples(
    photos: Sequence[Path], copies: int, seed: int, workers: int, shallow: bool = False
) -> list[Example]:
    """``copies`` rounds of :func:`photo_examples` over ``photos`` (and one of
    :func:`shallow_focus_examples` with ``shallow``), in ``workers`` processes."""
    jobs = [(photo_examples, path, seed * 100_003 + rep * 1009 + i)
            for rep in range(copies) for i, path in enumerate(photos)]  # fmt: skip
    if shallow:
        jobs += [(shallow_focus_examples, path, seed * 100_003 + i) for i, path in
                 enumerate(photos)]  # fmt: skip
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_call, jobs, chunksize=1)
        return [example for batch in results for example in batch]


def _call(job: tuple) -> list[Example]:
    function, *args = job
    return function(*args)


def normalised_tiles(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tiles, 1, TILE, TILE) float32 normalised tiles of a uint8 photo, and (tiles,) bool:
    which are textured (as :func:`~deblurcli.ops.blur_estimate.textured_tiles` keeps)."""
    tiles = tile_grid(analysis_gray(gray)[0])
    std = tiles.std(axis=(1, 2))
    normalised = (tiles - tiles.mean(axis=(1, 2), keepdims=True)) / (std[:, None, None] + 1e-3)
    return normalised[:, None].astype(np.float32), std >= MIN_TILE_STD


def tile_dataset(examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    """Training tiles (N, 1, TILE, TILE) and their log directional extents (N, 4):
    textured tiles that are in focus in the original photo."""
    inputs, targets = [], []
    for example in examples:
        tiles, textured = normalised_tiles(example.gray)
        keep = textured & example.focus[: len(textured)]
        inputs.append(tiles[keep])
        targets.append(np.repeat(np.log(example.extents)[None], keep.sum(), axis=0))
    x = torch.from_numpy(np.concatenate(inputs))
    y = torch.from_numpy(np.concatenate(targets).astype(np.float32))
    return x, y


def fit(
    x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int, log=print, batch: int = 256
) -> BlurNet:
    """Train a :class:`BlurNet` on tiles ``x`` (N, 1, T, T) and log extents ``y`` (N, 4):
    smooth L1, AdamW, one-cycle schedule; random flips and transposes, with the
    directions of the labels permuted to match."""
    torch.manual_seed(seed)
    net = BlurNet()
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    steps_per_epoch = len(x) // batch
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, total_steps=epochs * steps_per_epoch
    )
    started = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(x))
        total = 0.0
        for step in range(steps_per_epoch):
            chosen = order[step * batch : (step + 1) * batch]
            tiles, targets = x[chosen], y[chosen]
            if torch.rand(()) < 0.5:
                tiles, targets = tiles.flip(3), targets[:, FLIP_DIRECTIONS]
            if torch.rand(()) < 0.5:
                tiles, targets = tiles.transpose(2, 3), targets[:, TRANSPOSE_DIRECTIONS]
            loss = nn.functional.smooth_l1_loss(net(tiles), targets, beta=0.2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
        log(
            f"epoch {epoch + 1}/{epochs}: loss {total / steps_per_epoch:.4f} "
            f"({time.perf_counter() - started:.0f} s)"
        )
    return net.eval()


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a positive scores above a negative
    (ties count half)."""
    above = (positive[:, None] > negative[None, :]).mean()
    ties = (positive[:, None] == negative[None, :]).mean()
    return float(above + 0.5 * ties)


def reference_extent(example: Example) -> float:
    """The example's true blur extent (largest direction), px at :data:`REFERENCE_SIDE`."""
    return float(example.extents.max() * REFERENCE_SIDE / max(example.gray.shape))


SHARP_KINDS = ("original", "sharp", "shallow-focus")


def calibrate(
    net: BlurNet, examples: Sequence[Example], quantile: float, false_alarms: float
) -> DetectorSettings:
    """Settings from photos the network never saw.

    The raw estimate is mapped to pixels by a log-linear fit that keeps the spread
    of the true extents (reduced major axis: slope = ratio of the standard
    deviations of the logs), over every variant of ``photo_examples``; a least-squares
    fit would shrink the estimates towards their mean. The threshold then flags at
    most ``false_alarms`` of the sharp variants, shallow-focus copies included.
    """
    raw = BlurDetector(net, DetectorSettings(quantile=quantile, threshold=math.inf))
    estimates = np.log([raw.estimate(e.gray).reference_pixels for e in examples])
    truth = np.log([reference_extent(e) for e in examples])
    graded = np.array([e.kind != "shallow-focus" for e in examples])
    slope = float(truth[graded].std() / estimates[graded].std())
    offset = float(truth[graded].mean() - slope * estimates[graded].mean())
    mapped = np.exp(offset + slope * estimates)
    sharp = np.array([e.kind in SHARP_KINDS for e in examples])
    threshold = float(np.quantile(np.maximum(mapped[sharp], 1.0), 1 - false_alarms))
    return DetectorSettings(quantile, round(threshold, 2), round(slope, 4), round(offset, 4))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deblurcli.train.blur_detector")
    parser.add_argument("--photos", type=Path, nargs="+", required=True, help="photo folders")
    parser.add_argument("--exclude", nargs="*", default=[], help="photo stems to leave out")
    parser.add_argument("--calibration", nargs="+", required=True, help="calibration stems")
    parser.add_argument("--copies", type=int, default=4, help="rounds of variants per photo")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--quantile", type=float, default=0.02)
    parser.add_argument("--false-alarms", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--net",
        type=Path,
        help="calibrate this detector file's network again instead of training one",
    )
    parser.add_argument("--output", "-o", type=Path, required=True)
    args = parser.parse_args(argv)

    photos = [p for folder in args.photos for p in list_images(folder)]
    photos = [p for p in photos if p.stem not in set(args.exclude)]
    calibration = [p for p in photos if p.stem in set(args.calibration)]
    training = [p for p in photos if p.stem not in set(args.calibration)]
    print(f"{len(training)} training photos, {len(calibration)} calibration photos", flush=True)
    if args.net is not None:
        net = BlurDetector.load(args.net).net
    else:
        x, y = tile_dataset(make_examples(training, args.copies, args.seed, args.workers))
        print(f"{len(x)} tiles", flush=True)
        net = fit(x, y, args.epochs, args.seed, log=lambda line: print(line, flush=True))
    held = make_examples(calibration, 2, args.seed + 1, args.workers, shallow=True)
    settings = calibrate(net, held, args.quantile, args.false_alarms)
    print(json.dumps(settings.__dict__), flush=True)
    detector = BlurDetector(net, settings)
    detector.save(
        args.output,
        metadata={
            "training_photos": json.dumps(sorted(p.name for p in training)),
            "calibration_photos": json.dumps(sorted(p.name for p in calibration)),
        },
    )


if __name__ == "__main__":
    main()
