"""The HTML review page: self-contained, escaped, and every preview it names exists."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
from PIL import Image

from deblurcli.pipelines.report import (
    FILES_FOLDER,
    PREVIEW_SIDE,
    ReportRow,
    render,
    review_order,
    write_previews,
    write_report,
)


def _photo(path: Path, size: tuple[int, int], value: int) -> Path:
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)
    return path


def test_previews_are_small_jpegs_and_the_page_links_only_to_them(tmp_path):
    before = _photo(tmp_path / "a <b>.png", (3000, 1000), 40)
    after = _photo(tmp_path / "out.png", (3000, 1000), 200)
    (tmp_path / FILES_FOLDER).mkdir()
    row = ReportRow(str(before), str(after), "ok", seconds=2.5, blur_before=9.0, blur_after=2.0)
    assert write_previews(row, tmp_path / FILES_FOLDER, 0) == []
    failed = ReportRow("gone.jpg", None, "failed", error="gone.jpg: is empty <0 bytes>")
    page = write_report(tmp_path, [row, failed], "deblur & co", [("files", "1 restored")])
    text = page.read_text()
    sources = re.findall(r"src='([^']+)'", text)
    assert len(sources) == 2
    for source in sources:
        with Image.open(tmp_path / unquote(source)) as preview:
            assert preview.format == "JPEG" and max(preview.size) == PREVIEW_SIDE
    # Self-contained: no address outside the page's own folder.
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", text)
    assert "<link" not in text and "@import" not in text
    # Every value is escaped.
    assert "a &lt;b&gt;.png" in text and "<b>" not in text
    assert "is empty &lt;0 bytes&gt;" in text and "deblur &amp; co" in text
    assert "9.0 px → 2.0 px" in text and "2.5 s" in text


def test_a_row_without_output_shows_the_input_alone(tmp_path):
    before = _photo(tmp_path / "sharp.png", (200, 100), 90)
    (tmp_path / FILES_FOLDER).mkdir()
    row = ReportRow(str(before), None, "skipped", notes=["sharp: blur 2.0 px"])
    write_previews(row, tmp_path / FILES_FOLDER, 3)
    assert row.before == f"{FILES_FOLDER}/00003-before.jpg" and row.after is None
    text = render([row], "t", [])
    assert "class='single'" in text and "class='compare'" not in text
    assert "sharp: blur 2.0 px" in text


def test_an_unreadable_output_becomes_a_note_not_a_crash(tmp_path):
    before = _photo(tmp_path / "in.png", (200, 100), 90)
    (tmp_path / "out.png").write_bytes(b"")
    (tmp_path / FILES_FOLDER).mkdir()
    row = ReportRow(str(before), str(tmp_path / "out.png"), "ok")
    notes = write_previews(row, tmp_path / FILES_FOLDER, 0)
    assert len(notes) == 1 and notes[0].startswith("no after preview:") and "out.png" in notes[0]
    assert row.before is not None and row.after is None


def test_the_page_shows_failures_then_restored_then_skipped_blurriest_first():
    rows = [
        ReportRow("sharp.jpg", None, "skipped", blur_before=2.0),
        ReportRow("mild.jpg", "o/mild.jpg", "ok", blur_before=13.0),
        ReportRow("gone.jpg", None, "failed", error="unreadable"),
        ReportRow("video.mp4", "o/video.mp4", "ok"),
        ReportRow("shaky.jpg", "o/shaky.jpg", "ok", blur_before=30.0),
        ReportRow("soft.jpg", None, "skipped", blur_before=9.0),
    ]
    names = [row.input for row in review_order(rows)]
    assert names == ["gone.jpg", "shaky.jpg", "mild.jpg", "video.mp4", "soft.jpg", "sharp.jpg"]
    text = render(rows, "t", [])
    assert [text.index(name) for name in names] == sorted(text.index(name) for name in names)
