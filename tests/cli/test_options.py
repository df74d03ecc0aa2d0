"""The option block the image-to-image commands share."""

from __future__ import annotations

from typing import Any

from typer.main import get_command

from deblurcli.cli._options import BATCH_OPTIONS
from deblurcli.cli.main import app


def _options(command: str) -> dict[str, Any]:
    """The Click parameters of ``deblur COMMAND``, by name."""
    group: Any = get_command(app)
    return {parameter.name: parameter for parameter in group.commands[command].params}


def test_deblur_and_enhance_take_the_same_shared_options():
    deblur, enhance = _options("deblur"), _options("enhance")
    for name, (_, default) in BATCH_OPTIONS.items():
        mine, theirs = deblur[name], enhance[name]
        assert (mine.opts, mine.default, mine.required) == (
            theirs.opts,
            theirs.default,
            theirs.required,
        ), name
        if name != "output":
            assert mine.default == default, name
    assert deblur["output"].opts == ["--output", "-o"] and deblur["output"].required
    # Each command keeps its own options besides the shared ones.
    assert "only_blurry" in deblur and "only_blurry" not in enhance
    assert "strength" in enhance and "strength" not in deblur
