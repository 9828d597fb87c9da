"""The ffmpeg CLI baselines segenc is compared against.

``ladder_command`` is the "one process does everything" baseline: a single ffmpeg decodes the
source once, splits the decoded frames three ways, scales each (swscale, bicubic) and feeds
three libx264 encoders (default threading: frame threads = 1.5 x cores each) and three AAC
encoders, writing one +faststart MP4 per rung. That is what a user would run instead of segenc.
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


def ladder_command(exe: str, source: str | Path, out_dir: str | Path, ladder: Sequence[str] = DEFAULT_LADDER, *,
                   preset: str = "veryfast", crf: int = 23, audio_bitrate: int = 128_000, scaler: str = "bicubic",
                   threads: int | None = None, audio: bool = True) -> tuple[list[str], dict[str, Path]]:
    """The one-process ffmpeg ladder command and the output path of each rung.

    ``threads=None`` leaves libx264 at its default (auto); pass 1 for a single-threaded baseline.
    """
    out_dir = Path(out_dir)
    cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(source),
           "-filter_complex", ladder_filter(ladder, scaler)]
    outputs: dict[str, Path] = {}
    for i, name in enumerate(ladder):
        out = out_dir / f"{name}.mp4"
        outputs[name] = out
        cmd += ["-map", f"[o{i}]"]
        if audio:
            cmd += ["-map", "0:a:0?"]
        cmd += ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-profile:v", "high", "-pix_fmt", "yuv420p"]
        if threads is not None:
            cmd += ["-threads:v", str(threads)]
        if audio:
            cmd += ["-c:a", "aac", "-b:a", str(audio_bitrate)]
        cmd += ["-movflags", "+faststart", str(out)]
    return cmd, outputs
