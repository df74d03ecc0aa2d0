"""``deblur weights``: list, download, verify, import and remove weights in the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from deblurcli.cli._console import download_progress, error_line, stderr_console, stdout_console

app = typer.Typer(
    help="Weights: list the known ones, download, verify, import and remove them.",
    no_args_is_help=True,
)


def _size(size: int | None) -> str:
    if size is None:
        return "?"
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"


@app.command("list")
def list_weights() -> None:
    """Show every known weights name: backbone, size, where it is, origin and licence.

    Lists the shipped manifest and what was imported or downloaded by URL.
    """
    from deblurcli import hub

    table = Table(title=f"Weights (cache: {hub.cache_dir()})", title_justify="left")
    for column in ("name", "backbone", "size", "here", "origin", "licence"):
        table.add_column(column, overflow="fold")
    for entry in sorted(hub.known_weights().values(), key=lambda e: e.name):
        found = hub.location(entry)
        where = (
            "-" if found is None else "shipped" if found.parent == hub.shipped_dir() else "cached"
        )
        table.add_row(
            entry.name,
            entry.architecture,
            _size(entry.size),
            where,
            escape(entry.origin),
            escape(entry.license),
        )
    stdout_console().print(table)


@app.command("download", no_args_is_help=True)
def download(
    names: Annotated[
        list[str], typer.Argument(help="Names from 'deblur weights list', or one https URL.")
    ],
    sha256: Annotated[
        str | None,
        typer.Option("--sha256", help="Expected SHA-256 (hex) of a file given by URL."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Name to record a URL download under.")
    ] = None,
) -> None:
    """Download weights into the cache, verified against their hash.

    Example: deblur weights download fpn_mobilenet
    """
    from deblurcli import hub
    from deblurcli.errors import DeblurError, UsageError

    err = stderr_console()
    failed = 0
    for value in names:
        progress, on_bytes = download_progress(err, value)
        try:
            with progress:
                if value.startswith(("https://", "http://")):
                    digest = f"sha256:{sha256.lower()}" if sha256 else None
                    entry = hub.download_url(value, digest, name, on_bytes)
                    path = hub.cache_dir() / entry.file
                else:
                    if sha256 or name:
                        raise UsageError("--sha256 and --name apply to a URL, not to a name")
                    entry = hub.find(value)
                    if entry is None:
                        raise UsageError(f"no weights named {value!r}: see deblur weights list")
                    path = hub.download(entry, on_bytes)
        except UsageError:
            raise
        except DeblurError as exc:
            error_line(err, str(exc))
            failed += 1
            continue
        stdout_console().print(f"{escape(entry.name)}: {escape(str(path))}", highlight=False)
    raise typer.Exit(1 if failed else 0)


@app.command("path", no_args_is_help=True)
def path(name: Annotated[str, typer.Argument(help="A weights name.")]) -> None:
    """Print where a name's file is on this machine (exit 1 if it is not here yet)."""
    from deblurcli import hub
    from deblurcli.errors import DownloadError, WeightsError

    entry = hub.find(name)
    if entry is None:
        raise WeightsError(f"no weights named {name!r}: see deblur weights list")
    found = hub.location(entry)
    if found is None:
        raise DownloadError(f"{name!r} is not on this machine: deblur weights download {name}")
    typer.echo(str(found))


@app.command("show", no_args_is_help=True)
def show(name: Annotated[str, typer.Argument(help="A weights name.")]) -> None:
    """Print everything known about a name as JSON: origin, licence, hash, and for
    weights we trained, the photographs, exact commands, steps and validation scores."""
    import json

    from deblurcli import hub
    from deblurcli.errors import WeightsError

    entry = hub.find(name)
    if entry is None:
        raise WeightsError(f"no weights named {name!r}: see deblur weights list")
    found = hub.location(entry)
    document = {**entry.as_json(), "here": str(found) if found else None}
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


@app.command("verify")
def verify() -> None:
    """Re-hash every cached file; report and remove the corrupt ones (exit 1 if any)."""
    from deblurcli import hub

    out = stdout_console()
    checked = corrupt = 0
    for result in hub.verify():
        checked += 1
        if result.ok:
            out.print(f"[green]ok[/] {escape(result.entry.name)}", highlight=False)
        else:
            corrupt += 1
            out.print(
                f"[red]corrupt[/] {escape(result.entry.name)}: {escape(result.problem)}; "
                f"removed {escape(str(result.path))} (the next use downloads it again)",
                highlight=False,
                soft_wrap=True,
            )
    out.print(f"{checked} files checked, {corrupt} corrupt", highlight=False)
    raise typer.Exit(1 if corrupt else 0)


@app.command("import", no_args_is_help=True)
def import_(
    file: Annotated[Path, typer.Argument(help="An official checkpoint or a deblurcli file.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Name to use (default: the file's stem).")
    ] = None,
) -> None:
    """Import a checkpoint: its architecture is detected, it is stored as safetensors.

    Example: deblur weights import ~/Downloads/fpn_inception.h5 --name fpn_inception
    """
    from deblurcli import hub

    entry = hub.import_weights(file, name)
    stdout_console().print(
        f"imported {escape(entry.name)} ({entry.architecture}, {entry.normalization}, "
        f"{entry.digest}): use --weights {escape(entry.name)}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("remove", no_args_is_help=True)
def remove(name: Annotated[str, typer.Argument(help="A weights name.")]) -> None:
    """Delete a name's file from the cache (shipped weights stay)."""
    from deblurcli import hub

    removed = hub.remove(name)
    message = ", ".join(str(p) for p in removed) if removed else "nothing was cached"
    stdout_console().print(f"{escape(name)}: {escape(message)}", highlight=False)
