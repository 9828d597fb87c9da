"""The download MP4, written box by box from a rung's chunks (segenc.faststart, via concat): FFmpeg
reads the chunks' video from it packet for packet, 64-bit offsets and sizes (files over 4 GB) read
back the same packets, and a full disk ends in StorageFullError with nothing at the final path."""

from __future__ import annotations

import hashlib
import subprocess

import av
import pytest

from segenc import faststart, layout
from segenc.concat import concat
from segenc.errors import IntegrityError, StorageFullError
from segenc.model import ChunkSpec
from segenc.settings import Settings
from tests import checks, disks

pytestmark = pytest.mark.media

RUNG = "360p"


@pytest.fixture(scope="module")
def parts(encoded, tmp_path_factory):
    """The rung's chunks, rebuilt from its stream (init + media segment n = chunk n), an audio
    side file (the rendition's AAC, stream-copied), and the encode's own rendition MP4."""
    res, out = encoded("h264_640x360", ladder=("240p", RUNG), chunk_seconds=1.0)
    root = tmp_path_factory.mktemp("faststart")
    init = (out / layout.stream_init(RUNG)).read_bytes()
    chunks = []
    for n in range(res.segments):
        path = root / f"s{n:04d}.m4s"
        path.write_bytes(init + (out / layout.stream_segment(RUNG, n)).read_bytes())
        chunks.append(path)
    audio = root / "audio.mp4"
    with av.open(str(out / f"{RUNG}.mp4")) as ic, av.open(str(audio), "w", format="mp4") as oc:
        ist = ic.streams.audio[0]
        ost = oc.add_stream_from_template(ist, opaque=True)
        for pkt in ic.demux(ist):
            if pkt.dts is not None:
                pkt.stream = ost
                oc.mux(pkt)
    return root, chunks, audio, out / f"{RUNG}.mp4"


def _packets(path) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    with av.open(str(path)) as c:
        for p in c.demux():
            if p.size:
                out.setdefault(p.stream.type, []).append(
                    (p.pts, p.dts, p.duration, p.is_keyframe, hashlib.md5(bytes(p)).hexdigest()))
    return out


def _specs(root, chunks) -> list[ChunkSpec]:
    specs = []
    for n, path in enumerate(chunks):
        with av.open(str(path)) as c:
            frames = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
        specs.append(ChunkSpec(job_id="j", chunk_id=f"s{n:04d}-{RUNG}", kind="video", source="", output=path.name,
                               settings=Settings(), frame_pts=tuple(range(frames)), duration=frames / 30))
    return specs


def test_the_mp4_carries_the_chunks_video_packet_for_packet(parts, tmp_path):
    root, chunks, audio, rendition = parts
    joined = tmp_path / "fragmented.mp4"  # what a player of the stream reads: init + every fragment
    joined.write_bytes(chunks[0].read_bytes() + b"".join(
        c.read_bytes()[len(faststart.FragmentFile(c).init):] for c in chunks[1:]))
    out = tmp_path / "out.mp4"
    facts = faststart.write(chunks, [audio], out, frame_seconds=1 / 30)
    got, want = _packets(out), _packets(joined)
    assert [p[3:] for p in got["video"]] == [p[3:] for p in want["video"]]  # same frames, same bytes, same IDRs
    first = got["video"][0][0]
    assert first == 0 and sorted(p[0] for p in got["video"])[0] == 0, "the first frame is not shown at 0"
    shift = want["video"][0][0] - first  # FFmpeg shows fragments B-frame-delay late (see segenc.concat)
    assert [p[0] for p in got["video"]] == [p[0] - shift for p in want["video"]]
    assert facts["frames"] == len(want["video"]) == checks.frame_count(rendition)
    assert checks.is_faststart(out) and checks.packet_dts_monotonic(out)
    assert _packets(rendition) == got  # the encode's own download is this file's twin


def test_64_bit_offsets_and_sizes_read_back_the_same_packets(parts, tmp_path, monkeypatch):
    """Past 4 GB the chunk offsets are co64, the mdat has a 64-bit size and long durations need
    version-1 headers; lowering the limit to 50 kB takes those paths on a small file."""
    root, chunks, audio, _ = parts
    small, wide = tmp_path / "small.mp4", tmp_path / "wide.mp4"
    faststart.write(chunks, [audio], small, frame_seconds=1 / 30)
    monkeypatch.setattr(faststart, "_U32", 50_000)
    faststart.write(chunks, [audio], wide, frame_seconds=1 / 30, title="wide")
    data = wide.read_bytes()
    mdat = next(off for kind, off, _ in checks.top_level_boxes(wide) if kind == "mdat")
    assert data[mdat:mdat + 4] == b"\0\0\0\1", "the mdat does not carry a 64-bit size"
    assert b"co64" in data[:mdat] and b"stco" not in data[:mdat]
    assert _packets(wide) == _packets(small)
    with av.open(str(wide)) as c:
        assert c.metadata.get("title") == "wide"
    if checks.ffmpeg_cli():  # a second reader: the ffmpeg CLI decodes it without a complaint
        r = subprocess.run([checks.ffmpeg_cli(), "-v", "error", "-i", str(wide), "-f", "null", "-"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_chunks_with_different_inits_are_refused_by_name(parts, tmp_path):
    root, chunks, audio, _ = parts
    odd = tmp_path / "odd.m4s"
    data = bytearray(chunks[1].read_bytes())
    data[data.find(b"mvhd") + 12] ^= 1  # another creation time: another init
    odd.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="chunk 1: its init segment differs"):
        faststart.write([chunks[0], odd], [audio], tmp_path / "x.mp4", what="360p")
    assert not (tmp_path / "x.mp4").exists() or (tmp_path / "x.mp4").stat().st_size == 0


@pytest.fixture
def tiny_disk(tmp_path):
    with disks.tmpfs(tmp_path, "64k") as mnt:
        yield mnt


def test_a_full_disk_while_stitching_is_storage_full_and_leaves_nothing(parts, tiny_disk):
    root, chunks, audio, _ = parts
    final = tiny_disk / f"{RUNG}.mp4"
    with pytest.raises(StorageFullError, match="no space left on the storage"):
        concat(_specs(root, chunks), root, final, audio=audio.name)
    assert sorted(p.name for p in tiny_disk.iterdir()) == []  # no final file, no temp file
