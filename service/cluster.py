"""How instances of one cluster find each other.

The main instance writes its connection file (Redis URL with password, cluster secret, web URL;
mode 0600) to ``<tmp-dir>/cluster.json`` and to the user's runtime directory
(``$SEGENC_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/segenc``, else ``~/.config/segenc``). A worker
reads its own tmp dir first, then the runtime directory, so a worker on the same host finds the
main instance whatever its ``--tmp-dir``. Workers on other hosts take ``--redis-url`` and
``--cluster-secret``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from celery import Celery

from segenc.distributed import make_app

CLUSTER_FILE = "cluster.json"


def runtime_dir(env: dict | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("SEGENC_RUNTIME_DIR"):
        return Path(env["SEGENC_RUNTIME_DIR"])
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "segenc"
    return Path.home() / ".config" / "segenc"


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def write_connection(tmp_dir: Path, redis_url: str, web_url: str | None = None, secret: str | None = None) -> list[Path]:
    data = {"redis_url": redis_url, "web_url": web_url, "cluster_secret": secret, "pid": os.getpid(),
            "tmp_dir": str(tmp_dir)}
    paths = [Path(tmp_dir) / CLUSTER_FILE, runtime_dir() / CLUSTER_FILE]
    for p in paths:
        try:
            _write(p, data)
        except OSError:
            if p == paths[0]:
                raise
    return paths


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("redis_url") else None


def read_connection(tmp_dir: str | os.PathLike) -> dict | None:
    """The main instance's connection info: from ``tmp_dir``, else this user's runtime dir."""
    found = _read(Path(tmp_dir) / CLUSTER_FILE)
    if found is None:
        found = _read(runtime_dir() / CLUSTER_FILE)
        if found is not None and not _alive(found.get("pid")):
            return None  # left behind by a main instance that is gone
    return found


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True


def remove_connection(tmp_dir: Path) -> None:
    for path in (Path(tmp_dir) / CLUSTER_FILE, runtime_dir() / CLUSTER_FILE):
        info = _read(path)
        if info and info.get("pid") == os.getpid():
            path.unlink(missing_ok=True)


def celery_app(tmp_dir: str | os.PathLike = "/tmp/encoder", redis_url: str | None = None) -> Celery:
    """The cluster's Celery app, e.g. for ``celery_app("/tmp/encoder").control.inspect().active()``."""
    url = redis_url or (read_connection(Path(tmp_dir)) or {}).get("redis_url")
    if not url:
        raise RuntimeError(f"no main instance found in {tmp_dir} (no {CLUSTER_FILE}); pass redis_url")
    return make_app(url, root=tmp_dir)
