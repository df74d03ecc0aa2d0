"""Fetching one file over HTTP(S): resumable, hashed while streaming, locked, verified.

The file is streamed into ``NAME.partial`` beside its destination and hashed
as it arrives (a resumed transfer hashes the bytes it kept first); it is
renamed into place only when its size and hash match, and otherwise deleted
before the next mirror is tried. An interrupted transfer resumes with an HTTP
Range request; connection errors, time-outs and server errors are retried
with back-off, then the next mirror is tried. A lock file makes two processes
fetching the same file end with one good copy. Google Drive's "can't scan
this file for viruses" page is followed to the file. Nothing here prints:
progress goes to a callback.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import urlencode, urljoin

import requests
from filelock import FileLock

from deblurcli.errors import DownloadError

CHUNK = 1024 * 1024
RETRIES = 3  # extra attempts per mirror after the first
BACKOFF_SECONDS = 1.0  # doubled after every failed attempt
CONNECT_TIMEOUT = 10.0
Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)

_FORM = re.compile(r'<form[^>]*id="download-form"[^>]*action="([^"]+)"', re.IGNORECASE)
_HIDDEN = re.compile(
    r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', re.IGNORECASE
)
_CONFIRM = re.compile(r"confirm=([0-9A-Za-z_-]+)")


def read_timeout() -> float:
    """Seconds without a byte before a transfer counts as stalled (``DEBLURCLI_TIMEOUT``)."""
    return float(os.environ.get("DEBLURCLI_TIMEOUT", "30"))


def new_hasher(expected: str | None) -> tuple[str, hashlib._Hash]:
    """The algorithm of ``expected`` (``sha256:…`` or ``sha384:…``), sha256 without one."""
    algorithm = "sha256" if expected is None else expected.split(":", 1)[0]
    if algorithm not in ("sha256", "sha384"):
        raise ValueError(f"unsupported hash {expected!r}: use sha256:HEX or sha384:HEX")
    return algorithm, hashlib.new(algorithm)


def file_digest(path: Path, expected: str | None = None) -> str:
    """``algorithm:hex`` of a file, with the algorithm ``expected`` names (sha256 by default)."""
    algorithm, hasher = new_hasher(expected)
    _hash_file(path, hasher)
    return f"{algorithm}:{hasher.hexdigest()}"


def _hash_file(path: Path, hasher: hashlib._Hash) -> None:
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            hasher.update(block)


@dataclass(frozen=True)
class Target:
    """What to fetch and where it goes.

    Attributes:
        urls: mirrors, tried in order.
        dest: final path; ``dest.partial`` lives beside it, the lock in ``.locks/``.
        digest: expected ``sha256:HEX`` / ``sha384:HEX``, or None (then only recorded).
        size: expected size in bytes, or None.
    """

    urls: Sequence[str]
    dest: Path
    digest: str | None = None
    size: int | None = None


class _Retryable(Exception):
    """A failure worth another attempt (dropped connection, time-out, 5xx)."""


class _NextMirror(Exception):
    """A failure another attempt at this URL will not fix (404, a web page)."""


def fetch(target: Target, on_progress: Progress | None = None) -> str:
    """Download ``target`` unless a verified copy is already in place.

    Returns:
        The file's ``algorithm:hex`` digest.

    Raises:
        DownloadError: every mirror failed, or the file did not match its size or hash
            (nothing is left behind in that case), or the folder cannot be written.
    """
    dest = target.dest
    try:
        locks = dest.parent / ".locks"  # kept apart: lock files outlive their downloads
        locks.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(locks / (dest.name + ".lock")))
        lock.acquire()
    except OSError as exc:
        raise DownloadError(
            f"cannot write to the weights cache ({exc.strerror or exc}): "
            "set DEBLURCLI_HOME to a writable folder",
            dest.parent,
        ) from None
    try:
        if dest.exists() and _matches(dest, target):
            return file_digest(dest, target.digest)
        failures = []
        for url in target.urls:
            try:
                return _fetch_url(url, target, on_progress)
            except DownloadError:
                raise  # a local problem (the cache cannot be written): no mirror helps
            except (_Retryable, _NextMirror) as exc:
                failures.append(f"{url}: {exc}")
        raise DownloadError("; ".join(failures) or "no URL to download from")
    finally:
        lock.release()


def _matches(path: Path, target: Target) -> bool:
    if target.size is not None and path.stat().st_size != target.size:
        return False
    return target.digest is None or file_digest(path, target.digest) == target.digest


def _fetch_url(url: str, target: Target, on_progress: Progress | None) -> str:
    partial = target.dest.with_name(target.dest.name + ".partial")
    last_error: Exception | None = None
    for attempt in range(RETRIES + 1):
        if attempt:
            time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
        try:
            digest = _stream(url, partial, target, on_progress)
        except _Retryable as exc:
            last_error = exc
            continue
        return _verify_and_place(partial, target, digest)
    raise _Retryable(f"gave up after {RETRIES + 1} attempts ({last_error})")


def _open(session: requests.Session, url: str, offset: int) -> requests.Response:
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = session.get(
            url, headers=headers, stream=True, timeout=(CONNECT_TIMEOUT, read_timeout())
        )
    except requests.Timeout:
        raise _Retryable("timed out") from None
    except requests.ConnectionError as exc:
        raise _Retryable(f"connection failed ({_reason(exc)})") from None
    if response.status_code == 416 and offset:
        return response  # the partial file is already complete
    if response.status_code >= 500:
        raise _Retryable(f"HTTP {response.status_code} {response.reason}")
    if response.status_code >= 400:
        raise _NextMirror(f"HTTP {response.status_code} {response.reason}")
    if response.headers.get("Content-Type", "").startswith("text/html"):
        return _follow_confirmation(session, response, offset)
    return response


def _follow_confirmation(
    session: requests.Session, page: requests.Response, offset: int
) -> requests.Response:
    """Google Drive answers large files with a confirmation form; submit it."""
    html = page.text[:1_000_000]
    page.close()
    form = _FORM.search(html)
    if form:
        query = urlencode({name: unescape(value) for name, value in _HIDDEN.findall(html)})
        action = urljoin(page.url, unescape(form.group(1)))
        url = f"{action}{'&' if '?' in action else '?'}{query}"
    elif confirm := _CONFIRM.search(html):
        url = f"{page.url}{'&' if '?' in page.url else '?'}confirm={confirm.group(1)}"
    else:
        raise _NextMirror("answered with a web page, not the file (moved, or over its quota?)")
    response = _open(session, url, offset)
    if response.headers.get("Content-Type", "").startswith("text/html"):
        raise _NextMirror("still a web page after the download confirmation")
    return response


def _stream(url: str, partial: Path, target: Target, on_progress: Progress | None) -> str:
    """Append ``url``'s bytes to ``partial`` (resuming where it ends), hashing them as
    they arrive; returns the whole file's ``algorithm:hex`` digest."""
    offset = partial.stat().st_size if partial.exists() else 0
    with requests.Session() as session:
        response = _open(session, url, offset)
        with response:
            if response.status_code == 416:
                return file_digest(partial, target.digest)  # it was complete already
            if response.status_code != 206:
                offset = 0  # the server ignored the range: start again
            algorithm, hasher = new_hasher(target.digest)
            if offset:
                _hash_file(partial, hasher)  # the bytes an earlier attempt kept
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else target.size
            try:
                with partial.open("ab" if offset else "wb") as out:
                    done = offset
                    for chunk in response.iter_content(CHUNK):
                        out.write(chunk)
                        hasher.update(chunk)
                        done += len(chunk)
                        if on_progress is not None:
                            on_progress(done, total)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise _Retryable(
                    f"connection dropped after {done} bytes ({_reason(exc)})"
                ) from None
            except requests.exceptions.ChunkedEncodingError as exc:
                raise _Retryable(
                    f"connection dropped after {done} bytes ({_reason(exc)})"
                ) from None
            except OSError as exc:
                raise DownloadError(f"cannot write ({exc.strerror})", partial) from None
            if total is not None and done < total:
                raise _Retryable(f"connection closed after {done} of {total} bytes")
    return f"{algorithm}:{hasher.hexdigest()}"


def _verify_and_place(partial: Path, target: Target, digest: str) -> str:
    """Rename ``partial`` (hashed as ``digest``) into place if its size and hash match;
    otherwise delete it and move on to the next mirror."""
    size = partial.stat().st_size
    if target.size is not None and size != target.size:
        partial.unlink(missing_ok=True)
        raise _NextMirror(
            f"sent {size} bytes, {target.size} expected: the file was removed "
            "(the mirror may hold another version)"
        )
    if target.digest is not None and digest != target.digest:
        partial.unlink(missing_ok=True)
        raise _NextMirror(
            f"sent a file with {digest}, {target.digest} expected: the file was removed "
            "and nothing was cached (the mirror may be corrupt or hold another version)"
        )
    os.replace(partial, target.dest)
    return digest


def _reason(exc: Exception) -> str:
    text = str(exc)
    match = re.search(r"\] ([^'\")]+)", text)
    return (match.group(1) if match else text)[:120]
