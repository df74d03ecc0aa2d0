"""One exception tree for everything the user can get wrong.

Every error carries a one-line, user-facing message (what went wrong, which
file, what to do) and the process exit code that the CLI should use.
"""

from __future__ import annotations

from pathlib import Path


class DeblurError(Exception):
    """Base class: a problem the user can act on.

    Args:
        message: one line saying what went wrong and what to do.
        path: the file or folder concerned, if any; shown before the message.
    """

    exit_code: int = 1

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class UsageError(DeblurError):
    """The command line or an argument to the API is wrong (exit code 2)."""

    exit_code = 2


class InputImageError(DeblurError):
    """An input image cannot be read or is unsuitable."""


class OutputError(DeblurError):
    """An output cannot be written where it should go."""


class WeightsError(DeblurError):
    """Weights are missing, unsafe, corrupt or of another architecture (exit code 2).

    Weights are chosen once per run, so a bad choice is a usage error: nothing
    in the batch can be processed until it is fixed.
    """

    exit_code = 2


class DownloadError(DeblurError):
    """A download failed or did not match its hash (exit code 1): nothing was cached."""


class DeviceError(DeblurError):
    """The requested device or precision is not available (exit code 2)."""

    exit_code = 2


class OutOfMemoryError(DeblurError):
    """Even the smallest tile does not fit in device memory."""
