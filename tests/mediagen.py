"""Synthetic test media for segenc's tests and benchmarks.

Everything is made with PyAV (+ numpy): no ffmpeg CLI is needed. Clips are tiny (a few seconds
at 320x240 by default) so a whole test session can generate all of them in seconds.

Every frame shows FFmpeg's ``testsrc2`` pattern (moving gradient, colour bars, counter) with a
*frame-number barcode* painted over its top band: ``BARCODE_BITS`` black/white blocks spelling
the frame's index (in presentation order) in binary, most significant bit first. The barcode
survives scaling and lossy encoding, so :func:`tests.checks.frame_indices` can read back which
source frame every output frame shows: a duplicate, a drop or a shifted seam is visible exactly.

    from tests.mediagen import make_clip
    make_clip(tmp / "a.mp4")                                    # H.264 + AAC, 320x240, 30 fps, 2 s
    make_clip(tmp / "b.mkv", codec="libx265", pix_fmt="yuv420p10le")
    make_clip(tmp / "c.mp4", vfr=True)                          # frame durations 1/30, 1/20, ...
    make_clip(tmp / "d.mp4", sar="4:3", width=640, height=480)  # displays as 853x480 (16:9)
    make_clip(tmp / "e.mp4", rotation=90, width=640, height=360)  # displays as 360x640

Malicious / garbage inputs: :func:`write_hls_playlist`, :func:`write_ffconcat`,
:func:`write_random_bytes`, :func:`write_truncated`, :func:`make_audio_only`,
:func:`make_huge`, :func:`make_many_streams`, :func:`write_empty`.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

__all__ = [
    "BARCODE_BITS",
    "CONTAINER_FORMATS",
    "make_clip",
    "vfr_durations",
    "write_hls_playlist",
    "write_ffconcat",
    "write_random_bytes",
    "write_truncated",
    "write_empty",
    "make_audio_only",
    "make_huge",
    "make_many_streams",
]

BARCODE_BITS = 12  # frame indices 0..4095
AUDIO_RATE = 48000

# file suffix -> (muxer name, default audio codec)
CONTAINER_FORMATS: dict[str, tuple[str, str]] = {
    ".mp4": ("mp4", "aac"),
    ".m4v": ("mp4", "aac"),
    ".mov": ("mov", "aac"),
    ".mkv": ("matroska", "aac"),
    ".webm": ("webm", "libopus"),
    ".ts": ("mpegts", "aac"),
}
_MUXER_AUDIO = {"mp4": "aac", "mov": "aac", "matroska": "aac", "webm": "libopus", "mpegts": "aac", "ipod": "aac"}

_QUIET_X265 = "log-level=none"

# make_clip(subtitles=...): every mov_text track holds these cues (start s, end s, text).
SUBTITLE_CUES = ((0.0, 0.5, "First line"), (1.0, 1.5, "Second line"))
_ASS_HEADER = (b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
               b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, "
               b"Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, "
               b"Alignment, MarginL, MarginR, MarginV, Encoding\n"
               b"Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
               b"[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")

# Colour tags (FFmpeg's AVColorPrimaries / Transfer / Space / Range numbers) for make_clip(colour=).
BT709 = {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 1}
HDR10_PQ = {"color_primaries": 9, "color_trc": 16, "colorspace": 9, "color_range": 1}
# x265 parameters of HDR10 static metadata: a P3 mastering display of 1000 / 0.005 cd/m2, MaxCLL
# 1000, MaxFALL 400 (as frame side data: primaries x/y, luminance in cd/m2).
HDR10_MASTERING = ("master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50):"
                   "max-cll=1000,400")
HLG = {"color_primaries": 9, "color_trc": 18, "colorspace": 9, "color_range": 1}


# --------------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------------

def barcode_geometry(width: int, height: int) -> tuple[int, int]:
    """(band height, block width) of the frame-number barcode in a ``width`` x ``height`` picture."""
    band = max(8, height // 8)
    block = width // BARCODE_BITS
    return band, block


def _testsrc2(width: int, height: int, count: int) -> Iterator[np.ndarray]:
    """``count`` RGB pictures (height, width, 3) of testsrc2, one per frame number."""
    # testsrc2 only makes even sizes (4:2:0 inside): make it a little larger and crop.
    ew, eh = width + (width & 1), height + (height & 1)
    src = av.open(f"testsrc2=size={ew}x{eh}:rate=30", format="lavfi")
    try:
        made = 0
        for frame in src.decode(video=0):
            if made >= count:
                break
            yield frame.to_ndarray(format="rgb24")[:height, :width]
            made += 1
    finally:
        src.close()


def _paint_barcode(rgb: np.ndarray, index: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    band, block = barcode_geometry(w, h)
    out = np.array(rgb, copy=True)
    out[:band, :, :] = 128  # mid grey behind the blocks (the remainder strip on the right)
    for bit in range(BARCODE_BITS):
        on = (index >> (BARCODE_BITS - 1 - bit)) & 1
        out[:band, bit * block:(bit + 1) * block, :] = 255 if on else 0
    return out


def pictures(width: int, height: int, count: int) -> Iterator[np.ndarray]:
    """The RGB pictures make_clip encodes (testsrc2 + frame-number barcode)."""
    for i, rgb in enumerate(_testsrc2(width, height, count)):
        yield _paint_barcode(rgb, i)


# --------------------------------------------------------------------------------------------
# Clips
# --------------------------------------------------------------------------------------------

def vfr_durations(fps: Fraction, count: int) -> list[Fraction]:
    """Frame durations in seconds of a VFR clip: alternately 1/fps and 1.5/fps (1/30, 1/20 at 30)."""
    return [Fraction(1) / fps if i % 2 == 0 else Fraction(3, 2) / fps for i in range(count)]


def _frame_times(fps: Fraction, seconds: float, vfr: bool) -> list[Fraction]:
    """Presentation times (seconds, from 0) of every frame."""
    if not vfr:
        n = max(1, round(Fraction(seconds) * fps))
        return [Fraction(i) / fps for i in range(n)]
    times, t, i = [], Fraction(0), 0
    while t < Fraction(seconds) - Fraction(1, 1000):
        times.append(t)
        t += Fraction(1) / fps if i % 2 == 0 else Fraction(3, 2) / fps
        i += 1
    return times


def _video_options(codec: str, gop: int | None, bframes: bool, crf: int | None) -> dict[str, str]:
    if codec == "libx264":
        opts = {"preset": "veryfast", "crf": str(crf if crf is not None else 18)}
        params = []
        if gop:
            params += [f"keyint={gop}", f"min-keyint={min(gop, 25) if gop > 1 else 1}", "scenecut=0"]
        if not bframes:
            params.append("bframes=0")
        if params:
            opts["x264-params"] = ":".join(params)
        return opts
    if codec == "libx265":
        params = [_QUIET_X265, f"crf={crf if crf is not None else 20}"]
        if gop:
            params += [f"keyint={gop}", f"min-keyint={gop}", "scenecut=0", "open-gop=0"]
        if not bframes:
            params.append("bframes=0")
        return {"preset": "ultrafast", "x265-params": ":".join(params)}
    if codec == "libvpx-vp9":
        opts = {"deadline": "good", "cpu-used": "8", "crf": str(crf if crf is not None else 30), "b": "0",
                "row-mt": "1"}
        if not bframes:
            opts["lag-in-frames"] = "0"
            opts["auto-alt-ref"] = "0"
        if gop:
            opts["g"] = str(gop)
            opts["keyint_min"] = str(gop)
        return opts
    if codec == "libsvtav1":
        params = [f"preset=12", f"crf={crf if crf is not None else 35}"]
        if gop:
            params.append(f"keyint={gop}")
        return {"svtav1-params": ":".join(params)}
    if codec == "libaom-av1":
        opts = {"cpu-used": "8", "crf": str(crf if crf is not None else 35), "usage": "realtime"}
        if gop:
            opts["g"] = str(gop)
        return opts
    return {}


def _audio_frames(seconds: float, start: float, layout: str = "stereo", freq: float = 440.0,
                  block: int = 1024) -> Iterator[av.AudioFrame]:
    """A sine tone, ``seconds`` long, whose first sample is at ``start`` seconds (tb 1/48000)."""
    total = int(round(seconds * AUDIO_RATE))
    first = int(round(start * AUDIO_RATE))
    channels = 2 if layout == "stereo" else 1
    done = 0
    while done < total:
        n = min(block, total - done)
        t = (np.arange(done, done + n) / AUDIO_RATE).astype(np.float32)
        tone = (0.25 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        data = np.tile(tone, (channels, 1))
        frame = av.AudioFrame.from_ndarray(data, format="fltp", layout=layout)
        frame.sample_rate = AUDIO_RATE
        frame.pts = first + done
        frame.time_base = Fraction(1, AUDIO_RATE)
        yield frame
        done += n


def make_clip(
    path: str | os.PathLike,
    *,
    codec: str = "libx264",
    container: str | None = None,
    width: int = 320,
    height: int = 240,
    fps: float | Fraction | int = 30,
    seconds: float = 2.0,
    audio: bool = True,
    pix_fmt: str = "yuv420p",
    gop: int | None = None,
    bframes: bool = True,
    vfr: bool = False,
    sar: str | Fraction | tuple[int, int] | None = None,
    rotation: int = 0,
    audio_offset: float = 0.0,
    audio_codec: str | None = None,
    audio_seconds: float | None = None,
    faststart: bool = False,
    crf: int | None = None,
    colour: dict[str, int] | None = None,
    audio_languages: tuple[str, ...] = (),
    audio_titles: tuple[str, ...] = (),
    subtitles: tuple[str, ...] = (),
    title: str | None = None,
    hdr10_metadata: bool = False,
) -> Path:
    """Encode a synthetic clip and return its path.

    codec: ``libx264``, ``libx265``, ``libvpx-vp9``, ``libsvtav1`` (``libaom-av1`` if built in).
    container: muxer name (``mp4``, ``mov``, ``matroska``, ``webm``, ``mpegts``); default from the
        suffix (.mp4 .m4v .mov .mkv .webm .ts).
    gop: keyframe interval in frames (scene cuts off, so keyframes land exactly every ``gop``
        frames); None means one keyframe per second.
    bframes: allow B-frames (x264/x265) or hidden alt-ref frames (VP9).
    vfr: frame durations alternate 1/fps and 1.5/fps (1/30 s and 1/20 s at 30 fps), in a
        1/90000 time base (the muxer may round it: Matroska stores milliseconds).
    sar: sample aspect ratio such as ``"4:3"`` (a 640x480 picture then displays as 853x480).
    rotation: display rotation in degrees counter-clockwise (written as a display matrix).
    audio_offset: seconds the audio starts after the video (negative: video starts after audio).
    audio_seconds: audio duration (default: same as the video).
    pix_fmt: e.g. ``yuv420p``, ``yuv420p10le``, ``yuv444p`` (H.264 at odd sizes needs 4:4:4;
        VP9 takes odd sizes in 4:2:0).
    colour: colour tags written into the stream, FFmpeg's numbers by name: ``color_primaries``,
        ``color_trc``, ``colorspace``, ``color_range`` (e.g. ``HDR10_PQ``, ``HLG``, ``BT709``).
        Only the tags: the pictures are the same test pattern.
    audio_languages: one language per audio track (more than one: extra tracks, a tone each of
        a different pitch); audio_titles: their titles.
    subtitles: one mov_text track per language (MP4/MOV only), each with SUBTITLE_CUES.
    title: the container's title tag.
    hdr10_metadata: (libx265) write HDR10_MASTERING mastering-display and content-light SEI.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if container is None:
        if suffix not in CONTAINER_FORMATS:
            raise ValueError(f"cannot guess the container of {path.name}; pass container=")
        container = CONTAINER_FORMATS[suffix][0]
    if codec == "libx264" and pix_fmt.startswith("yuv420") and (width % 2 or height % 2):
        raise ValueError("libx264 cannot encode 4:2:0 at odd sizes: use pix_fmt='yuv444p' or libvpx-vp9")
    if codec == "libsvtav1" and (width % 2 or height % 2 or width < 64 or height < 64):
        raise ValueError("libsvtav1 needs even sizes of at least 64x64")

    rate = Fraction(fps).limit_denominator(1001)
    times = _frame_times(rate, seconds, vfr)
    video_start = Fraction(max(0.0, -audio_offset)).limit_denominator(1000)
    audio_start = max(0.0, audio_offset)
    gop_frames = gop if gop else max(1, round(rate))

    tb = Fraction(1, 90000) if vfr else 1 / rate
    container_options = {"movflags": "+faststart"} if faststart and container in ("mp4", "mov", "ipod") else {}
    out = av.open(str(path), "w", format=container, options=container_options)
    try:
        options = _video_options(codec, gop_frames, bframes, crf)
        if hdr10_metadata:
            options["x265-params"] += ":" + HDR10_MASTERING
        vs = out.add_stream(codec, rate=rate, options=options)
        vs.width = width
        vs.height = height
        vs.pix_fmt = pix_fmt
        vs.codec_context.time_base = tb
        vs.time_base = tb
        vs.codec_context.gop_size = gop_frames
        if not bframes:
            vs.codec_context.max_b_frames = 0
        if sar is not None:
            if isinstance(sar, tuple):
                sar_f = Fraction(*sar)
            else:
                sar_f = Fraction(str(sar).replace(":", "/"))
            vs.codec_context.sample_aspect_ratio = sar_f
            vs.sample_aspect_ratio = sar_f
        if rotation:
            vs.set_display_rotation(rotation)
        for attr, value in (colour or {}).items():
            setattr(vs.codec_context, attr, value)

        if title:
            out.metadata["title"] = title
        streams_audio = None
        extra_audio = []
        if audio:
            acodec = audio_codec or _MUXER_AUDIO.get(container, "aac")
            streams_audio = out.add_stream(acodec, rate=AUDIO_RATE, layout="stereo")
            if acodec == "aac":
                streams_audio.bit_rate = 96000
            for k in range(1, len(audio_languages)):
                extra_audio.append(out.add_stream(acodec, rate=AUDIO_RATE, layout="stereo"))
            for k, st in enumerate([streams_audio] + extra_audio):
                if k < len(audio_languages):
                    st.metadata["language"] = audio_languages[k]
                if k < len(audio_titles):
                    st.metadata["title"] = audio_titles[k]
        subtitle_streams = []
        for lang in subtitles:
            st = out.add_stream("mov_text")
            st.codec_context.subtitle_header = _ASS_HEADER
            st.metadata["language"] = lang
            st.time_base = Fraction(1, 1000)
            subtitle_streams.append(st)

        def video_frames():
            for i, rgb in enumerate(pictures(width, height, len(times))):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                frame = frame.reformat(format=pix_fmt)
                for attr, value in (colour or {}).items():
                    setattr(frame, attr, value)
                t = times[i] + video_start
                frame.pts = int(round(t / tb))
                frame.time_base = tb
                yield float(t), frame

        def audio_frames():
            if streams_audio is None:
                return
            a_seconds = seconds if audio_seconds is None else audio_seconds
            if vfr:
                a_seconds = float(times[-1] + vfr_durations(rate, len(times))[-1]) if audio_seconds is None else a_seconds
            for frame in _audio_frames(a_seconds, audio_start):
                yield frame.pts / AUDIO_RATE, frame

        # Encode in presentation-time order so the muxer interleaves audio and video properly.
        vit, ait = video_frames(), audio_frames()
        vnext, anext = next(vit, None), next(ait, None)
        while vnext is not None or anext is not None:
            if anext is None or (vnext is not None and vnext[0] <= anext[0]):
                out.mux(vs.encode(vnext[1]))
                vnext = next(vit, None)
            else:
                out.mux(streams_audio.encode(anext[1]))
                anext = next(ait, None)
        out.mux(vs.encode(None))
        if streams_audio is not None:
            out.mux(streams_audio.encode(None))
        a_seconds = seconds if audio_seconds is None else audio_seconds
        for k, st in enumerate(extra_audio, start=1):  # the extra tracks: after, not interleaved
            for frame in _audio_frames(a_seconds, audio_start, freq=440.0 * (k + 1)):
                out.mux(st.encode(frame))
            out.mux(st.encode(None))
        for st in subtitle_streams:
            for start, end, text in SUBTITLE_CUES:
                if start + float(video_start) >= seconds:
                    continue
                data = text.encode()
                pkt = av.Packet(len(data).to_bytes(2, "big") + data)
                pkt.pts = pkt.dts = round((start + float(video_start)) * 1000)
                pkt.duration = round((end - start) * 1000)
                pkt.time_base = Fraction(1, 1000)
                pkt.stream = st
                out.mux(pkt)
    except BaseException:
        out.close()
        path.unlink(missing_ok=True)
        raise
    out.close()
    return path


# --------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------

def write_hls_playlist(path: str | os.PathLike, target: str | os.PathLike = "/etc/passwd") -> Path:
    """An HLS playlist whose one segment is ``target`` (a local file: the classic SSRF/LFI bait)."""
    path = Path(path)
    target = Path(target).resolve() if not str(target).startswith(("http:", "https:", "file:")) else target
    url = f"file://{target}" if isinstance(target, Path) else str(target)
    path.write_text(
        "#EXTM3U\n"
        "#EXT-X-VERSION:3\n"
        "#EXT-X-TARGETDURATION:10\n"
        "#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXTINF:10.0,\n"
        f"{url}\n"
        "#EXT-X-ENDLIST\n"
    )
    return path


def write_ffconcat(path: str | os.PathLike, *targets: str | os.PathLike) -> Path:
    """An ffconcat script listing ``targets`` (default ``/etc/passwd``)."""
    path = Path(path)
    lines = ["ffconcat version 1.0"] + [f"file '{t}'" for t in (targets or ("/etc/passwd",))]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_random_bytes(path: str | os.PathLike, size: int = 256 * 1024, seed: int = 1234) -> Path:
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def write_empty(path: str | os.PathLike) -> Path:
    path = Path(path)
    path.write_bytes(b"")
    return path


def write_truncated(src: str | os.PathLike, path: str | os.PathLike, fraction: float = 0.4) -> Path:
    """The first ``fraction`` of ``src``'s bytes (make ``src`` with faststart=True so the index
    survives and promises frames whose data is gone)."""
    data = Path(src).read_bytes()
    path = Path(path)
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def make_audio_only(path: str | os.PathLike, seconds: float = 2.0, codec: str | None = None) -> Path:
    """An audio-only file (``.m4a`` -> AAC in MP4)."""
    path = Path(path)
    fmt = {".m4a": "ipod", ".mka": "matroska", ".mp4": "mp4", ".webm": "webm"}.get(path.suffix.lower(), None)
    out = av.open(str(path), "w", format=fmt)
    try:
        acodec = codec or _MUXER_AUDIO.get(fmt or "", "aac")
        s = out.add_stream(acodec, rate=AUDIO_RATE, layout="stereo")
        for frame in _audio_frames(seconds, 0.0):
            out.mux(s.encode(frame))
        out.mux(s.encode(None))
    finally:
        out.close()
    return path


def make_huge(path: str | os.PathLike, width: int = 8192, height: int = 4352, frames: int = 2) -> Path:
    """A real (black, cheap: ~1 s to make) H.264 clip larger than segenc's default limits."""
    path = Path(path)
    out = av.open(str(path), "w")
    try:
        s = out.add_stream("libx264", rate=30, options={"preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane, value in zip(frame.planes, (16, 128, 128)):
            plane.update(bytes([value]) * plane.buffer_size)
        for i in range(frames):
            frame.pts = i
            out.mux(s.encode(frame))
        out.mux(s.encode(None))
    finally:
        out.close()
    return path


def make_many_streams(path: str | os.PathLike, audio_streams: int = 17, seconds: float = 1.0) -> Path:
    """A Matroska clip with one video stream and ``audio_streams`` audio streams."""
    path = Path(path)
    out = av.open(str(path), "w", format="matroska")
    try:
        vs = out.add_stream("libx264", rate=30, options={"preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = 160, 120, "yuv420p"
        streams = [out.add_stream("aac", rate=AUDIO_RATE, layout="stereo") for _ in range(audio_streams)]
        for i, rgb in enumerate(pictures(160, 120, max(1, round(seconds * 30)))):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        for s in streams:
            for frame in _audio_frames(seconds, 0.0):
                out.mux(s.encode(frame))
            out.mux(s.encode(None))
    finally:
        out.close()
    return path
