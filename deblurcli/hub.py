"""Weights by name: the shipped manifest, the local cache, downloads and imports.

A ``--weights`` value is resolved in this order: an existing file; a name
(or file name, or URL) from the manifest shipped in ``weights/manifest.json``,
found in the shipped ``weights/`` folder, then in the cache, then downloaded;
a name recorded in the cache index (imports and URL downloads); any other
https URL, downloaded into the cache once and reused.

The cache lives in ``DEBLURCLI_HOME`` or platformdirs' user cache folder for
deblurcli, under ``weights/``, with ``index.json`` recording what was
imported or fetched by URL. ``DEBLURCLI_OFFLINE=1`` forbids downloads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from filelock import FileLock

from deblurcli.download import Progress, Target, fetch, file_digest
from deblurcli.errors import DeblurError, DownloadError, WeightsError

if TYPE_CHECKING:
    from deblurcli.models._builder import WeightsInfo
    from deblurcli.models.layers import PaddedGenerator

MANIFEST_PACKAGE = "deblurcli.weights"  # the repository's weights/ folder, packaged
INDEX = "index.json"
OFFICIAL = "official-train-mode"
EVAL_MODE = "eval-mode"


@dataclass(frozen=True)
class WeightsEntry:
    """One known weight file.

    Attributes:
        name: what users type after ``--weights``.
        architecture: registry name of the model it holds.
        file: file name in the shipped folder and in the cache.
        urls: mirrors, tried in order (empty for imports).
        digest: ``sha256:HEX`` or ``sha384:HEX``.
        size: bytes.
        license: licence of the weights.
        origin: paper and repository, or "trained by deblurcli on ...".
        normalization: ``official-train-mode`` (per-image statistics) or ``eval-mode``.
        value_range: the network's input and output range.
        padding_multiple: sizes the network pads images up to.
        notes: anything else worth knowing.
        training: for weights we trained: the photographs and their licences,
            the exact commands, steps and validation scores.
        source: ``manifest`` (shipped knowledge) or ``cache`` (imported or fetched by URL).
    """

    name: str
    architecture: str
    file: str
    urls: tuple[str, ...] = ()
    digest: str | None = None
    size: int | None = None
    license: str = "unknown"
    origin: str = "unknown"
    normalization: str = EVAL_MODE
    value_range: str = "[-1, 1]"
    padding_multiple: int = 32
    notes: str = ""
    training: dict = field(default_factory=dict, compare=False)
    source: str = field(default="manifest", compare=False)

    @staticmethod
    def from_json(data: dict, source: str) -> WeightsEntry:
        fields = WeightsEntry.__dataclass_fields__
        known = {k: v for k, v in data.items() if k in fields and k != "source"}
        known["urls"] = tuple(known.get("urls", ()))
        return WeightsEntry(**known, source=source)

    def as_json(self) -> dict:
        data = asdict(self)
        data["urls"] = list(self.urls)
        del data["source"]
        return data


# Hosts whose plain-http downloads need no hash: nothing between us and them.
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def offline() -> bool:
    """True when ``DEBLURCLI_OFFLINE`` forbids downloads."""
    return os.environ.get("DEBLURCLI_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cache_dir() -> Path:
    """Where downloaded and imported weights live."""
    home = os.environ.get("DEBLURCLI_HOME")
    if home:
        return Path(home).expanduser() / "weights"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("deblurcli")) / "weights"


def shipped_dir() -> Path:
    """The packaged ``weights/`` folder."""
    return Path(str(resources.files(MANIFEST_PACKAGE)))


def manifest() -> dict[str, WeightsEntry]:
    """Entries of the shipped manifest, by name."""
    data = json.loads((shipped_dir() / "manifest.json").read_text(encoding="utf-8"))
    return {e["name"]: WeightsEntry.from_json(e, "manifest") for e in data["weights"]}


def cache_index() -> dict[str, WeightsEntry]:
    """Entries recorded in the cache (imports and URL downloads), by name."""
    path = cache_dir() / INDEX
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise WeightsError("the cache index is unreadable: delete it and re-import", path) from None
    return {e["name"]: WeightsEntry.from_json(e, "cache") for e in data.get("weights", [])}


def known_weights() -> dict[str, WeightsEntry]:
    """Manifest entries, then cache entries under names the manifest does not use."""
    entries = cache_index()
    entries.update(manifest())
    return entries


def find(value: str) -> WeightsEntry | None:
    """The entry that ``value`` names: by name, then file name, then URL."""
    entries = known_weights()
    if value in entries:
        return entries[value]
    for entry in entries.values():
        if value == entry.file or value in entry.urls:
            return entry
    return None


def location(entry: WeightsEntry) -> Path | None:
    """Where the entry's file is on this machine, or None.

    Shipped first, then the cache; for a manifest name, also a file imported
    under that name (``deblur weights import fpn_inception.h5``).
    """
    shipped = shipped_dir() / entry.file
    if entry.source == "manifest" and shipped.is_file():
        return shipped
    cached = cache_dir() / entry.file
    if cached.is_file() and (entry.size is None or cached.stat().st_size == entry.size):
        return cached
    if entry.source == "manifest":
        imported = cache_index().get(entry.name)
        if imported is not None:
            return location(imported)
    return None


def all_entries() -> list[WeightsEntry]:
    """Manifest entries and every cache entry, including imports under manifest names."""
    return [*manifest().values(), *cache_index().values()]


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
    found = location(entry)
    if found is not None:
        return found
    if not entry.urls:
        raise WeightsError(
            f"{entry.name!r} was imported and its file is gone from the cache: import it again"
        )
    if offline():
        raise DownloadError(
            f"{entry.name!r} is not in the cache and DEBLURCLI_OFFLINE is set: "
            + _manual_steps(entry, entry.urls[0])
        )
    dest = cache_dir() / entry.file
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
    existing = cache_index().get(entry_name)
    if existing is not None and url in existing.urls and location(existing) is not None:
        return existing
    if offline():
        raise DownloadError(
            f"{url} is not in the cache and DEBLURCLI_OFFLINE is set: " + _manual_steps(None, url)
        )
    dest = cache_dir() / file_name
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
    _record(entry)
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


def _load_checkpoint(source: Path) -> tuple[PaddedGenerator, WeightsInfo, dict[str, str]]:
    """The model a checkpoint holds, what it is, and the header strings worth keeping."""
    from deblurcli.models._builder import load_model

    if not source.is_file():
        raise WeightsError("does not exist or is not a file", source)
    model, info = load_model(source)
    own_keys = ("format", "architecture", "config", "statistics")
    extra = {k: v for k, v in (info.metadata or {}).items() if k not in own_keys}
    if info.official:
        extra["semantics"] = "official"
    extra["imported_from"] = source.name  # recipe and validation of our own runs are kept
    return model, info, extra


def _write_checkpoint(
    loaded: tuple[PaddedGenerator, WeightsInfo, dict[str, str]], dest: Path, half: bool
) -> None:
    import torch

    from deblurcli.models._builder import save_weights

    model, info, extra = loaded
    dtype = torch.float16 if half else torch.float32
    try:
        save_weights(model, dest, info.architecture, _config(info), dtype, metadata=extra)
    except OSError as exc:
        hint = (
            "set DEBLURCLI_HOME to a writable folder"
            if dest.parent == cache_dir()
            else ("choose a writable folder")
        )
        raise WeightsError(f"cannot be written ({exc.strerror}): {hint}", dest) from None


def convert_weights(source: Path, dest: Path, half: bool = False) -> WeightsInfo:
    """Rewrite an official or own checkpoint as a deblurcli ``.safetensors`` file at ``dest``.

    Our own files keep their recipe and validation scores; ``half`` stores
    the floating-point tensors as fp16 (half the size; models still run in
    fp32 after loading).

    Raises:
        WeightsError: unreadable, unsafe or unrecognised file, or ``dest`` not writable.
    """
    loaded = _load_checkpoint(source)
    _write_checkpoint(loaded, dest, half)
    return loaded[1]


def import_weights(
    source: Path, name: str | None = None, origin: str | None = None, half: bool = False
) -> WeightsEntry:
    """Convert an official or own checkpoint to safetensors in the cache, and record it.

    Raises:
        WeightsError: unreadable, unsafe or unrecognised file, or a name the manifest uses.
    """
    entry_name = name or source.stem
    listed = manifest().get(entry_name)
    loaded = _load_checkpoint(source)
    info = loaded[1]
    if listed is not None and listed.architecture != info.architecture:
        raise WeightsError(
            f"{entry_name!r} names {listed.architecture!r} weights in the manifest, and this "
            f"file holds {info.architecture!r}: choose another --name",
            source,
        )
    file_name = f"{entry_name}.safetensors"
    dest = cache_dir() / file_name
    _write_checkpoint(loaded, dest, half)
    entry = WeightsEntry(
        name=entry_name,
        architecture=info.architecture,
        file=file_name,
        digest=file_digest(dest),
        size=dest.stat().st_size,
        origin=origin
        or f"imported from {source.name}" + (f" ({listed.origin})" if listed is not None else ""),
        license=listed.license if listed is not None else "unknown",
        normalization=OFFICIAL if info.official else EVAL_MODE,
        source="cache",
    )
    _record(entry)
    return entry


def _config(info) -> dict:
    return json.loads(info.metadata.get("config", "{}")) if info.metadata else {}


def _index_lock() -> FileLock:
    locks = cache_dir() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    return FileLock(str(locks / (INDEX + ".lock")))


def _write_index(entries: dict[str, WeightsEntry]) -> None:
    from deblurcli.io.images import write_atomic

    document = {"weights": [e.as_json() for e in sorted(entries.values(), key=lambda e: e.name)]}
    write_atomic(cache_dir() / INDEX, (json.dumps(document, indent=2) + "\n").encode())


def _record(entry: WeightsEntry) -> None:
    cache_dir().mkdir(parents=True, exist_ok=True)
    with _index_lock():
        entries = cache_index()
        entries[entry.name] = replace(entry, source="cache")
        _write_index(entries)


def remove(name: str) -> list[Path]:
    """Delete a name's cached file (and its index entry); returns the files removed.

    Raises:
        WeightsError: the name is unknown.
    """
    matches = [e for e in all_entries() if name in (e.name, e.file)]
    if not matches:
        raise WeightsError(f"no weights named {name!r}: see deblur weights list")
    removed = []
    for entry in matches:
        cached = cache_dir() / entry.file
        if cached.is_file():
            cached.unlink()
            removed.append(cached)
    if any(e.source == "cache" for e in matches):
        with _index_lock():
            entries = cache_index()
            for entry in matches:
                entries.pop(entry.name, None)
            _write_index(entries)
    return removed


@dataclass(frozen=True)
class CheckResult:
    """The outcome of re-hashing one cached file."""

    entry: WeightsEntry
    path: Path
    ok: bool
    problem: str = ""


def verify() -> Iterator[CheckResult]:
    """Re-hash every cached file with a known hash; corrupt files are removed."""
    for entry in all_entries():
        path = cache_dir() / entry.file
        if not path.is_file() or entry.digest is None:
            continue
        size = path.stat().st_size
        if entry.size is not None and size != entry.size:
            problem = f"{size} bytes, {entry.size} expected"
        else:
            digest = file_digest(path, entry.digest)
            problem = "" if digest == entry.digest else f"{digest}, {entry.digest} expected"
        if problem:
            path.unlink()
        yield CheckResult(entry, path, not problem, problem)


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
    entry = find(value)
    if entry is not None:
        return download(entry, on_progress)
    if value.startswith(("https://", "http://")):
        cached = _cached_by_url(value)
        if cached is not None:
            return cached
        return cache_dir() / download_url(value, on_progress=on_progress).file
    names = ", ".join(sorted(known_weights())) or "none yet"
    raise WeightsError(
        f"{value!r} is neither a file, a known weights name ({names}) nor an https URL: "
        "see deblur weights list"
    )


def _cached_by_url(url: str) -> Path | None:
    for entry in cache_index().values():
        if url in entry.urls:
            return location(entry)
    return None


def no_default_weights(architecture: str) -> WeightsError:
    """The error for a model that has no default weights."""
    return WeightsError(
        f"{architecture!r} has no default weights, and random weights would only damage "
        "your photos: pass --weights NAME, FILE or URL (deblur weights list shows the "
        "names; see docs/weights.md)"
    )
