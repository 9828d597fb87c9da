"""A real small tmpfs for full-disk tests (root only; the test is skipped where mount is refused)."""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


@contextmanager
def tmpfs(parent: Path, size: str) -> Iterator[Path]:
    """A ``size`` tmpfs (``60m``, ``64k``) mounted at ``parent/tmpfs``, unmounted afterwards."""
    mnt = parent / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a {size} tmpfs here ({r.stderr.strip() or r.returncode}); full-disk test skipped")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
