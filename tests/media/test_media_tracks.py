"""Tracks and tags carried to every rendition: all audio tracks (each encoded once, language and
title kept), mov_text subtitles with their languages and cue times, the container title."""

from __future__ import annotations

import av
import pytest

from segenc.settings import Settings
from tests import checks, mediagen

pytestmark = pytest.mark.media


def _tracks(path):
    with av.open(str(path)) as c:
        return (c.metadata.get("title"),
                [(s.codec_context.name, s.metadata.get("language"), s.metadata.get("title") or s.metadata.get("name"))
                 for s in c.streams.audio],
                [(s.codec_context.name, s.metadata.get("language")) for s in c.streams.subtitles])


def _cues(path, index):
    with av.open(str(path)) as c:
        st = c.streams.subtitles[index]
        return [(round(float(p.pts * p.time_base), 3), bytes(p)[2:].decode()) for p in c.demux(st)
                if p.size > 2]


def _audio_seconds(path, index):
    with av.open(str(path)) as c:
        st = c.streams.audio[index]
        return sum(f.samples for f in c.decode(st)) / st.codec_context.sample_rate


def test_every_audio_track_subtitle_and_the_title_reach_every_rendition(clip, encoded):
    src = clip("tracks_mp4")
    assert _tracks(src)[1] == [("aac", "eng", "English"), ("aac", "fra", "Français")], "generator"
    res, out = encoded("tracks_mp4", ladder=("240p",), chunk_seconds=1.0)
    path = out / "240p.mp4"
    title, audio, subs = _tracks(path)
    assert title == "Test clip"
    assert audio == [("aac", "eng", "English"), ("aac", "fra", "Français")], audio
    assert subs == [("mov_text", "eng"), ("mov_text", "spa")], subs
    expected = [(start, text) for start, _, text in mediagen.SUBTITLE_CUES]
    assert _cues(path, 0) == _cues(path, 1) == expected
    for k in (0, 1):  # both tracks whole (AAC frames of 1024: within 2 frames of the video)
        assert abs(_audio_seconds(path, k) - 2.0) < 2 * 1024 / 48000, k
    with av.open(str(path)) as c:  # two different tracks (440 Hz and 880 Hz), not one twice
        a, b = (bytes(next(p for p in c.demux(s) if p.size > 100)) for s in c.streams.audio)
    assert a != b
    assert checks.frame_count(path) == 60


def test_no_audio_drops_every_audio_track_but_keeps_subtitles(encoded):
    res, out = encoded("tracks_mp4", ladder=("240p",), chunk_seconds=1.0, settings=Settings(audio=False))
    title, audio, subs = _tracks(out / "240p.mp4")
    assert audio == [] and subs == [("mov_text", "eng"), ("mov_text", "spa")] and title == "Test clip"
