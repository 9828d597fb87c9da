"""Workers without the storage read their segment of an MP4 source by byte range
(segenc.distributed.ranges): a sparse file holding the header and the byte ranges a task names
must read exactly as the whole source does, and those ranges must be a task's share of the file,
not the file. (Here the ranges are copied from the file; tests/service/test_transfer.py runs the
same over the main instance's HTTP route between two network namespaces.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import pytest

from segenc.distributed import ranges
from segenc.distributed.transfer import write_range
from segenc.settings import Settings
from segenc.split import segment_packets
from segenc.steps import encode_chunks, prepare
from segenc.storage import resolve
from tests.mediagen import make_clip

pytestmark = pytest.mark.media

MP4 = ["h264_mp4", "h264_faststart", "h264_mov", "h264_longgop", "vfr_mp4", "tracks_mp4", "h264_audio_late"]
SETTINGS = Settings(chunk_seconds=0.7, preset="ultrafast", audio_copy=False)


class FileRanges:
    """Transfer.fetch_ranges without the HTTP: the byte ranges of a local file, written the same way."""

    def __init__(self, source: Path) -> None:
        self.source, self.fetched = source, 0

    def fetch_ranges(self, job_id: str, spans, dest: Path) -> int:
        size = self.source.stat().st_size
        with open(self.source, "rb") as src:
            for start, end in spans:
                assert 0 <= start < end <= size, (start, end, size)  # bounded, inside the file
                src.seek(start)
                write_range(dest, start, src.read(end - start), size)
                self.fetched += end - start
        return size


def _job(clip, name, root):
    (root / "uploads").mkdir(parents=True, exist_ok=True)
    src = Path(shutil.copy(clip(name), root / "uploads" / clip(name).name))
    plan = prepare(src, root, job_id="j", ladder=("240p", "144p"), settings=SETTINGS)
    assert plan.source == "uploads/" + src.name
    return src, plan


def _samples(path):
    with av.open(str(path)) as ic:
        return [[f.to_ndarray().tobytes() for f in ic.decode(a)] for a in ic.streams.audio]


def _packets(packets):
    return [(bytes(p), p.pts, p.dts, p.is_keyframe) for p in packets if p is not None and p.size]


@pytest.mark.parametrize("name", MP4)
def test_a_segment_read_by_byte_range_is_the_sources_segment(clip, tmp_path, name):
    root = tmp_path / "root"
    src, plan = _job(clip, name, root)
    size = src.stat().st_size
    t0 = plan.info.start_pts
    fetched = []
    for seg, spec in zip(plan.segments, [g[0] for g in plan.groups() if g[0].kind == "video"]):
        local = tmp_path / f"node-{seg.index}"  # a node of its own per segment: nothing shared
        t = FileRanges(src)
        assert ranges.fetch(t, local, [spec])
        end = spec.end_pts + t0 if spec.end_pts >= 0 else None
        with av.open(str(src)) as whole, av.open(str(resolve(local, spec.source))) as sparse:
            want = _packets(segment_packets(whole, whole.streams.video[0], spec.key_pts + t0, end))
            got = _packets(segment_packets(sparse, sparse.streams.video[0], spec.key_pts + t0, end))
        assert len(got) >= seg.frames and got == want, seg.index
        fetched.append(t.fetched)
    assert len(fetched) >= 3


def test_a_segments_byte_ranges_are_its_share_of_the_file(tmp_path):
    """Ten segments of a 10 s clip: each node fetches about a tenth of the file (its samples, the
    audio interleaved between them, and the header), all of them together about the file once.
    (An audio task fetches its span's share the same way; where the source's audio is AAC it is
    copied where the source is, on the storage's queue, and never fetched.)"""
    root = tmp_path / "root"
    (root / "uploads").mkdir(parents=True)
    src = make_clip(root / "uploads" / "ten.mp4", width=640, height=360, seconds=10.0, gop=30)
    plan = prepare(src, root, job_id="j", ladder=("240p",), settings=SETTINGS.with_(chunk_seconds=1.0))
    size = src.stat().st_size
    fetched = []
    for g in [g for g in plan.groups() if g[0].kind == "video"]:
        t = FileRanges(src)
        assert ranges.fetch(t, tmp_path / f"node-{g[0].chunk_id}", list(g))
        fetched.append((g[0].kind, t.fetched))
    video = [n for kind, n in fetched]
    assert len(video) == 10
    assert max(video) < 0.2 * size, (fetched, size)
    assert sum(video) < 1.3 * size, (fetched, size)  # the header and a few samples past each end repeat


@pytest.mark.parametrize("name", ["h264_mp4", "tracks_mp4"])
def test_a_job_read_by_byte_range_encodes_the_same_chunks_byte_for_byte(clip, tmp_path, name):
    """Every task (video and audio, every track) on a node that holds only its byte ranges makes
    the chunk a node holding the whole source makes."""
    root = tmp_path / "root"
    src, plan = _job(clip, name, root)
    node = tmp_path / "node"
    t = FileRanges(src)
    for g in plan.groups():
        g = list(g)
        assert ranges.fetch(t, node, g), g[0].chunk_id
        encode_chunks(g, root)
        encode_chunks(g, node)
        for spec in g:
            a, b = resolve(node, spec.output), resolve(root, spec.output)
            if spec.kind == "audio":  # (an audio part's file is not byte-stable run to run; its samples are)
                assert _samples(a) == _samples(b), spec.chunk_id
            else:
                assert a.read_bytes() == b.read_bytes(), spec.chunk_id
    assert any(g[0].kind == "audio" for g in plan.groups())
    assert t.fetched <= 1.3 * src.stat().st_size  # one node, every task: about the file once


def test_a_source_other_than_a_plain_mp4_is_not_read_by_range(clip, tmp_path):
    root = tmp_path / "root"
    (root / "uploads").mkdir(parents=True)
    src = Path(shutil.copy(clip("vfr_mkv"), root / "uploads" / clip("vfr_mkv").name))
    plan = prepare(src, root, job_id="j", ladder=("240p",), settings=SETTINGS)
    spec = next(g[0] for g in plan.groups() if g[0].kind == "video")
    assert spec.direct
    t = FileRanges(src)
    assert not ranges.fetch(t, tmp_path / "node", [spec])  # the caller falls back to a segment copy
    assert t.fetched <= ranges.HEAD_BYTES + 64  # the header's look, nothing more
