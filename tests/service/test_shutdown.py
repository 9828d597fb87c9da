"""A clean stop with a page open (a live WebSocket) is quick and its log is honest: the WebSocket
is closed as going away (1001), the web worker exits on its own, and nothing logs a SIGKILL,
an error or a traceback."""

from __future__ import annotations

import time

import pytest
import websocket

from tests.service.conftest import running_instance

pytestmark = [pytest.mark.service, pytest.mark.timeout(120)]


def test_clean_stop_with_an_open_websocket_logs_no_kill(tmp_path):
    with running_instance(tmp_path / "encoder") as inst:
        ws = websocket.create_connection(inst.url.replace("http", "ws", 1) + "/ws", timeout=10)
        assert ws.recv()  # the workers message: the connection is live
        t = time.monotonic()
        status = inst.stop()
        took = time.monotonic() - t
        log = inst.log.read_text(errors="replace")
        frames = []
        try:
            while True:
                op, data = ws.recv_data(control_frame=True)
                frames.append((op, data))
                if op == websocket.ABNF.OPCODE_CLOSE:
                    break
        except (websocket.WebSocketConnectionClosedException, OSError):
            pass
    assert status == 0, log[-3000:]
    stop_log = log[log.index("segenc: stopping"):]
    for bad in ("SIGKILL", "out of memory", "[ERROR]", "Traceback", "graceful timeout"):
        assert bad not in stop_log, stop_log
    assert any(op == websocket.ABNF.OPCODE_CLOSE and data[:2] == (1001).to_bytes(2, "big") for op, data in frames), frames
    assert took < 15, took
