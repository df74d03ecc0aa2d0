"""Many files: prefetching reads, background writes, per-file results and errors.

Used by every command that maps images to images (``deblur``, ``enhance``),
so they share one loop: skip finished outputs, claim each output before
computing it (:mod:`deblurcli.io.claims`, so concurrent runs split the work),
keep going after a failure, and report each file the same way.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from deblurcli.errors import DeblurError
from deblurcli.io import claims
from deblurcli.io.discovery import WorkItem, output_format, source_format
from deblurcli.io.images import Photo, format_losses, read_image, write_image
from deblurcli.pipelines.restore import RestoreReport

Status = Literal["ok", "skipped", "failed"]


class ArrayRestorer(Protocol):
    """Anything that maps (H, W, C) uint8/uint16 pixels to pixels of the same shape."""

    def restore_array(self, pixels: np.ndarray) -> tuple[np.ndarray, RestoreReport]: ...

    def memory_warning(self, pixels: np.ndarray) -> str | None: ...


@dataclass(frozen=True)
class BatchOptions:
    """How outputs are written.

    Attributes:
        fmt: ``keep``, ``png``, ``jpg``, ``webp``, ``tiff`` or ``bmp``.
        quality: JPEG/WebP quality.
        overwrite: replace existing outputs instead of skipping them.
        side_by_side: write input and result next to each other.
    """

    fmt: str = "keep"
    quality: int = 95
    overwrite: bool = False
    side_by_side: bool = False


@dataclass
class FileResult:
    """The outcome for one input, as reported in tables and ``--json``."""

    input: str
    output: str | None
    status: Status
    seconds: float = 0.0
    megapixels: float = 0.0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    traceback: str | None = None
    blur_before: float | None = None  # blur estimates, px at 1280 (--only-blurry, --report)
    blur_after: float | None = None

    def as_json(self) -> dict:
        """The public fields (no traceback)."""
        return {
            "input": self.input,
            "output": self.output,
            "status": self.status,
            "seconds": round(self.seconds, 4),
            "megapixels": round(self.megapixels, 4),
            "error": self.error,
            "notes": self.notes,
            "blur_before": None if self.blur_before is None else round(self.blur_before, 2),
            "blur_after": None if self.blur_after is None else round(self.blur_after, 2),
        }


def run_batch(
    items: Sequence[WorkItem],
    restorer: ArrayRestorer,
    options: BatchOptions,
    on_result: Callable[[FileResult], None] | None = None,
    on_warning: Callable[[str, str], None] | None = None,
) -> list[FileResult]:
    """Process ``items`` in order and return one result per item.

    The next image is decoded while the current one runs, and each output is
    encoded and written while the next one runs. A failing file becomes a
    ``failed`` result and the batch goes on; ``KeyboardInterrupt`` stops it
    after the write in flight (writes are atomic, so nothing half-written stays).

    Args:
        on_result: called with each result as soon as it is final (progress bars).
        on_warning: called with (input, message) before a photo that may not fit in
            memory is restored; the message is also kept in the result's notes.
    """
    results: list[FileResult] = []

    claimed: dict[str, Path] = {}  # input -> claim file of its output, while computed

    def finish(result: FileResult) -> None:
        if result.input in claimed:
            claims.release(claimed.pop(result.input))
        results.append(result)
        if on_result is not None:
            on_result(result)

    todo: list[WorkItem] = []
    for item in items:
        if item.error is not None or item.output is None:
            finish(FileResult(str(item.source), None, "failed", error=str(item.error)))
        elif item.output.exists() and not options.overwrite:
            finish(
                FileResult(
                    str(item.source),
                    str(item.output),
                    "skipped",
                    notes=["output exists (use --overwrite to replace it)"],
                )
            )
        else:
            todo.append(item)

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="deblurcli-io") as pool:
        reads = [pool.submit(read_image, todo[0].source)] if todo else []
        writing: tuple[Future, FileResult, float] | None = None
        try:
            for index, item in enumerate(todo):
                if index + 1 < len(todo):
                    reads.append(pool.submit(read_image, todo[index + 1].source))
                started = time.perf_counter()
                result = FileResult(str(item.source), str(item.output), "ok")
                assert item.output is not None
                skip_note = _claim(item.output, options.overwrite, claimed, result.input)
                if skip_note is not None:  # another run has it, or has finished it
                    reads[index] = None  # type: ignore[call-overload]
                    finish(FileResult(result.input, result.output, "skipped", notes=[skip_note]))
                    continue
                future = None
                try:
                    photo = reads[index].result()
                    reads[index] = None  # type: ignore[call-overload]  # free the decoded image
                    result.megapixels = photo.megapixels
                    warning = restorer.memory_warning(photo.pixels)
                    if warning is not None:
                        result.notes.append(warning)
                        if on_warning is not None:
                            on_warning(result.input, warning)
                    restored, report = restorer.restore_array(photo.pixels)
                    result.notes.extend(report.notes)
                    output = _compose(photo, restored, options.side_by_side)
                    fmt = output_format(item.source, options.fmt)
                    if options.fmt == "keep" and fmt != source_format(item.source):
                        result.notes.append(
                            f"no {source_format(item.source).upper()} encoder on this machine: "
                            f"written as {fmt.upper()}"
                        )
                    result.notes.extend(format_losses(output, fmt))
                    future = pool.submit(write_image, output, item.output, fmt, options.quality)
                except DeblurError as exc:
                    _fail(result, str(exc))
                except Exception as exc:  # a bug or an unexpected library error: keep going
                    _fail(result, f"{item.source}: unexpected error: {exc} (--verbose shows where)")
                    result.traceback = traceback.format_exc()
                if writing is not None:
                    _finish_write(*writing, finish)
                    writing = None
                elapsed = time.perf_counter() - started
                if future is None:
                    result.seconds = elapsed
                    finish(result)
                else:
                    writing = (future, result, started)
            if writing is not None:
                _finish_write(*writing, finish)
        except BaseException:
            for pending in reads:
                if pending is not None:
                    pending.cancel()
            if writing is not None:  # the write in flight completes: report it
                _finish_write(*writing, finish)
            for path in claimed.values():
                claims.release(path)
            raise
    return results


def _claim(output: Path, overwrite: bool, claimed: dict[str, Path], key: str) -> str | None:
    """Claim ``output`` for this run (recorded in ``claimed`` under ``key``); or the
    note saying why it is skipped: another run holds it, or finished it meanwhile."""
    path = claims.claim(output)
    if path is None:
        return "another run is computing this output"
    if output.exists() and not overwrite:  # written by another run since discovery
        claims.release(path)
        return "output exists (use --overwrite to replace it)"
    claimed[key] = path
    return None


def _fail(result: FileResult, message: str) -> None:
    result.status = "failed"
    result.error = message
    result.output = None


def _finish_write(
    future: Future, result: FileResult, started: float, finish: Callable[[FileResult], None]
) -> None:
    try:
        future.result()
    except DeblurError as exc:  # names the output; add the input it came from
        _fail(result, f"{exc} (the result of {result.input})")
    except Exception as exc:
        _fail(
            result, f"{result.output}: could not be written: {exc} (the result of {result.input})"
        )
        result.traceback = traceback.format_exc()
    result.seconds = time.perf_counter() - started
    finish(result)


def _compose(photo: Photo, restored: np.ndarray, side_by_side: bool) -> Photo:
    """The output photo: the result, or input | result side by side."""
    if not side_by_side:
        return photo.with_pixels(restored)
    alpha = None if photo.alpha is None else np.hstack([photo.alpha, photo.alpha])
    return Photo(
        np.hstack([photo.pixels, restored]),
        alpha,
        photo.format,
        photo.exif,
        photo.icc_profile,
        photo.dpi,
    )
