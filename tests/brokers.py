"""Real brokers for the tests: a private RabbitMQ node and a Redis Sentinel, on free loopback ports.

Each RabbitMQ node has its own node name, data and log directories, Erlang port mapper (epmd on
its own port, started here so it can be stopped by pid) and configuration: nothing is shared
with a system RabbitMQ or with other test sessions.
"""

from __future__ import annotations

import glob
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from segenc.distributed.app import rabbitmq_consumer_timeout_ms
from service.redis_server import find_redis_server, free_port

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def rabbitmq_missing() -> str | None:
    """Why a RabbitMQ test cannot run here (None: it can)."""
    if not os.access(RABBITMQ_SERVER, os.X_OK):
        return f"{RABBITMQ_SERVER} is missing: install Debian's rabbitmq-server package (test.sh does, as root)"
    if not glob.glob("/usr/lib/erlang/erts-*/bin/epmd"):
        return "Erlang's epmd is missing (the rabbitmq-server package brings it)"
    return None


def _wait_port(port: int, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rabbitmq-server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"rabbitmq-server did not listen on {port} within {timeout:.0f} s: {log.read_text()[-2000:]}")


class RabbitMQ:
    """``with RabbitMQ(dir) as mq: mq.url`` -> amqp://guest:guest@127.0.0.1:PORT//"""

    def __init__(self, dir: str | os.PathLike, task_time_limit: int = 3600) -> None:
        self.dir = Path(dir)
        self.port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
        self.task_time_limit = task_time_limit
        self.procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def env(self) -> dict[str, str]:
        d = self.dir
        return dict(
            os.environ, HOME=str(d), RABBITMQ_NODENAME=f"segenc-test-{uuid.uuid4().hex[:8]}@localhost",
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1", RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port), ERL_EPMD_PORT=str(self.epmd_port), ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_MNESIA_BASE=str(d / "mnesia"), RABBITMQ_LOG_BASE=str(d / "log"),
            RABBITMQ_CONFIG_FILE=str(d / "rabbitmq.conf"), RABBITMQ_ENABLED_PLUGINS_FILE=str(d / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(d / "rabbitmq.pid"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")

    def start(self, timeout: float = 60) -> "RabbitMQ":
        self.dir.mkdir(parents=True, exist_ok=True)
        # The consumer timeout must outlast the longest task (a channel is closed otherwise);
        # guest may log in over loopback (it is bound to 127.0.0.1 only).
        (self.dir / "rabbitmq.conf").write_text(
            f"consumer_timeout = {rabbitmq_consumer_timeout_ms(self.task_time_limit)}\n"
            f"loopback_users = none\nheartbeat = 30\n")
        (self.dir / "enabled_plugins").write_text("[].\n")
        env = self.env()
        epmd = sorted(glob.glob("/usr/lib/erlang/erts-*/bin/epmd"))[-1]
        log = self.dir / "server.log"
        with open(log, "wb") as out:
            self.procs.append(subprocess.Popen([epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                                               env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
            self.procs.append(subprocess.Popen([RABBITMQ_SERVER], env=env, stdout=out, stderr=subprocess.STDOUT,
                                               start_new_session=True))
        _wait_port(self.port, timeout, self.procs[-1], log)
        return self

    def stop(self) -> None:
        """Stop the node (its session: the shell wrapper and beam), then its epmd."""
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        self.procs.clear()

    def __enter__(self) -> "RabbitMQ":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Sentinel:
    """One Redis Sentinel watching the master at ``master_port`` (set name ``master``)."""

    def __init__(self, dir: str | os.PathLike, master_port: int, password: str | None, master: str = "segenc") -> None:
        self.dir, self.master_port, self.password, self.master = Path(dir), master_port, password, master
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        cred = f":{self.password}@" if self.password else ""
        return f"sentinel://{cred}127.0.0.1:{self.port}/{db}?master={self.master}"

    def start(self, timeout: float = 15) -> "Sentinel":
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "sentinel.conf"
        lines = [f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}",
                 f"sentinel monitor {self.master} 127.0.0.1 {self.master_port} 1"]
        if self.password:
            lines.append(f"sentinel auth-pass {self.master} {self.password}")
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([find_redis_server(), str(conf), "--sentinel"], stdout=open(self.dir / "log", "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        import redis

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port).sentinel_get_master_addr_by_name(self.master):
                    return self
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"sentinel on {self.port} did not come up: {(self.dir / 'log').read_text()[-1000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def __enter__(self) -> "Sentinel":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["RabbitMQ", "Sentinel", "rabbitmq_missing"]
