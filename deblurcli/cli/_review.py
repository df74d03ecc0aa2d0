"""``--only-blurry`` and ``--report`` for the image-to-image commands."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from deblurcli.cli._console import count_progress

if TYPE_CHECKING:
    from rich.console import Console

    from deblurcli.io.discovery import WorkItem
    from deblurcli.models.blur_detector import BlurDetector
    from deblurcli.pipelines.batch import FileResult


@dataclass(frozen=True)
class Review:
    """What the user asked for beyond restoring.

    Attributes:
        only_blurry: restore only photos the blur detector flags.
        threshold: the detector's threshold override, px at 1280 (None: its own).
        report: write ``report.html`` beside the outputs.
    """

    only_blurry: bool = False
    threshold: float | None = None
    report: bool = False

    @property
    def needs_detector(self) -> bool:
        return self.only_blurry or self.report


def blur_of(path: Path, detector: BlurDetector) -> float | None:
    """The photo's blur estimate, px at 1280 (None when it cannot be read)."""
    from deblurcli.pipelines.triage import triage_photo

    return triage_photo(path, detector, detector.threshold).blur_px_1280


def select_blurry(
    photos: Sequence[WorkItem],
    detector: BlurDetector,
    threshold: float,
    console: Console,
) -> tuple[list[WorkItem], list[FileResult], dict[str, float | None]]:
    """Split photos into those to restore and those skipped as sharp.

    Returns:
        The items to restore (blurry ones, and unreadable ones so that their error
        is reported as usual), a ``skipped`` result for each sharp photo with its
        estimate, and every estimate by input path.
    """
    from deblurcli.pipelines.batch import FileResult

    keep: list[WorkItem] = []
    skipped: list[FileResult] = []
    estimates: dict[str, float | None] = {}
    progress = count_progress(console, "photos")
    task = progress.add_task("Finding blurry photos", total=len(photos), rate="")
    with progress:
        for item in photos:
            blur = None if item.error is not None else blur_of(item.source, detector)
            estimates[str(item.source)] = blur
            progress.advance(task)
            if blur is None or blur >= threshold:
                keep.append(item)
                continue
            result = FileResult(
                str(item.source),
                None if item.output is None else str(item.output),
                "skipped",
                notes=[f"sharp: blur {blur:.1f} px at 1280 px, under the {threshold:g} px limit"],
                blur_before=blur,
            )
            skipped.append(result)
    return keep, skipped, estimates


def write_batch_report(
    out_dir: Path,
    results: Sequence[FileResult],
    estimates: dict[str, float | None],
    detector: BlurDetector,
    title: str,
    summary: Sequence[tuple[str, str]],
    console: Console,
) -> Path:
    """Previews, blur before and after, and ``report.html`` for a finished batch.

    Photos that were restored (or whose output already existed) show before and
    after; sharp photos skipped by ``--only-blurry`` show the input alone.
    """
    from deblurcli.pipelines.report import FILES_FOLDER, ReportRow, write_previews, write_report
    from deblurcli.pipelines.video import is_video

    folder = out_dir / FILES_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    progress = count_progress(console, "photos")
    task = progress.add_task("Writing the report", total=len(results), rate="")
    with progress:
        for index, result in enumerate(results):
            row = ReportRow(
                input=result.input,
                output=result.output,
                status=result.status,
                seconds=result.seconds,
                notes=list(result.notes),
                error=result.error,
            )
            has_output = result.output is not None and Path(result.output).is_file()
            if result.status != "failed" and not is_video(Path(result.input)):
                if result.input not in estimates:  # --report without --only-blurry
                    estimates[result.input] = blur_of(Path(result.input), detector)
                row.blur_before = estimates[result.input]
                if has_output:
                    row.blur_after = blur_of(Path(result.output), detector)  # type: ignore[arg-type]
                else:
                    row.output = None
                row.notes += write_previews(row, folder, index)
            result.blur_before, result.blur_after = row.blur_before, row.blur_after
            rows.append(row)
            progress.advance(task)
    path = write_report(out_dir, rows, title, summary)
    console.print(f"report: {escape(str(path))}", highlight=False, soft_wrap=True)
    return path
