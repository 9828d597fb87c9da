"""``start_service.py``: the main instance (Redis + a worker + the web server) or a worker.

    python3 start_service.py --port 5000 --tmp-dir /tmp/encoder               # main instance
    python3 start_service.py --worker-name encoder_worker_1 --tmp-dir DIR     # one more worker

The environment is read here, at the edge, and passed on explicitly. Secrets (the Redis URL with
its password, the cluster secret, the API token) reach the children through their environment,
never their command line, which every local user can read with ps.

Process hygiene: every child runs in its own session (a terminal's Ctrl-C reaches only this
supervisor) and dies with it however it dies (PR_SET_PDEATHSIG). A clean stop goes in order: the
web server stops taking requests, the worker finishes or gives back its chunks (bounded), Redis
stops last.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_TMP = "/tmp/encoder"


def _env(name: str, default=None):
    """An option's default: ``SEGENC_<NAME>`` if set (argparse converts it with the option's type)."""
    value = os.environ.get(f"SEGENC_{name}")
    return default if value is None or value == "" else value


def _env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(f"SEGENC_{name}", "").strip().lower()
    return default if not value else value in ("1", "true", "yes", "on")


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def parser() -> argparse.ArgumentParser:
    """Every option also reads an environment variable, SEGENC_ + its name in capitals with _ for -
    (--tmp-dir: SEGENC_TMP_DIR); the command line wins. The README has the table."""
    p = argparse.ArgumentParser(
        prog="start_service.py",
        description="Distributed video encoder: the main instance (web UI + API + Redis + a worker), "
                    "or, with --worker-name, one more encoding worker. Every option can also be set "
                    "as SEGENC_<OPTION> in the environment (e.g. SEGENC_PORT=8080).")
    p.add_argument("--port", type=int, default=_env("PORT", 5000),
                   help="web port for UI, API and WebSocket (default 5000)")
    p.add_argument("--host", default=_env("HOST", "127.0.0.1"),
                   help="address to bind (default 127.0.0.1; any other needs --api-token)")
    p.add_argument("--tmp-dir", default=_env("TMP_DIR", DEFAULT_TMP),
                   help="storage: uploads/, encoded/, redis.conf, redis.rdb, redis.log (default /tmp/encoder)")
    p.add_argument("--worker-name", default=_env("WORKER_NAME"),
                   help="start only a Celery worker with this node name (e.g. encoder_worker_1)")
    p.add_argument("--redis-url", default=_env("REDIS_URL"),
                   help="use this Redis instead of starting one (workers: instead of <tmp-dir>/cluster.json)")
    p.add_argument("--broker-url", default=_env("BROKER_URL"),
                   help="carry task messages through this broker instead: redis://, rediss://, "
                        "sentinel://[:PW@]HOST:PORT[;HOST:PORT]/DB?master=NAME or amqp://USER:PW@HOST:PORT/VHOST "
                        "(RabbitMQ; needs a Redis for the state). Default: the Redis")
    p.add_argument("--state-url", default=_env("STATE_URL"),
                   help="the Redis for job state, events, leases and results: redis://, rediss:// or a sentinel "
                        "URL (default: --redis-url, else the embedded Redis; workers: the connection file)")
    p.add_argument("--redis-port", type=int, default=_env("REDIS_PORT", 6379),
                   help="port of the embedded Redis (default 6379; 0 picks a free port)")
    p.add_argument("--concurrency", type=int, default=_env("CONCURRENCY"),
                   help="worker processes (default: number of cores)")
    p.add_argument("--api-token", default=_env("API_TOKEN"),
                   help="require this bearer token on the API, WebSocket and /metrics")
    p.add_argument("--cluster-secret", default=_env("CLUSTER_SECRET"),
                   help="shared secret for chunk transfer between workers and the main instance "
                        "(main: generated if not given; workers: read from the connection file)")
    p.add_argument("--redis-host", default=_env("REDIS_HOST", "127.0.0.1"),
                   help="address the embedded Redis binds (default 127.0.0.1; it always has a password)")
    p.add_argument("--public-url", default=_env("PUBLIC_URL"),
                   help="URL workers on other hosts use to reach this instance (default http://HOST:PORT)")
    p.add_argument("--queues", default=None, help=argparse.SUPPRESS)
    p.add_argument("--max-upload-mb", type=int, default=_env("MAX_UPLOAD_MB", 2048),
                   help="largest upload accepted, in MB (default 2048)")
    p.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS, default=_env("LOG_LEVEL", "info"),
                   help="the web server's and the workers' log level (default info)")
    p.add_argument("--access-log", default=_env("ACCESS_LOG", "-"), metavar="FILE",
                   help="the web server's access log: a file, - for stdout (default), or off")
    sources = p.add_mutually_exclusive_group()
    sources.add_argument("--delete-sources", dest="delete_sources", action="store_true",
                         default=_env_flag("DELETE_SOURCES"),
                         help="remove a job's upload once it is done (env SEGENC_DELETE_SOURCES=1)")
    sources.add_argument("--keep-sources", dest="delete_sources", action="store_false",
                         help="keep uploads after success (the default)")
    p.add_argument("--retain-days", type=float, default=_env("RETAIN_DAYS", 0.0), metavar="N",
                   help="remove finished jobs (files and record) N days after they ended (default 0: never); "
                        "failed jobs' work files are always removed")
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


OWN_ENTRIES = {"uploads", "encoded", "work", "thumbs", "remote", "cluster.json", "redis.conf", "redis.log", "redis.rdb",
               "redis-credentials.json", "appendonly.aof", "appendonlydir"}


def prepare_tmp(tmp: Path) -> Path:
    """Create the storage folders; the tmp dir is made this user's only (0700) when it is new or
    holds nothing but segenc's own files (job names and sizes are nobody else's business)."""
    try:
        tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
        if {p.name for p in tmp.iterdir()} <= OWN_ENTRIES and tmp.stat().st_uid == os.getuid():
            os.chmod(tmp, 0o700)
        for sub in ("uploads", "encoded", "work", "thumbs"):
            (tmp / sub).mkdir(mode=0o700, exist_ok=True)
            os.chmod(tmp / sub, 0o700)
        probe = tmp / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StartupError(f"cannot write to --tmp-dir {tmp} ({exc.strerror}); choose a writable directory") from None
    return tmp.resolve()


def run_worker(args, tmp: Path) -> int:
    from segenc.distributed import MAIN_QUEUE, make_app, run_worker as start
    from segenc.distributed.app import DEFAULT_QUEUE

    from .cluster import CLUSTER_FILE, AmbiguousCluster, read_connection, runtime_dir

    given = args.redis_url or args.broker_url or args.state_url
    try:
        conn = (read_connection(tmp) or {}) if not given else {}
    except AmbiguousCluster as exc:
        raise StartupError(str(exc)) from None
    state = args.state_url or args.redis_url or conn.get("redis_url")
    broker = args.broker_url or args.redis_url or conn.get("broker_url") or state
    if not broker:
        raise StartupError(f"no main instance found (no {CLUSTER_FILE} in {tmp} or {runtime_dir()}): start "
                           f"python3 start_service.py --tmp-dir DIR on this host first, or pass "
                           f"--redis-url redis://:PASSWORD@HOST:PORT/0")
    url = _state_url(broker, state)
    _check_redis(url)
    secret = args.cluster_secret or conn.get("cluster_secret")
    shared = (tmp / CLUSTER_FILE).exists()  # on the main instance's storage: it can prepare and finish too
    if not shared:
        _check_secret(url, secret)
    queues = tuple(args.queues.split(",")) if args.queues else ((DEFAULT_QUEUE, MAIN_QUEUE) if shared else (DEFAULT_QUEUE,))
    app = make_app(broker, state_url=url, root=tmp, cluster_secret=secret, worker_name=args.worker_name)
    mode = "shared storage" if shared else "its own storage; segments come over HTTP"
    print(f"segenc worker {args.worker_name}: {tmp} ({mode})", flush=True)
    start(app, args.worker_name, args.concurrency, loglevel=args.log_level.upper(), queues=queues)
    return 0


def _state_url(broker: str, state: str | None) -> str:
    """The state Redis for ``broker`` (StartupError naming the fix when there is none)."""
    from segenc.distributed.brokers import BrokerURLError, check_broker, state_url

    try:
        check_broker(broker)
        return state_url(broker, state)
    except BrokerURLError as exc:
        raise StartupError(str(exc)) from None


def _check_redis(url: str) -> None:
    from segenc.distributed.state import check_reachable

    problem = check_reachable(url)
    if problem:
        raise StartupError(problem)


def _check_secret(redis_url: str, secret: str | None) -> None:
    """A worker without the shared storage transfers every chunk: refuse to start (before it takes
    any task) if the main instance would refuse its cluster secret."""
    from segenc.distributed import JobState
    from segenc.distributed.transfer import check_secret

    web = JobState.from_url(redis_url).web_url()
    if not web:
        return  # no main instance advertises transfers: a cluster on shared storage
    if not secret:
        raise StartupError(f"this worker does not share the main instance's storage, so it needs the cluster "
                           f"secret: pass --cluster-secret (the main instance's cluster.json has it)")
    problem = check_secret(web, secret)
    if problem:
        raise StartupError(problem)


def _port_free(host: str, port: int) -> bool:
    """Free as the server's own bind sees it (SO_REUSEADDR: TIME_WAIT sockets do not count)."""
    from .redis_server import port_in_use

    return not port_in_use(host, port)


def _wait_serving(host: str, port: int, web: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until the web server accepts connections, so the URL printed as "up" answers at once.

    Returns early if the web server exits: the supervisor then reports why.
    """
    import socket

    target = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    deadline = time.monotonic() + timeout
    while web.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection((target, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_main(args, tmp: Path) -> int:
    from segenc.distributed import MAIN_QUEUE
    from segenc.distributed.app import DEFAULT_QUEUE

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
        if args.state_url or args.redis_url:
            url = _state_url(args.broker_url or args.state_url or args.redis_url, args.state_url or args.redis_url)
            _check_redis(url)
        else:
            try:
                redis_server = RedisServer.persistent(tmp, port=args.redis_port or None, host=args.redis_host)
                redis_server.start()
            except PortInUseError as exc:
                raise StartupError(str(exc)) from None
            except RuntimeError as exc:
                raise StartupError(f"could not start redis-server: {exc}") from None
            url = redis_server.url
        broker = args.broker_url or url
        _state_url(broker, url)
        web_url = args.public_url or f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
        secret = args.cluster_secret or secrets.token_urlsafe(32)
        write_connection(tmp, url, web_url, secret, broker_url=broker if broker != url else None)
        _advertise(url, web_url)
        env = dict(os.environ, SEGENC_REDIS_URL=url, SEGENC_TMP_DIR=str(tmp), SEGENC_CLUSTER_SECRET=secret,
                   SEGENC_MAX_UPLOAD_MB=str(args.max_upload_mb))
        env.pop("SEGENC_STATE_URL", None)  # the children take the state from SEGENC_REDIS_URL
        if broker != url:
            env["SEGENC_BROKER_URL"] = broker
        else:
            env.pop("SEGENC_BROKER_URL", None)
        if args.api_token:
            env["SEGENC_API_TOKEN"] = args.api_token
        commands = [  # the web server first: it stops first
            [sys.executable, "-m", f"{__package__}.cli", "--worker-name", "main_worker", "--tmp-dir", str(tmp),
             "--queues", f"{DEFAULT_QUEUE},{MAIN_QUEUE}"]  # the Redis URL comes in the environment
            + (["--concurrency", str(args.concurrency)] if args.concurrency else [])
            + ["--log-level", args.log_level],
            [sys.executable, "-m", "gunicorn", "--worker-class", f"{__package__}.web_worker.Worker", "--workers", "1",
             "--worker-connections", "4000",
             "--bind", f"{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}",
             "--timeout", "0", "--graceful-timeout", "5", "--log-level", args.log_level]
            + ([] if args.access_log.lower() == "off" else
               ["--access-logfile", args.access_log, "--access-logformat", ACCESS_FORMAT])
            + [f"{__package__}.app:create_app()"],
        ]
        here = Path(__file__).resolve().parent.parent
        for cmd in commands:
            procs.append(_spawn(cmd, env, here))
        _wait_serving(args.host, args.port, procs[1])
        print(f"segenc is up: {web_url}  (storage {tmp}, Ctrl-C stops everything)", flush=True)
        from .retention import Policy

        janitor = _Janitor(url, tmp, Policy(delete_sources=args.delete_sources, retain_days=args.retain_days))
        return _supervise(procs, commands, env, here, janitor)
    finally:
        # In order: the web stops taking uploads, the worker finishes or gives back its chunks,
        # then Redis (which the worker needs to store its results) stops last.
        for p, grace in zip(reversed(procs), (10, WORKER_STOP_SECONDS)):
            _stop(p, grace)
        remove_connection(tmp)
        if redis_server is not None:
            redis_server.stop()


def _advertise(redis_url: str, web_url: str) -> None:
    """Tell workers (through Redis) where to fetch segments and upload chunks."""
    from segenc.distributed import JobState

    JobState.from_url(redis_url).advertise(web_url)


RESTARTS_PER_MINUTE = 5
CRASH_LOOP_PAUSE = 15.0  # seconds between restarts of a child that keeps exiting
WORKER_STOP_SECONDS = 20.0  # a clean stop waits this long for running chunks, then gives them back
# What a child gets when the supervisor dies without stopping it: the worker is killed at once
# (its chunks' leases lapse and another worker takes them; a warm shutdown would wait for chunks
# that can no longer store results), the web server stops gracefully.
PDEATHSIG = {"worker": signal.SIGKILL, "web": signal.SIGTERM}


def _role(cmd: list[str]) -> str:
    return "web" if "gunicorn" in cmd else "worker"


def _spawn(cmd: list[str], env: dict, cwd: Path) -> subprocess.Popen:
    from .redis_server import child_preexec

    return subprocess.Popen(cmd, env=env, cwd=cwd, start_new_session=True,
                            preexec_fn=child_preexec(PDEATHSIG[_role(cmd)]))


class _Janitor:
    """Runs the retention sweep at start and every SWEEP_SECONDS from the supervisor's loop (one
    process per cluster, so two sweeps never race)."""

    def __init__(self, redis_url: str, tmp: Path, policy) -> None:
        from .retention import SWEEP_SECONDS

        self.redis_url, self.tmp, self.policy = redis_url, tmp, policy
        self.every = SWEEP_SECONDS
        self.next = 0.0

    def __call__(self) -> None:
        if time.monotonic() < self.next:
            return
        self.next = time.monotonic() + self.every
        from segenc.distributed import JobState

        from .retention import sweep

        try:
            removed = sweep(JobState.from_url(self.redis_url), self.tmp, self.policy)
        except Exception as exc:  # noqa: BLE001 - Redis away for a moment: the next sweep tries again
            sys.stderr.write(f"segenc: retention sweep skipped: {exc}\n")
            return
        for what, ids in removed.items():
            if ids:
                print(f"segenc: retention removed {what} of {len(ids)} job(s): {', '.join(ids[:5])}"
                      f"{' ...' if len(ids) > 5 else ''}", flush=True)


ACCESS_FORMAT = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'  # no query string: ?token= stays out of the log


def _supervise(procs: list[subprocess.Popen], commands: list[list[str]], env: dict, cwd: Path,
               janitor=None) -> int:
    """Wait for Ctrl-C/SIGTERM; a child that dies is restarted. One that keeps exiting is restarted
    every CRASH_LOOP_PAUSE seconds instead, with an error each time: the others keep serving
    (a worker crash-looping on a full disk must not take the web server down with it)."""
    stopping = {"sig": None}
    restarts: dict[int, list[float]] = {i: [] for i in range(len(procs))}
    not_before = [0.0] * len(procs)

    def on_signal(signum, frame):
        stopping["sig"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while stopping["sig"] is None:
        if janitor is not None:
            janitor()
        for i, p in enumerate(procs):
            if p.poll() is None or stopping["sig"] is not None:
                continue
            now = time.monotonic()
            if now < not_before[i]:
                continue
            recent = restarts[i] = [t for t in restarts[i] if now - t < 60] + [now]
            role = _role(commands[i])
            if len(recent) > RESTARTS_PER_MINUTE:
                not_before[i] = now + CRASH_LOOP_PAUSE
                sys.stderr.write(f"error: the {role} process keeps exiting (status {p.returncode}, "
                                 f"{len(recent)} times in a minute); next restart in {CRASH_LOOP_PAUSE:.0f} s. "
                                 f"Its log above says why.\n")
            else:
                sys.stderr.write(f"segenc: the {role} process exited ({p.returncode}); restarting\n")
            procs[i] = _spawn(commands[i], env, cwd)
        time.sleep(0.3)
    print("segenc: stopping...", flush=True)
    return 0


def _stop(p: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the child, wait up to ``timeout``, then SIGKILL its whole process group."""
    if p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # its own session: the group is its, not ours
        except ProcessLookupError:
            pass
        p.wait()


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
