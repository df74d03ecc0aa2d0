"""Atomic file replacement: readers see the old file or the new one, never a part."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
