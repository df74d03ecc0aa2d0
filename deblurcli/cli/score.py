"""``deblur score``: PSNR/SSIM of results against ground truth, or no-reference sharpness."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from deblurcli.cli import _options as opt
from deblurcli.cli._console import count_progress, stderr_console, stdout_console, warning_line

METRIC_PANEL = "Metric conventions"

CSV_COLUMNS = (
    "name",
    "pred",
    "gt",
    "psnr",
    "ssim",
    "compare_psnr",
    "compare_ssim",
    "psnr_gain",
    "ssim_gain",
    "sharpness_pred",
    "sharpness_gt",
    "gradient_pred",
    "gradient_gt",
    "error",
)


def score(
    pred: Annotated[
        Path, typer.Argument(help="Results: an image or a folder.", show_default=False)
    ],
    gt: Annotated[
        Path | None,
        typer.Argument(
            help="Ground truth: an image or a folder. Leave out for a sharpness report.",
            show_default=False,
        ),
    ] = None,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            help="A second results folder (e.g. the blurred inputs): adds its scores "
            "(PSNR₂, SSIM₂) and the gain of PRED over it (ΔPSNR, ΔSSIM).",
            rich_help_panel=opt.IO_PANEL,
        ),
    ] = None,
    pred_suffix: Annotated[
        str,
        typer.Option(
            "--pred-suffix",
            help="Stem suffix of result files, e.g. _deblurred for a_deblurred.png vs a.png.",
            rich_help_panel=opt.IO_PANEL,
        ),
    ] = "",
    crop_border: Annotated[
        int,
        typer.Option(
            "--crop-border",
            min=0,
            help="Pixels left out on each side (BasicSR's crop_border).",
            rich_help_panel=METRIC_PANEL,
        ),
    ] = 0,
    y_channel: Annotated[
        bool,
        typer.Option(
            "--y-channel",
            help="Score BT.601 luma instead of RGB (BasicSR's test_y_channel).",
            rich_help_panel=METRIC_PANEL,
        ),
    ] = False,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="Also write one row per image to this CSV file.",
            rich_help_panel=opt.IO_PANEL,
        ),
    ] = None,
    device: opt.Device = "auto",
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON document (rows, summary, unmatched files) on stdout.",
            rich_help_panel=opt.IO_PANEL,
        ),
    ] = False,
) -> None:
    """Score results against ground truth (PSNR, SSIM) or, with one folder, their sharpness.

    Files pair by relative path, then by stem (a.png with a.jpg).

    Example: deblur score ./sharp ./gt --compare ./blurred --csv scores.csv
    """
    from deblurcli.device import resolve_device
    from deblurcli.errors import UsageError
    from deblurcli.pipelines.scoring import pair_files, score_rows

    if compare is not None and gt is None:
        raise UsageError("--compare needs a ground-truth folder to compare against")
    torch_device = resolve_device(device)
    err = stderr_console()
    out = err if as_json else stdout_console()
    pairing = pair_files(pred, gt, compare, pred_suffix)
    for label, paths in (
        ("result without ground truth", pairing.unmatched_pred),
        ("ground truth without result", pairing.unmatched_gt),
        ("--compare file without ground truth", pairing.unmatched_compare),
    ):
        for path in paths:
            warning_line(err, f"{path}: {label}; not scored")
    if not pairing.rows:
        raise UsageError("no result matches a ground-truth file by relative path or stem")
    progress = count_progress(err, "images")
    task = progress.add_task("score", total=len(pairing.rows), rate="")
    with progress:
        results = score_rows(
            pairing.rows,
            crop_border=crop_border,
            y_channel=y_channel,
            device=torch_device,
            on_result=lambda _: progress.advance(task),
        )
    if gt is None:
        _sharpness_table(results, out)
    else:
        _score_table(results, out, compare is not None)
    failed = [r for r in results if r.error]
    for result in failed:
        out.print(f"[red]failed[/] {escape(result.error or '')}", highlight=False, soft_wrap=True)
    if csv_file is not None:
        _write_csv(csv_file, results)
    if as_json:
        typer.echo(json.dumps(_document(results, pairing, crop_border, y_channel), indent=2))
    raise typer.Exit(1 if failed else 0)


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _summary_rows(table: Table, columns: list[list[float | None]], digits: list[int]) -> None:
    from deblurcli.pipelines.scoring import summarize

    summaries = [summarize([v for v in column if v is not None]) for column in columns]
    table.add_section()
    for label, field in (("mean", "mean"), ("median", "median"), ("min", "minimum")):
        cells = [
            _fmt(None if s is None else getattr(s, field), d)
            for s, d in zip(summaries, digits, strict=True)
        ]
        table.add_row(f"[bold]{label}[/]", *cells)


def _score_table(results: list, console, with_compare: bool) -> None:
    ok = [r for r in results if r.scores is not None]
    table = Table(title=f"Scores ({len(ok)} images)", title_justify="left")
    table.add_column("image", overflow="fold", min_width=10)
    headers = ["PSNR", "SSIM"]
    if with_compare:
        headers += ["PSNR₂", "SSIM₂", "ΔPSNR", "ΔSSIM"]
    headers += ["sharp", "GT sharp"]
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    digits = [2, 4] + ([2, 4, 2, 4] if with_compare else []) + [1, 1]
    columns: list[list[float | None]] = [[] for _ in headers]
    for r in results:
        if r.scores is None:
            table.add_row(escape(r.name), "[red]error[/]", *[""] * (len(headers) - 1))
            continue
        values: list[float | None] = [r.scores.psnr, r.scores.ssim]
        if with_compare:
            c = r.compare_scores
            values += (
                [c.psnr, c.ssim, r.scores.psnr - c.psnr, r.scores.ssim - c.ssim]
                if c is not None
                else [None] * 4
            )
        values += [r.sharpness_pred, r.sharpness_gt]
        for column, value in zip(columns, values, strict=True):
            column.append(value)
        table.add_row(escape(r.name), *[_fmt(v, d) for v, d in zip(values, digits, strict=True)])
    _summary_rows(table, columns, digits)
    console.print(table)


def _sharpness_table(results: list, console) -> None:
    table = Table(title="Sharpness (no reference; higher is sharper)", title_justify="left")
    table.add_column("image", overflow="fold", min_width=10)
    table.add_column("Laplacian variance", justify="right")
    table.add_column("Tenengrad", justify="right")
    columns: list[list[float | None]] = [[], []]
    for r in results:
        if r.error:
            table.add_row(escape(r.name), "[red]error[/]", "")
            continue
        columns[0].append(r.sharpness_pred)
        columns[1].append(r.gradient_pred)
        table.add_row(escape(r.name), _fmt(r.sharpness_pred, 1), _fmt(r.gradient_pred, 1))
    _summary_rows(table, columns, [1, 1])
    console.print(table)


def _csv_row(result) -> dict:
    row = {key: value for key, value in result.as_json().items() if key in CSV_COLUMNS}
    if result.scores is not None:
        row["psnr"] = result.scores.psnr  # keeps inf, which CSV can hold
    c = result.compare_scores
    if result.scores is not None and c is not None:
        row["compare_psnr"] = c.psnr
        row["psnr_gain"] = result.scores.psnr - c.psnr
        row["ssim_gain"] = result.scores.ssim - c.ssim
    return row


def _write_csv(path: Path, results: list) -> None:
    from deblurcli.io.images import write_atomic

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for result in results:
        writer.writerow(_csv_row(result))
    write_atomic(path, buffer.getvalue().encode())


def _document(results: list, pairing, crop_border: int, y_channel: bool) -> dict:
    from deblurcli.pipelines.scoring import summarize

    def summary(values: list[float]) -> dict | None:
        s = summarize(values)
        return None if s is None else {"mean": s.mean, "median": s.median, "min": s.minimum}

    scored = [r for r in results if r.scores is not None]
    compared = [r for r in scored if r.compare_scores is not None]
    measured = [r for r in results if r.sharpness_pred is not None]
    return {
        "options": {"crop_border": crop_border, "y_channel": y_channel},
        "rows": [r.as_json() for r in results],
        "summary": {
            "psnr": summary([r.scores.psnr for r in scored]),
            "ssim": summary([r.scores.ssim for r in scored]),
            "compare_psnr": summary([r.compare_scores.psnr for r in compared]),
            "compare_ssim": summary([r.compare_scores.ssim for r in compared]),
            "sharpness_pred": summary([r.sharpness_pred for r in measured]),
            "scored": len(scored),
            "failed": sum(r.error is not None for r in results),
        },
        "unmatched": {
            "pred": [str(p) for p in pairing.unmatched_pred],
            "gt": [str(p) for p in pairing.unmatched_gt],
            "compare": [str(p) for p in pairing.unmatched_compare],
        },
    }
