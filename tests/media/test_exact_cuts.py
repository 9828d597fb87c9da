"""A short clip on two cores: with a keyframe every 2 s, a 10 s clip cut at keyframes is 6 s + 4 s
(one core idles for a fifth of the job), so the automatic plan cuts it in exact 5 s halves, the
second decoding from the keyframe at 4 s. The output must not show the seam."""

from __future__ import annotations

import pytest

import segenc
from segenc.settings import Settings
from tests import checks
from tests.mediagen import make_clip

pytestmark = pytest.mark.media


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("exact") / "ten.mp4", width=640, height=360, seconds=10.0, gop=60)


def test_a_ten_second_clip_on_two_cores_is_cut_in_exact_halves_and_shows_no_seam(short_clip, tmp_path):
    src = segenc.probe(short_clip)
    assert src.keyframes == (0, 60, 120, 180, 240)
    res = segenc.encode(short_clip, tmp_path / "out", ("240p", "360p"), workers=2)
    assert res.segments == 2 and res.chunk_seconds == 5.0
    for r in res.renditions:
        out = tmp_path / "out" / r.path
        assert checks.frame_indices(out) == list(range(src.frames)), r.name  # every frame, once, in order
        assert checks.packet_dts_monotonic(out)
        # The output's own IDR grid (every 2 s) plus the one the cut at 5 s starts with.
        assert checks.keyframe_times(out) == [0.0, 2.0, 4.0, 5.0, 6.0, 8.0], r.name
        assert checks.audio_gaps(out) == []
        assert abs(checks.av_offset(out) - checks.av_offset(short_clip)) < 0.0005


def test_keyframe_cuts_can_be_asked_for(short_clip, tmp_path):
    res = segenc.encode(short_clip, tmp_path / "out", ("240p",), workers=2, settings=Settings(keyframe_cuts=True))
    out = tmp_path / "out" / res.renditions[0].path
    assert res.segments == 2 and 5.0 not in checks.keyframe_times(out)
    assert checks.frame_indices(out) == list(range(segenc.probe(short_clip).frames))
