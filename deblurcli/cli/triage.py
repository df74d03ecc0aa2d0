"""``deblur triage``: find the shaky photos in a batch, worst first, without a reference."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from deblurcli.cli import _options as opt
from deblurcli.cli._console import (
    count_progress,
    error_line,
    skipped_file_warner,
    stderr_console,
    stdout_console,
)
from deblurcli.errors import UsageError

CSV_COLUMNS = ("input", "width", "height", "blur_px", "blur_px_1280", "blurry", "seconds", "error")


def triage(
    inputs: opt.Inputs,
    recursive: opt.Recursive = False,
    blur_threshold: opt.BlurThreshold = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1, help="Photos analysed at once.", rich_help_panel=opt.RUN_PANEL
        ),
    ] = 2,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="Also write one row per photo to this CSV file.",
            rich_help_panel=opt.IO_PANEL,
        ),
    ] = None,
    as_json: opt.Json = False,
) -> None:
    """Estimate how blurred each photo is (no reference needed) and flag the shaky ones.

    The estimate is the blur extent in pixels at the photo's own size, and at
    1280 px on the longer side, where the threshold is stated. Photos are
    listed worst first. Exit code 1 when a photo could not be read.

    Example: deblur triage ./day --csv blur.csv
    """
    from deblurcli.io.discovery import discover
    from deblurcli.models.blur_detector import BlurDetector
    from deblurcli.pipelines.triage import TriageRow, worst_first
    from deblurcli.pipelines.triage import triage as run_triage

    err = stderr_console()
    out = err if as_json else stdout_console()
    items = discover(inputs, None, recursive=recursive, on_skip=skipped_file_warner(err))
    if not items:
        raise UsageError("no images found in the inputs (JPEG, PNG, WebP, TIFF, BMP, HEIC, AVIF)")
    import torch

    detector = BlurDetector.load()
    # Each worker runs its own small network: share the cores out instead of oversubscribing.
    torch.set_num_threads(max(1, torch.get_num_threads() // workers))
    threshold = detector.threshold if blur_threshold is None else blur_threshold
    readable = [item.source for item in items if item.error is None]
    progress = count_progress(err, "photos")
    task = progress.add_task("triage", total=len(readable), rate="")
    started = time.perf_counter()
    with progress:
        rows = run_triage(
            readable, detector, threshold, workers, on_row=lambda _: progress.advance(task)
        )
    wall = time.perf_counter() - started
    rows += [TriageRow(str(item.source), error=str(item.error)) for item in items if item.error]
    rows = worst_first(rows)
    _table(rows, threshold, wall, out)
    for row in rows:
        if row.error:
            error_line(err, row.error)
    if csv_file is not None:
        _write_csv(csv_file, rows)
    if as_json:
        document = {
            "threshold_px_1280": threshold,
            "results": [row.as_json() for row in rows],
            "summary": _summary(rows, wall),
        }
        typer.echo(json.dumps(document, indent=2))
    raise typer.Exit(1 if any(row.error for row in rows) else 0)


def _summary(rows: list, wall: float) -> dict:
    """Counts, and the wall time of the whole run in seconds (photos run in parallel)."""
    return {
        "photos": len(rows),
        "blurry": sum(row.blurry is True for row in rows),
        "sharp": sum(row.blurry is False for row in rows),
        "failed": sum(row.error is not None for row in rows),
        "seconds": round(wall, 3),
    }


def _table(rows: list, threshold: float, wall: float, console) -> None:
    summary = _summary(rows, wall)
    table = Table(
        title=f"{summary['blurry']} of {summary['photos']} photos blurry "
        f"(threshold {threshold:g} px at 1280 px)",
        title_justify="left",
    )
    for column, justify in (
        ("photo", "left"),
        ("size", "right"),
        ("blur px", "right"),
        ("at 1280", "right"),
        ("verdict", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        if row.error is not None:
            table.add_row(escape(row.input), "", "", "", "[red]failed[/]")
            continue
        verdict = "[bold red]blurry[/]" if row.blurry else "[green]sharp[/]"
        table.add_row(
            escape(row.input),
            f"{row.width}×{row.height}",
            f"{row.blur_px:.1f}",
            f"{row.blur_px_1280:.1f}",
            verdict,
        )
    console.print(table)


def _write_csv(path: Path, rows: list) -> None:
    from deblurcli.io.images import write_atomic

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.as_json())
    write_atomic(path, buffer.getvalue().encode())
