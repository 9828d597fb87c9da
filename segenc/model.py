"""Units of work and their results.

Everything that crosses a process boundary is a frozen dataclass with ``to_dict``/``from_dict``
so it can travel as JSON (never pickle). Paths inside specs are relative to a storage root.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from .layout import RUNG_NAME
from .settings import Settings

# Ladder rungs by their short side: "720p" is 1280x720 landscape or 720x1280 portrait. These are
# the common ones; any even height from RUNG_MIN to RUNG_MAX is a rung too (see parse_rung).
RUNGS: dict[str, int] = {"240p": 240, "360p": 360, "480p": 480, "720p": 720, "1080p": 1080, "1440p": 1440, "2160p": 2160}
DEFAULT_LADDER = ("480p", "720p", "1080p")
RUNG_MIN, RUNG_MAX = 16, 4320
RATE_MIN = 16_000  # bit/s: the lowest peak-rate cap accepted
_RATE = r"(\d+(?:\.\d+)?)([kKmM]?)"
_RUNG_SPEC = re.compile(rf"^({RUNG_NAME})(?:@{_RATE}(?::{_RATE})?)?$")
RUNG_SYNTAX = ("<height>p with an even height from 16 to 4320, optionally @<peak rate>[:<buffer>] "
               "such as 720p@2800k or 1080p@5M:10M (buffer 2x the rate unless given)")


@dataclass(frozen=True)
class Rung:
    """One ladder entry: ``720p``, or ``720p@2800k`` (peak rate cap; buffer 2x) or ``720p@2800k:4M``."""

    name: str
    height: int
    maxrate: int = 0  # bit/s; 0: no cap
    bufsize: int = 0

    def spec(self) -> str:
        if not self.maxrate:
            return self.name
        tail = "" if self.bufsize == 2 * self.maxrate else f":{self.bufsize}"
        return f"{self.name}@{self.maxrate}{tail}"


def _rate(number: str | None, unit: str | None) -> int:
    if number is None:
        return 0
    return int(round(float(number) * {"": 1, "k": 1_000, "m": 1_000_000}[unit.lower()]))


def parse_rung(text: str) -> Rung:
    """``"720p@2800k"`` -> Rung("720p", 720, 2_800_000, 5_600_000); ValueError naming the syntax."""
    m = _RUNG_SPEC.match(text.strip())
    height = int(m.group(1)[:-1]) if m else 0
    if not m or height % 2 or not RUNG_MIN <= height <= RUNG_MAX:
        raise ValueError(f"unknown ladder rung(s) [{text!r}]; a rung is {RUNG_SYNTAX}")
    maxrate = _rate(m.group(2), m.group(3))
    bufsize = _rate(m.group(4), m.group(5)) or 2 * maxrate
    if maxrate and (maxrate < RATE_MIN or bufsize < RATE_MIN):
        raise ValueError(f"ladder rung {text!r}: a rate cap must be at least {RATE_MIN // 1000}k")
    return Rung(f"{height}p", height, maxrate, bufsize)


def parse_ladder(ladder: str | tuple[str, ...] | list[str]) -> tuple[Rung, ...]:
    """A comma-separated ladder (or a sequence of rungs) -> its rungs, lowest first; one rung per height."""
    items = [q.strip() for q in (ladder.split(",") if isinstance(ladder, str) else ladder) if q and q.strip()]
    if not items:
        raise ValueError(f"unknown ladder rung(s) {list(items)}: the ladder is empty; a rung is {RUNG_SYNTAX}")
    rungs = tuple(dict.fromkeys(sorted((parse_rung(q) for q in items), key=lambda r: r.height)))
    names = [r.name for r in rungs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"the ladder names {', '.join(twice)} more than once with different caps")
    return rungs


def is_rung_name(name: str) -> bool:
    """Whether ``name`` can name a rendition (``720p``; never a path)."""
    return bool(re.fullmatch(RUNG_NAME, name)) and RUNG_MIN <= int(name[:-1]) <= RUNG_MAX


class _Json:
    """Mixin: dataclass <-> plain dict. Nested dataclasses declare themselves in ``_nested``."""

    _nested: dict[str, Any] = {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if hasattr(v, "to_dict"):
                v = v.to_dict()
            elif isinstance(v, tuple):
                v = [x.to_dict() if hasattr(x, "to_dict") else x for x in v]
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        kw: dict[str, Any] = {}
        names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for k, v in d.items():
            if k not in names:
                continue
            sub = cls._nested.get(k)
            if sub is not None and v is not None:
                v = tuple(sub.from_dict(x) for x in v) if isinstance(v, list) else sub.from_dict(v)
            elif isinstance(v, list):
                v = tuple(v)
            kw[k] = v
        return cls(**kw)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class Rendition(_Json):
    name: str
    width: int
    height: int
    maxrate: int = 0  # peak-rate cap in bit/s (encoder VBV), 0: none
    bufsize: int = 0


@dataclass(frozen=True)
class MediaInfo(_Json):
    """What probe found. ``frame_pts`` are presentation times (zero-based, in ``time_base``)."""

    path: str
    container: str
    codec: str
    pix_fmt: str
    bit_depth: int
    width: int
    height: int
    display_width: int
    display_height: int
    rotation: int
    sar: str
    time_base: str
    fps: float
    frame_rate: str
    vfr: bool
    frames: int
    duration: float
    start_time: float
    start_pts: int
    keyframes: tuple[int, ...]
    frame_pts: tuple[int, ...]
    streams: int
    has_audio: bool
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    audio_duration: float | None = None
    size: int = 0
    # Colour as FFmpeg names it (AVColorPrimaries / AVColorTransferCharacteristic / AVColorSpace /
    # AVColorRange numbers; 2 or 0: unspecified), from the first decoded frame.
    color_primaries: int = 2
    color_trc: int = 2
    colorspace: int = 2
    color_range: int = 0
    # Tracks and tags carried to the outputs: every audio stream (languages in stream order,
    # "und" when untagged), the mov_text subtitle streams' languages, and the container title.
    audio_languages: tuple[str, ...] = ()
    audio_titles: tuple[str, ...] = ()
    subtitle_languages: tuple[str, ...] = ()
    title: str | None = None
    # The highest bit rate among the audio tracks when every one of them can be copied as it is
    # (segenc.probe.copyable_audio: AAC-LC, 1-2 channels, 44.1/48 kHz, its 1024-sample frames on
    # the grid that starts at the first video frame, from an MP4/MOV index); None: encode them.
    audio_copy_bitrate: int | None = None

    @property
    def tb(self) -> Fraction:
        return Fraction(self.time_base)

    def summary(self) -> dict[str, Any]:
        """The user-facing view: everything but the per-frame tables."""
        d = self.to_dict()
        d.pop("frame_pts")
        d["keyframes"] = len(self.keyframes)
        return d


@dataclass(frozen=True)
class Segment(_Json):
    """Frames ``[first_frame, end_frame)`` of the source, decodable from ``key_frame``."""

    index: int
    first_frame: int
    end_frame: int
    key_frame: int
    path: str

    @property
    def frames(self) -> int:
        return self.end_frame - self.first_frame


@dataclass(frozen=True)
class ChunkSpec(_Json):
    """One chunk of the chord header: a segment x rendition encode, or a part of the audio."""

    job_id: str
    chunk_id: str
    kind: Literal["video", "audio"]
    source: str
    output: str
    settings: Settings
    rendition: Rendition | None = None
    segment: int = -1
    time_base: str = "1/1"
    key_pts: int = 0
    frame_pts: tuple[int, ...] = ()
    rotation: int = 0
    duration: float = 0.0
    cost: float = 0.0         # predicted work: encode_cost + decode_cost
    preroll: int = 0
    decode_cost: float = 0.0  # the part of ``cost`` spent decoding the segment (shared within a task)
    frame_rate: str = ""      # the source's average rate, told to every chunk's encoder alike
    # audio: the part's span, seconds from the first video frame as exact fractions (its segment's
    # start and the next one's; "" for the last: to the track's end). See segenc.audio.
    span: tuple[str, str] = ()
    # Read straight from the source (``source`` is the source itself, no split file; see
    # segenc.split.segment_packets): ``origin`` is the source's first video pts (the spec's pts are
    # relative to it; audio specs carry the video's time base for it) and ``end_pts`` the first
    # pts past the segment (-1: to the end).
    direct: bool = False
    origin: int = 0
    end_pts: int = -1
    # audio: the part is the source's own AAC packets of its span, copied (no decode, no encode).
    copy: bool = False

    _nested = {"settings": Settings, "rendition": Rendition}

    @property
    def frames(self) -> int:
        return len(self.frame_pts)


def task_cost(group: tuple[ChunkSpec, ...] | list[ChunkSpec]) -> float:
    """Predicted work of one task: each rendition's encode, and the segment decoded once."""
    return sum(c.cost - c.decode_cost for c in group) + max(c.decode_cost for c in group)


def makespan(costs: list[float], workers: int) -> float:
    """Finish time of longest-first list scheduling of ``costs`` on ``workers`` identical workers."""
    loads = [0.0] * max(1, workers)
    for c in sorted(costs, reverse=True):
        heapq.heapreplace(loads, loads[0] + c)  # the least-loaded worker takes the next task
    return max(loads)


def task_id(group: tuple[ChunkSpec, ...] | list[ChunkSpec]) -> str:
    """A task's name: its chunk id; its segment's (``s0003``) when it encodes several renditions;
    its first audio part's and how many (``a0003+12``) when it encodes a run of them."""
    if len(group) == 1:
        return group[0].chunk_id
    return f"{group[0].chunk_id}+{len(group)}" if group[0].kind == "audio" else f"s{group[0].segment:04d}"


@dataclass(frozen=True)
class Task(_Json):
    """One chord-header task: chunks encoded together (a segment's renditions share one decode),
    or the audio track. ``id`` names it in task ids, attempts and leases."""

    id: str
    chunks: tuple[str, ...]
    cost: float


@dataclass(frozen=True)
class ChunkResult(_Json):
    chunk_id: str
    output: str
    frames: int
    bytes: int
    seconds: float
    worker: str


@dataclass(frozen=True)
class Plan(_Json):
    """The whole job, decided before any encoding: pure function of MediaInfo x ladder x settings."""

    job_id: str
    info: MediaInfo
    settings: Settings
    renditions: tuple[Rendition, ...]
    segments: tuple[Segment, ...]
    chunks: tuple[ChunkSpec, ...]
    workdir: str
    audio_source: str | None
    tasks: tuple[Task, ...] = ()  # what the runner sends: decided once, here (see plan.group_tasks)
    workers: int | None = None  # the encoder processes the tasks were balanced for
    subtitles_source: str | None = None  # the source's mov_text tracks, copied by split
    # The audio in parts, one per segment (each part holds every track); see segenc.audio.
    audio_parts: tuple[ChunkSpec, ...] = ()
    # The root-relative source every task reads its own segment (and audio span) from, when it
    # can seek it (segenc.plan.direct_readable): then nothing is split. None: split first.
    source: str | None = None

    _nested = {"info": MediaInfo, "settings": Settings, "renditions": Rendition, "segments": Segment,
               "chunks": ChunkSpec, "tasks": Task, "audio_parts": ChunkSpec}

    def groups(self) -> tuple[tuple[ChunkSpec, ...], ...]:
        """The chord header as chunk specs: the planned ``tasks``, most expensive first."""
        by_id = {c.chunk_id: c for c in self.specs()}
        return tuple(tuple(by_id[c] for c in t.chunks) for t in self.tasks)

    def schedule(self) -> tuple[tuple[ChunkSpec, ...], ...]:
        """The tasks in the order runners dispatch them: first those that make the stream playable
        (the audio's part 0, tiny, then segment 0 of every rung: the master playlist needs them
        all), then the rest, most expensive first. Longest-first alone would put the cheap audio
        parts, and often segment 0, at the end of the job."""
        groups = self.groups()  # most expensive first, so the first ones stay in that order
        head = [g for g in groups if g[0].kind == "audio" and any(c.segment == 0 for c in g)]
        first = head + [g for g in groups if g[0].kind == "video" and any(c.segment == 0 for c in g)]
        return tuple(first) + tuple(g for g in groups if g not in first)

    def task(self, task_id: str) -> "Task":
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise KeyError(task_id)

    def specs(self) -> tuple[ChunkSpec, ...]:
        """Every chunk spec, audio included."""
        return tuple(self.chunks) + tuple(self.audio_parts)

    def chunks_of(self, rendition: str) -> list[ChunkSpec]:
        return sorted((c for c in self.chunks if c.rendition and c.rendition.name == rendition), key=lambda c: c.segment)


@dataclass(frozen=True)
class RenditionResult(_Json):
    name: str
    path: str
    width: int
    height: int
    frames: int
    duration: float
    bytes: int
    bitrate: int


@dataclass(frozen=True)
class EncodeResult(_Json):
    out_dir: str
    manifest: str
    source: dict[str, Any]
    renditions: tuple[RenditionResult, ...]
    segments: int
    chunk_seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    hls: str = ""   # the HLS master playlist (master.m3u8), beside the manifest
    dash: str = ""  # the DASH manifest (stream.mpd)

    _nested = {"renditions": RenditionResult}

    def rendition(self, name: str) -> RenditionResult:
        for r in self.renditions:
            if r.name == name:
                return r
        raise KeyError(name)
