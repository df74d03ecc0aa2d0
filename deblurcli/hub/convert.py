"""Official and own checkpoints rewritten as deblurcli ``.safetensors`` files, and imports
into the cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from deblurcli.download import file_digest
from deblurcli.errors import WeightsError
from deblurcli.hub import store
from deblurcli.hub.store import EVAL_MODE, OFFICIAL, WeightsEntry

if TYPE_CHECKING:
    from deblurcli.models._builder import WeightsInfo
    from deblurcli.models.layers import PaddedGenerator


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
            if dest.parent == store.cache_dir()
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
    listed = store.manifest().get(entry_name)
    loaded = _load_checkpoint(source)
    info = loaded[1]
    if listed is not None and listed.architecture != info.architecture:
        raise WeightsError(
            f"{entry_name!r} names {listed.architecture!r} weights in the manifest, and this "
            f"file holds {info.architecture!r}: choose another --name",
            source,
        )
    file_name = f"{entry_name}.safetensors"
    dest = store.cache_dir() / file_name
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
    store.record(entry)
    return entry


def _config(info) -> dict:
    return json.loads(info.metadata.get("config", "{}")) if info.metadata else {}
