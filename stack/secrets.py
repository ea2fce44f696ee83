"""Secrets of `rezerv up`, kept in its data directory: private from the first byte.

Each secret is a file created with mode 600 in the same `open` call that creates it (O_CREAT |
O_EXCL), so there is no moment at which another user could read it, and it is never widened
later. A file written whole (a configuration file holding a password) goes to a private
temporary file first and is renamed over the old one, so a reader sees the old file or the new
one, never half of either. Passwords are URL-safe, so they sit in connection URLs unescaped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

PRIVATE = 0o600


def new_password() -> str:
    return secrets.token_urlsafe(24)


def private_secret(path: Path, make: str | None = None) -> str:
    """The secret stored at `path`; created (mode 600, holding `make` or a new password) if missing."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make or new_password()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:  # another process created it first: theirs stands
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value


def write_private(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """Replace `path` with `text`, private (mode 600, and owned by `owner` if given) from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates it mode 600
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def is_private(path: Path) -> bool:
    """True if neither the group nor others may read or write `path`."""
    return not path.stat().st_mode & 0o077
