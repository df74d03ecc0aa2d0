"""``deblur triage``, ``--only-blurry`` and ``--report``, run as a user runs them."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from deblurcli.ops.blur import blur, linear_kernels
from tests.cli import run_cli

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# The restorer does not matter here, only which photos reach it: the fastest one.
FAST = ("--backbone", "mobilenet-dsc")


def _shaken(source: Path, target: Path, length: float, angle: float) -> Path:
    """``source`` blurred by linear motion of ``length`` px (at its own size)."""
    rgb = cv2.imread(str(source))
    image = torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255
    kernel = linear_kernels(length, angle).float()
    blurred = blur(image, kernel)[0].permute(1, 2, 0).numpy()
    cv2.imwrite(str(target), (blurred * 255).round().astype(np.uint8))
    return target


@pytest.fixture
def shoot(tmp_path, photos) -> Path:
    """A day's shots: three sharp photos, two shaken ones (linear motion of 12 and 18 px
    at their own 740 px, about 21 and 31 px at 1280 px), and a file that is not a photo.

    The sharp ones are sharp all over; a photo whose only sharp part is a small
    subject against a soft background (``canyon-wren.jpg``) sits near the threshold,
    as docs/triage.md says."""
    folder = tmp_path / "day"
    folder.mkdir()
    named = {photo.stem: photo for photo in photos}
    for stem in ("beacon-street-sunset", "piazza-gae-aulenti", "roman-colosseum"):
        shutil.copy(named[stem], folder / named[stem].name)
    _shaken(named["pondering-heron"], folder / "shaky-a.png", 12.0, 30.0)
    _shaken(named["lake-sherburne"], folder / "shaky-b.png", 18.0, 100.0)
    (folder / "notes.jpg").write_text("not a photo")
    return folder


def test_triage_lists_the_shaken_photos_first_and_flags_only_them(
    monkeypatch, capsys, tmp_path, shoot
):
    table = tmp_path / "blur.csv"
    code, stdout, stderr = run_cli(
        monkeypatch, capsys, "triage", str(shoot), "--json", "--csv", str(table)
    )
    assert code == 1 and "notes.jpg" in stderr  # the bad file failed, the rest were judged
    document = json.loads(stdout)
    rows = document["results"]
    assert Path(rows[0]["input"]).name == "notes.jpg" and rows[0]["error"]
    judged = [r for r in rows if r["error"] is None]
    assert {Path(r["input"]).name for r in judged[:2]} == {"shaky-a.png", "shaky-b.png"}
    assert [r["blurry"] for r in judged] == [True, True, False, False, False]
    estimates = [r["blur_px_1280"] for r in judged]
    assert estimates == sorted(estimates, reverse=True)
    assert document["summary"] == {
        "photos": 6, "blurry": 2, "sharp": 3, "failed": 1,
        "seconds": document["summary"]["seconds"],
    }  # fmt: skip
    assert document["summary"]["seconds"] > 0  # the run's wall time
    with table.open() as handle:
        assert [row["input"] for row in csv.DictReader(handle)] == [r["input"] for r in rows]


def test_only_blurry_restores_the_shaken_photos_and_skips_the_rest(
    monkeypatch, capsys, tmp_path, shoot
):
    (shoot / "notes.jpg").unlink()
    out = tmp_path / "sharp"
    code, stdout, stderr = run_cli(
        monkeypatch, capsys, "deblur", str(shoot), "-o", str(out), "--only-blurry", "--json", *FAST
    )
    assert code == 0, stderr
    results = {Path(r["input"]).name: r for r in json.loads(stdout)["results"]}
    assert {name for name, r in results.items() if r["status"] == "ok"} == {
        "shaky-a.png", "shaky-b.png",
    }  # fmt: skip
    for name, result in results.items():
        if result["status"] == "skipped":
            assert result["blur_before"] < 8 and "sharp: blur" in result["notes"][0]
            assert not (out / name).exists()
    assert sorted(p.name for p in out.iterdir()) == ["shaky-a.png", "shaky-b.png"]
    # A threshold above every estimate: nothing is restored, and nothing fails.
    code, stdout, _ = run_cli(
        monkeypatch, capsys, "deblur", str(shoot), "-o", str(tmp_path / "none"),
        "--only-blurry", "--blur-threshold", "500", "--json",
    )  # fmt: skip
    assert code == 0
    assert {r["status"] for r in json.loads(stdout)["results"]} == {"skipped"}


def test_blur_threshold_alone_is_refused(monkeypatch, capsys, tmp_path, shoot):
    code, _, stderr = run_cli(
        monkeypatch, capsys, "deblur", str(shoot), "-o", str(tmp_path / "o"),
        "--blur-threshold", "5",
    )  # fmt: skip
    assert code == 2 and "--only-blurry" in stderr


def _browser() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def _headless(browser: str, *args: str) -> str:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--virtual-time-budget=10000", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120).stdout


def test_the_report_opens_offline_in_a_real_browser_with_every_image(
    monkeypatch, capsys, tmp_path, shoot
):
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium on this machine (Debian: apt install chromium)")
    out = tmp_path / "reviewed"
    asked = ("deblur", str(shoot), "-o", str(out), "--only-blurry", "--report", *FAST)
    code, _, _ = run_cli(monkeypatch, capsys, *asked)
    assert code == 1  # notes.jpg
    page = out / "report.html"
    text = page.read_text()
    assert "notes.jpg" in text and "shaky-a.png" in text
    assert len(re.findall(r"class='compare'", text)) == 2  # the two restored photos
    assert len(re.findall(r"class='single'", text)) == 3  # the sharp ones, skipped
    dom = _headless(browser, "--dump-dom", page.as_uri())
    assert 'data-images-checked="7"' in dom and 'data-images-broken="0"' in dom
    shot = tmp_path / "report.png"
    _headless(browser, "--window-size=1200,900", f"--screenshot={shot}", page.as_uri())
    picture = cv2.imread(str(shot))
    assert picture.shape[:2] == (900, 1200) and picture.std() > 20  # something was drawn
    # A preview that goes missing is named on the page, not silently blank.
    next((out / "report_files").glob("*-after.jpg")).unlink()
    dom = _headless(browser, "--dump-dom", page.as_uri())
    assert 'data-images-broken="1"' in dom and "preview(s) are missing" in dom
