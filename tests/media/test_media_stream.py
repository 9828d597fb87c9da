"""The stream every encode publishes: HLS (master + one media playlist per rung and audio track)
and DASH over the same CMAF files, read back with FFmpeg's own demuxers; and the publish step's
contiguous-prefix rule, driven chunk by chunk in a chosen (out-of-)order."""

from __future__ import annotations

import json
import math
import subprocess
import xml.etree.ElementTree as ET

import pytest

from segenc import codecs, layout
from segenc.errors import IntegrityError
from segenc.settings import Settings
from segenc.steps import encode_chunks, prepare
from segenc.stream import publish
from tests import checks

pytestmark = pytest.mark.media

LADDER = ("240p", "360p")  # the same encode test_media_output uses: shared by the session


@pytest.fixture(scope="module")
def job(encoded):
    return encoded("h264_640x360", ladder=LADDER, chunk_seconds=1.0)


def test_master_playlist_names_every_rung_and_the_audio_group(job):
    res, out = job
    assert res.hls == str(out / "master.m3u8") and res.dash == str(out / "stream.mpd")
    tags = checks.playlist_tags(out / "master.m3u8")
    assert tags[0] == ("EXTM3U", "") and ("EXT-X-INDEPENDENT-SEGMENTS", "") in tags
    media = [checks.attributes(v) for t, v in tags if t == "EXT-X-MEDIA"]
    assert [(m["TYPE"], m["GROUP-ID"], m["URI"]) for m in media] == [("AUDIO", "aac", "audio0/index.m3u8")]
    variants = [(checks.attributes(v), tags[i + 1][1]) for i, (t, v) in enumerate(tags) if t == "EXT-X-STREAM-INF"]
    assert [uri for _, uri in variants] == ["240p/index.m3u8", "360p/index.m3u8"]
    audio_bytes = sum(p.stat().st_size for p in (out / "audio0").glob("s*.m4s"))
    for (a, uri), r in zip(variants, res.renditions):
        rung = uri.split("/")[0]
        assert a["CODECS"] == f"{codecs.rfc6381(out / rung / 'init.mp4')},mp4a.40.2"
        assert a["RESOLUTION"] == f"{r.width}x{r.height}" and a["AUDIO"] == "aac"
        assert float(a["FRAME-RATE"]) == pytest.approx(30.0)
        measured = 8 * (sum(p.stat().st_size for p in (out / rung).glob("s*.m4s")) + audio_bytes) / r.duration
        assert abs(int(a["AVERAGE-BANDWIDTH"]) - measured) <= 0.1 * measured
        assert int(a["BANDWIDTH"]) >= int(a["AVERAGE-BANDWIDTH"])


def test_media_playlists_are_vod_with_a_target_duration_that_holds(job):
    res, out = job
    for track in ("240p", "360p", "audio0"):
        tags = checks.playlist_tags(out / track / "index.m3u8")
        d = dict(tags)
        assert d["EXT-X-PLAYLIST-TYPE"] == "VOD" and "EXT-X-ENDLIST" in d
        assert d["EXT-X-MAP"] == 'URI="init.mp4"' and "EXT-X-INDEPENDENT-SEGMENTS" in d
        target = int(d["EXT-X-TARGETDURATION"])
        durations = [float(v.rstrip(",")) for t, v in tags if t == "EXTINF"]
        uris = [v for t, v in tags if t == "URI"]
        assert uris == [f"s{i:04d}.m4s" for i in range(res.segments)]
        assert all(round(x) <= target for x in durations)
        assert sum(durations) == pytest.approx(2.0, abs=0.03)


def test_ffmpeg_reads_the_master_and_each_variant_with_exact_frames(job, clip):
    res, out = job
    frames = checks.frame_count(clip("h264_640x360"))
    got = checks.stream_packets(out / "master.m3u8")
    video = [v for k, v in got.items() if k.startswith("video")]
    assert len(video) == 2 and all(len(v) == frames for v in video), {k: len(v) for k, v in got.items()}
    for pk in got.values():
        dts = [d for d, _ in pk]
        assert all(b > a for a, b in zip(dts, dts[1:])), "DTS not strictly increasing"
    for r in res.renditions:
        pk = checks.stream_packets(out / r.name / "index.m3u8")
        assert [len(v) for v in pk.values()] == [frames]


def test_segments_start_at_the_source_times_and_audio_starts_with_video(job, clip):
    res, out = job
    source = checks.video_pts(clip("h264_640x360"), zero_based=True)
    for r in res.renditions:
        scale = checks.timescale(out / r.name / "init.mp4")
        starts = [checks.first_tfdt_and_cts(out / r.name / f"s{i:04d}.m4s") for i in range(res.segments)]
        assert all(cts == 0 for _, cts in starts), "a segment's first frame (an IDR) is not presented at its tfdt"
        assert [t / scale for t, _ in starts] == [float(source[30 * i]) for i in range(res.segments)]
    t, cts = checks.first_tfdt_and_cts(out / "audio0" / "s0000.m4s")
    assert (t, cts) == (0, 0)  # the priming packet is left out: audio starts with the first frame
    for r in res.renditions:  # the downloads still validate
        path = out / f"{r.name}.mp4"
        assert abs(checks.av_offset(path)) <= 1 / 30 and checks.is_faststart(path)


def test_dash_manifest_lists_the_same_files(job, clip, monkeypatch):
    res, out = job
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    mpd = ET.parse(out / "stream.mpd").getroot()
    assert mpd.get("type") == "static"
    reps = mpd.findall(".//d:Representation", ns)
    assert [r.get("id") for r in reps] == ["240p", "360p", "audio0"]
    for rep in reps:
        tpl = rep.find("d:SegmentTemplate", ns)
        assert (out / tpl.get("initialization")).exists()
        count = sum(1 + int(s.get("r", 0)) for s in tpl.findall(".//d:S", ns))
        assert count == res.segments
        assert all((out / tpl.get("media").replace("$Number%04d$", f"{i:04d}")).exists() for i in range(count))
    ffmpeg = checks.ffmpeg_cli()
    if ffmpeg is None:
        pytest.skip("no ffmpeg CLI (imageio-ffmpeg) to read the MPD with (PyAV has no DASH demuxer)")
    frames = checks.frame_count(clip("h264_640x360"))
    for n in (0, 1):  # its DASH demuxer resolves segment URLs against the working directory
        p = subprocess.run([ffmpeg, "-hide_banner", "-protocol_whitelist", "file", "-i", "stream.mpd",
                            "-map", f"0:v:{n}", "-c", "copy", "-f", "framemd5", "-"], cwd=out,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr[-500:]
        assert len([line for line in p.stdout.splitlines() if line and not line.startswith("#")]) == frames


def test_manifest_lists_the_stream(job):
    res, out = job
    doc = json.loads((out / "manifest.json").read_text())
    s = doc["stream"]
    assert (s["hls"], s["dash"]) == ("master.m3u8", "stream.mpd")
    assert {t: v["segments"] for t, v in s["tracks"].items()} == {"240p": 2, "360p": 2, "audio0": 2}
    for t in s["tracks"].values():
        assert (out / t["playlist"]).exists() and (out / t["init"]).exists()


def test_out_of_order_chunks_publish_only_the_prefix(clip, tmp_path):
    """Chunks finishing 2, 0, the audio, 1, 3: each call publishes the contiguous prefix, the master
    waits for segment 0 of the rung and the audio, and a chunk whose init differs is refused."""
    root, out = tmp_path / "root", tmp_path / "out"
    plan = prepare(clip("h264_mp4"), root, ladder=("240p",),
                   settings=Settings(chunk_seconds=0.5, preset="ultrafast"))
    assert len(plan.segments) == 4
    groups = {g[0].chunk_id: g for g in plan.groups()}
    seen = []
    audio = [g for g in plan.groups() if g[0].kind == "audio"]
    for batch in ([groups["s0002-240p"]], [groups["s0000-240p"]], audio, [groups["s0001-240p"]]):
        for g in batch:
            encode_chunks(g, root)
        counts = publish(plan, root, out)
        seen.append((counts["240p"], counts["audio0"], (out / "master.m3u8").exists()))
        rows = checks.playlist_tags(out / "240p" / "index.m3u8")
        assert dict(rows)["EXT-X-PLAYLIST-TYPE"] == "EVENT" and "EXT-X-ENDLIST" not in dict(rows)
        assert [v for t, v in rows if t == "URI"] == [f"s{i:04d}.m4s" for i in range(counts["240p"])]
    assert seen == [(0, 0, False), (1, 0, False), (1, 4, True), (3, 4, True)]
    assert publish(plan, root, out)["240p"] == 3  # idempotent
    with pytest.raises(IntegrityError, match="240p has 3 of 4"):
        publish(plan, root, out, final=True)
    # the last chunk arrives with an init that is not the rung's: refused, nothing published
    encode_chunks(groups["s0003-240p"], root)
    last = root / plan.chunks_of("240p")[3].output
    good = last.read_bytes()
    k = good.find(b"avcC")
    last.write_bytes(good[:k + 7] + bytes([good[k + 7] ^ 0x01]) + good[k + 8:])  # another level
    with pytest.raises(IntegrityError, match="s0003-240p: its init segment differs"):
        publish(plan, root, out)
    assert not (out / "240p" / "s0003.m4s").exists()
    last.write_bytes(good)
    assert publish(plan, root, out, final=True)["240p"] == 4
    assert dict(checks.playlist_tags(out / "240p" / "index.m3u8"))["EXT-X-PLAYLIST-TYPE"] == "VOD"
    # fragments numbered 1..n across the chunks (each chunk wrote 1)
    seqs = []
    for i in range(4):
        data = (out / "240p" / f"s{i:04d}.m4s").read_bytes()
        k = data.find(b"mfhd")
        seqs.append(int.from_bytes(data[k + 8:k + 12], "big"))
    assert seqs == [1, 2, 3, 4]
    assert sum(len(v) for v in checks.stream_packets(out / "240p" / "index.m3u8").values()) == plan.info.frames
    assert math.isclose(sum(c.duration for c in plan.chunks_of("240p")), plan.info.duration, abs_tol=1e-6)
    assert layout.stream_file("240p/s0003.m4s") and not layout.stream_file("../240p/s0003.m4s")


def test_encode_publishes_while_it_runs(clip, tmp_path):
    """By the time the last stage starts, LocalRunner has already published every segment as an
    EVENT stream with its master playlist; the end makes it VOD."""
    import segenc
    from segenc.stages import Stage

    out, seen = tmp_path / "out", {}

    def on_progress(ev):
        if ev.kind == "stage" and ev.stage == Stage.CONCATENATING:
            seen["master"] = (out / "master.m3u8").exists()
            seen["playlist"] = checks.playlist_tags(out / "240p" / "index.m3u8")

    res = segenc.encode(clip("h264_mp4"), out, ladder=("240p",), chunk_seconds=0.5, workers=2,
                        settings=Settings(preset="ultrafast"), on_progress=on_progress)
    assert seen["master"] and dict(seen["playlist"])["EXT-X-PLAYLIST-TYPE"] == "EVENT"
    assert [v for t, v in seen["playlist"] if t == "URI"] == [f"s{i:04d}.m4s" for i in range(res.segments)]
    assert dict(checks.playlist_tags(out / "240p" / "index.m3u8"))["EXT-X-PLAYLIST-TYPE"] == "VOD"


def test_audio_parts_publish_as_they_land_and_part_zero_goes_first(clip, tmp_path):
    """With a lead segment, the audio's part 0 (its span only) is the first task: the master
    appears once it and the segment-0 chunks are done; the later parts add the rest, and segment 0
    is published once, never rewritten."""
    root, out = tmp_path / "root", tmp_path / "out"
    plan = prepare(clip("h264_mp4"), root, ladder=("240p",),
                   settings=Settings(chunk_seconds=1.0, lead_seconds=0.5, preset="ultrafast"), workers=2)
    assert [s.frames for s in plan.segments] == [30, 30]  # keyframes 1 s apart
    assert [(a.chunk_id, a.span) for a in plan.audio_parts] == [("a0000", ("0", "1")), ("a0001", ("1", ""))]
    groups = {g[0].chunk_id: g for g in plan.schedule()}
    assert list(groups)[:2] == ["a0000", "s0000-240p"]  # what the master needs, first
    for cid in ("s0000-240p", "a0000"):
        encode_chunks(groups[cid], root)
    counts = publish(plan, root, out)
    assert counts == {"240p": 1, "audio0": 1} and (out / "master.m3u8").exists()
    early = (out / "audio0" / "s0000.m4s").read_bytes()
    for cid in ("a0001", "s0001-240p"):
        encode_chunks(groups[cid], root)
    assert publish(plan, root, out, final=True) == {"240p": 2, "audio0": 2}
    assert (out / "audio0" / "s0000.m4s").read_bytes() == early  # published once, never rewritten
    assert sum(len(v) for v in checks.stream_packets(out / "master.m3u8").values()) > plan.info.frames


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["copy_file_range", "read-write"])
def test_fragment_files_are_copied_box_by_box_renumbered_and_truncation_is_named(job, tmp_path, monkeypatch,
                                                                                 kernel_copy):
    """A chunk's media copied from disk (moof read and renumbered, mdat copied file to file) is
    byte for byte what the in-memory split + renumber gives; without copy_file_range (another file
    system) the bounded read/write path gives the same bytes; a truncated chunk is named."""
    from segenc.fragments import FragmentFile, numbered, split_fragment, tfdt

    if not kernel_copy:
        def refuse(*a):
            raise OSError(18, "Invalid cross-device link")  # EXDEV
        monkeypatch.setattr("os.copy_file_range", refuse)
    _, out = job
    rung = LADDER[-1]
    init = (out / layout.stream_init(rung)).read_bytes()
    chunk = tmp_path / "chunk.m4s"
    chunk.write_bytes(init + (out / layout.stream_segment(rung, 1)).read_bytes())
    head, media = split_fragment(chunk.read_bytes())
    copied = tmp_path / "copied.m4s"
    with FragmentFile(chunk) as f, open(copied, "wb", buffering=0) as w:
        assert f.init == head == init
        assert f.tfdt() == tfdt(media) > 0
        f.copy_media(w.fileno(), 7)
    assert len(media) > 10_000
    assert copied.read_bytes() == numbered(media, 7)
    assert copied.read_bytes() != media  # the sequence number really changed (every chunk writes 1)

    chunk.write_bytes(chunk.read_bytes()[:-100])
    with pytest.raises(IntegrityError, match="chunk.*(truncated|ended)"):
        FragmentFile(chunk, "chunk s0001-360p")
