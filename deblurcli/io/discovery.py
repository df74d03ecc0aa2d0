"""Files, folders and globs on the command line -> work items with output paths."""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from deblurcli.errors import DeblurError, InputImageError
from deblurcli.io.images import FALLBACK_FORMAT, FORMAT_SUFFIX, SUPPORTED_SUFFIXES, can_write

_GLOB_CHARS = set("*?[")
# Videos, which deblur and enhance restore frame by frame (deblurcli.pipelines.video).
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")
# Files that sit beside photos and are plainly not photos (notes, metadata, sidecars):
# folders skip them without a word.
NOT_PHOTO_SUFFIXES = frozenset(
    {".md", ".txt", ".json", ".jsonl", ".csv", ".tsv", ".yaml", ".yml", ".toml", ".xml",
     ".html", ".htm", ".log", ".xmp", ".pp3", ".dop", ".thm", ".db", ".ini"}
)  # fmt: skip
NOT_AN_IMAGE = "not an image (JPEG, PNG, WebP, TIFF, BMP, HEIC, AVIF)"
_LINK_PROBLEMS = {
    errno.ELOOP: "symbolic link loop (it leads back to itself): fix or remove the link",
    errno.ENOENT: "broken symbolic link (its target is gone)",
}


@dataclass(frozen=True)
class WorkItem:
    """One input file and where its result goes.

    Attributes:
        source: the input image (or the unusable input, when ``error`` is set).
        relative: its path relative to the folder or glob root it was found under.
        output: the output file, or None when ``error`` is set.
        error: why this input cannot be processed, or None.
    """

    source: Path
    relative: Path
    output: Path | None = None
    error: DeblurError | None = None


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (1-based) of ``count`` of a batch, split by relative path.

    Membership hashes each input's path below its folder or glob root (SHA-256,
    so it is the same on every machine and Python), which gives every machine
    that runs ``1/N`` to ``N/N`` over the same inputs every file exactly once.
    """

    index: int
    count: int

    @staticmethod
    def parse(text: str) -> Shard:
        """``"K/N"`` with 1 <= K <= N.

        Raises:
            ValueError: anything else, with a message for the user.
        """
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard takes K/N, such as 2/8, not {text!r}") from None
        if not 1 <= index <= count:
            raise ValueError(f"--shard {text}: K must be between 1 and N")
        return Shard(index, count)

    def holds(self, relative: Path) -> bool:
        """Whether the input at ``relative`` (below its folder or glob root) is in this shard."""
        digest = hashlib.sha256(relative.as_posix().encode()).digest()
        return int.from_bytes(digest[:8], "little") % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def source_format(path: Path) -> str:
    """The format a file's extension names: ``.jpeg`` -> ``jpg``, ``.heif`` -> ``heic``."""
    suffix = path.suffix.lower()
    aliases = {".jpeg": "jpg", ".tif": "tiff", ".heif": "heic"}
    return aliases.get(suffix, suffix.lstrip(".") or FALLBACK_FORMAT)


def output_format(source: Path, fmt: str) -> str:
    """The format to write: ``fmt``, or for ``keep`` the source's own format when this
    machine can encode it (HEIC and AVIF may not), else ``FALLBACK_FORMAT`` (PNG)."""
    if fmt != "keep":
        return fmt
    kept = source_format(source)
    return kept if can_write(kept) else FALLBACK_FORMAT


def output_path(out_dir: Path, relative: Path, fmt: str, suffix: str) -> Path:
    """``out_dir/relative`` with ``suffix`` added to the stem and the extension of ``fmt``.

    ``keep`` keeps the source extension as written (``.JPEG`` stays ``.JPEG``), unless
    the format falls back (see :func:`output_format`).
    """
    if relative.suffix.lower() in VIDEO_SUFFIXES:  # a video stays in its container
        return out_dir / relative.parent / f"{relative.stem}{suffix}{relative.suffix}"
    written = output_format(relative, fmt)
    keeps = fmt == "keep" and written == source_format(relative)
    extension = relative.suffix if keeps else FORMAT_SUFFIX[written]
    return out_dir / relative.parent / f"{relative.stem}{suffix}{extension}"


def discover(
    inputs: Iterable[str],
    out_dir: Path | None,
    fmt: str = "keep",
    suffix: str = "",
    recursive: bool = False,
    on_skip: Callable[[Path, str], None] | None = None,
    videos: bool = False,
) -> list[WorkItem]:
    """Expand command-line inputs into work items, in a stable order.

    Folders yield their images (subfolders with ``recursive``); globs
    (``photos/*.jpg``, ``**`` included) are expanded here, so quoting them
    works on every shell. Outputs mirror each file's path below its folder or
    glob root. Inputs that do not exist or cannot be listed, and two inputs
    that would write the same output, become items with an error; files under
    ``out_dir`` are never taken as inputs. Files in folders that are not
    images by their extension, and symbolic-link loops, are passed to
    ``on_skip`` with the reason; hidden files and plain non-photos (notes,
    metadata, sidecars: ``NOT_PHOTO_SUFFIXES``) are ignored silently. With
    ``videos``, folders also yield videos (``VIDEO_SUFFIXES``), whose outputs
    keep their container whatever ``fmt`` says. With ``out_dir`` None (commands
    that only read, such as ``triage``) the items have no output.
    """
    suffixes = SUPPORTED_SUFFIXES + (VIDEO_SUFFIXES if videos else ())
    items: list[WorkItem] = []
    seen_sources: set[Path] = set()
    seen_outputs: dict[Path, Path] = {}
    out_resolved = None if out_dir is None else out_dir.resolve()

    def skip(path: Path, reason: str) -> None:
        inside = out_resolved is not None and _is_within(Path(os.path.realpath(path)), out_resolved)
        if on_skip is not None and not inside:
            on_skip(path, reason)

    for raw in inputs:
        for source, relative, error in _expand(raw, recursive, skip, suffixes):
            if error is not None:
                items.append(WorkItem(source, relative, None, error))
                continue
            resolved = source.resolve()
            if resolved in seen_sources or (
                out_resolved is not None and _is_within(resolved, out_resolved)
            ):
                continue  # named twice, or one of our own outputs
            seen_sources.add(resolved)
            if out_dir is None:
                items.append(WorkItem(source, relative))
                continue
            target = output_path(out_dir, relative, fmt, suffix)
            first = seen_outputs.setdefault(target, source)
            if first != source:
                clash = InputImageError(
                    f"would write {target}, like {first}: rename one or run them separately",
                    source,
                )
                items.append(WorkItem(source, relative, None, clash))
                continue
            items.append(WorkItem(source, relative, target, None))
    return items


def list_images(folder: Path) -> list[Path]:
    """Every image below ``folder``, subfolders included, sorted by path.

    The rule ``deblur deblur --recursive`` applies to folders, shared by
    ``score`` and ``train``: hidden files and folders are left out, and so are
    files that are not images by their extension and links that loop.

    Raises:
        InputImageError: ``folder`` or a folder below it cannot be listed.
    """
    found = []
    for source, _, error in _walk_folder(
        folder, True, lambda path, reason: None, SUPPORTED_SUFFIXES
    ):
        if error is not None:
            raise error
        found.append(source)
    return sorted(found)


def _expand(
    raw: str,
    recursive: bool,
    on_skip: Callable[[Path, str], None],
    suffixes: tuple[str, ...],
) -> Iterator[tuple[Path, Path, DeblurError | None]]:
    path = Path(raw)
    if _GLOB_CHARS & set(raw) and not path.exists():
        root = _glob_root(raw)
        matches = sorted(glob.glob(raw, recursive=True))
        files = [Path(m) for m in matches if Path(m).is_file()]
        if not files:
            yield path, Path(path.name), InputImageError("no files match this pattern", raw)
        for file in files:
            yield file, file.relative_to(root) if _is_within(file, root) else Path(file.name), None
    elif path.is_dir():
        yield from _walk_folder(path, recursive, on_skip, suffixes)
    elif path.exists():
        yield path, Path(path.name), None
    else:
        yield path, Path(path.name), InputImageError("does not exist", path)


def _walk_folder(
    folder: Path,
    recursive: bool,
    on_skip: Callable[[Path, str], None],
    suffixes: tuple[str, ...],
) -> Iterator[tuple[Path, Path, DeblurError | None]]:
    errors: list[OSError] = []
    if recursive:
        walker = os.walk(folder, onerror=errors.append)
    else:
        try:
            walker = iter([(str(folder), [], [e.name for e in os.scandir(folder)])])
        except OSError as exc:
            errors.append(exc)
            walker = iter([])
    for dirpath, dirnames, filenames in walker:
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        for name in sorted(filenames):
            file = Path(dirpath) / name
            if name.startswith(".") or file.suffix.lower() in NOT_PHOTO_SUFFIXES:
                continue
            try:
                is_file = stat.S_ISREG(os.stat(file).st_mode)
            except OSError as exc:  # a link that loops or leads nowhere
                on_skip(file, _LINK_PROBLEMS.get(exc.errno, f"cannot be read ({exc.strerror})"))
                continue
            if not is_file:
                continue  # a folder, without --recursive
            if file.suffix.lower() in suffixes:
                yield file, file.relative_to(folder), None
            else:
                on_skip(file, NOT_AN_IMAGE)
    for exc in errors:
        where = Path(exc.filename) if exc.filename else folder
        yield (
            where,
            where.relative_to(folder) if _is_within(where, folder) else Path(where.name),
            (
                InputImageError(
                    f"folder cannot be listed ({exc.strerror}): check its permissions", where
                )
            ),
        )


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    root_parts = []
    for part in parts:
        if _GLOB_CHARS & set(part):
            break
        root_parts.append(part)
    return Path(*root_parts) if root_parts else Path(".")


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True
