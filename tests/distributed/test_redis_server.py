"""Tests for service.redis_server against a REAL redis-server process."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.redis_server import (
    PortInUseError,
    RedisServer,
    RedisServerError,
    find_redis_server,
    free_port,
    redis_server_version,
)

pytestmark = pytest.mark.dist


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # Still in the process table: treat a zombie as dead.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def server(tmp_path):
    srv = RedisServer(tmp_path / "redis")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_find_redis_server_and_version():
    exe = find_redis_server()
    assert os.access(exe, os.X_OK)
    major, minor, _ = redis_server_version(exe)
    assert (major, minor) >= (6, 2)


def test_free_port_is_bindable():
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_files_and_config(server):
    d = server.dir
    assert server.conf_path == d / "redis.conf"
    assert server.log_path == d / "redis.log"
    assert server.rdb_path == d / "redis.rdb"
    assert server.conf_path.is_file()
    assert stat.S_IMODE(server.conf_path.stat().st_mode) == 0o600
    assert server.log_path.is_file()
    assert server.log_path.stat().st_size > 0
    assert server.aof_path.exists()
    if server.version >= (7, 0, 0):
        assert server.aof_path == d / "appendonlydir"
        assert server.aof_path.is_dir()
    else:
        assert server.aof_path == d / "appendonly.aof"
        assert server.aof_path.is_file()

    conf = server.conf_path.read_text()
    assert "bind 127.0.0.1\n" in conf
    assert f"port {server.port}\n" in conf
    assert f'requirepass "{server.password}"\n' in conf
    assert "appendonly yes\n" in conf
    assert "appendfsync everysec\n" in conf
    assert "maxmemory-policy noeviction\n" in conf
    assert "daemonize no\n" in conf
    assert ("appenddirname" in conf) == (server.version >= (7, 0, 0))

    # The running server really uses those settings (read through INFO: CONFIG is disabled).
    c = server.client(decode_responses=True)
    assert c.info("server")["config_file"] == str(server.conf_path)
    assert c.info("persistence")["aof_enabled"] == 1
    assert c.info("memory")["maxmemory_policy"] == "noeviction"
    c.bgsave()
    deadline = time.monotonic() + 10
    while c.info("persistence")["rdb_bgsave_in_progress"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.rdb_path.is_file()  # dir + dbfilename
    # Whoever has the password still cannot rewrite the server's files, load code or stop it.
    for command in (("CONFIG", "SET", "dir", "/"), ("CONFIG", "GET", "dir"), ("DEBUG", "SLEEP", "0"),
                    ("MODULE", "LIST"), ("REPLICAOF", "NO", "ONE"), ("SHUTDOWN", "NOSAVE")):
        with pytest.raises(redis.ResponseError, match="unknown command"):
            c.execute_command(*command)
    # Its files are this user's only.
    for f in (server.conf_path, server.log_path, server.rdb_path):
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f
    c.close()


def test_url_and_pid(server):
    assert server.url == f"redis://:{server.password}@127.0.0.1:{server.port}/0"
    assert server.pid is not None and _pid_alive(server.pid)
    assert server.running
    c = redis.Redis.from_url(server.url)
    assert c.ping()
    assert c.info("server")["process_id"] == server.pid
    c.close()


def test_password_required(server):
    # No retries: redis-py would otherwise retry the failed AUTH with backoff.
    anon = redis.Redis(
        host=server.host, port=server.port, socket_timeout=5, retry=Retry(NoBackoff(), 0)
    )
    with pytest.raises((redis.AuthenticationError, redis.ResponseError)) as ei:
        anon.set("k", "v")
    assert isinstance(ei.value, redis.AuthenticationError) or "NOAUTH" in str(ei.value)
    anon.close()

    wrong = redis.Redis(
        host=server.host,
        port=server.port,
        password="wrong",
        socket_timeout=5,
        retry=Retry(NoBackoff(), 0),
    )
    with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
        wrong.ping()
    wrong.close()


def test_set_get_with_password(server):
    c = server.client()
    assert c.set("greeting", "hello")
    assert c.get("greeting") == b"hello"
    c.close()


def test_data_survives_restart(tmp_path):
    d = tmp_path / "redis"
    srv = RedisServer(d, password="s3cret pass\"with'quotes")
    srv.start()
    try:
        c = redis.Redis.from_url(srv.url)
        c.set("persist", "yes")
        c.rpush("queue", "a", "b", "c")
        c.close()
    finally:
        srv.stop()
    assert srv.pid is None and not srv.running

    # Same object: same port, same password; data comes back from disk.
    srv.start()
    try:
        c = srv.client()
        assert c.get("persist") == b"yes"
        assert c.lrange("queue", 0, -1) == [b"a", b"b", b"c"]
        c.close()
    finally:
        srv.stop()

    # A new manager on the same directory (new password) sees the data too.
    with RedisServer(d) as srv2:
        c = srv2.client()
        assert c.get("persist") == b"yes"
        c.close()


def test_stop_ends_process(tmp_path):
    srv = RedisServer(tmp_path)
    srv.start()
    pid = srv.pid
    assert _pid_alive(pid)
    srv.stop()
    assert not _pid_alive(pid)
    assert srv.pid is None
    srv.stop()  # idempotent


def test_context_manager(tmp_path):
    with RedisServer(tmp_path) as srv:
        pid = srv.pid
        assert srv.client().ping()
    assert not _pid_alive(pid)


def test_port_in_use_error(tmp_path):
    with socket.socket() as occupier:
        occupier.bind(("127.0.0.1", 0))
        occupier.listen(1)
        port = occupier.getsockname()[1]
        srv = RedisServer(tmp_path, port=port)
        with pytest.raises(PortInUseError) as ei:
            srv.start()
        assert f"port {port} on 127.0.0.1 is already in use" in str(ei.value)
        assert "--redis-url" in str(ei.value)
        assert isinstance(ei.value, RuntimeError)
        assert srv.pid is None
        # Nothing was started, not even the config written.
        assert not (tmp_path / "redis.conf").exists()


def test_port_bound_not_listening(tmp_path):
    with socket.socket() as occupier:
        occupier.bind(("127.0.0.1", 0))
        port = occupier.getsockname()[1]
        with pytest.raises(PortInUseError):
            RedisServer(tmp_path, port=port).start()


def test_port_in_use_by_another_redis(server, tmp_path):
    with pytest.raises(PortInUseError):
        RedisServer(tmp_path / "other", port=server.port).start()


def test_startup_failure_reports_log(tmp_path):
    # A bogus directive makes redis exit at once; the error must show why.
    srv = RedisServer(tmp_path)
    orig = srv.config_text
    srv.config_text = lambda: orig() + "this-is-not-a-directive yes\n"
    with pytest.raises(RedisServerError) as ei:
        srv.start(timeout=10)
    msg = str(ei.value)
    assert "exited with code" in msg
    assert "this-is-not-a-directive" in msg or "Bad directive" in msg
    assert srv.pid is None


def test_child_dies_with_parent(tmp_path):
    """PR_SET_PDEATHSIG: redis gets SIGTERM when its parent process dies."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    pidfile = tmp_path / "pid"
    script = textwrap.dedent(
        f"""
        import os, sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from service.redis_server import RedisServer
        srv = RedisServer({str(tmp_path / "redis")!r})
        srv.start()
        with open({str(pidfile)!r}, "w") as fh:
            fh.write(str(srv.pid))
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text()):
            assert parent.poll() is None, "helper died"
            assert time.monotonic() < deadline, "helper did not start redis"
            time.sleep(0.05)
        redis_pid = int(pidfile.read_text())
        assert _pid_alive(redis_pid)
    finally:
        parent.send_signal(signal.SIGKILL)  # the process we started
        parent.wait()
    deadline = time.monotonic() + 10
    while _pid_alive(redis_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(redis_pid)


@pytest.mark.parametrize(
    "version, v7",
    [((6, 2, 14), False), ((7, 0, 15), True), ((7, 2, 4), True), ((8, 0, 2), True)],
)
def test_config_directives_follow_version(tmp_path, monkeypatch, version, v7):
    import service.redis_server as rs

    monkeypatch.setattr(rs, "redis_server_version", lambda exe: version)
    srv = RedisServer(tmp_path, executable="/nonexistent/redis-server")
    conf = srv.config_text()
    assert ('appenddirname "appendonlydir"' in conf) == v7
    assert ("enable-debug-command no" in conf) == v7
    assert srv.aof_path == tmp_path / ("appendonlydir" if v7 else "appendonly.aof")
    for line in conf.splitlines():
        # Redis 6.2 only accepts one "save <seconds> <changes>" pair per line.
        if line.startswith("save "):
            assert len(line.split()) == 3


def test_password_is_quoted_in_url_and_config(tmp_path):
    pw = 'p@ss w:rd/"\\#'
    with RedisServer(tmp_path, password=pw) as srv:
        assert "p%40ss%20w%3Ard%2F%22%5C%23" in srv.url
        c = redis.Redis.from_url(srv.url)
        assert c.ping()
        c.close()
