"""The run loop shared by image-to-image commands: discovery, progress, summary, exit code."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from deblurcli.cli._console import (
    count_progress,
    download_progress,
    error_line,
    megapixel_progress,
    skipped_file_warner,
    stderr_console,
    stdout_console,
    summary_table,
)
from deblurcli.cli._options import parse_shard
from deblurcli.cli._review import Review
from deblurcli.errors import DeblurError, UsageError

if TYPE_CHECKING:
    from deblurcli.cli._options import BatchCommandOptions
    from deblurcli.io.discovery import Shard, WorkItem
    from deblurcli.pipelines.batch import FileResult
    from deblurcli.pipelines.restore import Restorer


def load_restorer(
    *,
    task: str,
    architecture: str | None,
    default_architecture: str,
    weights: str | None,
    batch: BatchCommandOptions,
    strength: float = 1.0,
) -> tuple[Restorer, str]:
    """Resolve the weights (downloading with a progress bar), load them, build the Restorer
    on ``batch``'s device, precision and tiles.

    Returns:
        The restorer and a one-line header saying what runs where.

    Raises:
        WeightsError: no default weights, or weights made for another task.
        DownloadError, DeviceError: as their names say.
    """
    from deblurcli.hub import no_default_weights
    from deblurcli.models import get_spec
    from deblurcli.pipelines.restore import Restorer

    if weights is None:
        name = architecture or default_architecture
        weights = get_spec(name).default_weights
        if weights is None:
            raise no_default_weights(name)
    progress, on_bytes = download_progress(stderr_console(), f"weights {weights}")
    with progress:
        restorer = Restorer.from_weights(
            weights,
            task=task,
            architecture=architecture,
            device=batch.device,
            precision=batch.precision,
            tile=batch.tile,
            overlap=batch.tile_overlap,
            strength=strength,
            on_bytes=on_bytes,
        )
    info, model = restorer.info, restorer.model
    if info.official:
        semantics = "official semantics: per-image normalisation, whole-image runs"
    elif not model.local:
        semantics = "kernel estimated per photo, whole-image runs"
    else:
        semantics = "eval-mode normalisation, tiled"
    header = (
        f"[bold]{info.architecture}[/] from {escape(info.path.name)} ({semantics}) on "
        f"{restorer.device} in {str(restorer.dtype).removeprefix('torch.')}"
    )
    return restorer, header


def run_images(
    *,
    title: str,
    inputs: Sequence[str],
    restorer: object,
    batch: BatchCommandOptions,
    verbose: bool,
    header: str,
    only_blurry: bool = False,
    blur_threshold: float | None = None,
) -> None:
    """Discover inputs (only ``--shard``'s part of them, when given), run the batch with a
    progress bar, report, and exit with the right code. ``only_blurry`` skips the photos
    the blur detector finds sharp (at ``blur_threshold``, or the detector's own);
    ``batch.report`` writes report.html.

    Raises:
        typer.Exit: 0 when nothing failed, 1 when some inputs failed, 130 on Ctrl-C.
    """
    from deblurcli.io.discovery import discover
    from deblurcli.io.images import peek_megapixels
    from deblurcli.pipelines.batch import BatchOptions, run_batch
    from deblurcli.pipelines.video import is_video

    shard = parse_shard(batch.shard)
    out_dir, as_json, overwrite = batch.output, batch.as_json, batch.overwrite
    review = Review(only_blurry, blur_threshold, batch.report)
    err = stderr_console()
    out = err if as_json else stdout_console()
    items = discover(
        inputs,
        out_dir,
        batch.fmt,
        batch.suffix,
        batch.recursive,
        skipped_file_warner(err),
        videos=True,
    )
    if not items:
        inside = [i for i in inputs if Path(i).resolve().is_relative_to(out_dir.resolve())]
        if inside:
            raise UsageError(
                "is inside the output folder, whose files are never inputs: "
                "choose another --output",
                inside[0],
            )
        raise UsageError("no images found in the inputs (JPEG, PNG, WebP, TIFF, BMP, HEIC, AVIF)")
    found = len(items)
    if shard is not None:
        items = [item for item in items if shard.holds(item.relative)]
        header += f", shard {shard}: {len(items)} of {found} inputs"
    err.print(header, highlight=False, soft_wrap=True)
    photos, videos = [], []
    for item in items:
        (videos if item.error is None and is_video(item.source) else photos).append(item)
    detector, estimates, sharp_results = None, {}, []
    if review.needs_detector:
        from deblurcli.cli._review import select_blurry
        from deblurcli.models.blur_detector import BlurDetector

        detector = BlurDetector.load()
        if review.only_blurry:
            threshold = detector.threshold if review.threshold is None else review.threshold
            photos, sharp_results, estimates = select_blurry(photos, detector, threshold, err)
    sizes = {
        item.source: peek_megapixels(item.source) for item in photos + videos if item.error is None
    }
    options = BatchOptions(batch.fmt, batch.quality, overwrite, batch.side_by_side)
    results: list[FileResult] = []
    started = time.perf_counter()
    progress = megapixel_progress(err)
    task = progress.add_task(title, total=max(sum(sizes.values()), 1e-6), files=f"0/{len(items)}")

    def on_result(result: FileResult) -> None:
        results.append(result)
        progress.update(
            task,
            advance=sizes.get(Path(result.input), 0.0),
            files=f"{len(results)}/{len(items)} files",
        )
        if result.status == "failed":
            error_line(progress.console, result.error or f"{result.input}: failed")
            if verbose and result.traceback:
                progress.console.print(escape(result.traceback), highlight=False, soft_wrap=True)
        elif result.status == "skipped":
            why = result.notes[0] if result.notes else "output exists (--overwrite replaces it)"
            progress.console.print(
                f"[yellow]skipped[/] {escape(result.input)}: {escape(why)}",
                highlight=False,
                soft_wrap=True,
            )
        if result.status == "ok" and not progress.console.is_terminal:
            # No progress bar in a log: one plain line per finished file instead.
            progress.console.print(
                f"done {escape(result.input)} -> {escape(result.output or '')} "
                f"({result.seconds:.1f} s)",
                highlight=False,
                soft_wrap=True,
            )
        for note in result.notes if result.status == "ok" else ():
            progress.console.print(
                f"[yellow]note[/] {escape(result.input)}: {escape(note)}",
                highlight=False,
                soft_wrap=True,
            )

    for result in sharp_results:
        on_result(result)

    def on_warning(source: str, message: str) -> None:
        progress.console.print(
            f"[yellow]warning[/] {escape(source)}: {escape(message)}",
            highlight=False,
            soft_wrap=True,
        )

    try:
        with progress:
            run_batch(photos, restorer, options, on_result, on_warning)  # type: ignore[arg-type]
        video = (batch.video_codec, batch.video_quality)
        for item in videos:
            on_result(_restore_video(item, restorer, overwrite, video, err))
    except KeyboardInterrupt:
        done = sum(r.status == "ok" for r in results)
        error_line(
            err,
            f"interrupted after {done} new outputs; run the same command again "
            "to resume (finished outputs are skipped)",
        )
        raise typer.Exit(130) from None
    wall = time.perf_counter() - started
    if review.report and detector is not None:
        from deblurcli.cli._review import write_batch_report

        write_batch_report(
            out_dir, results, estimates, detector, title, _summary_rows(results, wall), err
        )
    _report(results, wall, out, as_json, shard, found)
    raise typer.Exit(1 if any(r.status == "failed" for r in results) else 0)


def _restore_video(
    item: WorkItem, restorer: Restorer, overwrite: bool, video: tuple[str, int], console
) -> FileResult:
    """One video, frame by frame, with its own progress bar over frames."""
    from deblurcli.io import claims
    from deblurcli.pipelines.batch import FileResult

    result = FileResult(str(item.source), str(item.output), "ok")
    if item.output.exists() and not overwrite:
        result.status = "skipped"
        return result
    claim = claims.claim(item.output)  # as for photos: another live run may have it
    if claim is None:
        result.status = "skipped"
        result.notes.append("another run is computing this output")
        return result
    try:
        return _restore_claimed_video(item, result, restorer, video, console)
    finally:
        claims.release(claim)


def _restore_claimed_video(
    item: WorkItem, result: FileResult, restorer: Restorer, video: tuple[str, int], console
) -> FileResult:
    """The video's frames through ``restorer``, with a progress bar; ``result`` filled in."""
    from deblurcli.pipelines.video import count_frames, restore_video

    progress = count_progress(console, "frames")
    task = progress.add_task(f"Video {item.source.name}", total=count_frames(item.source), rate="")

    def on_frame(done: int) -> None:
        elapsed = progress.tasks[0].elapsed or 0.0
        rate = f"{done / elapsed:.2f} frames/s" if elapsed > 0 else ""
        progress.update(task, completed=done, rate=rate)

    def restore_frame(pixels):
        restored, report = restorer.restore_array(pixels)
        result.notes.extend(note for note in report.notes if note not in result.notes)
        return restored

    codec, quality = video
    try:
        with progress:
            report = restore_video(
                item.source, item.output, restore_frame, codec, quality, on_frame
            )
    except DeblurError as exc:
        result.status, result.error = "failed", str(exc)
        return result
    result.seconds = report.seconds
    result.megapixels = report.frames * report.megapixels_per_frame
    result.notes.extend([f"{report.frames} frames", *report.notes])
    return result


def _summary_rows(results: Sequence, wall: float) -> list[tuple[str, str]]:
    ok = [r for r in results if r.status == "ok"]
    megapixels = sum(r.megapixels for r in ok)
    return [
        ("files", f"{len(ok)} restored"),
        ("skipped", str(sum(r.status == "skipped" for r in results))),
        ("failed", str(sum(r.status == "failed" for r in results))),
        ("megapixels", f"{megapixels:.1f}"),
        ("seconds", f"{wall:.1f}"),
        ("MP/s", f"{megapixels / wall:.2f}" if wall > 0 and ok else "-"),
    ]


def _report(
    results: Sequence, wall: float, console, as_json: bool, shard: Shard | None, found: int
) -> None:
    ok = [r for r in results if r.status == "ok"]
    megapixels = sum(r.megapixels for r in ok)
    failed = [r for r in results if r.status == "failed"]
    rows = _summary_rows(results, wall)
    if shard is not None:
        rows.append(("shard", f"{shard}: {len(results)} of {found} inputs"))
    summary_table("Summary", rows, console)
    if failed:
        console.print("[red]Failed inputs:[/]", highlight=False, soft_wrap=True)
        for r in failed:
            console.print(f"  {escape(r.error or r.input)}", highlight=False, soft_wrap=True)
    if as_json:
        document = {
            "results": [r.as_json() for r in results],
            "summary": {
                "ok": len(ok),
                "skipped": sum(r.status == "skipped" for r in results),
                "failed": len(failed),
                "megapixels": round(megapixels, 4),
                "seconds": round(wall, 4),
                "megapixels_per_second": round(megapixels / wall, 4) if wall > 0 else None,
                "shard": None if shard is None else str(shard),
                "inputs_found": found,
            },
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        sys.stdout.flush()
