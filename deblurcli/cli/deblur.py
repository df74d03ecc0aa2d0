"""``deblur deblur``: blind motion deblurring of photographs."""

from __future__ import annotations

from typing import Annotated

import typer

from deblurcli.cli import _options as opt
from deblurcli.cli._batch import load_restorer, run_images
from deblurcli.errors import UsageError

MODEL_PANEL = "Model"


@opt.with_batch_options
def deblur(
    ctx: typer.Context,
    inputs: opt.Inputs,
    batch: opt.BatchCommandOptions,
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
    only_blurry: opt.OnlyBlurry = False,
    blur_threshold: opt.BlurThreshold = None,
) -> None:
    """Remove camera-shake and motion blur from photographs.

    Example: deblur deblur ./photos -o ./sharp --weights fpn_inception.h5
    """
    batch.check()
    opt.check_model(backbone, "deblur", "--backbone")
    if blur_threshold is not None and not only_blurry:
        raise UsageError("--blur-threshold applies to --only-blurry: add it, or leave both out")
    restorer, header = load_restorer(
        task="deblur",
        architecture=backbone,
        default_architecture="deconv",
        weights=weights,
        batch=batch,
    )
    run_images(
        title="Deblurring",
        inputs=inputs,
        restorer=restorer,
        batch=batch,
        verbose=ctx.obj.verbose,
        header=header,
        only_blurry=only_blurry,
        blur_threshold=blur_threshold,
    )
