"""The batch loop: results in order, and what Ctrl-C leaves behind."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from deblurcli.io.discovery import discover
from deblurcli.pipelines.batch import BatchOptions, run_batch


class _StopsAtSecond:
    """A restorer that returns its input and is interrupted on the second image."""

    def __init__(self) -> None:
        self.calls = 0

    def memory_warning(self, pixels: np.ndarray) -> None:
        return None

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


class _Identity:
    def memory_warning(self, pixels: np.ndarray) -> None:
        return None

    def restore_array(self, pixels: np.ndarray):
        class Report:
            notes: tuple[str, ...] = ()

        return pixels, Report()


@pytest.mark.parametrize(("fmt", "expected"), [("jpg", 2), ("webp", 1), ("png", 0), ("tiff", 0)])
def test_what_a_format_drops_is_noted_once_per_file(tmp_path, fmt, expected):
    import cv2

    folder = tmp_path / "in"
    folder.mkdir()
    rgba = np.zeros((24, 24, 4), np.uint8)
    rgba[..., 3] = 128
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    cv2.imwrite(str(folder / "deep.png"), np.full((24, 24, 3), 40000, np.uint16))
    items = discover([str(folder)], tmp_path / "out", fmt=fmt)
    results = run_batch(items, _Identity(), BatchOptions(fmt, 95, False, False))
    notes = {r.input.rsplit("/", 1)[-1]: r.notes for r in results}
    assert [r.status for r in results] == ["ok", "ok"]
    alpha_dropped = [n for n in notes["alpha.png"] if n.startswith("alpha channel dropped")]
    depth_reduced = [n for n in notes["deep.png"] if n.startswith("16-bit depth reduced")]
    assert len(alpha_dropped) + len(depth_reduced) == expected
    assert len(notes["alpha.png"]) + len(notes["deep.png"]) == expected


def test_outputs_claimed_by_another_live_run_are_left_to_it(tmp_path):
    import socket
    import subprocess
    import sys

    from deblurcli.io.claims import claim_path

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(np.full((24, 24, 3), 100, np.uint8)).save(folder / f"{name}.png")
    out = tmp_path / "out"
    out.mkdir()
    host = socket.gethostname()
    # a.png: a live run (this test's process) computes it; b.png: a run that was killed.
    claim_path(out / "a.png").write_text(f"{host} {os.getpid()}\n")
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    claim_path(out / "b.png").write_text(f"{host} {ended}\n")
    items = discover([str(folder)], out)
    results = run_batch(items, _Identity(), BatchOptions("png", 95, False, False))
    status = {r.input.rsplit("/", 1)[-1]: (r.status, r.notes) for r in results}
    assert status["a.png"] == ("skipped", ["another run is computing this output"])
    assert status["b.png"][0] == status["c.png"][0] == "ok"  # the stale claim was taken over
    assert not (out / "a.png").exists() and (out / "b.png").is_file()
    assert sorted(p.name for p in out.iterdir()) == [".a.png.deblurcli-claim", "b.png", "c.png"]


def test_a_photo_that_may_not_fit_is_warned_about_before_it_runs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((24, 24, 3), 100, np.uint8)).save(folder / "big.png")
    events = []

    class Tight(_Identity):
        def memory_warning(self, pixels: np.ndarray) -> str:
            return "needs about 9.9 GB"

        def restore_array(self, pixels: np.ndarray):
            events.append("restore")
            return super().restore_array(pixels)

    items = discover([str(folder)], tmp_path / "out")
    options = BatchOptions("png", 95, False, False)
    (result,) = run_batch(items, Tight(), options, on_warning=lambda i, m: events.append(m))
    assert events == ["needs about 9.9 GB", "restore"]  # before, not after
    assert result.status == "ok" and "needs about 9.9 GB" in result.notes


def test_a_failed_write_names_the_output_and_its_input(tmp_path, monkeypatch):
    from deblurcli.errors import OutputError
    from deblurcli.pipelines import batch

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((24, 24, 3), 100, np.uint8)).save(folder / "a.png")

    def disk_full(photo, path, fmt, quality):
        raise OutputError("cannot be written (No space left on device)", path)

    monkeypatch.setattr(batch, "write_image", disk_full)
    items = discover([str(folder)], tmp_path / "out")
    (result,) = run_batch(items, _Identity(), BatchOptions("png", 95, False, False))
    assert result.status == "failed"
    assert result.error == (
        f"{tmp_path / 'out' / 'a.png'}: cannot be written (No space left on device) "
        f"(the result of {folder / 'a.png'})"
    )
