"""codecs: what each output codec needs from the encoder, in one place.

    h264  libx264    8-bit 4:2:0, High profile; HDR sources are refused (see check_source)
    hevc  libx265    8 or 10-bit 4:2:0 (Main / Main10, following the source), tagged hvc1 in MP4
    av1   libsvtav1  8 or 10-bit 4:2:0 (Main)

Chunks: every codec's chunks are CMAF fragments (fragmented MP4, ``.m4s``) written with movflags
``empty_moov+cmaf+frag_discont`` (see CHUNK_MOVFLAGS): one moof per chunk whose ``tfdt`` is the
chunk's first source timestamp (90 kHz), so a chunk is already an HLS/DASH media segment and
chunks written by different processes share a byte-identical init segment (ftyp+moov) per rung.
For that the encoder must be told the same framerate in every chunk of a rung (the plan's, see
ChunkSpec.frame_rate): x264's level and SPS depend on it (1080p: 30 fps level 4.0, 60 fps 4.2).

Colour: primaries, transfer, matrix and range follow the source's first decoded frame; HDR10
mastering-display and content-light metadata (its side data) go to x265 and SVT-AV1 as
parameters (see hdr_params).

Keyframes: an IDR at the first frame of every chunk and at the first frame at or after every
multiple of ``Settings.gop`` seconds of source time. Both depend on the source's timestamps only,
so every rung has its IDRs at the same times. The encoders' own keyframe decisions are switched
off (scene cuts off, keyint longer than any gop can be), so nothing else becomes an IDR; keyint is
a constant of the job, so a rung's parameter sets do not vary from chunk to chunk.

Threading: one thread per encoder, like libx264 (the parallelism is across chunk tasks). Measured
on this 2-core machine, 60 frames of 1280x720 testsrc2 per encode:
    alone:  x265 veryfast 1 thread 1.69 CPU-s (1.63 s wall), default threads 1.63 CPU-s (0.95 s);
            SVT-AV1 preset 10 lp=1 0.41 CPU-s (0.38 s), lp=2 0.47 CPU-s (0.26 s).
    4 such encodes on a pool of 2 processes (what segenc does): x265 1 thread 3.91 s wall
            (7.25 CPU-s) vs default 4.16 s (7.30 CPU-s); SVT-AV1 lp=1 1.31 s (2.40 CPU-s) vs
            default 1.85 s (3.37 CPU-s).
So single-threaded tasks are at least as fast in aggregate and never oversubscribe the cores.
"""

from __future__ import annotations

import math
import os
import struct
from fractions import Fraction

import av

from .errors import IncompatibleError
from .model import ChunkSpec, MediaInfo
from .settings import CODECS, Settings

# SVT-AV1 prints its whole configuration to stderr at every encoder start (each chunk) unless told
# otherwise; it reads this variable when an encoder starts. 1: errors only. A caller's value wins.
os.environ.setdefault("SVT_LOG", "1")

# Source decoders that, asked to (skip_frame NONREF), skip a frame no other frame predicts from.
# A chunk that starts between keyframes decodes its pre-roll only for the frames it keeps, so its
# non-reference frames (most B-frames) are skipped and the kept frames decode bit for bit the same
# (segenc.video). On a grainy 720p clip a 30-frame pre-roll decoded 15 frames and cost 0.4 s less
# CPU: the planner counts PREROLL_DECODED of a pre-roll's decoding for these.
PREROLL_SKIPS = ("h264", "hevc")
PREROLL_DECODED = 0.5

# AVColorTransferCharacteristic values of HDR transfers.
TRC_PQ, TRC_HLG = 16, 18
HDR_TRANSFERS = {TRC_PQ: "PQ (HDR10)", TRC_HLG: "HLG"}
UNSPECIFIED = 2  # primaries / transfer / matrix
HDR_CODECS = ("hevc", "av1")

# x264's speed names -> SVT-AV1 presets (0 slowest .. 13 fastest), roughly equal in purpose.
SVT_PRESETS = {"ultrafast": 12, "superfast": 11, "veryfast": 10, "faster": 9, "fast": 8, "medium": 7,
               "slow": 5, "slower": 4, "veryslow": 2, "placebo": 1}

VBV_INIT = 0.5  # the share of the VBV buffer full at each chunk's start (see encoder_options)

MP4_TAGS = {"hevc": "hvc1"}  # Apple players need hvc1 (parameter sets in the sample entry), not hev1


# One fragment per chunk (no frag_keyframe: a chunk is one moof, numbered by the publish step);
# cmaf + frag_discont keep the source timestamps in tfdt instead of restarting every chunk at 0.
CHUNK_MOVFLAGS = "empty_moov+cmaf+frag_discont+default_base_moof"


def chunk_format(codec: str) -> str:
    """The chunk container (file extension): a CMAF fragment, for every codec."""
    return "m4s"


def muxer(ext: str) -> str:
    return {"mkv": "matroska", "nut": "nut", "ts": "mpegts", "m4s": "mp4"}[ext]


def muxer_options(ext: str) -> dict[str, str]:
    return {"movflags": CHUNK_MOVFLAGS} if ext == "m4s" else {}


def tone_mapping_filters() -> tuple[str, ...]:
    """The filters this FFmpeg would need to tone-map HDR to SDR, if it has them all.

    ``tonemap`` works on linear light, and only ``zscale`` (zimg) linearises PQ/HLG; the
    ``colorspace`` filter does not know those transfers. This build has tonemap but no zscale."""
    need = ("zscale", "tonemap")
    return need if all(f in av.filter.filters_available for f in need) else ()


def check_source(info: MediaInfo, settings: Settings) -> None:
    """Refuse what the codec cannot carry faithfully: an HDR source in H.264 without tone mapping."""
    hdr = HDR_TRANSFERS.get(info.color_trc)
    if hdr and settings.codec not in HDR_CODECS:
        raise IncompatibleError(
            f"the source is HDR ({hdr}); {settings.codec} output would need tone mapping to SDR and this "
            f"FFmpeg has no zscale filter to do it: encode with codec {' or '.join(HDR_CODECS)}, which keep "
            f"the HDR signalling and 10-bit depth")


def pix_fmt(codec: str, source_depth: int) -> str:
    return "yuv420p10le" if codec in HDR_CODECS and source_depth > 8 else "yuv420p"


def keyint(settings: Settings) -> int:
    """The encoders' own keyframe interval in frames: longer than any gop at the highest frame rate."""
    return math.ceil(settings.gop * settings.limits.max_fps) + 1


def idr_pts(spec: ChunkSpec) -> frozenset[int]:
    """Source pts of the frames that must be IDRs: the chunk's first, and the first at or after
    every multiple of ``gop`` seconds (times counted from the source's first frame)."""
    pts = spec.frame_pts
    if not pts:
        return frozenset()
    tb = Fraction(spec.time_base)
    gop = Fraction(spec.settings.gop).limit_denominator(1000)
    out = {pts[0]}
    for a, b in zip(pts, pts[1:]):
        if math.floor(b * tb / gop) > math.floor(a * tb / gop):
            out.add(b)
    return frozenset(out)


def add_video_stream(oc, spec: ChunkSpec, tb: Fraction):
    """An encoder stream for ``spec``'s rendition in ``oc``; call ``configure`` with the first
    decoded frame before encoding (depth and colour follow the source)."""
    rend, s = spec.rendition, spec.settings
    ost = oc.add_stream(CODECS[s.codec])
    cc = ost.codec_context
    cc.width, cc.height, cc.pix_fmt = rend.width, rend.height, "yuv420p"
    cc.time_base = tb
    if spec.frame_rate and Fraction(spec.frame_rate) > 0:
        cc.framerate = Fraction(spec.frame_rate)  # the plan's: the same in every chunk of the rung
    elif len(spec.frame_pts) > 1:
        span = (spec.frame_pts[-1] - spec.frame_pts[0]) * tb
        cc.framerate = (Fraction(len(spec.frame_pts) - 1) / span).limit_denominator(1001) if span else Fraction(25)
    cc.thread_count = 1
    cc.gop_size = keyint(s)
    cc.options = encoder_options(spec)
    ost.time_base = Fraction(1, 90000)
    if mp4_tag(cc.name):
        ost.codec_tag = mp4_tag(cc.name)
    return ost


def encoder_options(spec: ChunkSpec) -> dict[str, str]:
    rend, s = spec.rendition, spec.settings
    crf = f"{float(s.crf):g}"
    k = keyint(s)
    if s.codec == "h264":
        # CRF 0 is lossless, which x264 codes only in High 4:4:4 Predictive (High refuses to open).
        opts = {"preset": s.preset, "crf": crf, "profile": "high444" if float(s.crf) == 0 else "high", "threads": "1",
                "forced-idr": "1", "x264-params": "scenecut=0"}
    elif s.codec == "hevc":
        opts = {"preset": s.preset, "crf": crf, "forced-idr": "1",
                "x265-params": f"log-level=error:pools=none:frame-threads=1:scenecut=0:open-gop=0:keyint={k}"}
    else:
        # CRF through svtav1-params: the wrapper's own crf option is an integer (40.5 became 40).
        opts = {"preset": str(SVT_PRESETS[s.preset]), "svtav1-params": f"crf={crf}:lp=1:scd=0"}
    if rend.maxrate:
        bufsize = rend.bufsize or 2 * rend.maxrate
        opts["maxrate"] = str(rend.maxrate)
        opts["bufsize"] = str(bufsize)
        # Each chunk is its own VBV model starting VBV_INIT full (the encoders' default is 0.9): a
        # window over a seam sees two chunk starts, so a full buffer at each would let the peak reach
        # maxrate x window + 1.8 bufsize; half-full starts keep it near maxrate x window + bufsize.
        if s.codec == "h264":
            opts["x264-params"] += f":vbv-init={VBV_INIT}"
        elif s.codec == "hevc":
            opts["x265-params"] += f":vbv-init={VBV_INIT}"
        else:
            ms = round(1000 * bufsize / rend.maxrate)
            start = round(ms * VBV_INIT)
            opts["svtav1-params"] += f":mbr-overshoot-pct=0:buf-sz={ms}:buf-initial-sz={start}:buf-optimal-sz={start}"
    return opts


def configure(cc, frame: av.VideoFrame, spec: ChunkSpec) -> str:
    """Set the encoder's depth and colour from the source's first decoded frame; returns the
    output pixel format (what the scaler must produce)."""
    depth = max(c.bits for c in frame.format.components) if frame.format.components else 8
    fmt = pix_fmt(spec.settings.codec, depth)
    cc.pix_fmt = fmt
    for attr in ("color_primaries", "color_trc", "colorspace"):
        value = getattr(frame, attr)
        if value != UNSPECIFIED:
            setattr(cc, attr, value)
    if frame.color_range:
        cc.color_range = frame.color_range
    extra = hdr_params(frame, spec.settings.codec)
    if extra:
        key = {"hevc": "x265-params", "av1": "svtav1-params"}[spec.settings.codec]
        opts = dict(cc.options)
        opts[key] = ":".join(filter(None, (opts.get(key), extra)))
        cc.options = opts
    return fmt


def hdr_params(frame: av.VideoFrame, codec: str) -> str:
    """The encoder parameters that carry the source's HDR10 static metadata (mastering display
    colour volume, content light level) from the first decoded frame's side data; "" if none."""
    if codec not in HDR_CODECS or HDR_TRANSFERS.get(frame.color_trc) is None:
        return ""
    md = cll = None
    for sd in frame.side_data:
        name = str(sd.type).rpartition(".")[2]
        if name == "MASTERING_DISPLAY_METADATA":
            md = struct.unpack("<22i", bytes(sd)[:88])
        elif name == "CONTENT_LIGHT_LEVEL":
            cll = struct.unpack("<2I", bytes(sd)[:8])
    parts = []
    if md is not None and md[20] and md[21]:  # has_primaries, has_luminance
        q = [Fraction(md[i], md[i + 1] or 1) for i in range(0, 20, 2)]  # R G B (x,y), WP (x,y), min, max
        r, g, b, wp, lum = q[0:2], q[2:4], q[4:6], q[6:8], (q[9], q[8])
        if codec == "hevc":  # chromaticity in 0.00002, luminance in 0.0001 cd/m2
            xy = lambda p: f"({round(p[0] * 50000)},{round(p[1] * 50000)})"  # noqa: E731
            parts.append(f"master-display=G{xy(g)}B{xy(b)}R{xy(r)}WP{xy(wp)}"
                         f"L({round(lum[0] * 10000)},{round(lum[1] * 10000)})")
        else:
            xy = lambda p: f"({float(p[0]):.4f},{float(p[1]):.4f})"  # noqa: E731
            parts.append(f"mastering-display=G{xy(g)}B{xy(b)}R{xy(r)}WP{xy(wp)}"
                         f"L({float(lum[0]):.4f},{float(lum[1]):.4f})")
    if cll is not None and any(cll):
        parts.append(f"max-cll={cll[0]},{cll[1]}" if codec == "hevc" else f"content-light={cll[0]},{cll[1]}")
    return ":".join(parts)


def mp4_tag(codec_name: str) -> str | None:
    """The MP4 sample entry to force for a stream of FFmpeg codec ``codec_name`` (None: the default)."""
    return MP4_TAGS.get(codec_name)


def rfc6381(path) -> str:
    """The RFC 6381 ``CODECS`` string of an MP4's (or fMP4 init's) video track, from its sample
    entry's configuration record: ``avc1.64001F``, ``hvc1.2.4.L93.B0``, ``av01.0.04M.10``.
    For HLS/DASH playlists (EXT-X-STREAM-INF CODECS, the MPD's codecs attribute)."""
    with av.open(str(path), "r", container_options={"protocol_whitelist": "file"}) as c:
        v = c.streams.video[0]
        name, rec = v.codec_context.name, bytes(v.codec_context.extradata or b"")
    if name == "h264" and len(rec) >= 4 and rec[0] == 1:  # avcC
        return f"avc1.{rec[1]:02X}{rec[2]:02X}{rec[3]:02X}"
    if name == "hevc" and len(rec) >= 13 and rec[0] == 1:  # hvcC
        space, tier, profile = rec[1] >> 6, (rec[1] >> 5) & 1, rec[1] & 0x1F
        compat = int.from_bytes(rec[2:6], "big")
        compat = int(f"{compat:032b}"[::-1], 2)  # the flags in reverse bit order, as hex
        constraints = rec[6:12].rstrip(b"\x00")
        tail = "".join(f".{b:02X}" for b in constraints)
        return f"hvc1.{'' if space == 0 else 'ABC'[space - 1]}{profile}.{compat:X}.{'LH'[tier]}{rec[12]}{tail}"
    if name in ("av1", "libdav1d") and len(rec) >= 4 and rec[0] & 0x80:  # av1C
        profile, level = rec[1] >> 5, rec[1] & 0x1F
        tier, high, twelve = rec[2] >> 7, (rec[2] >> 6) & 1, (rec[2] >> 5) & 1
        depth = 12 if twelve else 10 if high else 8
        return f"av01.{profile}.{level:02d}{'MH'[tier]}.{depth:02d}"
    raise ValueError(f"{path}: no configuration record to derive a CODECS string from ({name})")


def track_tags(stream) -> dict[str, str]:
    """A track's language and title, to carry to an output stream (MP4 reads a title back as "name")."""
    found = {"language": stream.metadata.get("language"),
             "title": stream.metadata.get("title") or stream.metadata.get("name")}
    return {k: v for k, v in found.items() if v}
