"""The batch loop: results in order, and what Ctrl-C leaves behind."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from deblurcli.io.discovery import discover
from deblurcli.pipelines.batch import BatchOptions, run_batch


class _StopsAtSecond:
    """A restorer that returns its input and is interrupted on the second image."""

    def __init__(self) -> None:
        self.calls = 0

    def restore_array(self, pixels: np.ndarray):
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt

        class Report:
            notes: tuple[str, ...] = ()

        return pixels, Report()


def test_ctrl_c_reports_the_output_whose_write_was_in_flight(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(np.full((24, 24, 3), 100, np.uint8)).save(folder / f"{name}.png")
    items = discover([str(folder)], tmp_path / "out")
    reported = []
    with pytest.raises(KeyboardInterrupt):
        run_batch(items, _StopsAtSecond(), BatchOptions("png", 95, False, False), reported.append)
    assert [(r.input.rsplit("/", 1)[-1], r.status) for r in reported] == [("a.png", "ok")]
    assert (tmp_path / "out" / "a.png").is_file() and not (tmp_path / "out" / "b.png").exists()
