"""``deblur deblur``: blind motion deblurring of photographs."""

from __future__ import annotations

from typing import Annotated

import typer

from deblurcli.cli import _options as opt
from deblurcli.cli._batch import load_restorer, run_images
from deblurcli.cli._review import Review
from deblurcli.errors import UsageError
from deblurcli.io.output import check_writable_folder

MODEL_PANEL = "Model"


def deblur(
    ctx: typer.Context,
    inputs: opt.Inputs,
    output: opt.OutputDir,
    backbone: Annotated[
        str | None,
        typer.Option(
            "--backbone",
            "-b",
            show_default="deconv",
            rich_help_panel=MODEL_PANEL,
            help="deconv (blind deconvolution: a shake kernel estimated per photo), "
            "mobilenet (fast), mobilenet-dsc, inception or resnet (DeblurGAN v1). "
            "With --weights, taken from the file.",
        ),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(
            "--weights",
            "-w",
            envvar="DEBLURCLI_WEIGHTS",
            show_envvar=True,
            rich_help_panel=MODEL_PANEL,
            help="Weights: a name from 'deblur weights list', a file (official "
            "DeblurGAN-v2 .h5, DeblurGAN v1 .pth, deblurcli .safetensors) or an https URL.",
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
    only_blurry: opt.OnlyBlurry = False,
    blur_threshold: opt.BlurThreshold = None,
    report: opt.Report = False,
) -> None:
    """Remove camera-shake and motion blur from photographs.

    Example: deblur deblur ./photos -o ./sharp --weights fpn_inception.h5
    """
    if fmt not in opt.FORMATS:
        raise UsageError(f"unknown --format {fmt!r}: use one of {', '.join(opt.FORMATS)}")
    part = opt.parse_shard(shard)
    opt.check_model(backbone, "deblur", "--backbone")
    if blur_threshold is not None and not only_blurry:
        raise UsageError("--blur-threshold applies to --only-blurry: add it, or leave both out")
    check_writable_folder(output)

    restorer, header = load_restorer(
        task="deblur",
        architecture=backbone,
        default_architecture="deconv",
        weights=weights,
        device=device,
        precision=precision,
        tile=tile,
        overlap=tile_overlap,
    )
    run_images(
        title="Deblurring",
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
        header=header,
        review=Review(only_blurry, blur_threshold, report),
    )
