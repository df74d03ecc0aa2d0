"""Options shared by the commands, and the whole block of them that the image-to-image
commands (``deblur``, ``enhance``) take: :func:`with_batch_options`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deblurcli.errors import UsageError

if TYPE_CHECKING:
    from deblurcli.io.discovery import Shard as BatchShard

IO_PANEL = "Inputs and outputs"
RUN_PANEL = "Device and speed"

Inputs = Annotated[
    list[str],
    typer.Argument(
        help="Image files, folders or glob patterns (quote them: 'shots/**/*.jpg').",
        show_default=False,
    ),
]
OutputDir = Annotated[
    Path,
    typer.Option(
        "--output",
        "-o",
        help="Folder for the results; mirrors the inputs' layout.",
        rich_help_panel=IO_PANEL,
    ),
]
Recursive = Annotated[
    bool,
    typer.Option(
        "--recursive", "-r", help="Look into subfolders of input folders.", rich_help_panel=IO_PANEL
    ),
]
Format = Annotated[
    str,
    typer.Option(
        "--format",
        help="Output format: keep, png, jpg, webp, tiff, bmp, heic or avif.",
        rich_help_panel=IO_PANEL,
    ),
]
Quality = Annotated[
    int,
    typer.Option("--quality", min=1, max=100, help="JPEG/WebP quality.", rich_help_panel=IO_PANEL),
]
Suffix = Annotated[
    str,
    typer.Option(
        "--suffix", help="Added to each output's file name, e.g. _sharp.", rich_help_panel=IO_PANEL
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace existing outputs (by default they are skipped).",
        rich_help_panel=IO_PANEL,
    ),
]
SideBySide = Annotated[
    bool,
    typer.Option(
        "--side-by-side",
        help="Write input and result next to each other.",
        rich_help_panel=IO_PANEL,
    ),
]
Shard = Annotated[
    str | None,
    typer.Option(
        "--shard",
        metavar="K/N",
        help="Process only part K of N, split by relative path: machines running 1/N to N/N "
        "over the same inputs do every file exactly once.",
        rich_help_panel=IO_PANEL,
    ),
]
VIDEO_PANEL = "Videos"
VideoCodec = Annotated[
    str,
    typer.Option(
        "--video-codec",
        help="Encoder for restored videos (FFmpeg name: libx264, libx265, mpeg4...).",
        rich_help_panel=VIDEO_PANEL,
    ),
]
VideoQuality = Annotated[
    int,
    typer.Option(
        "--video-quality",
        min=0,
        max=51,
        help="Constant rate factor for x264/x265 (lower is better; 17 is visually lossless).",
        rich_help_panel=VIDEO_PANEL,
    ),
]
Json = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON document with a result per input on stdout.",
        rich_help_panel=IO_PANEL,
    ),
]
Tile = Annotated[
    int,
    typer.Option(
        "--tile",
        min=0,
        envvar="DEBLURCLI_TILE",
        show_envvar=True,
        help="Tile side in pixels; 0 picks it from free memory.",
        rich_help_panel=RUN_PANEL,
    ),
]
TileOverlap = Annotated[
    int,
    typer.Option(
        "--tile-overlap",
        min=0,
        help="Pixels shared by neighbouring tiles.",
        rich_help_panel=RUN_PANEL,
    ),
]
Device = Annotated[
    str,
    typer.Option(
        "--device",
        envvar="DEBLURCLI_DEVICE",
        show_envvar=True,
        help="auto, cpu, cuda, cuda:N or mps.",
        rich_help_panel=RUN_PANEL,
    ),
]
Precision = Annotated[
    str,
    typer.Option(
        "--precision",
        envvar="DEBLURCLI_PRECISION",
        show_envvar=True,
        help=(
            "auto (bf16/fp16 on GPUs and on CPUs with native bf16, for models checked "
            "against fp32; fp32 otherwise), fp32, fp16 or bf16."
        ),
        rich_help_panel=RUN_PANEL,
    ),
]

TRIAGE_PANEL = "Triage and review"
BlurThreshold = Annotated[
    float | None,
    typer.Option(
        "--blur-threshold",
        metavar="PX",
        min=0.0,
        help="Blur extent, px at 1280 px on the longer side, from which a photo counts "
        "as blurry (default: the shipped detector's, printed by 'deblur triage').",
        rich_help_panel=TRIAGE_PANEL,
    ),
]
OnlyBlurry = Annotated[
    bool,
    typer.Option(
        "--only-blurry",
        help="Restore only the photos the blur detector flags (see 'deblur triage'); "
        "the others are reported as skipped, with their estimate.",
        rich_help_panel=TRIAGE_PANEL,
    ),
]
Report = Annotated[
    bool,
    typer.Option(
        "--report",
        help="Write report.html beside the outputs: before/after of every photo, blur "
        "estimates, times and notes; opens offline.",
        rich_help_panel=TRIAGE_PANEL,
    ),
]

FORMATS = ("keep", "png", "jpg", "webp", "tiff", "bmp", "heic", "avif")


@dataclass(frozen=True)
class BatchCommandOptions:
    """What every image-to-image command is told besides its model: where results go,
    how they are written, and where the network runs. Each field's annotation is its
    command-line option and its default the option's default; the field names are the
    commands' parameter names."""

    output: OutputDir
    tile: Tile = 0
    tile_overlap: TileOverlap = 64
    device: Device = "auto"
    precision: Precision = "auto"
    recursive: Recursive = False
    fmt: Format = "keep"
    quality: Quality = 95
    suffix: Suffix = ""
    overwrite: Overwrite = False
    side_by_side: SideBySide = False
    as_json: Json = False
    shard: Shard = None
    video_codec: VideoCodec = "libx264"
    video_quality: VideoQuality = 17
    report: Report = False

    def check(self) -> None:
        """Validate, before any work, what Click cannot: the format, ``--shard``, and that
        the output folder can be written.

        Raises:
            UsageError: an unknown format, a malformed shard, or an output folder that
                cannot be created or written.
        """
        from deblurcli.io.output import check_writable_folder

        if self.fmt not in FORMATS:
            raise UsageError(f"unknown --format {self.fmt!r}: use one of {', '.join(FORMATS)}")
        parse_shard(self.shard)
        check_writable_folder(self.output)


def with_batch_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give an image-to-image command the shared options.

    ``command`` declares its own arguments and options and one parameter
    ``batch: BatchCommandOptions``. The returned function shows Typer every
    field of :class:`BatchCommandOptions` as an option of its own (``--output``
    right after the inputs, the rest after the command's own) and calls
    ``command`` with them gathered into ``batch``.
    """
    own = [
        parameter
        for parameter in inspect.signature(command, eval_str=True).parameters.values()
        if parameter.name != "batch"
    ]
    shared = list(inspect.signature(BatchCommandOptions, eval_str=True).parameters.values())
    after_inputs = 1 + next((i for i, p in enumerate(own) if p.annotation == Inputs), -1)
    parameters = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in [*own[:after_inputs], shared[0], *own[after_inputs:], *shared[1:]]
    ]
    names = [field.name for field in fields(BatchCommandOptions)]

    @functools.wraps(command)
    def with_options(**values: Any) -> None:
        batch = BatchCommandOptions(**{name: values.pop(name) for name in names})
        command(**values, batch=batch)

    with_options.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    with_options.__annotations__ = {p.name: p.annotation for p in parameters}
    return with_options


def check_model(name: str | None, task: str, flag: str) -> None:
    """A model name given on the command line must be a registered model for ``task``.

    Raises:
        UsageError: unknown, or a model for the other task; the message lists the choices.
    """
    if name is None:
        return
    from deblurcli.models import list_models

    choices = list_models(task)
    if name not in choices:
        other = "deblur" if task == "enhance" else "enhance"
        hint = f" ({name} is for deblur {other})" if name in list_models(other) else ""
        raise UsageError(f"unknown {flag} {name!r}{hint}: use one of {', '.join(choices)}")


def parse_shard(text: str | None) -> BatchShard | None:
    """``--shard K/N`` as a :class:`~deblurcli.io.discovery.Shard` (None: the whole batch).

    Raises:
        UsageError: not K/N with 1 <= K <= N.
    """
    from deblurcli.io.discovery import Shard as BatchShard

    if text is None:
        return None
    try:
        return BatchShard.parse(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
