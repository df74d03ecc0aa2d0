"""Claim files: one run at a time computes each output.

Before a run computes an output it creates ``.NAME.deblurcli-claim`` beside
it, exclusively (``O_CREAT | O_EXCL``, atomic on local and network file
systems). A second run, on this machine or another sharing the folder, finds
the claim and moves on to the next file, so concurrent runs and shards split
the work and never overwrite each other. The claim holds the host name and
process id; a claim left by a process of this host that no longer runs (a
killed run) is stale and is taken over.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

SUFFIX = ".deblurcli-claim"


def claim_path(output: Path) -> Path:
    """The claim file of ``output``: hidden, beside it."""
    return output.with_name(f".{output.name}{SUFFIX}")


def claim(output: Path) -> Path | None:
    """Claim ``output`` for this process: the claim file, or None when a live run holds it.

    Creates the output's folder if needed.
    """
    path = claim_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _is_stale(path):
                return None
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(descriptor, "w") as file:
            file.write(f"{socket.gethostname()} {os.getpid()}\n")
        return path
    return None


def release(path: Path) -> None:
    """Remove a claim made by :func:`claim`."""
    path.unlink(missing_ok=True)


def _is_stale(path: Path) -> bool:
    """True for a claim by a process of this host that has ended."""
    try:
        host, pid = path.read_text().split()
    except (OSError, ValueError):
        return False  # just created and not yet written, or unreadable: respect it
    if host != socket.gethostname():
        return False  # another machine's process cannot be checked from here
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False
