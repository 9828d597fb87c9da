"""``start_service.py``: the main instance (Redis + a worker + the web server) or a worker.

    python3 start_service.py --port 5000 --tmp-dir /tmp/encoder               # main instance
    python3 start_service.py --worker-name encoder_worker_1 --tmp-dir DIR     # one more worker

The environment is read here, at the edge, and passed on explicitly.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_TMP = "/tmp/encoder"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="start_service.py",
        description="Distributed video encoder: the main instance (web UI + API + Redis + a worker), "
                    "or, with --worker-name, one more encoding worker.")
    p.add_argument("--port", type=int, default=5000, help="web port for UI, API and WebSocket (default 5000)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; any other needs --api-token)")
    p.add_argument("--tmp-dir", default=DEFAULT_TMP,
                   help="storage: uploads/, encoded/, redis.conf, redis.rdb, redis.log (default /tmp/encoder)")
    p.add_argument("--worker-name", default=None,
                   help="start only a Celery worker with this node name (e.g. encoder_worker_1)")
    p.add_argument("--redis-url", default=os.environ.get("SEGENC_REDIS_URL"),
                   help="use this Redis instead of starting one (workers: instead of <tmp-dir>/cluster.json)")
    p.add_argument("--redis-port", type=int, default=6379,
                   help="port of the embedded Redis (default 6379; 0 picks a free port)")
    p.add_argument("--concurrency", type=int, default=None, help="worker processes (default: number of cores)")
    p.add_argument("--api-token", default=os.environ.get("SEGENC_API_TOKEN"),
                   help="require this bearer token on the API and WebSocket (env SEGENC_API_TOKEN)")
    p.add_argument("--max-upload-mb", type=int, default=int(os.environ.get("SEGENC_MAX_UPLOAD_MB", "2048")),
                   help="largest upload accepted, in MB (default 2048)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        tmp = prepare_tmp(Path(args.tmp_dir))
        if args.worker_name:
            return run_worker(args, tmp)
        return run_main(args, tmp)
    except StartupError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130


class StartupError(Exception):
    pass


def prepare_tmp(tmp: Path) -> Path:
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        for sub in ("uploads", "encoded", "work"):
            (tmp / sub).mkdir(mode=0o700, exist_ok=True)
            os.chmod(tmp / sub, 0o700)
        probe = tmp / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StartupError(f"cannot write to --tmp-dir {tmp} ({exc.strerror}); choose a writable directory") from None
    return tmp.resolve()


def run_worker(args, tmp: Path) -> int:
    from segenc.runners.celery import make_app, run_worker as start

    from .cluster import read_connection

    url = args.redis_url or (read_connection(tmp) or {}).get("redis_url")
    if not url:
        raise StartupError(f"no main instance found: {tmp}/cluster.json is missing. Start the main instance "
                           f"with --tmp-dir {tmp}, or pass --redis-url redis://:PASSWORD@HOST:PORT/0")
    _check_redis(url)
    os.environ["SEGENC_WORKER_NAME"] = args.worker_name
    app = make_app(url, root=tmp)
    print(f"segenc worker {args.worker_name}: storage {tmp}", flush=True)
    start(app, args.worker_name, args.concurrency)
    return 0


def _check_redis(url: str) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    try:
        redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=3).ping()
    except redis.AuthenticationError:
        raise StartupError("Redis refused the password in the URL; check --redis-url") from None
    except redis.RedisError as exc:
        raise StartupError(f"cannot reach Redis ({exc}); is the main instance running?") from None


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_main(args, tmp: Path) -> int:
    from .cluster import remove_connection, write_connection
    from .redis_server import PortInUseError, RedisServer

    if not _is_loopback(args.host) and not args.api_token:
        raise StartupError(f"refusing to serve on {args.host} without an API token: pass --api-token "
                           f"(or set SEGENC_API_TOKEN), or bind 127.0.0.1")
    if not _port_free(args.host, args.port):
        raise StartupError(f"port {args.port} on {args.host} is already in use; choose another with --port")
    redis_server = None
    procs: list[subprocess.Popen] = []
    try:
        if args.redis_url:
            url = args.redis_url
            _check_redis(url)
        else:
            try:
                redis_server = RedisServer(tmp, port=args.redis_port or None)
                redis_server.start()
            except PortInUseError as exc:
                raise StartupError(str(exc)) from None
            except RuntimeError as exc:
                raise StartupError(f"could not start redis-server: {exc}") from None
            url = redis_server.url
        web_url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
        write_connection(tmp, url, web_url)
        env = dict(os.environ, SEGENC_REDIS_URL=url, SEGENC_TMP_DIR=str(tmp),
                   SEGENC_MAX_UPLOAD_MB=str(args.max_upload_mb), SEGENC_WORKER_NAME="main")
        if args.api_token:
            env["SEGENC_API_TOKEN"] = args.api_token
        here = Path(__file__).resolve().parent.parent
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "service.cli", "--worker-name", "main_worker", "--tmp-dir", str(tmp),
             "--redis-url", url] + (["--concurrency", str(args.concurrency)] if args.concurrency else []),
            env=env, cwd=here))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", "1", "--threads", "32",
             "--bind", f"{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}",
             "--timeout", "0", "--graceful-timeout", "5", "--log-level", "warning", "service.app:create_app()"],
            env=env, cwd=here))
        print(f"segenc is up: {web_url}  (storage {tmp}, Ctrl-C stops everything)", flush=True)
        return _supervise(procs)
    finally:
        for p in reversed(procs):
            _stop(p)
        remove_connection(tmp)
        if redis_server is not None:
            redis_server.stop()


def _supervise(procs: list[subprocess.Popen]) -> int:
    stopping = {"sig": None}

    def on_signal(signum, frame):
        stopping["sig"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while stopping["sig"] is None:
        for p in procs:
            if p.poll() is not None:
                sys.stderr.write(f"error: a service process exited unexpectedly (status {p.returncode}); "
                                 f"stopping everything\n")
                return 1
        time.sleep(0.3)
    print("segenc: stopping...", flush=True)
    return 0


def _stop(p: subprocess.Popen, timeout: float = 15) -> None:
    if p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
