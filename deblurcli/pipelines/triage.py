"""Triage: a blur estimate and a verdict for every photo, fast enough for thousands.

Photos are decoded straight to gray at the analysis size
(:func:`~deblurcli.io.images.read_reduced`: JPEGs in libjpeg's reduced-size
mode, which skips most of the work for large photos).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2

from deblurcli.errors import DeblurError, InputImageError
from deblurcli.io.images import read_reduced
from deblurcli.models.blur_detector import BlurDetector
from deblurcli.ops.blur_estimate import ANALYSIS_SIDE


@dataclass
class TriageRow:
    """One photo's triage result, as printed and written to ``--json`` and ``--csv``.

    Attributes:
        input: the photo's path.
        width, height: its size, px (0 when it could not be read).
        blur_px: estimated blur extent at the photo's own size, px.
        blur_px_1280: the same at 1280 px on the longer side (what the threshold reads).
        blurry: whether ``blur_px_1280`` reaches the threshold.
        seconds: decode and estimate time.
        error: why it failed, or None.
    """

    input: str
    width: int = 0
    height: int = 0
    blur_px: float | None = None
    blur_px_1280: float | None = None
    blurry: bool | None = None
    seconds: float = 0.0
    error: str | None = None

    def as_json(self) -> dict:
        """Plain JSON values, rounded to what the estimate can tell."""

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "input": self.input,
            "width": self.width,
            "height": self.height,
            "blur_px": rounded(self.blur_px),
            "blur_px_1280": rounded(self.blur_px_1280),
            "blurry": self.blurry,
            "seconds": round(self.seconds, 4),
            "error": self.error,
        }


def triage_photo(path: Path, detector: BlurDetector, threshold: float) -> TriageRow:
    """One photo's row; a photo that cannot be read gets its error, never an exception."""
    started = time.perf_counter()
    row = TriageRow(str(path))
    try:
        gray, (row.width, row.height) = read_reduced(path, ANALYSIS_SIDE, gray=True)
        estimate = detector.estimate(gray[:, :, 0], photo_side=max(row.width, row.height))
    except DeblurError as exc:
        row.error = str(exc)
    except (OSError, ValueError, cv2.error) as exc:
        row.error = str(InputImageError(f"cannot be analysed ({exc})", path))
    else:
        row.blur_px, row.blur_px_1280 = estimate.pixels, estimate.reference_pixels
        row.blurry = estimate.reference_pixels >= threshold
    row.seconds = time.perf_counter() - started
    return row


def triage(
    paths: Sequence[Path],
    detector: BlurDetector,
    threshold: float,
    workers: int = 2,
    on_row: Callable[[TriageRow], None] | None = None,
) -> list[TriageRow]:
    """Rows for ``paths`` in their order, computed ``workers`` at a time (decoding and
    OpenCV release the GIL, so threads use the cores)."""
    rows: list[TriageRow] = []
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="triage") as pool:
        for row in _ordered(pool, paths, detector, threshold, workers):
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def _ordered(
    pool: ThreadPoolExecutor,
    paths: Sequence[Path],
    detector: BlurDetector,
    threshold: float,
    workers: int,
) -> Iterator[TriageRow]:
    """Results in input order, with at most ``2 * workers`` photos in flight."""
    pending = []
    for path in paths:
        pending.append(pool.submit(triage_photo, path, detector, threshold))
        if len(pending) >= 2 * max(1, workers):
            yield pending.pop(0).result()
    for future in pending:
        yield future.result()


def worst_first(rows: Sequence[TriageRow]) -> list[TriageRow]:
    """Failures first (they need a look), then the most blurred."""
    return sorted(rows, key=lambda r: (r.error is None, -(r.blur_px_1280 or 0.0)))
