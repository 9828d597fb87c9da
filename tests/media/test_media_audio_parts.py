"""Parallel audio: parts encoded on their own (or in runs) join into what one encode of the whole
track gives: the same packets' timing, the same length to the sample, and the same samples around
every join."""

from __future__ import annotations

import dataclasses
import shutil
from fractions import Fraction

import av
import numpy as np
import pytest

from segenc import audio, layout
from segenc.settings import Settings
from segenc.split import copy_side_tracks
from segenc.steps import encode_chunks, prepare
from segenc.stream import publish
from tests import checks, mediagen

pytestmark = pytest.mark.media


def _noise_clip(path, seconds: float, rate: int, layout_: str):
    """Video from the generator, audio a harsh signal: noise bursts over a square wave (the kind
    of input where an encoder's state matters most at a join)."""
    video = mediagen.make_clip(path.with_name("video-" + path.name), seconds=seconds, audio=False)
    rng = np.random.default_rng(7)
    channels = 1 if layout_ == "mono" else 2
    with av.open(str(video)) as ic, av.open(str(path), "w") as oc:
        vs = ic.streams.video[0]
        ov = oc.add_stream_from_template(vs)
        oa = oc.add_stream("aac", rate=rate, layout=layout_)
        done, total = 0, int(seconds * rate)
        while done < total:
            n = min(1000, total - done)
            t = np.arange(done, done + n) / rate
            bursts = (np.sin(2 * np.pi * 1.3 * t) > 0.3).astype(np.float32)
            x = 0.3 * rng.standard_normal((channels, n)) * bursts + 0.2 * np.sign(np.sin(2 * np.pi * 220 * t))
            f = av.AudioFrame.from_ndarray(x.astype(np.float32), format="fltp", layout=layout_)
            f.sample_rate, f.pts, f.time_base = rate, done, Fraction(1, rate)
            for p in oa.encode(f):
                oc.mux(p)
            done += n
        for p in oa.encode(None):
            oc.mux(p)
        for p in ic.demux(vs):
            if p.dts is not None:
                p.stream = ov
                oc.mux(p)
    return path


def _decoded(path, k: int = 0) -> np.ndarray:
    with av.open(str(path)) as ic:
        return np.concatenate([f.to_ndarray() for f in ic.decode(ic.streams.audio[k])], axis=1)


def _timing(path, k: int = 0) -> list[tuple[int, int]]:
    with audio.packets(path) as tracks:
        return [(p.pts, p.duration) for p in tracks[k][1]]


def _under(root, src, direct: bool):
    """``src`` moved under ``root`` when the parts are to read it directly (no split), else as is."""
    if not direct:
        return src
    (root / "uploads").mkdir(parents=True)
    return shutil.move(src, root / "uploads" / src.name)


def _encode_both(src, root, *, runs: bool, direct: bool = False):
    """The parts (each alone, or the later ones as one run) joined, and one encode of the whole;
    ``direct``: read from the source (it lies under the root), else from the split's audio copy."""
    plan = prepare(_under(root, src, direct), root, ladder=("240p",),  # encoded, not copied: see below
                   settings=Settings(chunk_seconds=1.0, preset="ultrafast", audio_copy=False))
    assert all(p.direct == direct for p in plan.audio_parts)
    parts = list(plan.audio_parts)
    assert len(parts) == len(plan.segments) >= 4
    if runs:
        encode_chunks(parts[:2], root)  # a run of two
        encode_chunks(parts[2:], root)  # and one of the rest
    else:
        for p in parts:
            encode_chunks([p], root)
    joined = root / "joined.m4a"
    audio.join(parts, root, joined)
    whole = dataclasses.replace(parts[0], chunk_id="whole", span=("0", ""), output=f"{plan.workdir}/whole.m4a")
    encode_chunks([whole], root)
    one = root / "one.m4a"
    audio.join([whole], root, one)
    return plan, joined, one


@pytest.mark.parametrize("direct", [False, True], ids=["split", "direct"])
@pytest.mark.parametrize("name,kwargs,runs", [
    ("sine", {"seconds": 6.0}, False),
    ("sine-late", {"seconds": 6.0, "audio_offset": 0.2}, True),   # the video first: silence, then audio
    ("sine-early", {"seconds": 6.0, "audio_offset": -0.3}, False),  # audio before the video: trimmed
])
def test_parts_join_into_the_one_stream_encode(tmp_path, name, kwargs, runs, direct):
    src = mediagen.make_clip(tmp_path / f"{name}.mp4", **kwargs)
    plan, joined, one = _encode_both(src, tmp_path / "root", runs=runs, direct=direct)
    assert _timing(joined) == _timing(one)  # every packet at the same place, same length
    a, b = _decoded(joined), _decoded(one)
    assert a.shape == b.shape  # sample-exact length
    rate = 48000  # the generator's rate
    # No step at any join: the largest sample-to-sample change near a join is no larger than the
    # one-stream encode's anywhere (a 440 Hz tone at 0.25 moves at most 0.0144 per sample; a
    # misplaced or dropped frame jumps by up to 0.5).
    steepest = np.abs(np.diff(b, axis=1)).max()
    for part in plan.audio_parts[1:]:
        at = audio.edge(rate, part.span[0])
        assert np.abs(np.diff(a[:, at - 2048:at + 2048], axis=1)).max() <= steepest * 1.02, part.chunk_id
    # and the samples agree: exactly for a steady tone from the first frame; otherwise the two
    # encoders' rate control settles differently (both valid codings), within -35 dBFS.
    near = max(np.abs(a - b)[:, audio.edge(rate, p.span[0]) - 4096:audio.edge(rate, p.span[0]) + 4096].max()
               for p in plan.audio_parts[1:])
    assert near <= (1e-4 if name == "sine" else 0.02), near
    # Aligned to the first video frame: sound from there (silence while a late track has not begun).
    onset = np.argmax(np.abs(a[0]) > 0.05) / rate
    assert onset == pytest.approx(max(0.0, kwargs.get("audio_offset", 0.0)), abs=0.002)


@pytest.mark.parametrize("direct", [False, True], ids=["split", "direct"])
def test_a_harsh_signal_at_44k_mono_joins_without_a_step(tmp_path, direct):
    src = _noise_clip(tmp_path / "noise.mp4", 6.0, 44100, "mono")
    plan, joined, one = _encode_both(src, tmp_path / "root", runs=False, direct=direct)
    assert _timing(joined) == _timing(one)
    a, b = _decoded(joined), _decoded(one)
    assert a.shape == b.shape
    # Noise is coded differently wherever the encoder's rate control differs a little; at a join
    # the difference is no bigger than it is anywhere else (no click, no step).
    w = 2048
    joins = [audio.edge(44100, p.span[0]) for p in plan.audio_parts[1:]]
    windows = {i: np.abs(a[:, i:i + w] - b[:, i:i + w]).max() for i in range(0, a.shape[1] - w, w)}
    at_joins = [np.abs(a[:, j - w // 2:j + w // 2] - b[:, j - w // 2:j + w // 2]).max() for j in joins]
    elsewhere = [v for i, v in windows.items() if all(abs(i - j) > 2 * w for j in joins)]
    assert max(at_joins) <= max(elsewhere), (at_joins, max(elsewhere))


def test_the_stream_holds_every_packet_of_the_joined_track(tmp_path):
    src = mediagen.make_clip(tmp_path / "clip.mp4", seconds=5.0,
                             audio_languages=("eng", "fra"), audio_titles=("English", "Français"))
    root, out = tmp_path / "root", tmp_path / "out"
    plan = prepare(src, root, ladder=("240p",), settings=Settings(chunk_seconds=1.0, preset="ultrafast"))
    for g in plan.groups():
        encode_chunks(g, root)
    counts = publish(plan, root, out)
    assert counts == {"240p": len(plan.segments), "audio0": len(plan.segments), "audio1": len(plan.segments)}
    audio.join(list(plan.audio_parts), root, root / "joined.m4a")
    for k in range(2):
        timing = [t for t in _timing(root / "joined.m4a", k) if t[0] >= 0]  # the stream leaves the priming out
        starts = [checks.first_tfdt_and_cts(out / layout.stream_segment(layout.audio_track(k), n))[0]
                  for n in range(len(plan.segments))]
        assert starts[0] == 0
        # segment n starts at part n's first packet, which is the first AAC frame at or after the
        # video segment's start
        rate = 48000
        assert starts[1:] == [audio.edge(rate, p.span[0]) for p in plan.audio_parts[1:]]
        assert sum(d for _, d in timing) == timing[-1][0] + timing[-1][1]


@pytest.mark.parametrize("kwargs,copied,remote", [
    ({"seconds": 6.0}, True, False),  # AAC-LC at 96 kb/s, its frames on the video's grid: copied
    ({"seconds": 6.0, "audio_languages": ("eng", "fra")}, True, False),
    ({"seconds": 6.0, "audio_languages": ("eng", "fra")}, True, True),  # from the Matroska copy
    ({"seconds": 6.0, "audio_offset": 0.2}, False, False),  # 9600 samples late: off the grid, encoded
])
def test_aac_already_fit_for_the_output_is_copied_packet_for_packet(tmp_path, kwargs, copied, remote):
    """Parts that copy the source's AAC join into exactly the source's track: every packet's
    bytes and time, and so every decoded sample; no part decodes or encodes anything. From the
    Matroska audio copy a worker without the storage would fetch, the packets are the same (their
    millisecond times snapped to the grid) but the last frame's trimmed length is lost: that is
    why the service sends such parts to the storage's queue (tasks.job_signature)."""
    root = tmp_path / "root"
    src = _under(root, mediagen.make_clip(tmp_path / "clip.mp4", **kwargs), True)
    plan = prepare(src, root, ladder=("240p",), settings=Settings(chunk_seconds=1.0, preset="ultrafast"))
    assert len(plan.audio_parts) >= 5 and all(p.copy == copied for p in plan.audio_parts)
    parts = list(plan.audio_parts)
    if remote:  # what segenc.distributed.remote runs: the parts read the copy the main instance writes
        copy_side_tracks(src, plan, root, audio=True, subtitles=False)
        parts = [dataclasses.replace(p, source=layout.audio_source(plan.workdir), direct=False) for p in parts]
    encode_chunks(parts[:1], root)
    encode_chunks(parts[1:], root)  # a run: its parts are cut from one pass
    joined = root / "joined.m4a"
    audio.join(list(plan.audio_parts), root, joined)
    for k in range(len(kwargs.get("audio_languages", ("und",)))):
        if copied:
            with av.open(str(src)) as ic:
                want = [(p.pts, p.duration, bytes(p)) for p in ic.demux(ic.streams.audio[k]) if p.size]
            with audio.packets(joined) as tracks:
                got = [(p.pts, p.duration, bytes(p)) for p in tracks[k][1]]
            if remote:  # the Matroska copy loses the last frame's trimmed length: a whole frame
                assert want[-1][1] < 1024 and got[-1][1] == 1024
                got[-1] = got[-1][:1] + want[-1][1:2] + got[-1][2:]
            assert got == want and got[0][0] == -1024  # the source's priming packet too
            if not remote:
                assert np.array_equal(_decoded(joined, k), _decoded(src, k))
        else:  # encoded: silence from the first video frame until the late track begins
            a = _decoded(joined, k)
            assert a.shape[1] >= round(plan.info.duration * 48000) and np.abs(a[:, :9000]).max() < 0.01
