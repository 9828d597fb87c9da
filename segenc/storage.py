"""Paths relative to a storage root, and atomic writes.

Specs carry paths relative to a root so that a worker mounting the shared storage at another
path still finds the files. A path that resolves outside the root is refused.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import StorageError


def resolve(root: str | os.PathLike, rel: str) -> Path:
    """``root/rel``, refusing anything (``..``, absolute paths, symlinks) that lands outside root."""
    base = Path(root).resolve()
    if not rel or os.path.isabs(rel):
        raise StorageError(f"refusing path {rel!r}: storage paths must be relative to the storage root")
    path = (base / rel).resolve()
    if path != base and base not in path.parents:
        raise StorageError(f"refusing path {rel!r}: it resolves outside the storage root {base}")
    return path


def relative(root: str | os.PathLike, path: str | os.PathLike) -> str:
    """The root-relative form of ``path`` (which must live under root)."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        raise StorageError(f"{path} is not inside the storage root {root}") from None


def temp_name(path: Path) -> Path:
    """A sibling temp name unique to this process; same directory so ``os.replace`` is atomic."""
    return path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path; on success it replaces ``path`` atomically, on failure it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
