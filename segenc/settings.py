"""Explicit configuration. The environment is never read here: callers pass values in."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

# Containers we accept as input (libavformat demuxer names). Everything else, notably
# hls, concat, image2 and the text formats, is refused before a byte is parsed.
INPUT_FORMATS = ("mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "mpegts", "flv", "ivf", "nut")


@dataclass(frozen=True)
class Limits:
    """Probe-time limits: a file whose headers exceed any of them is refused."""

    max_width: int = 7680
    max_height: int = 4320
    max_pixels: int = 7680 * 4320
    max_fps: float = 240.0
    max_duration: float = 4 * 3600.0
    max_streams: int = 16
    max_frames: int = 4 * 3600 * 120
    # Longest pause between two frames: segenc's MP4 stitching cannot carry a longer hole in the
    # timestamps (a source with a 10 s or 1 h gap failed at muxing with EINVAL), so it is refused.
    max_frame_gap: float = 5.0


@dataclass(frozen=True)
class Settings:
    """How to encode. Frozen and JSON round-trippable; crosses process boundaries inside specs."""

    preset: str = "veryfast"
    crf: int = 23
    chunk_seconds: float | None = None  # None: automatic, see segenc.plan.auto_chunk_seconds
    audio_bitrate: int = 128_000
    scaler: str = "bicubic"
    granularity: str = "segment"
    limits: Limits = Limits()

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {self.granularity!r}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be between 0 and 51, got {self.crf}")
        if self.chunk_seconds is not None and self.chunk_seconds <= 0:
            raise ValueError(f"chunk_seconds must be positive, got {self.chunk_seconds}")
        if self.preset not in X264_PRESETS:
            raise ValueError(f"preset must be one of {', '.join(X264_PRESETS)}, got {self.preset!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Settings":
        d = dict(d)
        limits = Limits(**d.pop("limits", {}))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known}, limits=limits)

    def with_(self, **changes: Any) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# "segment": one task per segment, decoding once and encoding every rendition.
# "rendition": one task per segment x rendition (each decodes the segment; finer grained).
GRANULARITIES = ("segment", "rendition")

X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
)
