"""No central split: a job whose source lies on the storage is read by every task straight from
the source, one seek per segment. What a task reads must be exactly what the split would have
written, on every source kind that seeks by its index."""

from __future__ import annotations

import io
import shutil

import av
import numpy as np
import pytest

from segenc import layout
from segenc.settings import Settings
from segenc.split import segment_packets, split, write_segment
from segenc.steps import encode_chunks, plan_job, prepare
from segenc.storage import resolve

pytestmark = pytest.mark.media

# Every container the media tests cover that seeks by its index, with B-frames, VFR, a 60 s GOP
# (mid-GOP cuts decode from an earlier keyframe), 10-bit HEVC, VP9, AV1, several tracks.
DIRECT = ["h264_mp4", "h264_faststart", "h264_mov", "h264_longgop", "vfr_mp4", "vfr_mkv", "hevc10_mkv",
          "vp9_webm", "av1_mkv", "tracks_mp4", "h264_audio_late"]
SETTINGS = Settings(chunk_seconds=0.7, preset="ultrafast")


def _uploaded(clip, name, root):
    """The clip copied where an upload lands: under the storage root."""
    (root / "uploads").mkdir(parents=True, exist_ok=True)
    return shutil.copy(clip(name), root / "uploads" / clip(name).name)


def _packets(packets):
    return [(bytes(p), p.is_keyframe) for p in packets if p is not None and p.size]


@pytest.mark.parametrize("name", DIRECT)
def test_segments_read_from_the_source_hold_exactly_the_split_files_packets(clip, tmp_path, name):
    root = tmp_path / "root"
    src = _uploaded(clip, name, root)
    plan = plan_job(src, root, job_id="j", ladder=("240p",), settings=SETTINGS,
                    readable="uploads/" + src.name)
    assert plan.source == "uploads/" + src.name and all(c.direct and c.source == plan.source for c in plan.chunks)
    assert len(plan.segments) >= 3
    if name == "h264_longgop":
        assert any(s.key_frame < s.first_frame for s in plan.segments)  # pre-roll from an earlier keyframe
    split(src, plan, root)  # the central split, for comparison
    t0 = plan.info.start_pts
    with av.open(str(src)) as ic:
        vs = ic.streams.video[0]
        for seg, spec in zip(plan.segments, plan.chunks):  # one rendition: a chunk per segment
            with av.open(str(resolve(root, seg.path))) as sc:
                want = _packets(sc.demux(sc.streams.video[0]))
            end = spec.end_pts + t0 if spec.end_pts >= 0 else None
            got = _packets(segment_packets(ic, vs, spec.key_pts + t0, end))
            assert len(got) >= seg.frames and got == want, seg.index


def test_a_job_read_from_its_source_encodes_the_split_jobs_chunks_byte_for_byte(clip, tmp_path):
    """Same chunks, same audio: the video byte for byte, the audio parts the same length (and the
    same samples: an MP4's audio seeks to the same packets either way)."""
    outputs = {}
    for direct in (False, True):
        root = tmp_path / str(direct)
        src = _uploaded(clip, "h264_mp4", root) if direct else clip("h264_mp4")
        # (encoded both ways: read from the source, its AAC would otherwise be copied, see audio.py)
        plan = prepare(src, root, job_id="j", ladder=("240p", "144p"), settings=SETTINGS.with_(audio_copy=False))
        assert (plan.source is not None) == direct
        assert resolve(root, layout.work_dir("j")).joinpath("segments").exists() != direct  # nothing split
        assert resolve(root, layout.audio_source(plan.workdir)).exists() != direct
        for g in plan.groups():
            encode_chunks(g, root)
        outputs[direct] = {c.chunk_id: resolve(root, c.output) for c in plan.specs()}
    assert outputs[True].keys() == outputs[False].keys() and len(outputs[True]) >= 9
    for cid, path in outputs[True].items():
        if cid.startswith("a"):
            a, b = _samples(path), _samples(outputs[False][cid])
            assert a.shape == b.shape and np.abs(a - b).max() == 0, cid
        else:
            assert path.read_bytes() == outputs[False][cid].read_bytes(), cid


def _samples(path):
    with av.open(str(path)) as ic:
        return np.concatenate([f.to_ndarray() for f in ic.decode(ic.streams.audio[0])], axis=1)


def test_a_source_that_cannot_be_seeked_by_its_index_is_still_split(clip, tmp_path):
    root = tmp_path / "root"
    src = _uploaded(clip, "h264_ts", root)
    plan = prepare(src, root, job_id="j", ladder=("240p",), settings=SETTINGS)
    assert plan.source is None and not any(c.direct for c in plan.specs())
    assert all(resolve(root, s.path).exists() for s in plan.segments)


def test_subtitles_are_the_only_copy_a_job_read_from_its_source_makes(clip, tmp_path):
    root = tmp_path / "root"
    plan = prepare(_uploaded(clip, "tracks_mp4", root), root, job_id="j", ladder=("240p",), settings=SETTINGS)
    work = resolve(root, plan.workdir)
    assert plan.source and sorted(p.name for p in work.iterdir()) == ["plan.json", "subtitles.mp4", "timings.json"]
    with av.open(str(work / "subtitles.mp4")) as ic:
        assert [s.metadata.get("language") for s in ic.streams.subtitles] == ["eng", "spa"]


@pytest.mark.parametrize("name", ["h264_longgop", "vfr_mkv"])
def test_a_segment_written_on_request_is_the_split_one(clip, tmp_path, name):
    """What the main instance writes for a worker without the storage (one segment, by seeking)."""
    root = tmp_path / "root"
    src = _uploaded(clip, name, root)
    plan = plan_job(src, root, job_id="j", ladder=("240p",), settings=SETTINGS,
                    readable="uploads/" + src.name)
    split(src, plan, root)
    for seg in plan.segments:
        path = resolve(root, seg.path)
        want = path.read_bytes()
        path.unlink()
        assert write_segment(src, plan, root, seg.index) == path
        with av.open(str(path)) as a, av.open(io.BytesIO(want), format="matroska") as b:
            assert _packets(a.demux(a.streams.video[0])) == _packets(b.demux(b.streams.video[0])), seg.index


@pytest.mark.parametrize("name,direct", [("h264_longgop", True), ("hevc10_mkv", True), ("h264_longgop", False)])
def test_a_preroll_skips_the_frames_nothing_refers_to_and_changes_no_output_byte(clip, tmp_path, monkeypatch,
                                                                                 name, direct):
    """A chunk cut between keyframes decodes from the keyframe before; its non-reference frames
    there (B-frames) are skipped by the decoder, and the chunk comes out byte for byte the same."""
    from segenc import codecs, video

    decoded = [0]
    real = video._decode

    def counting(stream, pkt):
        frames = real(stream, pkt)
        decoded[0] += len(frames)
        return frames

    monkeypatch.setattr(video, "_decode", counting)
    root = tmp_path / "root"
    src = _uploaded(clip, name, root)
    plan = (prepare(src, root, job_id="j", ladder=("144p",), settings=SETTINGS) if direct else
            prepare(clip(name), root, job_id="j", ladder=("144p",), settings=SETTINGS))
    assert (plan.source is not None) == direct
    chunks = [c for c in plan.chunks if c.preroll > 0]
    assert len(chunks) >= 2
    out = {}
    for skip in (codecs.PREROLL_SKIPS, ()):
        monkeypatch.setattr(codecs, "PREROLL_SKIPS", skip)
        decoded[0] = 0
        for c in chunks:
            encode_chunks([c], root)
        out[bool(skip)] = ({c.chunk_id: resolve(root, c.output).read_bytes() for c in chunks}, decoded[0])
    (skipped, n_skip), (full, n_full) = out[True], out[False]
    assert skipped == full  # every chunk, byte for byte
    preroll = sum(c.preroll for c in chunks)
    assert n_full - n_skip >= preroll // 3, (n_full, n_skip, preroll)  # B-frames: most of them skipped
