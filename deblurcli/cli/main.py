"""Root ``deblur`` app: global options, ``--version``, error handling.

Importing this module must not import torch: commands import heavy modules
inside their functions, so ``deblur --help`` is instant.
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer

from deblurcli._version import __version__
from deblurcli.cli._console import AppState, error_line, stderr_console
from deblurcli.cli.deblur import deblur
from deblurcli.cli.enhance import enhance
from deblurcli.cli.score import score
from deblurcli.cli.synth import synth_blur
from deblurcli.cli.train import app as train_app
from deblurcli.cli.triage import triage
from deblurcli.cli.weights import app as weights_app
from deblurcli.errors import DeblurError

app = typer.Typer(
    name="deblur",
    help="Restore batches of photographs: deblur camera shake, enhance exposure and colour.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deblurcli {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show tracebacks for errors.")
    ] = False,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = None,
) -> None:
    """Restore batches of photographs: deblur camera shake, enhance exposure and colour."""
    ctx.obj = AppState(verbose=verbose)


app.command("deblur", no_args_is_help=True)(deblur)
app.command("enhance", no_args_is_help=True)(enhance)
app.command("synth-blur", no_args_is_help=True)(synth_blur)
app.command("score", no_args_is_help=True)(score)
app.command("triage", no_args_is_help=True)(triage)
app.add_typer(train_app, name="train")
app.add_typer(weights_app, name="weights")


def run() -> None:
    """Console-script entry point: one clear line per error, the right exit code."""
    try:
        code = app(standalone_mode=False)  # returns typer.Exit's code instead of raising it
    except DeblurError as exc:
        error_line(stderr_console(), str(exc))
        if "-v" in sys.argv or "--verbose" in sys.argv:
            traceback.print_exc()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        error_line(stderr_console(), "interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        # Recognised by shape, not class: recent Typer raises its own vendored copy of
        # click's exceptions, which are not click.ClickException.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(130)
        raise
    sys.exit(code if isinstance(code, int) else 0)
