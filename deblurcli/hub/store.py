"""The weights the tool knows: the shipped manifest and the local cache with its index.

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

from filelock import FileLock

from deblurcli.download import file_digest
from deblurcli.errors import WeightsError

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


def _index_lock() -> FileLock:
    locks = cache_dir() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    return FileLock(str(locks / (INDEX + ".lock")))


def _write_index(entries: dict[str, WeightsEntry]) -> None:
    from deblurcli.io.images import write_atomic

    document = {"weights": [e.as_json() for e in sorted(entries.values(), key=lambda e: e.name)]}
    write_atomic(cache_dir() / INDEX, (json.dumps(document, indent=2) + "\n").encode())


def record(entry: WeightsEntry) -> None:
    """Add or replace ``entry`` in the cache index (under a lock: several runs may write)."""
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
