"""``deblur enhance``: Deep Photo Enhancer retouching (exposure, contrast, colour)."""

from __future__ import annotations

from typing import Annotated

import typer

from deblurcli.cli import _options as opt
from deblurcli.cli._batch import load_restorer, run_images

MODEL_PANEL = "Model"


@opt.with_batch_options
def enhance(
    ctx: typer.Context,
    inputs: opt.Inputs,
    batch: opt.BatchCommandOptions,
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
) -> None:
    """Improve exposure, contrast and colour of photographs, at full resolution.

    Examples: deblur enhance ./photos -o ./enhanced; deblur enhance ./photos -o ./out --model dpe
    """
    batch.check()
    opt.check_model(model, "enhance", "--model")
    restorer, header = load_restorer(
        task="enhance",
        architecture=model,
        default_architecture="curves",
        weights=weights,
        batch=batch,
        strength=strength,
    )
    run_images(
        title="Enhancing",
        inputs=inputs,
        restorer=restorer,
        batch=batch,
        verbose=ctx.obj.verbose,
        header=f"{header}, strength {strength:g}",
    )
