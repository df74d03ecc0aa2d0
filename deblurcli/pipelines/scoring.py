"""Scoring folders of results: pairing files, decoding in the background, batched metrics.

Used by ``deblur score`` and by the quality benchmark, so both compute the
same numbers the same way.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deblurcli import metrics
from deblurcli.errors import DeblurError, InputImageError, UsageError
from deblurcli.io.discovery import list_images
from deblurcli.io.images import read_image

_BATCH_PIXELS = 8_000_000  # pixels per metrics batch (all images of a batch share a shape)


@dataclass(frozen=True)
class ScoreRow:
    """One image to score: a prediction, its ground truth, and optionally a second prediction."""

    name: str
    pred: Path
    gt: Path | None = None
    compare: Path | None = None


@dataclass(frozen=True)
class Pairing:
    """Rows to score and the files that found no partner."""

    rows: list[ScoreRow]
    unmatched_pred: list[Path] = field(default_factory=list)
    unmatched_gt: list[Path] = field(default_factory=list)
    unmatched_compare: list[Path] = field(default_factory=list)


@dataclass
class Scores:
    """Metrics of one prediction against the ground truth."""

    psnr: float
    ssim: float


@dataclass
class RowResult:
    """Everything measured for one row; ``error`` set when it could not be scored."""

    name: str
    pred: str
    gt: str | None
    scores: Scores | None = None
    compare_scores: Scores | None = None
    sharpness_pred: float | None = None  # variance of the Laplacian, 8-bit levels²
    sharpness_gt: float | None = None
    gradient_pred: float | None = None  # Tenengrad, 8-bit levels²
    gradient_gt: float | None = None
    error: str | None = None

    def as_json(self) -> dict:
        """Plain JSON; an infinite PSNR (identical images) becomes null."""

        def finite(value: float | None) -> float | None:
            return value if value is not None and math.isfinite(value) else None

        document: dict = {"name": self.name, "pred": self.pred, "gt": self.gt}
        if self.scores is not None:
            document["psnr"] = finite(self.scores.psnr)
            document["ssim"] = self.scores.ssim
        if self.compare_scores is not None:
            document["compare_psnr"] = finite(self.compare_scores.psnr)
            document["compare_ssim"] = self.compare_scores.ssim
        for key in ("sharpness_pred", "sharpness_gt", "gradient_pred", "gradient_gt"):
            if getattr(self, key) is not None:
                document[key] = getattr(self, key)
        document["error"] = self.error
        return document


def _image_files(root: Path) -> dict[str, Path]:
    """Images under ``root`` (or ``root`` itself) by relative POSIX path."""
    if root.is_file():
        return {root.name: root}
    if not root.is_dir():
        raise UsageError("does not exist", root)
    return {path.relative_to(root).as_posix(): path for path in list_images(root)}


def _stem(relative: str, suffix: str = "") -> str:
    """``a/b_deblurred.png`` with suffix ``_deblurred`` -> ``a/b``."""
    path = Path(relative)
    stem = path.stem
    if suffix and stem.endswith(suffix):
        stem = stem[: -len(suffix)]
    return (path.parent / stem).as_posix()


def _match(
    files: dict[str, Path], targets: dict[str, Path], suffix: str
) -> tuple[dict[str, Path], list[Path]]:
    """Map each target's relative path to its file: same relative path, then same stem."""
    by_stem: dict[str, list[str]] = {}
    for relative in targets:
        by_stem.setdefault(_stem(relative), []).append(relative)
    matched: dict[str, Path] = {}
    unmatched = []
    for relative, path in files.items():
        exact = relative if not suffix else None
        if exact in targets and exact not in matched:
            matched[exact] = path
            continue
        candidates = [t for t in by_stem.get(_stem(relative, suffix), []) if t not in matched]
        if len(candidates) == 1:
            matched[candidates[0]] = path
        else:
            unmatched.append(path)
    return matched, unmatched


def pair_files(
    pred: Path, gt: Path | None, compare: Path | None = None, pred_suffix: str = ""
) -> Pairing:
    """Pair predictions with ground truth by relative path, then by stem.

    ``a.png`` pairs with ``a.png``, then with ``a.jpg`` (same stem); with
    ``pred_suffix="_deblurred"``, ``a_deblurred.png`` pairs with ``a.png``.
    Folders are searched recursively; a file may be given instead of a folder.
    Without ``gt`` every prediction is a row of its own (no-reference scores).

    Raises:
        UsageError: a path does not exist, or no images were found.
    """
    pred_files = _image_files(pred)
    if not pred_files:
        raise UsageError("holds no images (JPEG, PNG, WebP, TIFF, BMP, HEIC, AVIF)", pred)
    if gt is None:
        return Pairing([ScoreRow(rel, path) for rel, path in pred_files.items()])
    gt_files = _image_files(gt)
    if pred.is_file() and gt.is_file():
        gt_files = {pred.name: gt}
    matched, unmatched_pred = _match(pred_files, gt_files, pred_suffix)
    compare_matched: dict[str, Path] = {}
    unmatched_compare: list[Path] = []
    if compare is not None:
        compare_files = _image_files(compare)
        if compare.is_file() and gt.is_file():
            compare_files = {pred.name: compare}
        compare_matched, unmatched_compare = _match(compare_files, gt_files, "")
    rows = [
        ScoreRow(relative, matched[relative], gt_files[relative], compare_matched.get(relative))
        for relative in gt_files
        if relative in matched
    ]
    unmatched_gt = [path for relative, path in gt_files.items() if relative not in matched]
    return Pairing(rows, unmatched_pred, unmatched_gt, unmatched_compare)


@dataclass(frozen=True)
class _Loaded:
    row: ScoreRow
    images: tuple[np.ndarray, ...]  # pred, then gt and compare when present
    peak: int
    error: str | None = None


def _load(row: ScoreRow) -> _Loaded:
    """Decode a row's images and check that they can be compared."""
    paths = [p for p in (row.pred, row.gt, row.compare) if p is not None]
    try:
        photos = [read_image(path) for path in paths]
    except DeblurError as exc:
        return _Loaded(row, (), 0, str(exc))
    first = photos[0].pixels
    for path, photo in zip(paths[1:], photos[1:], strict=True):
        other = photo.pixels
        problem = None
        if other.dtype != first.dtype:
            problem = f"{8 * first.dtype.itemsize}-bit, {path} is {8 * other.dtype.itemsize}-bit"
        elif other.shape[2] != first.shape[2]:
            problem = f"{first.shape[2]} channel(s), {path} has {other.shape[2]}"
        elif other.shape[:2] != first.shape[:2]:
            problem = (
                f"{first.shape[1]}×{first.shape[0]} px, {path} is {other.shape[1]}×{other.shape[0]}"
            )
        if problem:
            message = f"cannot be compared: it is {problem}; make them match"
            return _Loaded(row, (), 0, str(InputImageError(message, row.pred)))
    peak = int(np.iinfo(first.dtype).max)
    return _Loaded(row, tuple(p.pixels for p in photos), peak)


def _prefetch(rows: Sequence[ScoreRow], threads: int) -> Iterator[_Loaded]:
    """Decode rows on background threads, in order, a few rows ahead."""
    with ThreadPoolExecutor(threads) as pool:
        pending: deque[Future] = deque()
        for row in rows:
            pending.append(pool.submit(_load, row))
            if len(pending) > 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _batches(loaded: Iterator[_Loaded]) -> Iterator[list[_Loaded]]:
    """Group consecutive decodable rows of one shape and bit depth; failures alone."""
    batch: list[_Loaded] = []
    for item in loaded:
        if item.error is not None:
            if batch:
                yield batch
                batch = []
            yield [item]
            continue
        key = (item.images[0].shape, item.images[0].dtype, len(item.images))
        if batch and (
            key != (batch[0].images[0].shape, batch[0].images[0].dtype, len(batch[0].images))
            or (len(batch) + 1) * item.images[0].size > _BATCH_PIXELS * 3
        ):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _stack(items: list[_Loaded], index: int, device: torch.device) -> torch.Tensor:
    """(B, C, H, W) contiguous float32 on ``device`` from the items' (H, W, C) pixels."""
    pixels = torch.from_numpy(np.stack([item.images[index] for item in items]))
    pixels = pixels.to(device).permute(0, 3, 1, 2)
    return torch.empty(pixels.shape, dtype=torch.float32, device=device).copy_(pixels)


def score_rows(
    rows: Sequence[ScoreRow],
    *,
    crop_border: int = 0,
    y_channel: bool = False,
    device: torch.device | None = None,
    threads: int = 4,
    on_result: Callable[[RowResult], None] | None = None,
) -> list[RowResult]:
    """Score every row: PSNR/SSIM against the ground truth when there is one, sharpness always.

    Images are decoded on ``threads`` background threads; rows of one size
    are scored as one batch on ``device``.

    Returns:
        One result per row, in order; rows that cannot be scored carry ``error``.
    """
    device = device or torch.device("cpu")
    results: list[RowResult] = []
    for batch in _batches(_prefetch(rows, threads)):
        for result in _score_batch(batch, crop_border, y_channel, device):
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


def _score_batch(
    batch: list[_Loaded], crop_border: int, y_channel: bool, device: torch.device
) -> list[RowResult]:
    first = batch[0]
    row = first.row
    if first.error is not None:
        return [RowResult(row.name, str(row.pred), _str(row.gt), error=first.error)]
    peak = float(first.peak)
    height, width = first.images[0].shape[:2]
    if row.gt is not None and min(height, width) - 2 * crop_border < metrics.SSIM_WINDOW:
        error = f"{row.pred}: {width}×{height} px is too small for SSIM after --crop-border"
        return [RowResult(r.row.name, str(r.row.pred), _str(r.row.gt), error=error) for r in batch]
    pred = _stack(batch, 0, device)
    sharp_pred = metrics.laplacian_variance(pred, peak).tolist()
    grad_pred = metrics.gradient_energy(pred, peak).tolist()
    out = [
        RowResult(
            r.row.name,
            str(r.row.pred),
            _str(r.row.gt),
            sharpness_pred=sharp_pred[i],
            gradient_pred=grad_pred[i],
        )
        for i, r in enumerate(batch)
    ]
    if row.gt is None:
        return out
    gt = _stack(batch, 1, device)
    options = {"data_range": peak, "crop_border": crop_border, "y_channel": y_channel}
    psnr = metrics.psnr(pred, gt, **options).tolist()
    ssim = metrics.ssim(pred, gt, **options).tolist()
    sharp_gt = metrics.laplacian_variance(gt, peak).tolist()
    grad_gt = metrics.gradient_energy(gt, peak).tolist()
    for i, result in enumerate(out):
        result.scores = Scores(psnr[i], ssim[i])
        result.sharpness_gt, result.gradient_gt = sharp_gt[i], grad_gt[i]
    if row.compare is not None:
        compare = _stack(batch, 2, device)
        psnr2 = metrics.psnr(compare, gt, **options).tolist()
        ssim2 = metrics.ssim(compare, gt, **options).tolist()
        for i, result in enumerate(out):
            result.compare_scores = Scores(psnr2[i], ssim2[i])
    return out


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


@dataclass(frozen=True)
class Summary:
    """Mean, median and minimum of one column over the scored rows."""

    mean: float
    median: float
    minimum: float


def summarize(values: Sequence[float]) -> Summary | None:
    """Summary over finite values (an identical pair's infinite PSNR is left out); None if none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    return Summary(statistics.fmean(finite), statistics.median(finite), min(finite))
