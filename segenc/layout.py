"""Where every file of a job lives: one function per path, the only place paths are spelled.

All paths are relative to a storage root (a worker's ``--tmp-dir``, or a private temp folder for
``segenc.encode``); ``storage.resolve`` turns them into real paths and refuses escapes.

    uploads/<job>/source                 an upload, without its client name or extension
    uploads/<job>/source.part            while it is still arriving
    work/<job>/plan.json                 the plan: segments, chunks and the tasks sent
    work/<job>/timings.json              probe/plan/split seconds, for the manifest
    work/<job>/publish.lock              held by whoever publishes the job's stream
    work/<job>/segments/s0000.mkv        one keyframe-aligned segment of the source
    work/<job>/audio-source.mka          the source's audio tracks, remuxed
    work/<job>/subtitles.mp4             the source's mov_text subtitle tracks, remuxed
    work/<job>/chunks/<rung>/s0000.m4s   one segment encoded to one rendition (init + one fragment)
    work/<job>/audio/s0000.m4a           the audio (every track) of one segment's span, encoded
    work/<job>/audio.m4a                 the parts joined, for the MP4 downloads
    encoded/<job>/<rung>.mp4             a finished rendition
    encoded/<job>/manifest.json          written last: its presence means the ladder is complete
    encoded/<job>/master.m3u8            the HLS master playlist (appears once every track has a segment)
    encoded/<job>/stream.mpd             the DASH manifest over the same files (written at the end)
    encoded/<job>/<rung>/init.mp4        a rung's CMAF init segment; s0000.m4s ... its media segments;
    encoded/<job>/<rung>/index.m3u8      its media playlist (EVENT while encoding, then VOD)
    encoded/<job>/audio0/...             the same for audio track 0 (audio1 for the next, ...)
    thumbs/<job>/thumbnail.jpg           the service's thumbnail of the source (not an output)
    remote/<worker>/...                  a worker's cache of transferred files (same layout inside)
"""

from __future__ import annotations

import re

UPLOADS, WORK, ENCODED, REMOTE, THUMBS = "uploads", "work", "encoded", "remote", "thumbs"
PLAN_FILE = "plan.json"
MANIFEST_FILE = "manifest.json"
THUMBNAIL_FILE = "thumbnail.jpg"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
RUNG_NAME = r"\d{2,4}p"  # a rendition's name: its short side in pixels (segenc.model.parse_rung)
_RUNG = RUNG_NAME
_INDEX = r"s\d{4}"


def work_dir(job_id: str) -> str:
    return f"{WORK}/{job_id}"


def plan_file(workdir: str) -> str:
    return f"{workdir}/{PLAN_FILE}"


def timings_file(workdir: str) -> str:
    return f"{workdir}/timings.json"


def publish_lock(workdir: str) -> str:
    """The lock that makes one process at a time the job's playlist writer (segenc.stream)."""
    return f"{workdir}/publish.lock"


def segment(workdir: str, index: int) -> str:
    return f"{workdir}/segments/s{index:04d}.mkv"


def chunk(workdir: str, rendition: str, index: int, ext: str = "m4s") -> str:
    """``ext``: the chunk container, m4s (a CMAF fragment: init + one moof)."""
    return f"{workdir}/chunks/{rendition}/s{index:04d}.{ext}"


def staged(rel: str, token: str) -> str:
    """Where one attempt of a task writes ``rel`` before it wins the commit (same directory, so
    the rename into place is atomic; hidden, so no pattern ever takes it for an output)."""
    head, _, name = rel.rpartition("/")
    return f"{head}/.{token}.{name}" if head else f".{token}.{name}"


def linked_source(workdir: str, suffix: str) -> str:
    """``segenc.encode()``'s source, hard-linked into the job's work dir so that its tasks read it
    straight from there (a storage path, like an upload's); ``suffix`` is the source's own."""
    return f"{workdir}/source{suffix.lower() if suffix.isascii() and len(suffix) <= 8 else ''}"


def audio_source(workdir: str) -> str:
    return f"{workdir}/audio-source.mka"


def subtitles_source(workdir: str) -> str:
    return f"{workdir}/subtitles.mp4"


def audio_output(workdir: str) -> str:
    return f"{workdir}/audio.m4a"


def audio_part(workdir: str, index: int) -> str:
    """The encoded audio of segment ``index``'s span (segenc.audio)."""
    return f"{workdir}/audio/s{index:04d}.m4a"


def upload_dir(job_id: str) -> str:
    return f"{UPLOADS}/{job_id}"


def upload(job_id: str) -> str:
    return f"{upload_dir(job_id)}/source"


def upload_part(job_id: str) -> str:
    return f"{upload(job_id)}.part"


def encoded_dir(job_id: str) -> str:
    return f"{ENCODED}/{job_id}"


def thumbnail(job_id: str) -> str:
    """A small JPEG of one frame of the job's source, for the page's job list."""
    return f"{THUMBS}/{job_id}/{THUMBNAIL_FILE}"


def output(out_dir: str, rendition: str) -> str:
    """A rendition's file inside an output directory (root-relative or absolute)."""
    return f"{out_dir}/{rendition}.mp4"


def output_name(rendition: str) -> str:
    return f"{rendition}.mp4"


MASTER_PLAYLIST = "master.m3u8"
DASH_MANIFEST = "stream.mpd"
STREAM_INIT = "init.mp4"
MEDIA_PLAYLIST = "index.m3u8"
AUDIO_TRACK = "audio"
TRACK_NAME = rf"(?:{RUNG_NAME}|{AUDIO_TRACK}\d{{1,2}})"
# A file a stream client may ask for, relative to the output directory (the service's routes).
STREAM_FILE = re.compile(rf"^(?:{re.escape(MASTER_PLAYLIST)}|{re.escape(DASH_MANIFEST)}|{TRACK_NAME}/"
                         rf"(?:{re.escape(STREAM_INIT)}|{re.escape(MEDIA_PLAYLIST)}|s\d{{4}}\.m4s))$")


def audio_track(k: int) -> str:
    """The stream folder of audio track ``k``."""
    return f"{AUDIO_TRACK}{k}"


def stream_segment_name(index: int) -> str:
    return f"s{index:04d}.m4s"


def stream_segment(track: str, index: int) -> str:
    """A published media segment of ``track`` (a rung name or audio_track(k)), relative to the output dir."""
    return f"{track}/{stream_segment_name(index)}"


def stream_template(track: str) -> str:
    """The DASH SegmentTemplate ``media`` for ``track`` (``$Number$`` from 0)."""
    return f"{track}/s$Number%04d$.m4s"


def stream_init(track: str) -> str:
    return f"{track}/{STREAM_INIT}"


def media_playlist(track: str) -> str:
    return f"{track}/{MEDIA_PLAYLIST}"


def stream_file(rel: str) -> bool:
    """Whether ``rel`` names a file of a job's stream (the master, the MPD or a track's file)."""
    return bool(STREAM_FILE.match(rel))


def manifest(out_dir: str) -> str:
    return f"{out_dir}/{MANIFEST_FILE}"


def remote_root(worker: str) -> str:
    """A worker's own cache of transferred files (per node, so neighbours never collide)."""
    return f"{REMOTE}/{worker}"


def failed_job_dirs(job_id: str) -> tuple[str, ...]:
    """What a failed job loses at once: its work files and any partial output (the upload stays,
    for a retry)."""
    return work_dir(job_id), encoded_dir(job_id)


def job_dirs(job_id: str) -> tuple[str, ...]:
    """Every directory a job owns, for removing it."""
    return upload_dir(job_id), work_dir(job_id), encoded_dir(job_id), f"{THUMBS}/{job_id}"


# The files a worker without the shared storage may fetch (inputs) and store (outputs), as
# patterns built from the functions above, so the transfer routes can never drift from the layout.
def _pattern(*paths: str) -> re.Pattern:
    """Paths made with the sentinel job "<job>", rung "<rung>" and index 0, as one strict regex."""
    wild = {re.escape(work_dir("<job>")): work_dir(_UUID), re.escape("<rung>"): _RUNG, "s0000": _INDEX}
    alternatives = []
    for p in paths:
        rx = re.escape(p)
        for sentinel, replacement in wild.items():
            rx = rx.replace(sentinel, replacement)
        alternatives.append(rx)
    return re.compile("^(?:" + "|".join(alternatives) + ")$")


FETCHABLE = _pattern(segment(work_dir("<job>"), 0), audio_source(work_dir("<job>")))
STORABLE = _pattern(*(chunk(work_dir("<job>"), "<rung>", 0, ext) for ext in ("m4s", "ts", "nut")),
                    audio_part(work_dir("<job>"), 0))


def is_job_id(text: str) -> bool:
    """A job id as the service makes them (a UUID4's text): safe in a path."""
    return bool(re.fullmatch(_UUID, text))


def fetchable(rel: str) -> bool:
    return bool(FETCHABLE.match(rel))


def storable(rel: str) -> bool:
    return bool(STORABLE.match(rel))
