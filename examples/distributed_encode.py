"""Encode a file on the cluster's Celery workers and follow its progress.

Start a main instance first (``python3 start_service.py --tmp-dir /tmp/encoder``), then:

    python examples/distributed_encode.py INPUT OUT_DIR [/tmp/encoder]
"""

import sys

import segenc
from segenc.distributed import CeleryRunner
from service.cluster import read_connection

storage = sys.argv[3] if len(sys.argv) > 3 else "/tmp/encoder"
url = (read_connection(storage) or {}).get("redis_url")
if not url:
    sys.exit(f"no main instance on {storage}: start one with python3 start_service.py --tmp-dir {storage}")

tracker = segenc.Tracker()


def show(event):
    tracker.update(event)
    snap = tracker.snapshot()
    print(f"\r{snap['stage']:<14} {snap['progress'] * 100:5.1f}%  workers: {', '.join(snap['workers'])}",
          end="", flush=True)


result = segenc.encode(sys.argv[1], sys.argv[2], runner=CeleryRunner(url, storage), on_progress=show)
print()
for r in result.renditions:
    print(f"{r.name}: {r.width}x{r.height}, {r.frames} frames, {r.bytes} bytes")
