"""Private files and directories for state: what the cluster and the reconciler keep on
disk (stores, keys, tokens, Git caches) is readable by their user only.

SQLite creates a database's ``-wal`` and ``-shm`` files with the database file's own
permissions, so :func:`private_database` creates the database 0600 before SQLite opens
it (and narrows existing files), which keeps all three private whatever the umask.

Used by both halves: runtime/ (the store, the API server's state directory) and gitops/
(status database, Git cache, the service's state directory).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) and make it 0700; returns it."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    path.chmod(DIR_MODE)
    return path


def private_database(path: Path) -> Path:
    """Make an SQLite database file (created empty when missing) and its ``-wal``,
    ``-shm`` and ``-journal`` files 0600, its directory 0700; returns ``path``."""
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    os.close(fd)
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").chmod(FILE_MODE)
    return path
