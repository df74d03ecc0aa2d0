"""``deblur enhance``: Deep Photo Enhancer retouching (exposure, contrast, colour)."""

from __future__ import annotations

from typing import Annotated

import typer

from deblurcli.cli import _options as opt
from deblurcli.cli._batch import load_restorer, run_images
from deblurcli.cli._review import Review
from deblurcli.errors import UsageError
from deblurcli.io.output import check_writable_folder

MODEL_PANEL = "Model"


def enhance(
    ctx: typer.Context,
    inputs: opt.Inputs,
    output: opt.OutputDir,
    strength: Annotated[
        float,
        typer.Option(
            "--strength",
            min=0.0,
            max=1.0,
            rich_help_panel=MODEL_PANEL,
            help="Blend with the input: 1 is the full enhancement, 0 leaves photos unchanged.",
        ),
    ] = 1.0,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            rich_help_panel=MODEL_PANEL,
            help="curves (default: colour matrix and tone curves read from each photo) or "
            "dpe (Deep Photo Enhancer's global U-Net); each with its shipped weights.",
        ),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(
            "--weights",
            "-w",
            envvar="DEBLURCLI_ENHANCE_WEIGHTS",
            show_envvar=True,
            rich_help_panel=MODEL_PANEL,
            help="Enhancer weights: a name from 'deblur weights list', a deblurcli "
            ".safetensors file or an https URL (default: the --model's shipped weights).",
        ),
    ] = None,
    tile: opt.Tile = 0,
    tile_overlap: opt.TileOverlap = 64,
    device: opt.Device = "auto",
    precision: opt.Precision = "auto",
    recursive: opt.Recursive = False,
    fmt: opt.Format = "keep",
    quality: opt.Quality = 95,
    suffix: opt.Suffix = "",
    overwrite: opt.Overwrite = False,
    side_by_side: opt.SideBySide = False,
    as_json: opt.Json = False,
    shard: opt.Shard = None,
    video_codec: opt.VideoCodec = "libx264",
    video_quality: opt.VideoQuality = 17,
    report: opt.Report = False,
) -> None:
    """Improve exposure, contrast and colour of photographs, at full resolution.

    Examples: deblur enhance ./photos -o ./enhanced; deblur enhance ./photos -o ./out --model dpe
    """
    if fmt not in opt.FORMATS:
        raise UsageError(f"unknown --format {fmt!r}: use one of {', '.join(opt.FORMATS)}")
    part = opt.parse_shard(shard)
    check_writable_folder(output)
    opt.check_model(model, "enhance", "--model")
    restorer, header = load_restorer(
        task="enhance",
        architecture=model,
        default_architecture="curves",
        weights=weights,
        device=device,
        precision=precision,
        tile=tile,
        overlap=tile_overlap,
        strength=strength,
    )
    run_images(
        title="Enhancing",
        inputs=inputs,
        out_dir=output,
        restorer=restorer,
        fmt=fmt,
        quality=quality,
        suffix=suffix,
        recursive=recursive,
        overwrite=overwrite,
        side_by_side=side_by_side,
        as_json=as_json,
        shard=part,
        video=(video_codec, video_quality),
        verbose=ctx.obj.verbose,
        header=f"{header}, strength {strength:g}",
        review=Review(report=report),
    )
