"""How instances of one cluster find each other.

The main instance writes ``<tmp-dir>/cluster.json`` (mode 0600): the Redis URL with its password
and the web URL. Workers started on the same tmp dir read it; workers elsewhere take --redis-url.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from celery import Celery

from segenc.runners.celery import make_app

CLUSTER_FILE = "cluster.json"


def write_connection(tmp_dir: Path, redis_url: str, web_url: str | None = None) -> Path:
    path = Path(tmp_dir) / CLUSTER_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"redis_url": redis_url, "web_url": web_url, "pid": os.getpid()}, f)
    os.replace(tmp, path)
    return path


def read_connection(tmp_dir: Path) -> dict | None:
    try:
        return json.loads((Path(tmp_dir) / CLUSTER_FILE).read_text())
    except (OSError, ValueError):
        return None


def remove_connection(tmp_dir: Path) -> None:
    path = Path(tmp_dir) / CLUSTER_FILE
    info = read_connection(tmp_dir)
    if info and info.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def celery_app(tmp_dir: str | os.PathLike = "/tmp/encoder", redis_url: str | None = None) -> Celery:
    """The cluster's Celery app, e.g. for ``celery_app("/tmp/encoder").control.inspect().active()``."""
    url = redis_url or (read_connection(Path(tmp_dir)) or {}).get("redis_url")
    if not url:
        raise RuntimeError(f"no main instance found in {tmp_dir} (no {CLUSTER_FILE}); pass redis_url")
    return make_app(url, root=tmp_dir)
