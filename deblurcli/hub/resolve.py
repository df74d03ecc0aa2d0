"""From a ``--weights`` value to a verified file on this machine, downloading it if needed.

A value is resolved in this order: an existing file; a name (or file name, or
URL) from the shipped manifest, found in the shipped ``weights/`` folder, then
in the cache, then downloaded; a name recorded in the cache index (imports
and URL downloads); any other https URL, downloaded into the cache once and
reused.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from deblurcli.download import Progress, Target, fetch
from deblurcli.errors import DeblurError, DownloadError, WeightsError
from deblurcli.hub import store
from deblurcli.hub.store import EVAL_MODE, OFFICIAL, WeightsEntry

# Hosts whose plain-http downloads need no hash: nothing between us and them.
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _manual_steps(entry: WeightsEntry | None, url: str) -> str:
    name = f" --name {entry.name}" if entry is not None else ""
    return (
        f"download {url} by hand (in a browser), then run: "
        f"deblur weights import PATH/TO/{entry.file if entry else 'FILE'}{name}"
    )


def download(entry: WeightsEntry, on_progress: Progress | None = None) -> Path:
    """Fetch an entry into the cache (verified), unless it is already there.

    Raises:
        DownloadError: offline, unreachable, or the file did not verify.
    """
    found = store.location(entry)
    if found is not None:
        return found
    if not entry.urls:
        raise WeightsError(
            f"{entry.name!r} was imported and its file is gone from the cache: import it again"
        )
    if store.offline():
        raise DownloadError(
            f"{entry.name!r} is not in the cache and DEBLURCLI_OFFLINE is set: "
            + _manual_steps(entry, entry.urls[0])
        )
    dest = store.cache_dir() / entry.file
    try:
        fetch(Target(entry.urls, dest, entry.digest, entry.size), on_progress)
    except DownloadError as exc:
        raise DownloadError(
            f"cannot download {entry.name!r}: {exc}. Or " + _manual_steps(entry, entry.urls[0])
        ) from None
    return dest


def download_url(
    url: str,
    digest: str | None = None,
    name: str | None = None,
    on_progress: Progress | None = None,
) -> WeightsEntry:
    """Fetch weights from any URL into the cache and record them in the index.

    Without ``digest`` the file's sha256 is recorded on this first download,
    and the file must load as weights before it is kept.

    Plain http is refused without ``digest``, except from this machine (loopback).

    Raises:
        DownloadError: offline, unreachable, or the file did not verify.
        WeightsError: the file is not loadable weights (it is removed), or plain
            http without a hash.
    """
    if not url.startswith(("https://", "http://")):
        raise WeightsError(f"not an http(s) URL: {url!r}")
    if url.startswith("http://") and digest is None and urlparse(url).hostname not in _LOOPBACK:
        raise WeightsError(
            f"{url}: plain http can be altered on the way, and there is no hash to check it "
            "against: use an https URL, or give the hash (deblur weights download URL "
            "--sha256 HASH)"
        )
    file_name = Path(unquote(urlparse(url).path)).name or "weights.bin"
    stem = Path(file_name).stem
    entry_name = name or stem
    existing = store.cache_index().get(entry_name)
    if existing is not None and url in existing.urls and store.location(existing) is not None:
        return existing
    if store.offline():
        raise DownloadError(
            f"{url} is not in the cache and DEBLURCLI_OFFLINE is set: " + _manual_steps(None, url)
        )
    dest = store.cache_dir() / file_name
    try:
        found_digest = fetch(Target((url,), dest, digest), on_progress)
    except DownloadError as exc:
        raise DownloadError(f"{exc}. Or " + _manual_steps(None, url)) from None
    architecture, normalization = _inspect(dest)
    entry = WeightsEntry(
        name=entry_name,
        architecture=architecture,
        file=file_name,
        urls=(url,),
        digest=found_digest,
        size=dest.stat().st_size,
        origin=url,
        normalization=normalization,
        notes="" if digest else "sha256 recorded at the first download (no published hash)",
        source="cache",
    )
    store.record(entry)
    return entry


def _inspect(path: Path) -> tuple[str, str]:
    """Architecture and normalisation of a weight file; removes it when it is not weights."""
    from deblurcli.models._builder import load_model

    try:
        _, info = load_model(path)
    except DeblurError:
        path.unlink(missing_ok=True)
        raise
    return info.architecture, OFFICIAL if info.official else EVAL_MODE


def resolve_weights(value: str, on_progress: Progress | None = None) -> Path:
    """The weight file that a ``--weights`` value names, downloading it if needed.

    Raises:
        WeightsError: not a file, known name or URL.
        DownloadError: a download failed or did not verify.
    """
    path = Path(value).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise WeightsError("is a folder; --weights takes a weight file", path)
    entry = store.find(value)
    if entry is not None:
        return download(entry, on_progress)
    if value.startswith(("https://", "http://")):
        cached = _cached_by_url(value)
        if cached is not None:
            return cached
        return store.cache_dir() / download_url(value, on_progress=on_progress).file
    names = ", ".join(sorted(store.known_weights())) or "none yet"
    raise WeightsError(
        f"{value!r} is neither a file, a known weights name ({names}) nor an https URL: "
        "see deblur weights list"
    )


def _cached_by_url(url: str) -> Path | None:
    for entry in store.cache_index().values():
        if url in entry.urls:
            return store.location(entry)
    return None


def no_default_weights(architecture: str) -> WeightsError:
    """The error for a model that has no default weights."""
    return WeightsError(
        f"{architecture!r} has no default weights, and random weights would only damage "
        "your photos: pass --weights NAME, FILE or URL (deblur weights list shows the "
        "names; see docs/weights.md)"
    )
