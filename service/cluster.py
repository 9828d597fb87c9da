"""How instances of one cluster find each other.

Every main instance writes its own connection file (Redis URL with password, cluster secret, web
URL, tmp dir, pid; mode 0600): ``<tmp-dir>/cluster.json``, and one per instance in the user's
runtime directory (``$SEGENC_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/segenc``, else
``~/.config/segenc``) named after its tmp dir, so two main instances never overwrite each other.

A worker reads its own tmp dir first (it shares the main instance's storage). Otherwise it looks at
the running instances in the runtime directory: one is joined; with several, the worker names
them and asks which to join (by ``--tmp-dir`` or ``--redis-url``). Workers on other hosts take
``--redis-url`` and ``--cluster-secret``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from celery import Celery

from segenc.distributed import make_app

CLUSTER_FILE = "cluster.json"
INSTANCES = "instances"


class AmbiguousCluster(Exception):
    """Several main instances run on this host and none shares the worker's --tmp-dir."""


def runtime_dir(env: dict | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("SEGENC_RUNTIME_DIR"):
        return Path(env["SEGENC_RUNTIME_DIR"])
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "segenc"
    return Path.home() / ".config" / "segenc"


def instance_file(tmp_dir: str | os.PathLike) -> Path:
    """This main instance's file in the runtime directory (one per tmp dir)."""
    digest = hashlib.sha256(str(Path(tmp_dir).resolve()).encode()).hexdigest()[:16]
    return runtime_dir() / INSTANCES / f"{digest}.json"


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def write_connection(tmp_dir: Path, redis_url: str, web_url: str | None = None, secret: str | None = None,
                     broker_url: str | None = None) -> list[Path]:
    """``redis_url`` is the state Redis; ``broker_url`` the broker when it is another server."""
    data = {"redis_url": redis_url, "web_url": web_url, "cluster_secret": secret, "pid": os.getpid(),
            "tmp_dir": str(Path(tmp_dir).resolve())}
    if broker_url:
        data["broker_url"] = broker_url
    paths = [Path(tmp_dir) / CLUSTER_FILE, instance_file(tmp_dir)]
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


def running_instances() -> list[dict]:
    """The main instances of this user that are running now (their connection files)."""
    found = []
    for path in sorted((runtime_dir() / INSTANCES).glob("*.json")):
        info = _read(path)
        if info is not None and _alive(info.get("pid")):
            found.append(info)
    return found


def read_connection(tmp_dir: str | os.PathLike) -> dict | None:
    """The main instance to join: the one sharing ``tmp_dir``, else the only one running.

    Raises AmbiguousCluster when several run and none shares ``tmp_dir``."""
    found = _read(Path(tmp_dir) / CLUSTER_FILE)
    if found is not None:
        return found
    running = running_instances()
    if len(running) > 1:
        raise AmbiguousCluster("several main instances run on this host: " + "; ".join(
            f"--tmp-dir {i['tmp_dir']} (web {i.get('web_url')})" for i in running)
            + ". Start the worker with the --tmp-dir of the one to join, or pass --redis-url")
    return running[0] if running else None


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True


def remove_connection(tmp_dir: Path) -> None:
    for path in (Path(tmp_dir) / CLUSTER_FILE, instance_file(tmp_dir)):
        info = _read(path)
        if info and info.get("pid") == os.getpid():
            path.unlink(missing_ok=True)


def celery_app(tmp_dir: str | os.PathLike = "/tmp/encoder", redis_url: str | None = None) -> Celery:
    """The cluster's Celery app, e.g. for ``celery_app("/tmp/encoder").control.inspect().active()``."""
    conn = {} if redis_url else (read_connection(Path(tmp_dir)) or {})
    url = redis_url or conn.get("redis_url")
    if not url:
        raise RuntimeError(f"no main instance found in {tmp_dir} (no {CLUSTER_FILE}); pass redis_url")
    return make_app(conn.get("broker_url") or url, state_url=url, root=tmp_dir)
