"""Encode a file with a progress callback that prints per-rendition progress.

    python examples/encode_with_progress.py INPUT OUT_DIR
"""

import sys

import segenc

tracker = segenc.Tracker()


def on_progress(event: segenc.ProgressEvent) -> None:
    tracker.update(event)
    snap = tracker.snapshot()
    bars = "  ".join(f"{q} {r['progress'] * 100:5.1f}%" for q, r in snap["renditions"].items())
    print(f"\r{snap['stage']:<14} {bars}", end="", flush=True)


if __name__ == "__main__":
    result = segenc.encode(sys.argv[1], sys.argv[2], on_progress=on_progress)
    print()
    for r in result.renditions:
        print(f"{r.name}: {r.width}x{r.height}, {r.frames} frames, {r.bytes} bytes")
