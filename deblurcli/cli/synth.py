"""``deblur synth-blur``: blurred/sharp training pairs from sharp photographs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from deblurcli.cli import _options as opt
from deblurcli.cli._console import (
    count_progress,
    error_line,
    skipped_file_warner,
    stderr_console,
    stdout_console,
    summary_table,
)
from deblurcli.errors import UsageError

DATASET_PANEL = "Dataset"
KERNEL_PANEL = "Blur kernels (a value or LOW-HIGH, drawn uniformly per pair)"
CAMERA_PANEL = "Camera model (realistic synthesis)"


def _range_option(flag: str, help_text: str) -> object:
    return typer.Option(flag, help=help_text, rich_help_panel=KERNEL_PANEL)


def _camera_option(flag: str, help_text: str) -> object:
    return typer.Option(flag, help=help_text, rich_help_panel=CAMERA_PANEL)


def synth_blur(
    inputs: opt.Inputs,
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Dataset folder to write.", rich_help_panel=opt.IO_PANEL
        ),
    ],
    per_image: Annotated[
        int,
        typer.Option(
            "--per-image", min=1, help="Pairs made from each photo.", rich_help_panel=DATASET_PANEL
        ),
    ] = 1,
    seed: Annotated[
        int,
        typer.Option(
            "--seed", help="The same seed makes the same dataset.", rich_help_panel=DATASET_PANEL
        ),
    ] = 0,
    crop: Annotated[
        str | None,
        typer.Option(
            "--crop",
            metavar="WxH",
            help="Random crop of each pair, e.g. 256x256 (default: whole photos).",
            rich_help_panel=DATASET_PANEL,
        ),
    ] = None,
    max_side: Annotated[
        int | None,
        typer.Option(
            "--max-side",
            min=16,
            metavar="PX",
            help="First shrink each photo (area filter) so its longer side is at most PX.",
            rich_help_panel=DATASET_PANEL,
        ),
    ] = None,
    val_fraction: Annotated[
        float,
        typer.Option(
            "--val-fraction",
            min=0.0,
            max=0.9,
            help="Share of source photos held out for validation (split by photo).",
            rich_help_panel=DATASET_PANEL,
        ),
    ] = 0.1,
    kernel: Annotated[
        list[str] | None,
        typer.Option(
            "--kernel",
            show_default="shake",
            help="shake, linear, defocus or gaussian; repeat to mix them.",
            rich_help_panel=KERNEL_PANEL,
        ),
    ] = None,
    max_len: Annotated[str, _range_option("--max-len", "Shake path length, px.")] = "60",
    expl: Annotated[str, _range_option("--expl", "Shake intensity.")] = "0.003-0.01",
    exposure: Annotated[
        str, _range_option("--exposure", "Exposed fraction of the shake path.")
    ] = "0.1-1",
    length: Annotated[str, _range_option("--length", "Linear motion length, px.")] = "5-30",
    angle: Annotated[str, _range_option("--angle", "Linear motion angle, degrees.")] = "0-180",
    radius: Annotated[str, _range_option("--radius", "Defocus disc radius, px.")] = "1-6",
    sigma: Annotated[str, _range_option("--sigma", "Gaussian sigma, px.")] = "0.5-3",
    linear_light: Annotated[
        bool, _camera_option("--linear-light/--no-linear-light", "Blur in linear light.")
    ] = True,
    saturation: Annotated[
        bool,
        _camera_option("--saturation/--no-saturation", "Boost and clip highlights like a sensor."),
    ] = True,
    noise: Annotated[
        bool, _camera_option("--noise/--no-noise", "Poisson–Gaussian sensor noise.")
    ] = True,
    jpeg_quality: Annotated[
        str | None,
        _camera_option("--jpeg-quality", "Re-compress blurred images, e.g. 70-95 (default: off)."),
    ] = None,
    naive: Annotated[
        bool,
        _camera_option(
            "--naive", "Plain sRGB convolution: turns off linear light, saturation and noise."
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-j",
            min=1,
            show_default="one per CPU core",
            help="Photos rendered at once; the dataset is the same for any count.",
            rich_help_panel=opt.RUN_PANEL,
        ),
    ] = None,
    append: Annotated[
        bool,
        typer.Option(
            "--append",
            help="Add to an existing dataset; finished pairs are kept (resumes a stopped run).",
            rich_help_panel=opt.IO_PANEL,
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Remake every pair in an existing dataset folder.",
            rich_help_panel=opt.IO_PANEL,
        ),
    ] = False,
    recursive: opt.Recursive = False,
    as_json: opt.Json = False,
) -> None:
    """Make blurred/sharp training pairs from sharp photographs.

    Example: deblur synth-blur ./sharp_photos -o ./dataset --per-image 4 --crop 256x256
    """
    from deblurcli.io.discovery import discover
    from deblurcli.ops.pairs import KERNEL_TYPES, KernelOptions, SynthSettings
    from deblurcli.ops.synthesis import SynthesisConfig
    from deblurcli.pipelines.synth import build_dataset

    if append and overwrite:
        raise UsageError("--append and --overwrite exclude each other: choose one")
    kinds = tuple(dict.fromkeys(kernel or ["shake"]))
    for kind in kinds:
        if kind not in KERNEL_TYPES:
            raise UsageError(f"--kernel {kind}: choose from {', '.join(KERNEL_TYPES)}")
    settings = SynthSettings(
        per_image=per_image,
        seed=seed,
        crop=_parse_crop(crop),
        max_side=max_side,
        val_fraction=val_fraction,
        kernels=KernelOptions(
            types=kinds,
            max_len=_range("--max-len", max_len, minimum=1.0),
            expl=_range("--expl", expl, minimum=0.0),
            exposure=_range("--exposure", exposure, minimum=1e-3, maximum=1.0),
            length=_range("--length", length, minimum=0.0),
            angle=_range("--angle", angle),
            radius=_range("--radius", radius, minimum=0.0),
            sigma=_range("--sigma", sigma, minimum=0.0),
        ),
        synthesis=SynthesisConfig(
            linear_light=linear_light and not naive,
            saturation=saturation and not naive,
            noise=noise and not naive,
            jpeg_quality=_parse_quality(jpeg_quality),
        ),
    )
    err = stderr_console()
    out = err if as_json else stdout_console()
    items = discover(inputs, output, "png", "", recursive, skipped_file_warner(err))
    sources = [(item.source, item.relative.as_posix()) for item in items if item.error is None]
    input_errors = [(str(item.source), str(item.error)) for item in items if item.error]
    for _, message in input_errors:
        error_line(err, message)
    if not sources:
        raise UsageError("no images found in the inputs (JPEG, PNG, WebP, TIFF, BMP, HEIC, AVIF)")
    mode = "append" if append else "overwrite" if overwrite else "new"
    progress = count_progress(err, "pairs")
    task = progress.add_task("synth-blur", total=len(sources) * per_image, rate="")
    started = time.perf_counter()

    def on_source(pairs: int, error: str | None) -> None:
        progress.advance(task, pairs)
        done = progress.tasks[0].completed
        progress.update(task, rate=f"{done / max(time.perf_counter() - started, 1e-9):.1f} pairs/s")
        if error:
            progress.console.print(f"[red]failed[/] {escape(error)}", highlight=False)

    try:
        with progress:
            summary = build_dataset(
                sources,
                output,
                settings,
                mode=mode,
                workers=workers or os.cpu_count() or 1,
                on_source=on_source,
            )
    except KeyboardInterrupt:
        error_line(err, "interrupted: run the same command with --append to finish the dataset")
        raise typer.Exit(130) from None
    failures = input_errors + summary.failures
    rows = [
        ("pairs written", str(summary.written)),
        ("pairs kept", str(summary.kept)),
        ("train pairs", str(summary.split_counts.get("train", 0))),
        ("val pairs", str(summary.split_counts.get("val", 0))),
        ("failed photos", str(len(failures))),
        ("seconds", f"{summary.seconds:.1f}"),
        ("pairs/s", f"{summary.written / summary.seconds:.2f}" if summary.written else "-"),
    ]
    summary_table(f"Dataset {output}", rows, out)
    if failures:
        out.print("[red]Failed photos:[/]", highlight=False)
        for _, message in failures:
            out.print(f"  {escape(message)}", highlight=False, soft_wrap=True)
    if as_json:
        document = {
            "dataset": str(output),
            "written": summary.written,
            "kept": summary.kept,
            "splits": summary.split_counts,
            "failures": [{"input": s, "error": m} for s, m in failures],
            "seconds": round(summary.seconds, 4),
        }
        typer.echo(json.dumps(document, indent=2))
    raise typer.Exit(1 if failures else 0)


def _parse_crop(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or min(map(int, parts)) < 16:
        raise UsageError(f"--crop {text}: expected WIDTHxHEIGHT of at least 16 px, e.g. 256x256")
    return int(parts[0]), int(parts[1])


def _parse_quality(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    value = _range("--jpeg-quality", text, minimum=1, maximum=100)
    return round(value.low), round(value.high)


def _range(flag: str, text: str, minimum: float | None = None, maximum: float | None = None):
    from deblurcli.ops.pairs import Range

    try:
        value = Range.parse(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    if (minimum is not None and value.low < minimum) or (
        maximum is not None and value.high > maximum
    ):
        raise UsageError(f"{flag} {text}: values must lie in [{minimum}, {maximum}]")
    return value
