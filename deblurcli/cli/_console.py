"""Consoles, progress bars and summary tables (the only place that prints)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table


@dataclass
class AppState:
    """Global options, kept in ``ctx.obj``."""

    verbose: bool = False


# Width when the output is a file or a pipe: tables keep their natural width
# instead of being cut or wrapped to 80 columns.
_PIPE_WIDTH = 10_000


def _console(stderr: bool) -> Console:
    console = Console(stderr=stderr, no_color="NO_COLOR" in os.environ or None)
    if not console.is_terminal:
        console.width = _PIPE_WIDTH
    return console


def stderr_console() -> Console:
    """Console for progress, warnings and errors (honours ``NO_COLOR`` and non-TTY output)."""
    return _console(stderr=True)


def stdout_console() -> Console:
    """Console for results (tables)."""
    return _console(stderr=False)


def error_line(console: Console, message: str) -> None:
    """One red line: ``error: …``."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def warning_line(console: Console, message: str) -> None:
    """One yellow line: ``warning: …``."""
    console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def skipped_file_warner(console: Console) -> Callable[[Path, str], None]:
    """An ``on_skip`` callback for discovery: warns why a file is skipped."""

    def warn(path: Path, reason: str) -> None:
        warning_line(console, f"{path}: {reason}; skipped")

    return warn


def megapixel_progress(console: Console) -> Progress:
    """A progress bar over megapixels, showing files done and ETA."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[files]}"),
        TextColumn("{task.completed:.1f}/{task.total:.1f} MP"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


def count_progress(console: Console, unit: str) -> Progress:
    """A progress bar over a count of ``unit`` (pairs, files) with rate and ETA."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn(f"{{task.completed:.0f}}/{{task.total:.0f}} {unit}"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


def download_progress(
    console: Console, label: str
) -> tuple[Progress, Callable[[int, int | None], None]]:
    """A bytes/speed/ETA progress bar and the callback that feeds it."""
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    task = progress.add_task(label, total=None)

    def update(done: int, total: int | None) -> None:
        progress.update(task, completed=done, total=total)

    return progress, update


def summary_table(title: str, rows: Sequence[tuple[str, str]], console: Console) -> None:
    """A two-column key/value table."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
