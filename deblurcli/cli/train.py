"""``deblur train``: train a deblurring model, and ``deblur train export`` its weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from deblurcli.cli import _options as opt
from deblurcli.cli._console import (
    count_progress,
    stderr_console,
    stdout_console,
    summary_table,
    warning_line,
)

RECIPE_PANEL = "Recipe (the preset's values unless given)"

app = typer.Typer(
    help="Train a deblurring model (DeblurGAN recipes, or a fast CPU recipe); export weights.",
    invoke_without_command=True,
    no_args_is_help=True,
)


def _recipe(flag: str, help_text: str) -> object:
    return typer.Option(flag, help=help_text, rich_help_panel=RECIPE_PANEL)


@app.callback()
def train(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="mobilenet, mobilenet-dsc, inception, resnet; or curves, dpe (enhancers).",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Training pairs (blur/sharp or input/target folders) or good photos.",
        ),
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option("--source", help="dpe-2way: photos to enhance (unpaired)."),
    ] = None,
    target: Annotated[
        Path | None,
        typer.Option("--target", help="dpe-2way: photos in the wanted style (unpaired)."),
    ] = None,
    val: Annotated[
        Path | None,
        typer.Option(
            "--val", help="Validation data (default: DATA/../val for a synth-blur train folder)."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Run folder (checkpoints, config, history)."),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            show_default="fast; curves or dpe for those models",
            help="fast (CPU, no GAN), deblurgan, deblurgan-v2; curves (the default "
            "enhancer); dpe (MSE), dpe-gan (1-way GAN) or dpe-2way (unpaired, --source/--target).",
        ),
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Generator steps.")] = None,
    epochs: Annotated[
        int | None,
        typer.Option("--epochs", min=1, help="Passes over the data (instead of --steps)."),
    ] = None,
    batch_size: Annotated[
        int | None, _recipe("--batch-size", "Images per step and process.")
    ] = None,
    crop: Annotated[int | None, _recipe("--crop", "Training crop side, px (default 256).")] = None,
    lr: Annotated[float | None, _recipe("--lr", "Adam learning rate.")] = None,
    gan_loss: Annotated[
        str | None, _recipe("--gan-loss", "wgan-gp, ragan-ls, lsgan or vanilla.")
    ] = None,
    critic: Annotated[str | None, _recipe("--critic", "patch or double.")] = None,
    critic_steps: Annotated[
        int | None, _recipe("--critic-steps", "Critic updates per generator step.")
    ] = None,
    val_every: Annotated[
        int | None, _recipe("--val-every", "Steps between validations and checkpoints.")
    ] = None,
    model_option: Annotated[
        list[str] | None,
        _recipe(
            "--model-option",
            "Architecture option KEY=VALUE, repeatable (e.g. global_size=256 for dpe).",
        ),
    ] = None,
    gp_band: Annotated[
        str | None,
        _recipe("--gp-band", "Adaptive WGAN-GP: gradient-norm band LOW-HIGH, e.g. 0.95-1.05."),
    ] = None,
    gp_window: Annotated[
        int | None, _recipe("--gp-window", "Adaptive WGAN-GP: steps in the moving average.")
    ] = None,
    max_side: Annotated[
        int | None, _recipe("--max-side", "Shrink good photos to this longer side first, px.")
    ] = None,
    blur_option: Annotated[
        list[str] | None,
        _recipe(
            "--blur-option",
            "On-the-fly blur option KEY=VALUE, repeatable (e.g. max_len=[15,100], "
            'types=["shake","linear"], read_noise=[2e-4,3e-3]; see docs/train.md).',
        ),
    ] = None,
    val_crop: Annotated[
        int | None, _recipe("--val-crop", "Validation centre crop, px; 0 = whole photos.")
    ] = None,
    val_max_side: Annotated[
        int | None,
        _recipe("--val-max-side", "Shrink validation photos to this longer side first, px."),
    ] = None,
    init: Annotated[
        Path | None,
        _recipe("--init", "Warm start from this weights file (same model and options)."),
    ] = None,
    seed: Annotated[int | None, _recipe("--seed", "Seed of every random choice.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", "-j", min=0, help="DataLoader workers.", rich_help_panel=opt.RUN_PANEL
        ),
    ] = None,
    device: opt.Device = "auto",
    precision: Annotated[
        str | None,
        typer.Option(
            "--precision",
            help="auto (bf16 on CPUs with native bf16 and on CUDA), bf16, fp16 (CUDA) or fp32.",
            rich_help_panel=opt.RUN_PANEL,
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --output where it stopped.")
    ] = False,
) -> None:
    """Train a deblurring model or the enhancer.

    Examples: deblur train --model mobilenet --data ./dataset/train -o runs/m1 --steps 2000;
    deblur train --model dpe --data ./good_photos -o runs/e1 --max-side 512
    """
    if ctx.invoked_subcommand is not None:
        return
    from deblurcli.device import resolve_device
    from deblurcli.errors import UsageError
    from deblurcli.ops.pairs import Range
    from deblurcli.train.data import find_data
    from deblurcli.train.loop import Trainer
    from deblurcli.train.presets import resolve
    from deblurcli.train.unpaired import UnpairedTrainer

    if output is None:
        raise UsageError("deblur train needs --output, a run folder (see --help)")
    config_model = model or _preset_model(preset) or (_saved_model(output) if resume else None)
    if config_model is None:
        raise UsageError("deblur train needs --model, --data and --output (see --help)")
    preset = preset or _default_preset(config_model)
    unpaired = preset == "dpe-2way"
    if unpaired and (source is None or target is None or data is not None):
        raise UsageError("--preset dpe-2way trains on --source DIR and --target DIR, not --data")
    if not unpaired and (data is None or source is not None or target is not None):
        raise UsageError("--data DIR is needed (--source/--target are for --preset dpe-2way)")
    if steps is not None and epochs is not None:
        raise UsageError("--steps and --epochs exclude each other: choose one")
    train_folder = source if unpaired else data
    assert train_folder is not None
    if not unpaired and (data / "train").is_dir() and (data / "val").is_dir():
        # A synth-blur dataset root: its train/ trains, its val/ validates.
        train_folder = data / "train"
        val = val if val is not None else data / "val"
    if val is None and train_folder.name == "train" and (train_folder.parent / "val").is_dir():
        val = train_folder.parent / "val"
    train_source = find_data(train_folder)
    target_source = find_data(target) if unpaired and target is not None else None
    val_source = find_data(val) if val is not None else None
    try:
        band = Range.parse(gp_band) if gp_band is not None else None
        if epochs is not None:
            per_step = resolve(preset, batch_size=batch_size).batch_size
            steps = epochs * max(1, len(train_source) // per_step)
        config = resolve(
            preset,
            model=config_model,
            model_config=_model_options(preset, model_option),
            steps=steps,
            batch_size=batch_size,
            crop=crop,
            lr=lr,
            gan_loss=gan_loss,
            critic=critic,
            critic_steps=critic_steps,
            gp_band=(band.low, band.high) if band is not None else None,
            gp_window=gp_window,
            max_side=max_side,
            synth=_blur_options(preset, blur_option),
            val_crop=val_crop,
            val_max_side=val_max_side,
            init=str(init) if init is not None else None,
            precision=precision,
            val_every=val_every,
            seed=seed,
            workers=workers,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    trainer_class = UnpairedTrainer if unpaired else Trainer
    extra = {"target": target_source} if unpaired else {}
    trainer = trainer_class(
        config,
        train_source,
        val_source,
        output,
        resolve_device(device),
        resume,
        resume_steps=steps if resume else None,
        **extra,
    )
    err = stderr_console()
    progress = count_progress(err, "steps")
    task = progress.add_task("train", total=trainer.config.steps, completed=trainer.step, rate="")
    last = None
    try:
        with progress:
            for report in trainer.run():
                last = report
                losses = " ".join(f"{k} {v:.4f}" for k, v in report.losses.items())
                progress.update(
                    task,
                    completed=report.step,
                    rate=f"{report.images_per_second:.1f} img/s {losses}",
                )
                if report.validation:
                    scores = report.validation
                    label = "before training" if report.step == 0 else f"step {report.step}"
                    progress.console.print(
                        f"{label}: val PSNR {scores['psnr']:.2f} dB, "
                        f"SSIM {scores['ssim']:.4f}, L1 {scores['l1']:.4f}",
                        highlight=False,
                    )
    except KeyboardInterrupt:
        trainer.save()
        err.print(f"interrupted at step {trainer.step}: saved; continue with --resume")
        raise typer.Exit(130) from None
    if trainer.rank == 0:
        rows = [("steps", str(trainer.step)), ("run", escape(str(output)))]
        if last is not None and last.validation:
            rows += [
                ("val PSNR", f"{last.validation['psnr']:.2f} dB"),
                ("val SSIM", f"{last.validation['ssim']:.4f}"),
            ]
        rows.append(
            ("best PSNR", f"{trainer.best_psnr:.2f} dB" if trainer.best_psnr > -1e9 else "-")
        )
        summary_table("Training", rows, stdout_console())


def _model_options(preset: str, options: list[str] | None) -> dict | None:
    """The preset's architecture options updated by ``KEY=VALUE`` strings (JSON values);
    None when none are given."""
    from deblurcli.train.presets import resolve

    if not options:
        return None
    return _updated(dict(resolve(preset).model_config), options, "--model-option")


def _blur_options(preset: str, options: list[str] | None) -> dict | None:
    """The preset's on-the-fly blur options updated by ``KEY=VALUE`` strings; None when
    none are given."""
    from deblurcli.train.presets import resolve

    if not options:
        return None
    return _updated(dict(resolve(preset).synth), options, "--blur-option")


def _updated(config: dict, options: list[str], flag: str) -> dict:
    """``config`` with each ``KEY=VALUE`` (a JSON value, or a bare word) set."""
    import json

    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} {option!r}: expected KEY=VALUE")
        try:
            config[key] = json.loads(value)
        except ValueError:
            config[key] = value  # a bare word, e.g. norm=instance
    return config


def _preset_model(preset: str | None) -> str | None:
    from deblurcli.train.presets import PRESETS

    return PRESETS.get(preset or "", {}).get("model")


def _default_preset(model: str) -> str:
    """The model's own preset where one is named after it (curves, dpe), else fast."""
    from deblurcli.train.presets import PRESETS

    return model if model in PRESETS else "fast"


def _saved_model(run: Path) -> str:
    from deblurcli.errors import UsageError
    from deblurcli.train.presets import TrainConfig

    saved = run / "config.json"
    if not saved.is_file():
        raise UsageError("holds no run to resume (no config.json)", run)
    return TrainConfig.from_json(saved.read_text()).model


@app.command("export", no_args_is_help=True)
def export(
    run: Annotated[Path, typer.Argument(help="A run folder written by deblur train.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Name to use with --weights (in the cache).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the weight file here instead of the cache."),
    ] = None,
    which: Annotated[
        str, typer.Option("--which", help="best (by validation PSNR) or last.")
    ] = "best",
    half: Annotated[
        bool, typer.Option("--half", help="Store fp16 tensors: half the size, same outputs.")
    ] = False,
) -> None:
    """Export a run's EMA weights: into the cache under NAME, or to a file (-o).

    Examples: deblur train export runs/m1 --name my-model;
    deblur train export runs/m1 -o weights/my_model.safetensors --half
    """
    from deblurcli import hub
    from deblurcli.download import file_digest
    from deblurcli.errors import UsageError

    if (name is None) == (output is None):
        raise UsageError("give either --name (into the cache) or --output FILE")
    if which not in ("best", "last"):
        raise UsageError(f"unknown --which {which!r}: use best or last")
    source = run / f"{which}.safetensors"
    console = stdout_console()
    if which == "best" and not source.is_file() and (run / "last.safetensors").is_file():
        # A run without validation data keeps no best: its last EMA weights stand in.
        source = run / "last.safetensors"
        warning_line(
            stderr_console(),
            f"{run}: no best.safetensors (the run had no validation data): "
            "exporting the last EMA weights",
        )
    if not source.is_file():
        raise UsageError(f"has no {which}.safetensors: is it a training run folder?", run)
    if output is not None:
        if output.suffix != ".safetensors":
            raise UsageError("must end in .safetensors", output)
        info = hub.convert_weights(source, output, half)
        console.print(
            f"wrote {escape(str(output))} ({info.architecture}, {output.stat().st_size} bytes, "
            f"{file_digest(output)})",
            highlight=False,
        )
        return
    assert name is not None
    entry = hub.import_weights(
        source, name, origin=f"trained by deblurcli (run {run.name}, {which})", half=half
    )
    console.print(
        f"exported {escape(entry.name)} ({entry.architecture}): use --weights {escape(entry.name)}",
        highlight=False,
    )
