"""Start, watch and stop segenc's own processes: a main instance or a worker node.

Shared by the tests and the benchmarks, so "start an instance and wait until it is up" is
written once. Each process is ``start_service.py`` in a session (process group) of its own,
logging to a file:

    with MainInstance(tmp / "encoder") as main:          # /healthz 200 and a worker online
        with main.worker("w1", tmp / "elsewhere") as w:  # its heartbeat in Redis
            ...

``stop()`` sends SIGTERM to the whole group (as Ctrl-C reaches every process of a terminal's
job: the supervisor, its Celery worker, gunicorn and redis-server), waits a bounded time for
the group to empty and then SIGKILLs what is left; ``kill()`` SIGKILLs the group at once;
``restart()`` is stop + start + wait_online. Only the processes this object started are ever
signalled. No test framework and no HTTP library (urllib); a worker's heartbeat is read through
``segenc.distributed.state.JobState``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable, Mapping

from .redis_server import free_port

REPO = Path(__file__).resolve().parent.parent
START_SERVICE = REPO / "start_service.py"
# Inherited settings that would point a test or benchmark process at someone else's cluster.
SCRUBBED_ENV = ("SEGENC_API_TOKEN", "SEGENC_REDIS_URL", "SEGENC_CLUSTER_SECRET", "SEGENC_BROKER_URL",
                "SEGENC_STATE_URL")


class StartupError(RuntimeError):
    """A process exited or did not come online in time; the message ends with its log's tail."""


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc), children before grandchildren."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        parent[int(entry)] = int(stat[stat.rindex(b")") + 2:].split()[1])
    out, frontier = [], [pid]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier]
        out += kids
        frontier = kids
    return out


class Process:
    """One ``start_service.py`` process and its group. Subclasses define ``online()``."""

    kind = "process"

    def __init__(self, argv: list[str], *, log: str | os.PathLike, env: Mapping[str, str] | None = None,
                 prefix: Iterable[str] = (), startup_timeout: float = 90.0, stop_timeout: float = 30.0) -> None:
        self.argv = [str(a) for a in argv]
        self.prefix = [str(a) for a in prefix]  # e.g. ["ip", "netns", "exec", NS]: must exec, not fork
        self.log = Path(log)
        self.env = {k: v for k, v in (os.environ if env is None else env).items() if k not in SCRUBBED_ENV}
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen | None = None
        self._ended = False  # stop()/kill() saw the whole group gone: never signal that id again

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> "Process":
        if self.running:
            return self
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.prefix + self.argv, cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self._ended = False
        return self

    def online(self) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def wait_online(self, timeout: float | None = None) -> "Process":
        """Block until ``online()``; StartupError if the process exits or ``timeout`` passes."""
        deadline = time.monotonic() + (self.startup_timeout if timeout is None else timeout)
        while True:
            if self.proc is None:
                raise StartupError(f"{self} was never started")
            if self.proc.poll() is not None:
                raise StartupError(f"{self} exited ({self.proc.returncode}) before coming online:\n{self.log_tail()}")
            try:
                if self.online():
                    return self
            except Exception:  # not answering yet (connection refused, Redis not up, ...)
                pass
            if time.monotonic() > deadline:
                raise StartupError(f"{self} did not come online within {timeout or self.startup_timeout:g} s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.2)

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM to the group, wait up to ``timeout`` for all of it to exit, then SIGKILL the rest.
        Returns the leader's exit status (None if it was never started)."""
        if self.proc is None or self._ended:
            return None if self.proc is None else self.proc.returncode
        deadline = time.monotonic() + (self.stop_timeout if timeout is None else timeout)
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.proc.poll() is None or self._group_alive():
            return self.kill()
        self._ended = True
        return self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL the whole group now (a crash, as far as the processes can tell)."""
        if self.proc is None or self._ended:
            return None if self.proc is None else self.proc.returncode
        self._signal_group(signal.SIGKILL)
        self.proc.wait()
        deadline = time.monotonic() + 10
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._ended = not self._group_alive()
        return self.proc.returncode

    def restart(self, timeout: float | None = None) -> "Process":
        self.stop()
        self.proc = None
        return self.start().wait_online(timeout)

    def _signal_group(self, sig: int) -> None:
        # start_new_session: the leader's pid is the group id, and stays it while any member lives.
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover - the id was reused by someone else's group
            return False

    # -- inspection --------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def children(self) -> list[int]:
        """Pids of every live descendant (a worker's pool processes, the main instance's children)."""
        return _descendants(self.proc.pid) if self.running else []

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> "Process":
        self.start()
        try:
            return self.wait_online()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{self.kind} pid {self.pid}, log {self.log}>"


class MainInstance(Process):
    """``start_service.py --port P --tmp-dir D``: its own redis-server, main worker and web server.

    Online when ``/healthz`` answers 200 and (``wait_for_worker``) its worker's heartbeat is in.
    The connection file goes to ``runtime_dir`` (default ``<tmp_dir>-runtime`` beside ``tmp_dir``),
    never to the user's own runtime directory."""

    kind = "main instance"

    def __init__(self, tmp_dir: str | os.PathLike, *, port: int | None = None, host: str = "127.0.0.1",
                 token: str | None = None, concurrency: int | None = None, max_upload_mb: int | None = None,
                 runtime_dir: str | os.PathLike | None = None, args: Iterable[str] = (),
                 log: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
                 wait_for_worker: bool = True, **kw) -> None:
        self.tmp_dir = Path(tmp_dir)
        self.host, self.port = host, port or free_port(host)
        self.token = token
        self.wait_for_worker = wait_for_worker
        self.runtime_dir = Path(runtime_dir) if runtime_dir else self.tmp_dir.parent / f"{self.tmp_dir.name}-runtime"
        argv = [sys.executable, START_SERVICE, "--port", self.port, "--tmp-dir", self.tmp_dir, "--redis-port", "0"]
        if concurrency:
            argv += ["--concurrency", concurrency]
        if token:
            argv += ["--api-token", token]
        if max_upload_mb:
            argv += ["--max-upload-mb", max_upload_mb]
        super().__init__(argv + list(args),
                         log=log or self.tmp_dir.parent / f"{self.tmp_dir.name}-service-{self.port}.log", env=env, **kw)
        self.env["SEGENC_RUNTIME_DIR"] = str(self.runtime_dir)

    @property
    def url(self) -> str:
        return f"http://{'[' + self.host + ']' if ':' in self.host else self.host}:{self.port}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get_json(self, path: str, timeout: float = 10) -> tuple[int, object]:
        """(status, parsed body) of ``GET path`` with the API token."""
        req = urllib.request.Request(self.url + path, headers=self.headers())
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                return e.code, json.loads(body or b"null")
            except ValueError:
                return e.code, body.decode(errors="replace")

    def connection(self) -> dict:
        """The connection file the instance wrote (redis_url, cluster_secret, web_url)."""
        return json.loads((self.tmp_dir / "cluster.json").read_text())

    @property
    def redis_url(self) -> str:
        return self.connection()["redis_url"]

    def workers_online(self) -> set[str]:
        status, body = self.get_json("/api/workers")
        return {w["name"] for w in body["workers"] if w["online"]} if status == 200 else set()

    def online(self) -> bool:
        if self.get_json("/healthz", timeout=2)[0] != 200:
            return False
        return not self.wait_for_worker or bool(self.workers_online())

    def worker(self, name: str, tmp_dir: str | os.PathLike | None = None, **kw) -> "WorkerNode":
        """A worker node for this instance: on its tmp dir (shared storage) unless given another;
        it finds the instance through the connection file, as a worker on this host would."""
        env = dict(self.env)
        env.update(kw.pop("env", None) or {})
        return WorkerNode(name, tmp_dir or self.tmp_dir, main=self, env=env, **kw)


class WorkerNode(Process):
    """``start_service.py --worker-name N --tmp-dir D [--redis-url U]``: one Celery worker node.

    Online when its heartbeat (written by this process or one of its descendants) is in Redis
    (``redis_url``, else the main instance's) and, with ``ping=True``, the node also answers a
    Celery ping, so its consumer is taking tasks (what latency figures need)."""

    kind = "worker"

    def __init__(self, name: str, tmp_dir: str | os.PathLike, *, redis_url: str | None = None,
                 concurrency: int | None = 1, main: MainInstance | None = None, ping: bool = False,
                 args: Iterable[str] = (), log: str | os.PathLike | None = None,
                 env: Mapping[str, str] | None = None, broker_url: str | None = None, **kw) -> None:
        self.name, self.tmp_dir = name, Path(tmp_dir)
        self.redis_url, self.main, self.ping, self.broker_url = redis_url, main, ping, broker_url
        argv = [sys.executable, START_SERVICE, "--worker-name", name, "--tmp-dir", self.tmp_dir]
        if redis_url:
            argv += ["--redis-url", redis_url]
        if broker_url:
            argv += ["--broker-url", broker_url]
        if concurrency:
            argv += ["--concurrency", concurrency]
        super().__init__(argv + list(args), log=log or self.tmp_dir.parent / f"{self.tmp_dir.name}-worker-{name}.log",
                         env=env, **kw)
        self._state = None
        self._app = None

    def __repr__(self) -> str:
        return f"<worker {self.name} pid {self.pid}, log {self.log}>"

    def _url(self) -> str:
        if self.redis_url:
            return self.redis_url
        if self.main is not None:
            return self.main.redis_url
        raise StartupError(f"{self}: no redis_url and no main instance to watch its heartbeat through")

    def online(self) -> bool:
        if self._state is None:
            from segenc.distributed.state import JobState

            self._state = JobState.from_url(self._url())
        beat = self._state.workers().get(self.name)
        # A killed predecessor's heartbeat outlives it: only ours counts.
        pid = int((beat or {}).get("pid") or 0)
        if not pid or (pid != self.pid and pid not in self.children()):
            return False
        if self.ping:
            if self._app is None:
                from segenc.distributed import make_app

                self._app = make_app(self.broker_url or self._url(), state_url=self._url())
            replies = self._app.control.inspect(timeout=1).ping() or {}
            return any(node.startswith(self.name + "@") for node in replies)
        return True

    def start(self) -> "WorkerNode":
        self._state = None
        return super().start()


def start_all(procs: Iterable[Process], timeout: float | None = None) -> None:
    """Start every process first (they come up in parallel), then wait for each to be online."""
    procs = list(procs)
    for p in procs:
        p.start()
    for p in procs:
        p.wait_online(timeout)


def stop_all(procs: Iterable[Process], timeout: float | None = None) -> None:
    """Stop every process, last started first."""
    for p in reversed(list(procs)):
        p.stop(timeout)
