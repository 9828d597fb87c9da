"""presets: named encoding presets and the one parser of user-given job options.

The CLI, the HTTP API and the upload page all go through ``job_options``, so they accept the same
fields and values and refuse the rest with the same message, which names what is allowed.

    web        H.264, 360p/720p/1080p, CRF 23: plays everywhere
    streaming  H.264 ABR ladder with peak-rate caps (maxrate, buffer 2x) and 2 s IDRs
    archive    HEVC at the source's own size (up to 2160p), CRF 20, slow preset, 192k audio

``preset`` takes a preset name above or, as before, an encoder speed (ultrafast .. placebo).
Fields given explicitly override the preset's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import UsageError
from .model import DEFAULT_LADDER, parse_ladder
from .settings import AUDIO_BITRATE_MAX, AUDIO_BITRATE_MIN, CODECS, CRF_MAX, GOP_MAX, GOP_MIN, X264_PRESETS, Settings


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    codec: str
    crf: float
    speed: str
    ladder: str
    gop: float = 2.0
    audio_bitrate: int = 128_000


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("web", "H.264 MP4 that plays everywhere; three rungs, no caps", "h264", 23, "veryfast",
           "360p,720p,1080p"),
    Preset("streaming", "H.264 ABR ladder for HLS/DASH: peak-rate caps (buffer 2x), IDR every 2 s", "h264", 23,
           "veryfast", "360p@800k,480p@1400k,720p@2800k,1080p@5M"),
    Preset("archive", "HEVC at the source's size (up to 2160p), high quality, slow", "hevc", 20, "slow", "2160p",
           audio_bitrate=192_000),
)}
DEFAULT_PRESET = None  # no preset: Settings() defaults and DEFAULT_LADDER

# Every field a job accepts from a user, and what it takes.
FIELDS: dict[str, str] = {
    "preset": f"one of {', '.join(PRESETS)} (named presets) or an encoder speed: {', '.join(X264_PRESETS)}",
    "codec": f"one of {', '.join(CODECS)}",
    "crf": f"a number from 0 to {CRF_MAX['h264']} (h264, hevc) or {CRF_MAX['av1']} (av1)",
    "gop": f"seconds between keyframes, a number from {GOP_MIN:g} to {GOP_MAX:g}",
    "ladder": "comma-separated rungs such as 480p,720p@2800k,1080p@5M (<even height>p, optional @peak[:buffer])",
    "audio_bitrate": f"bits per second from {AUDIO_BITRATE_MIN // 1000}k to {AUDIO_BITRATE_MAX // 1000}k, "
                     f"such as 128k or 128000",
    "audio": "true or false (false drops the audio track)",
    "chunk_seconds": "a number of seconds between 0.5 and 600 (empty: automatic)",
}


class OptionError(UsageError):
    """A job option that is unknown or has a value outside what ``FIELDS`` allows."""

    def __init__(self, message: str, field: str | None = None, allowed: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.allowed = allowed

    def to_dict(self) -> dict[str, Any]:
        return {"error": str(self), "field": self.field, "allowed": self.allowed}


def job_options(given: Mapping[str, Any], *, base: Settings | None = None) -> tuple[Settings, tuple[str, ...]]:
    """User-given options (strings, or typed values; None or "" means not given) -> Settings and
    ladder. Raises OptionError naming the field and its allowed values."""
    unknown = sorted(k for k in given if k not in FIELDS)
    if unknown:
        raise OptionError(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(FIELDS)}",
                          unknown[0], list(FIELDS))
    values = {k: v for k, v in given.items() if v is not None and not (isinstance(v, str) and not v.strip())}
    settings = base or Settings()
    ladder: tuple[str, ...] = DEFAULT_LADDER
    changes: dict[str, Any] = {}
    if "preset" in values:
        name = str(values["preset"]).strip()
        if name in PRESETS:
            p = PRESETS[name]
            changes.update(codec=p.codec, crf=p.crf, preset=p.speed, gop=p.gop, audio_bitrate=p.audio_bitrate)
            ladder = tuple(r.spec() for r in parse_ladder(p.ladder))
        elif name in X264_PRESETS:
            changes["preset"] = name
        else:
            raise _bad("preset", values["preset"], list(PRESETS) + list(X264_PRESETS))
    if "codec" in values:
        codec = str(values["codec"]).strip().lower()
        if codec not in CODECS:
            raise _bad("codec", values["codec"], list(CODECS))
        changes["codec"] = codec
    if "crf" in values:
        changes["crf"] = _number("crf", values["crf"])
    if "gop" in values:
        changes["gop"] = _number("gop", values["gop"])
    if "chunk_seconds" in values:
        chunk = _number("chunk_seconds", values["chunk_seconds"])
        if not 0.5 <= chunk <= 600:
            raise _bad("chunk_seconds", values["chunk_seconds"])
        changes["chunk_seconds"] = chunk
    if "audio_bitrate" in values:
        changes["audio_bitrate"] = _bitrate(values["audio_bitrate"])
    if "audio" in values:
        changes["audio"] = _bool("audio", values["audio"])
    if "ladder" in values:
        try:
            ladder = tuple(r.spec() for r in parse_ladder(str(values["ladder"])))
        except ValueError as exc:
            raise OptionError(f"ladder: {exc}", "ladder", FIELDS["ladder"]) from None
    try:
        settings = settings.with_(**changes)
    except ValueError as exc:
        field = next((f for f in ("crf", "gop", "audio_bitrate", "codec") if str(exc).startswith(f)), None)
        raise OptionError(str(exc), field, FIELDS.get(field or "")) from None
    return settings, ladder


def listing() -> str:
    """The presets as ``segenc presets`` prints them."""
    rows = []
    for p in PRESETS.values():
        rows.append(f"{p.name:<10} {p.description}\n{'':<10} codec {p.codec}, crf {p.crf:g}, speed {p.speed}, "
                    f"gop {p.gop:g} s, audio {p.audio_bitrate // 1000}k, ladder {p.ladder}")
    return "\n".join(rows)


def describe() -> list[dict[str, Any]]:
    """The presets as data (for the API and the upload page)."""
    return [{"name": p.name, "description": p.description, "codec": p.codec, "crf": p.crf, "speed": p.speed,
             "ladder": p.ladder, "gop": p.gop, "audio_bitrate": p.audio_bitrate} for p in PRESETS.values()]


def _bad(field: str, value: Any, allowed: Any = None) -> OptionError:
    return OptionError(f"{field}: {value!r} is not allowed; {field} is {FIELDS[field]}", field,
                       allowed if allowed is not None else FIELDS[field])


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool):
        raise _bad(field, value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _bad(field, value) from None
    if x != x or x in (float("inf"), float("-inf")):
        raise _bad(field, value)
    return x


def _bitrate(value: Any) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", str(value))
    if not m:
        raise _bad("audio_bitrate", value)
    rate = int(round(float(m.group(1)) * {"": 1, "k": 1000, "m": 1_000_000}[m.group(2).lower()]))
    if not AUDIO_BITRATE_MIN <= rate <= AUDIO_BITRATE_MAX:
        raise _bad("audio_bitrate", value)
    return rate


def _bool(field: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise _bad(field, value, ["true", "false"])
