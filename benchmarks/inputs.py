"""Synthetic benchmark inputs, generated once with the ffmpeg CLI and cached.

Each input is an H.264 (High, yuv420p, B-frames, closed 2 s GOPs) + AAC stereo MP4 made from
lavfi sources: ``testsrc2`` (a moving test pattern, cheap to encode) and, for the "grain"
flavour, the same with temporal noise on top (the worst case for an encoder: every frame is
new detail, so bitrates and encode times go up). The cache file name carries every parameter
plus a hash of the exact command line, so changing a flag or the recipe never reuses a stale file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

FLAVOURS: dict[str, str] = {
    "clean": "testsrc2=size={w}x{h}:rate={fps}:duration={seconds}",
    "grain": "testsrc2=size={w}x{h}:rate={fps}:duration={seconds},noise=alls=20:allf=t",
}

DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"


def ffmpeg_exe() -> str:
    """The ffmpeg CLI shipped in the imageio-ffmpeg wheel (IMAGEIO_FFMPEG_EXE overrides it)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_version(exe: str | None = None) -> str:
    out = subprocess.run([exe or ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True).stdout
    first = out.splitlines()[0] if out else "unknown"
    return first.replace("ffmpeg version ", "").split(" Copyright")[0].strip()


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must look like 1920x1080, got {text!r}") from None
    if w <= 0 or h <= 0 or w % 2 or h % 2:
        raise ValueError(f"size must be positive and even, got {text!r}")
    return w, h


@dataclass(frozen=True)
class InputSpec:
    flavour: str = "clean"
    width: int = 1920
    height: int = 1080
    fps: int = 30
    seconds: float = 60.0
    gop: int = 60          # keyframe interval in frames (segenc splits at keyframes)
    bframes: int = 3
    crf: int = 18
    preset: str = "veryfast"
    sample_rate: int = 48000

    def __post_init__(self) -> None:
        if self.flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {', '.join(FLAVOURS)}, got {self.flavour!r}")

    @property
    def label(self) -> str:
        secs = f"{self.seconds:g}"
        return f"{self.flavour}-{self.width}x{self.height}-{self.fps}fps-{secs}s"

    def command(self, exe: str, output: str) -> list[str]:
        video = FLAVOURS[self.flavour].format(w=self.width, h=self.height, fps=self.fps, seconds=f"{self.seconds:g}")
        audio = f"sine=frequency=440:beep_factor=4:sample_rate={self.sample_rate}:duration={self.seconds:g}"
        return [
            exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", video,
            "-f", "lavfi", "-i", audio,
            "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf), "-profile:v", "high",
            "-pix_fmt", "yuv420p", "-g", str(self.gop), "-keyint_min", str(self.gop), "-sc_threshold", "0",
            "-bf", str(self.bframes),
            "-c:a", "aac", "-b:a", "128k", "-ac", "2",
            "-t", f"{self.seconds:g}", "-movflags", "+faststart",
            output,
        ]

    def cache_path(self, cache_dir: Path, exe: str) -> Path:
        digest = hashlib.sha1(json.dumps(self.command("ffmpeg", "out.mp4")).encode()).hexdigest()[:8]
        return Path(cache_dir) / "inputs" / f"{self.label}-{digest}.mp4"


def ensure_input(spec: InputSpec, cache_dir: Path = DEFAULT_CACHE, *, exe: str | None = None,
                 force: bool = False, log=print) -> Path:
    """Path of the cached input for ``spec``, generating it first if missing (atomic rename)."""
    exe = exe or ffmpeg_exe()
    path = spec.cache_path(cache_dir, exe)
    if path.exists() and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.mp4")
    cmd = spec.command(exe, str(tmp))
    log(f"generating input {path.name} ...")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"input generation failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    os.replace(tmp, path)
    path.with_suffix(".json").write_text(json.dumps(
        {"spec": asdict(spec), "command": cmd, "ffmpeg": ffmpeg_version(exe),
         "seconds_to_generate": round(time.perf_counter() - t0, 2)}, indent=2) + "\n")
    log(f"  {path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s")
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.inputs``: generate (or find) inputs and print their paths."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m benchmarks.inputs", description=main.__doc__)
    p.add_argument("--flavour", choices=[*FLAVOURS, "both"], default="both")
    p.add_argument("--size", default="1920x1080")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--force", action="store_true", help="regenerate even if cached")
    a = p.parse_args(argv)
    w, h = parse_size(a.size)
    for fl in (FLAVOURS if a.flavour == "both" else [a.flavour]):
        print(ensure_input(InputSpec(fl, w, h, a.fps, a.seconds), a.cache_dir, force=a.force,
                           log=lambda s: print(s, file=sys.stderr)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
