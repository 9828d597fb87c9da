"""The ffmpeg CLI baselines segenc is compared against.

``ladder_command`` is the "one process does everything" baseline: a single ffmpeg decodes the
source once, splits the decoded frames three ways, scales each (swscale, bicubic) and feeds
three libx264 encoders (default threading: frame threads = 1.5 x cores each) and three AAC
encoders, writing one +faststart MP4 per rung. That is what a user would run instead of segenc.

With ``threads=1`` the same command runs single-threaded where FFmpeg allows it: the decoder
(``-threads 1`` before ``-i``), the filter graphs (``-filter_complex_threads 1``,
``-filter_threads 1``) and every libx264 encoder (``-threads:v 1``, which also gives one
lookahead thread). Its CPU seconds are the work the ladder costs without any threading
overhead: divided by the core count, the ideal wall time of a perfectly parallel encoder.
(FFmpeg >= 7 still runs demuxer, decoder, filter graph, encoders and muxers in threads of
their own that pass frames along, so such a process can keep more than one core busy.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

# Rung name -> short side. Mirrors segenc.model.RUNGS (kept here so the baseline runs without segenc).
RUNGS: dict[str, int] = {"240p": 240, "360p": 360, "480p": 480, "720p": 720, "1080p": 1080,
                         "1440p": 1440, "2160p": 2160}
DEFAULT_LADDER: tuple[str, ...] = ("480p", "720p", "1080p")


def parse_ladder(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [n for n in names if n not in RUNGS]
    if not names or bad:
        raise ValueError(f"ladder must be a comma-separated list of {', '.join(RUNGS)}; bad: {bad or text!r}")
    return names


def ladder_filter(ladder: Sequence[str], scaler: str = "bicubic") -> str:
    """``[0:v]split=N[s0]...;[s0]scale=-2:H:flags=bicubic[o0];...`` for landscape sources."""
    n = len(ladder)
    if n == 1:
        return f"[0:v]scale=-2:{RUNGS[ladder[0]]}:flags={scaler}[o0]"
    parts = ["[0:v]split=%d%s" % (n, "".join(f"[s{i}]" for i in range(n)))]
    parts += [f"[s{i}]scale=-2:{RUNGS[name]}:flags={scaler}[o{i}]" for i, name in enumerate(ladder)]
    return ";".join(parts)


# x264's speed names -> SVT-AV1 presets, as segenc.codecs.SVT_PRESETS (copied: no segenc import here).
SVT_PRESETS = {"ultrafast": 12, "superfast": 11, "veryfast": 10, "faster": 9, "fast": 8, "medium": 7,
               "slow": 5, "slower": 4, "veryslow": 2, "placebo": 1}


def video_args(codec: str, preset: str, crf: float, gop: float | None, threads: int | None) -> list[str]:
    """The encoder arguments of one rung, matching what segenc.codecs gives each codec: the same
    speed, CRF, profile/tag, and with ``gop`` an IDR at every multiple of it with scene cuts off."""
    q = f"{float(crf):g}"
    if codec == "h264":
        args = ["-c:v", "libx264", "-preset", preset, "-crf", q, "-profile:v", "high", "-pix_fmt", "yuv420p"]
        if gop:
            args += ["-sc_threshold", "0"]
    elif codec == "hevc":
        params = "log-level=error" + (":scenecut=0:open-gop=0" if gop else "")
        # forced-idr: else a forced keyframe is a non-IDR I frame (not a keyframe in the MP4)
        args = ["-c:v", "libx265", "-preset", preset, "-crf", q, "-forced-idr", "1", "-tag:v", "hvc1",
                "-pix_fmt", "yuv420p", "-x265-params", params]
    elif codec == "av1":
        # CRF through svtav1-params: the wrapper's -crf is an integer
        args = ["-c:v", "libsvtav1", "-preset", str(SVT_PRESETS.get(preset, preset)), "-pix_fmt", "yuv420p",
                "-svtav1-params", f"crf={q}"]
    else:
        raise ValueError(f"codec must be h264, hevc or av1, got {codec!r}")
    if gop:
        args += ["-force_key_frames", f"expr:gte(t,n_forced*{gop:g})"]
    if threads is not None:
        args += ["-threads:v", str(threads)]
    return args


def ladder_command(exe: str, source: str | Path, out_dir: str | Path, ladder: Sequence[str] = DEFAULT_LADDER, *,
                   preset: str = "veryfast", crf: float = 23, audio_bitrate: int = 128_000, scaler: str = "bicubic",
                   threads: int | None = None, audio: bool = True, codec: str = "h264",
                   gop: float | None = None) -> tuple[list[str], dict[str, Path]]:
    """The one-process ffmpeg ladder command and the output path of each rung.

    ``threads=None`` leaves the decoder, filters and encoders at their defaults (auto); ``threads=N``
    caps all of them at N threads (1: the single-threaded baseline). ``gop`` (seconds) forces IDRs
    on the same grid as segenc's ``Settings.gop``; None leaves the encoder's own keyframe choice.
    """
    out_dir = Path(out_dir)
    cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    if threads is not None:
        cmd += ["-filter_threads", str(threads), "-filter_complex_threads", str(threads), "-threads", str(threads)]
    cmd += ["-i", str(source), "-filter_complex", ladder_filter(ladder, scaler)]
    outputs: dict[str, Path] = {}
    for i, name in enumerate(ladder):
        out = out_dir / f"{name}.mp4"
        outputs[name] = out
        cmd += ["-map", f"[o{i}]"]
        if audio:
            cmd += ["-map", "0:a:0?"]
        cmd += video_args(codec, preset, crf, gop, threads)
        if audio:
            cmd += ["-c:a", "aac", "-b:a", str(audio_bitrate)]
        cmd += ["-movflags", "+faststart", str(out)]
    return cmd, outputs
