"""The watchdog against a real redis-server and kombu's own unacked bookkeeping."""

from __future__ import annotations

import time
import uuid

from segenc.distributed import make_app
from segenc.distributed.tasks import celery_id
from segenc.distributed.watchdog import GRACE_SECONDS, sweep


def test_a_task_just_marked_done_is_not_requeued_while_its_worker_acknowledges(redis_server, job_state):
    """Between releasing its lease and acknowledging its message a healthy worker holds a done,
    unleased, long-delivered message. That is no lost task: the watchdog leaves it (it used to
    hand it back, and a healthy job showed a spurious requeue). Once the message is still there
    GRACE_SECONDS after the done mark, its worker died before acknowledging: it goes back."""
    app = make_app(redis_server.url)
    job_id, queue = str(uuid.uuid4()), f"test-watchdog-{uuid.uuid4().hex[:8]}"
    job_state.create(job_id, stage="encoding")
    app.send_task("segenc.encode_chunk", args=([{"chunk_id": "s0000-240p"}],), task_id=celery_id(job_id, "s0000"),
                  queue=queue)
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        delivered = channel.basic_get(queue, no_ack=False)  # delivered, not acknowledged: in kombu's unacked
        assert delivered is not None
        tag = delivered.delivery_tag
        t0 = time.time()
        channel.client.zadd(channel.unacked_index_key, {tag: t0 - 60})  # delivered a minute ago (a long chunk)
        job_state.mark_done(job_id, "s0000", [])
        try:
            assert sweep(app, job_state, now=t0 + 0.5) == []
            assert channel.client.hexists(channel.unacked_key, tag)
            assert job_state.snapshot(job_id).get("requeued", []) == []

            requeued = sweep(app, job_state, now=t0 + GRACE_SECONDS + 1)
            assert [r["task_id"] for r in requeued] == [celery_id(job_id, "s0000")]
            assert requeued[0]["chunks"] == ["s0000-240p"] and "nothing left to do" in requeued[0]["reason"]
            assert not channel.client.hexists(channel.unacked_key, tag)
            again = channel.basic_get(queue, no_ack=True)  # back in its queue, to be skipped
            assert again is not None and again.headers["id"] == celery_id(job_id, "s0000")
        finally:
            channel.queue_delete(queue)
            job_state.delete(job_id)
