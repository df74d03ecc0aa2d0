"""The option block the image-to-image commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.main import get_command
from typer.testing import CliRunner

from deblurcli.cli import _options as opt
from deblurcli.cli.main import app

SHARED_DEFAULTS = {
    "tile": 0,
    "tile_overlap": 64,
    "device": "auto",
    "precision": "auto",
    "recursive": False,
    "fmt": "keep",
    "quality": 95,
    "suffix": "",
    "overwrite": False,
    "side_by_side": False,
    "as_json": False,
    "shard": None,
    "video_codec": "libx264",
    "video_quality": 17,
    "report": False,
}


def _options(command: str) -> dict[str, Any]:
    """The Click parameters of ``deblur COMMAND``, by name."""
    group: Any = get_command(app)
    return {parameter.name: parameter for parameter in group.commands[command].params}


def test_deblur_and_enhance_take_the_same_shared_options():
    deblur, enhance = _options("deblur"), _options("enhance")
    for name, default in SHARED_DEFAULTS.items():
        assert deblur[name].opts == enhance[name].opts, name
        assert deblur[name].default == enhance[name].default == default, name
    for command in (deblur, enhance):
        assert command["output"].opts == ["--output", "-o"] and command["output"].required
    # Each command keeps its own options besides the shared ones.
    assert "only_blurry" in deblur and "only_blurry" not in enhance
    assert "strength" in enhance and "strength" not in deblur


def test_the_shared_options_reach_the_command_gathered_in_one_object(tmp_path):
    received: dict[str, Any] = {}

    @opt.with_batch_options
    def command(inputs: opt.Inputs, batch: opt.BatchCommandOptions, level: int = 1) -> None:
        received.update(inputs=inputs, batch=batch, level=level)

    probe = typer.Typer()
    probe.command()(command)
    probe.command("other")(lambda: None)  # two commands: invoked by name
    arguments = ["command", "a.jpg", "-o", str(tmp_path), "--quality", "80", "--level", "3"]
    result = CliRunner().invoke(probe, [*arguments, "--shard", "2/4", "--json"])
    assert result.exit_code == 0, result.output
    batch = received["batch"]
    assert received["inputs"] == ["a.jpg"] and received["level"] == 3
    assert batch.output == Path(tmp_path) and batch.quality == 80
    assert batch.shard == "2/4" and batch.as_json is True
    assert batch.tile_overlap == 64 and batch.fmt == "keep"  # untouched: the defaults
