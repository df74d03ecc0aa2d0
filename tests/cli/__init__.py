"""CLI tests, and the one helper that runs the console script in-process."""

from __future__ import annotations

import sys

import pytest


def run_cli(monkeypatch, capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``deblur *argv`` in-process; returns (exit code, stdout, stderr)."""
    from deblurcli.cli.main import run

    monkeypatch.setattr(sys, "argv", ["deblur", *argv])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        run()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err
