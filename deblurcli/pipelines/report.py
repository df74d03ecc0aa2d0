"""``--report``: one self-contained HTML page to review a batch, before against after.

The page is written beside the outputs as ``report.html``, with its previews in
``report_files/`` (JPEG, at most :data:`PREVIEW_SIDE` px, loaded lazily so a
batch of thousands opens at once). Everything else (style, the slider, the
check that every preview resolves) is inline: nothing is fetched from the
network, so it opens offline and can be zipped and sent as it is.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import cv2

from deblurcli.errors import DeblurError
from deblurcli.io.images import read_reduced, write_atomic

REPORT_NAME = "report.html"
FILES_FOLDER = "report_files"
PREVIEW_SIDE = 1200
PREVIEW_QUALITY = 85


@dataclass
class ReportRow:
    """One input as the report shows it.

    Attributes:
        input, output: paths as the batch reported them (output None when failed).
        status: ``ok``, ``skipped`` or ``failed``.
        seconds: time taken for the photo.
        notes: notes from the run; error: why it failed.
        blur_before, blur_after: blur estimates, px at 1280 px on the longer side.
        before, after: preview paths relative to the report (None when there is none).
    """

    input: str
    output: str | None
    status: str
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    blur_before: float | None = None
    blur_after: float | None = None
    before: str | None = None
    after: str | None = None


def write_previews(row: ReportRow, folder: Path, index: int) -> list[str]:
    """Write the before/after previews of an ``ok`` row into ``folder`` and set
    ``row.before`` / ``row.after``; returns notes for previews that could not be made."""
    notes = []
    for side, path in (("before", row.input), ("after", row.output)):
        if path is None:
            continue
        name = f"{index:05d}-{side}.jpg"
        try:
            pixels, _ = read_reduced(Path(path), PREVIEW_SIDE)
        except DeblurError as exc:
            notes.append(f"no {side} preview: {exc}")
            continue
        ok, encoded = cv2.imencode(
            ".jpg", pixels[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, PREVIEW_QUALITY]
        )
        if not ok:
            notes.append(f"no {side} preview: JPEG encoding failed")
            continue
        write_atomic(folder / name, encoded.tobytes())
        setattr(row, side, f"{FILES_FOLDER}/{quote(name)}")
    return notes


_STATUS_ORDER = {"failed": 0, "ok": 1, "skipped": 2}


def review_order(rows: Sequence[ReportRow]) -> list[ReportRow]:
    """The order a reviewer wants: failures first, then the restored photos, then the
    skipped ones; the blurriest first within each (rows without an estimate last)."""
    return sorted(
        rows,
        key=lambda row: (
            _STATUS_ORDER.get(row.status, 1),
            row.blur_before is None,
            -(row.blur_before or 0.0),
        ),
    )


def render(rows: Sequence[ReportRow], title: str, summary: Sequence[tuple[str, str]]) -> str:
    """The whole page as one string, rows in :func:`review_order`; every value is
    HTML-escaped."""
    items = "\n".join(_row_html(row) for row in review_order(rows))
    facts = "".join(
        f"<div><dt>{html.escape(key)}</dt><dd>{html.escape(value)}</dd></div>"
        for key, value in summary
    )
    made = time.strftime("%Y-%m-%d %H:%M")
    return _PAGE.format(
        title=html.escape(title),
        made=html.escape(made),
        facts=facts,
        items=items or "<p>No inputs.</p>",
        style=_STYLE,
        script=_SCRIPT,
    )


def write_report(
    out_dir: Path, rows: Sequence[ReportRow], title: str, summary: Sequence[tuple[str, str]]
) -> Path:
    """Write ``report.html`` into ``out_dir`` (atomically); previews must already be there."""
    path = out_dir / REPORT_NAME
    write_atomic(path, render(rows, title, summary).encode())
    return path


def _blur_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} px"


def _row_html(row: ReportRow) -> str:
    name = html.escape(Path(row.input).name)
    status = html.escape(row.status)
    facts = [
        f"<span class='status {status}'>{status}</span>",
        f"<span>{row.seconds:.1f} s</span>" if row.seconds else "",
        f"<span>blur {_blur_text(row.blur_before)} → {_blur_text(row.blur_after)}</span>"
        if row.blur_before is not None or row.blur_after is not None
        else "",
    ]
    messages = [f"<li class='error'>{html.escape(row.error)}</li>"] if row.error else []
    messages += [f"<li>{html.escape(note)}</li>" for note in row.notes]
    view = ""
    if row.before and row.after:
        view = (
            "<div class='compare' style='--split:50%'>"
            f"<img class='before' loading='lazy' alt='before: {name}' src='{row.before}'>"
            f"<img class='after' loading='lazy' alt='after: {name}' src='{row.after}'>"
            "<span class='label left'>before</span><span class='label right'>after</span>"
            "</div>"
            "<div class='controls'><input type='range' min='0' max='100' value='50' "
            f"aria-label='before/after split for {name}'>"
            "<button type='button'>toggle</button></div>"
        )
    elif row.before:
        view = f"<img class='single' loading='lazy' alt='{name}' src='{row.before}'>"
    output = (
        f"<div class='paths'>{html.escape(row.input)} → {html.escape(row.output)}</div>"
        if row.output
        else f"<div class='paths'>{html.escape(row.input)}</div>"
    )
    return (
        f"<section class='photo {status}'><h2>{name}</h2>"
        f"<div class='facts'>{''.join(facts)}</div>{output}{view}"
        f"{'<ul>' + ''.join(messages) + '</ul>' if messages else ''}</section>"
    )


_STYLE = """
body{font:15px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;
  background:#16181c;color:#e8e8e8}
header{padding:16px 24px;background:#22252b;position:sticky;top:0;z-index:2}
h1{margin:0 0 8px;font-size:20px}
dl{display:flex;flex-wrap:wrap;gap:8px 28px;margin:0}
dt{font-size:12px;color:#9aa0aa}dd{margin:0;font-weight:600}
main{padding:8px 24px 48px;max-width:1300px;margin:auto}
.photo{border-bottom:1px solid #333;padding:18px 0}
h2{font-size:16px;margin:0 0 4px}
.facts{display:flex;gap:16px;color:#c8c8c8;font-size:13px}
.paths{font-size:12px;color:#8a909a;word-break:break-all;margin:2px 0 8px}
.status{font-weight:700}.status.ok{color:#6c6}.status.skipped{color:#db3}.status.failed{color:#f66}
.compare{position:relative;display:inline-block;max-width:100%;line-height:0;user-select:none}
.compare img{max-width:100%;height:auto;display:block}
.compare .after{position:absolute;inset:0;width:100%;height:100%;
  clip-path:inset(0 0 0 var(--split))}
.compare.show-after .after{clip-path:none}.compare.show-before .after{clip-path:inset(0 0 0 100%)}
.label{position:absolute;top:6px;font:12px system-ui;line-height:1;background:#000a;
  padding:3px 6px;border-radius:3px}
.label.left{left:6px}.label.right{right:6px}
.controls{display:flex;gap:12px;align-items:center;margin-top:6px}
.controls input{width:320px}
.single{max-width:100%;height:auto}
ul{margin:8px 0 0;padding-left:20px;font-size:13px}li.error{color:#f88}
#missing{display:none;background:#702;padding:8px 24px}
"""

_SCRIPT = """
document.querySelectorAll('.photo').forEach(function (section) {
  var box = section.querySelector('.compare');
  if (!box) return;
  var slider = section.querySelector('input[type=range]');
  slider.addEventListener('input', function () {
    box.classList.remove('show-after', 'show-before');
    box.style.setProperty('--split', slider.value + '%');
  });
  section.querySelector('button').addEventListener('click', function () {
    var after = !box.classList.contains('show-after');
    box.classList.toggle('show-after', after);
    box.classList.toggle('show-before', !after);
  });
});
window.addEventListener('load', function () {
  var images = Array.from(document.querySelectorAll('img'));
  var pending = images.length, broken = 0;
  function done(ok) {
    if (!ok) broken += 1;
    pending -= 1;
    if (pending > 0) return;
    document.body.dataset.imagesChecked = String(images.length);
    document.body.dataset.imagesBroken = String(broken);
    if (broken) {
      var note = document.getElementById('missing');
      note.textContent = broken +
        ' preview(s) are missing: keep the report_files folder beside report.html.';
      note.style.display = 'block';
    }
  }
  if (!images.length) { pending = 1; done(true); return; }
  images.forEach(function (img) {
    var probe = new Image();
    probe.onload = function () { done(probe.naturalWidth > 0); };
    probe.onerror = function () { done(false); };
    probe.src = img.getAttribute('src');
  });
});
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<div id="missing" role="alert"></div>
<header>
<h1>{title}</h1>
<dl>{facts}<div><dt>written</dt><dd>{made}</dd></div></dl>
</header>
<main>
{items}
</main>
<script>{script}</script>
</body>
</html>
"""
