"""Command line: ``segenc encode``, ``segenc probe`` and ``segenc presets``.

Every failure is one ``error:`` line on stderr, never a traceback. Exit status:

    0    success
    1    the encode itself failed (an encoder error, a failed distributed job)
    2    bad input or arguments: an unknown option or value, a file that is not a video, an output
         that exists (without -y), ``-o NAME.mp4`` with more than one rung
    3    the environment: the output cannot be written (permissions, read-only, disk full), the
         broker cannot be reached
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import re
import sys
import tempfile
import time
from pathlib import Path

from . import __version__, layout
from .errors import InputError, SegencError, StorageFullError, UsageError
from .model import DEFAULT_LADDER, is_rung_name
from .presets import PRESETS, OptionError, job_options, listing
from .progress import ProgressEvent, Tracker
from .settings import CODECS, GRANULARITIES


EXIT_FAILED, EXIT_USAGE, EXIT_ENVIRONMENT, EXIT_INTERRUPTED = 1, 2, 3, 130


class EnvironmentProblem(Exception):
    """Not the user's input nor segenc's fault: the machine (permissions, disk, broker). Exit 3."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (``sys.argv[1:]`` if None).

    Returns:
        int: the exit status (see the module docstring).
    """
    try:
        args = _parser().parse_args(argv)
        return args.func(args)
    except _ArgumentError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (UsageError, InputError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (EnvironmentProblem, StorageFullError) as exc:
        return _fail(str(exc), EXIT_ENVIRONMENT)
    except SegencError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return _fail(f"{where}{exc.strerror or exc}", EXIT_ENVIRONMENT)
    except Exception as exc:  # noqa: BLE001 - a broker client's errors, named without a traceback
        if _is_connection_error(exc):
            return _fail(f"cannot reach the broker: {exc}", EXIT_ENVIRONMENT)
        return _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)


def _is_connection_error(exc: BaseException | None) -> bool:
    """Redis' and kombu's connection errors are not OSErrors: know them by name, anywhere in the chain."""
    for _ in range(10):
        if exc is None:
            return False
        names = [c.__name__ for c in type(exc).__mro__]
        if isinstance(exc, ConnectionError) or "ConnectionError" in names or "OperationalError" in names:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _fail(msg: str, code: int) -> int:
    sys.stderr.write(f"error: {' '.join(msg.split())}\n")
    return code


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one ``error:`` line (exit 2) instead of usage + message."""

    def error(self, message: str):  # type: ignore[override]
        raise _ArgumentError(f"{message} (see '{self.prog} --help')")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="segenc", description="Segment-parallel H.264/HEVC/AV1 ladder encoder.",
                epilog="exit status: 0 ok, 1 the encode failed, 2 bad input or arguments, "
                       "3 environment (output not writable, disk full, broker unreachable), 130 interrupted")
    p.add_argument("--version", action="version", version=f"segenc {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    e = sub.add_parser("encode", help="encode a video to an H.264, HEVC or AV1 ladder",
                       description="Encode INPUT to OUT_DIR/<quality>.mp4 for each rung, plus manifest.json.")
    e.add_argument("input")
    e.add_argument("-o", "--out", required=True, metavar="OUT",
                   help="output directory; or NAME.mp4 with a one-rung ladder to write that one file")
    e.add_argument("-y", "--overwrite", action="store_true",
                   help="replace an existing output (a non-empty directory: its old renditions are removed)")
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
    if args.workers is not None and args.workers < 1:
        return _fail(f"--workers: {args.workers} is not allowed; give 1 or more", 2)
    if not os.path.isfile(args.input):
        return _fail(f"{args.input}: no such file", 2)
    out = Path(args.out).absolute()
    single = out.suffix.lower() == ".mp4"
    _check_output(out, single, ladder, args.overwrite)
    runner = None
    if args.broker:
        if not args.storage:
            return _fail("--broker needs --storage DIR: the storage root the workers share", 2)
        runner = _broker_runner(args.broker, args.storage, args.state_url)
    if single:
        out.parent.mkdir(parents=True, exist_ok=True)
    bar = None if args.quiet else ProgressBar(sys.stderr)
    staging = Path(tempfile.mkdtemp(prefix=".segenc-out-", dir=out.parent)) if single else None
    try:
        result = encode(args.input, staging or out, ladder, workers=args.workers, settings=settings,
                        on_progress=bar, runner=runner)
        if bar:
            bar.close()
        if staging is not None:
            os.replace(staging / result.renditions[0].path, out)
            r = result.renditions[0]
            print(f"{out}  {r.width}x{r.height}  {r.frames} frames  {r.bytes / 1e6:.2f} MB  "
                  f"{r.bitrate / 1000:.0f} kb/s  ({result.timings.get('total', 0):.1f} s)")
            return 0
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    if args.overwrite:
        _remove_stale(out, {r.path for r in result.renditions})
    for r in result.renditions:
        print(f"{os.path.join(result.out_dir, r.path)}  {r.width}x{r.height}  {r.frames} frames  "
              f"{r.bytes / 1e6:.2f} MB  {r.bitrate / 1000:.0f} kb/s")
    print(f"{result.manifest}  ({result.timings.get('total', 0):.1f} s)")
    return 0


def _check_output(out: Path, single: bool, ladder: tuple[str, ...], overwrite: bool) -> None:
    """Refuse an output we would clobber or cannot write, before any work is done."""
    if single:
        if len(ladder) != 1:
            raise UsageError(f"-o {out.name} writes one file, but the ladder has {len(ladder)} rungs "
                             f"({','.join(ladder)}): give one rung (e.g. --ladder 720p) or an output directory")
        if out.is_dir():
            raise UsageError(f"{out} is a directory; an .mp4 output is a file")
        if out.exists() and not overwrite:
            raise UsageError(f"{out} exists; add -y (--overwrite) to replace it")
    elif out.exists():
        if not out.is_dir():
            raise UsageError(f"{out} is a file; the output is a directory (or NAME.mp4 with one rung)")
        if any(out.iterdir()) and not overwrite:
            raise UsageError(f"the output directory {out} is not empty; add -y (--overwrite) to replace its outputs")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise EnvironmentProblem(f"cannot write to {existing}: permission denied")
    target = out.parent if single else out
    created = [p for p in (target, *target.parents) if not p.exists()]
    try:  # create what is missing and remove it again: the encode creates it for real
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot create {exc.filename or target}: {exc.strerror or exc}") from None
    finally:
        for p in created:
            try:
                p.rmdir()
            except OSError:
                break


def _remove_stale(out: Path, kept: set[str]) -> None:
    """After an --overwrite encode: old renditions and stream folders the new manifest does not
    list go (a user's own files stay)."""
    try:
        tracks = set(json.loads(Path(layout.manifest(str(out))).read_text())["stream"]["tracks"])
    except (OSError, ValueError, KeyError, TypeError):
        tracks = None  # no stream in this manifest: leave folders alone
    for p in out.iterdir():
        if p.suffix == ".mp4" and p.name not in kept and is_rung_name(p.stem) and p.name == layout.output_name(p.stem):
            p.unlink()
        elif tracks is not None and p.is_dir() and p.name not in tracks and re.fullmatch(layout.TRACK_NAME, p.name):
            shutil.rmtree(p)


def _broker_runner(url: str, storage: str, state_url: str | None = None):
    from .distributed.brokers import redacted, state_url as state_of
    from .distributed.runner import CeleryRunner
    from .distributed.state import check_reachable

    state = state_of(url, state_url)  # a BrokerURLError (bad input: exit 2) before any work
    problem = check_reachable(state)
    if problem:
        what = f"the broker {redacted(url)}" if state_url is None else f"the state Redis {redacted(state)}"
        raise EnvironmentProblem(f"cannot reach {what}: {problem}")
    return CeleryRunner(url, storage, state_url=state_url)


class ProgressBar:
    """One bar per rendition with fps and ETA, redrawn in place on a terminal and fitted to its
    width (``COLUMNS``, else the terminal's size); not on a terminal (a log, a pipe), a plain line
    from the encoding stage on, every 10 %, and at concat and done."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.tracker: Tracker | None = None
        self.lines = 0
        self.last = 0.0
        self.stage = None
        self.step = 0  # plain mode: the last 10 % step written

    def __call__(self, ev: ProgressEvent) -> None:
        if self.tracker is None:
            self.tracker = Tracker(job_id=ev.job_id)
        self.tracker.update(ev)
        now = time.monotonic()
        if ev.kind == "stage" and ev.stage != self.stage:
            self.stage = ev.stage
            self._draw() if self.tty else self._line(stage_changed=True)
        elif self.tty and now - self.last > 0.1:
            self._draw()
            self.last = now
        elif not self.tty:
            self._line()

    def columns(self) -> int:
        try:
            return max(20, int(os.environ["COLUMNS"]))
        except (KeyError, ValueError):
            pass
        try:
            return max(20, os.get_terminal_size(self.stream.fileno()).columns)
        except (OSError, ValueError, AttributeError):
            return 80

    def _line(self, stage_changed: bool = False) -> None:
        snap = self.tracker.snapshot()
        step = int(snap.get("progress", 0) * 10)
        if not stage_changed and (snap["stage"] != "encoding" or step <= self.step):
            return
        if stage_changed and snap["stage"] in ("probing", "splitting", "failed", "cancelled"):
            return  # quick stages say nothing; a failure is its one error: line
        if stage_changed and snap["stage"] != "encoding":
            self.stream.write(f"segenc: {snap['stage']}\n")
        else:
            self.step = max(self.step, step)
            self.stream.write(f"segenc: encoding {snap.get('progress', 0) * 100:3.0f}%{self._rate(snap)}\n")
        self.stream.flush()

    @staticmethod
    def _rate(snap) -> str:
        fps = f"  {snap['fps']:.0f} fps" if snap.get("fps") else ""
        eta = snap.get("eta")
        return fps + (f"  ETA {int(eta) // 60}:{int(eta) % 60:02d}" if eta is not None else "")

    def _draw(self) -> None:
        if not self.tty or self.tracker is None:
            return
        width = self.columns() - 1  # never the last column: some terminals wrap there
        snap = self.tracker.snapshot()
        rows = [f"{snap['stage']}{self._rate(snap)}"]
        for name, r in snap["renditions"].items():
            frac = r["progress"]
            head, tail = f"{name:>6} [", f"] {frac * 100:3.0f}% {r['frames_done']}/{r['frames_total']}"
            size = max(4, width - len(head) - len(tail))
            fill = int(frac * size)
            rows.append(f"{head}{'#' * fill}{'.' * (size - fill)}{tail}")
        out = ("\x1b[F" * self.lines) + "".join(f"\x1b[2K{r[:width]}\n" for r in rows)
        self.lines = len(rows)
        self.stream.write(out)
        self.stream.flush()

    def close(self) -> None:
        self._draw()


def entry() -> None:
    sys.exit(main())
