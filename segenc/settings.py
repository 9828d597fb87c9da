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

    preset: str = "veryfast"  # encoder speed, x264's names (mapped for SVT-AV1: see segenc.codecs)
    crf: float = 23
    chunk_seconds: float | None = None  # None: automatic, see segenc.plan.auto_chunking
    audio_bitrate: int = 128_000
    scaler: str = "bicubic"
    granularity: str = "segment"
    limits: Limits = Limits()
    codec: str = "h264"  # one of CODECS
    gop: float = 2.0  # seconds between IDRs: at every multiple of it (source time), in every rung
    audio: bool = True  # False: drop the audio track
    # Copy the source's audio instead of encoding it when it already is what segenc would make
    # (AAC-LC, <= 2 channels, 44.1/48 kHz, at most audio_bitrate; see MediaInfo.audio_copy_bitrate)
    # and the tasks read the source directly.
    audio_copy: bool = True
    # A short first segment: cut at the first source keyframe at or after this many seconds, and
    # encoded one task per rendition, so the stream's first segment of every rung (what a player
    # needs to start) is ready early. None: the first segment is as long as the others.
    lead_seconds: float | None = None
    # Where segments are cut. True: at the source keyframe nearest each ideal cut when one lies
    # within a quarter of chunk_seconds of it (nothing to decode before the segment's first frame;
    # with none that near, between keyframes, as in a long GOP). False: at exactly every
    # chunk_seconds, between keyframes where need be (the task decodes from the keyframe before).
    # None: decided with the automatic chunk length (keyframes, unless exact cuts balance the
    # workers better: a 10 s clip with a keyframe every 2 s on 2 cores is cut near 5 s, not at
    # 6 s); with a chunk_seconds given, None is True.
    keyframe_cuts: bool | None = None

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {self.granularity!r}")
        if self.codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {self.codec!r}")
        top = CRF_MAX[self.codec]
        if isinstance(self.crf, bool) or not isinstance(self.crf, (int, float)) or not 0 <= self.crf <= top:
            raise ValueError(f"crf must be a number from 0 to {top} for {self.codec}, got {self.crf!r}")
        if isinstance(self.gop, bool) or not isinstance(self.gop, (int, float)) or not GOP_MIN <= self.gop <= GOP_MAX:
            raise ValueError(f"gop must be a number of seconds from {GOP_MIN:g} to {GOP_MAX:g}, got {self.gop!r}")
        if not AUDIO_BITRATE_MIN <= self.audio_bitrate <= AUDIO_BITRATE_MAX:
            raise ValueError(f"audio_bitrate must be from {AUDIO_BITRATE_MIN} to {AUDIO_BITRATE_MAX} bit/s, "
                             f"got {self.audio_bitrate!r}")
        if self.chunk_seconds is not None and self.chunk_seconds <= 0:
            raise ValueError(f"chunk_seconds must be positive, got {self.chunk_seconds}")
        if self.lead_seconds is not None and self.lead_seconds <= 0:
            raise ValueError(f"lead_seconds must be positive, got {self.lead_seconds}")
        if self.keyframe_cuts not in (None, True, False):
            raise ValueError(f"keyframe_cuts must be True, False or None, got {self.keyframe_cuts!r}")
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

# Output codecs: name -> (encoder, highest CRF). The encoder details live in segenc.codecs.
CODECS: dict[str, str] = {"h264": "libx264", "hevc": "libx265", "av1": "libsvtav1"}
CRF_MAX: dict[str, int] = {"h264": 51, "hevc": 51, "av1": 63}
GOP_MIN, GOP_MAX = 0.1, 60.0
AUDIO_BITRATE_MIN, AUDIO_BITRATE_MAX = 16_000, 512_000

X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
)
