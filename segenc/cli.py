"""Command line: ``segenc encode``, ``segenc probe`` and ``segenc presets``.

Exit status: 0 success, 2 bad input (one ``error:`` line on stderr), 1 any other failure,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .errors import InputError, SegencError
from .model import DEFAULT_LADDER
from .presets import PRESETS, OptionError, job_options, listing
from .progress import ProgressEvent, Tracker
from .settings import CODECS, GRANULARITIES


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        return _fail(str(exc), 2)
    except SegencError as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def _fail(msg: str, code: int) -> int:
    sys.stderr.write(f"error: {' '.join(msg.split())}\n")
    return code


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="segenc", description="Segment-parallel H.264/HEVC/AV1 ladder encoder.")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("encode", help="encode a video to an H.264, HEVC or AV1 ladder",
                       description="Encode INPUT to OUT_DIR/<quality>.mp4 for each rung, plus manifest.json.")
    e.add_argument("input")
    e.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="output directory")
    e.add_argument("--ladder", default=None,
                   help=f"comma-separated rungs, <height>p with an optional peak-rate cap @RATE[:BUFFER] "
                        f"(buffer 2x unless given), e.g. 480p@1200k,720p@2800k,1080p@5M "
                        f"(default {','.join(DEFAULT_LADDER)}, no caps)")
    e.add_argument("--chunk-seconds", type=float, default=None,
                   help="target segment length in seconds (default: automatic, 2-10 s, balanced for the workers)")
    e.add_argument("--granularity", choices=GRANULARITIES, default=None,
                   help="segment: one task per segment decodes it once for every rung (default); "
                        "rendition: one task per segment x rung (finer, decodes each segment per rung)")
    e.add_argument("--workers", type=int, default=None, help="local worker processes (default: all cores)")
    e.add_argument("--preset", default=None,
                   help=f"a named preset ({', '.join(PRESETS)}: see 'segenc presets') or an encoder speed "
                        f"(ultrafast .. placebo; default veryfast); other options override the preset's")
    e.add_argument("--codec", default=None, help=f"{', '.join(CODECS)} (default h264)")
    e.add_argument("--crf", default=None, help="constant rate factor, may be fractional: 0-51, av1 0-63 (default 23)")
    e.add_argument("--gop", default=None, metavar="SECONDS",
                   help="an IDR at every multiple of this many seconds, the same in every rung (default 2)")
    e.add_argument("--audio-bitrate", default=None, metavar="RATE", help="AAC bit rate such as 128k (default 128k)")
    e.add_argument("--no-audio", action="store_true", help="leave the audio track out")
    e.add_argument("--broker", default=None, metavar="URL",
                   help="run the chunks on Celery workers through this broker instead of locally: a Redis "
                        "(redis://, rediss://, sentinel://...) or RabbitMQ (amqp://, with --state-url)")
    e.add_argument("--state-url", default=None, metavar="REDIS_URL",
                   help="with --broker: the Redis for job state and results (default: the broker, if a Redis)")
    e.add_argument("--storage", default=None, metavar="DIR",
                   help="with --broker: the storage root shared with the workers")
    e.add_argument("--quiet", action="store_true", help="no progress output")
    e.set_defaults(func=_encode)
    pr = sub.add_parser("probe", help="print what segenc sees in a file, as JSON")
    pr.add_argument("input")
    pr.set_defaults(func=_probe)
    ps = sub.add_parser("presets", help="list the named presets")
    ps.set_defaults(func=_presets)
    return p


def _presets(args) -> int:
    print(listing())
    return 0


def _probe(args) -> int:
    from .probe import probe

    print(json.dumps(probe(args.input).summary(), indent=2))
    return 0


def _encode(args) -> int:
    from .pipeline import encode

    try:
        settings, ladder = job_options({"preset": args.preset, "codec": args.codec, "crf": args.crf, "gop": args.gop,
                                        "ladder": args.ladder, "audio_bitrate": args.audio_bitrate,
                                        "audio": False if args.no_audio else None})
        settings = settings.with_(chunk_seconds=args.chunk_seconds, granularity=args.granularity)
    except OptionError as exc:
        return _fail("--" + str(exc).replace("_", "-", 1) if exc.field else str(exc), 2)
    except ValueError as exc:
        return _fail(str(exc), 2)
    runner = None
    if args.broker:
        from .distributed.runner import CeleryRunner

        if not args.storage:
            return _fail("--broker needs --storage DIR: the storage root the workers share", 2)
        from .distributed.brokers import BrokerURLError

        try:
            runner = CeleryRunner(args.broker, args.storage, state_url=args.state_url)
        except BrokerURLError as exc:
            return _fail(str(exc), 2)
    bar = None if args.quiet else ProgressBar(sys.stderr)
    result = encode(args.input, args.out, ladder, workers=args.workers, settings=settings,
                    on_progress=bar, runner=runner)
    if bar:
        bar.close()
    for r in result.renditions:
        print(f"{os.path.join(result.out_dir, r.path)}  {r.width}x{r.height}  {r.frames} frames  "
              f"{r.bytes / 1e6:.2f} MB  {r.bitrate / 1000:.0f} kb/s")
    print(f"{result.manifest}  ({result.timings.get('total', 0):.1f} s)")
    return 0


class ProgressBar:
    """One bar per rendition with fps and ETA, redrawn in place on a TTY; quiet lines otherwise."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.tracker: Tracker | None = None
        self.lines = 0
        self.last = 0.0
        self.stage = None

    def __call__(self, ev: ProgressEvent) -> None:
        if self.tracker is None:
            self.tracker = Tracker(job_id=ev.job_id)
        self.tracker.update(ev)
        now = time.monotonic()
        if ev.kind == "stage" and ev.stage != self.stage:
            self.stage = ev.stage
            self._draw(force=True)
        elif self.tty and now - self.last > 0.1:
            self._draw()
            self.last = now

    def _draw(self, force: bool = False) -> None:
        if not self.tty or self.tracker is None:
            return
        snap = self.tracker.snapshot()
        rows = [f"{snap['stage']:<14}"]
        for name, r in snap["renditions"].items():
            frac = r["progress"]
            fill = int(frac * 30)
            rows.append(f"  {name:>6} [{'#' * fill}{'.' * (30 - fill)}] {frac * 100:5.1f}%  "
                        f"{r['frames_done']}/{r['frames_total']}")
        fps = f"{snap['fps']:.0f} fps" if snap["fps"] else ""
        eta = f"ETA {int(snap['eta']) // 60}:{int(snap['eta']) % 60:02d}" if snap["eta"] is not None else ""
        rows[0] += f" {fps:>10}  {eta}"
        out = ("\x1b[F" * self.lines) + "".join(f"\x1b[2K{r}\n" for r in rows)
        self.lines = len(rows)
        self.stream.write(out)
        self.stream.flush()

    def close(self) -> None:
        self._draw(force=True)


def entry() -> None:
    sys.exit(main())
