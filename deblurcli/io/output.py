"""Output files and folders: atomic replacement (readers see the old file or the new one,
never a part), and a folder checked writable before any work starts."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deblurcli.errors import UsageError


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` on success.

    The temporary file (``.NAME.XXXX.partial``, hidden) is in the same folder,
    so the rename is atomic, and it is removed if the block raises (Ctrl-C
    included). The result gets the usual 0644 permissions (``mkstemp`` makes
    0600). The folder must exist.

    Raises:
        OSError: the temporary file cannot be created, written or renamed.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def check_writable_folder(out_dir: Path) -> None:
    """Refuse an output path that is not a folder, or one that cannot be written to,
    before any input is read (usage errors). A probe file is written and removed in
    the folder, or where it will be created: its nearest existing parent."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError("exists and is not a folder: choose a folder for --output", out_dir)
    existing = out_dir.absolute()
    while not existing.exists():
        existing = existing.parent
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".deblurcli-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(
            f"cannot be written to ({reason}): choose a writable folder for --output", out_dir
        ) from None
