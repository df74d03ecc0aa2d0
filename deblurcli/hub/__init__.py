"""Weights by name: the shipped manifest, the local cache, downloads and imports.

- :mod:`deblurcli.hub.store`: the manifest, the cache and its index;
- :mod:`deblurcli.hub.resolve`: ``--weights`` values to files, and downloads;
- :mod:`deblurcli.hub.convert`: checkpoints rewritten in our format, and imports.
"""

from deblurcli.hub.convert import convert_weights, import_weights
from deblurcli.hub.resolve import download, download_url, no_default_weights, resolve_weights
from deblurcli.hub.store import (
    EVAL_MODE,
    INDEX,
    OFFICIAL,
    CheckResult,
    WeightsEntry,
    all_entries,
    cache_dir,
    cache_index,
    find,
    known_weights,
    location,
    manifest,
    offline,
    remove,
    shipped_dir,
    verify,
)

__all__ = [
    "EVAL_MODE",
    "INDEX",
    "OFFICIAL",
    "CheckResult",
    "WeightsEntry",
    "all_entries",
    "cache_dir",
    "cache_index",
    "convert_weights",
    "download",
    "download_url",
    "find",
    "import_weights",
    "known_weights",
    "location",
    "manifest",
    "no_default_weights",
    "offline",
    "remove",
    "resolve_weights",
    "shipped_dir",
    "verify",
]
