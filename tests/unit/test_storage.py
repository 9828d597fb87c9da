import os

import pytest

from segenc.errors import StorageError
from segenc.storage import atomic_path, resolve


@pytest.mark.parametrize("rel", ["../x", "a/../../x", "/etc/passwd", "", "a/../../../etc"])
def test_paths_outside_the_root_are_refused(tmp_path, rel):
    with pytest.raises(StorageError):
        resolve(tmp_path, rel)


def test_symlink_escape_is_refused(tmp_path):
    (tmp_path / "root").mkdir()
    os.symlink("/etc", tmp_path / "root" / "link")
    with pytest.raises(StorageError):
        resolve(tmp_path / "root", "link/passwd")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
