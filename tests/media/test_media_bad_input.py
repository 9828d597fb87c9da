"""Inputs segenc must refuse, with the right error class, before creating any output.

Playlists and concat scripts are the dangerous ones: FFmpeg would happily follow them to other
local files (the HLS playlist here points at a real, playable clip, so an unguarded reader
*succeeds*). Garbage, truncated and audio-only files are the everyday ones. Limits are checked
with tight custom Limits on the ordinary clip, plus one real over-sized clip for the defaults.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import segenc
from segenc.errors import (CorruptInputError, InputError, LimitExceededError, NotAVideoError, SegencError,
                           UnsupportedInputError)
from segenc.settings import Limits, Settings
from tests import checks, mediagen

pytestmark = pytest.mark.media


def _encode_refused(src: Path, out: Path, exc_type, **kw):
    with pytest.raises(exc_type) as info:
        segenc.encode(src, out, ladder=("240p",), chunk_seconds=1.0, workers=2, **kw)
    assert not checks.leftovers(out), f"a refused encode left files behind: {checks.leftovers(out)}"
    return info.value


def test_error_hierarchy():
    for cls in (NotAVideoError, UnsupportedInputError, CorruptInputError, LimitExceededError):
        assert issubclass(cls, InputError)
    assert issubclass(InputError, ValueError) and issubclass(InputError, SegencError)


# --------------------------------------------------------------------------------------------
# Playlists and scripts
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("filename", ["playlist.m3u8", "playlist.mp4"])
def test_hls_playlist_is_unsupported(clip, bad_dir, fresh_out, filename):
    target = clip("h264_ts")  # a real, playable segment: following it would "work"
    pl = mediagen.write_hls_playlist(bad_dir / filename, target)
    with pytest.raises(UnsupportedInputError):
        segenc.probe(pl)
    _encode_refused(pl, fresh_out, UnsupportedInputError)


def test_hls_playlist_to_local_secret_is_unsupported(bad_dir, fresh_out):
    pl = mediagen.write_hls_playlist(bad_dir / "secret.m3u8", "/etc/passwd")
    with pytest.raises(UnsupportedInputError):
        segenc.probe(pl)
    _encode_refused(pl, fresh_out, UnsupportedInputError)


@pytest.mark.parametrize("filename,target", [
    ("list.ffconcat", "/etc/passwd"),
    ("list.txt", "/etc/passwd"),
    ("list.mp4", "CLIP"),        # named like a video, lists a real video
    ("list.ffconcat", "CLIP"),
])
def test_ffconcat_script_is_refused(clip, bad_dir, fresh_out, filename, target):
    target = clip("h264_mp4") if target == "CLIP" else target
    script = mediagen.write_ffconcat(bad_dir / filename, target)
    with pytest.raises(InputError):
        segenc.probe(script)
    _encode_refused(script, fresh_out, InputError)


# --------------------------------------------------------------------------------------------
# Not a video / damaged
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("filename", ["noise.mp4", "noise.bin", "noise.mkv"])
def test_random_bytes(bad_dir, fresh_out, filename):
    path = mediagen.write_random_bytes(bad_dir / filename)
    with pytest.raises((NotAVideoError, UnsupportedInputError)):
        segenc.probe(path)
    _encode_refused(path, fresh_out, (NotAVideoError, UnsupportedInputError))


def test_empty_file(bad_dir, fresh_out):
    path = mediagen.write_empty(bad_dir / "empty.mp4")
    with pytest.raises(InputError):
        segenc.probe(path)
    _encode_refused(path, fresh_out, InputError)


def test_truncated_mp4_without_index(clip, bad_dir, fresh_out):
    # moov is at the end of this MP4: the first 40 % has no index at all
    path = mediagen.write_truncated(clip("h264_mp4"), bad_dir / "cut.mp4", 0.4)
    with pytest.raises(InputError):
        segenc.probe(path)
    _encode_refused(path, fresh_out, InputError)


def test_truncated_mp4_with_index_is_corrupt(clip, bad_dir, fresh_out):
    # faststart MP4: the index survives and promises 60 frames, the data for most is gone
    full = clip("h264_faststart")
    assert checks.is_faststart(full)
    path = mediagen.write_truncated(full, bad_dir / "cut_fast.mp4", 0.4)
    with pytest.raises(CorruptInputError):
        segenc.probe(path)
    _encode_refused(path, fresh_out, CorruptInputError)


def test_audio_only_is_not_a_video(bad_dir, fresh_out):
    path = mediagen.make_audio_only(bad_dir / "song.m4a")
    with pytest.raises(NotAVideoError):
        segenc.probe(path)
    _encode_refused(path, fresh_out, NotAVideoError)


def test_missing_file(bad_dir, fresh_out):
    with pytest.raises(InputError):
        segenc.probe(bad_dir / "nope.mp4")
    _encode_refused(bad_dir / "nope.mp4", fresh_out, InputError)


# --------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("limits", [
    Limits(max_width=200),
    Limits(max_height=200),
    Limits(max_pixels=320 * 240 - 1),
    Limits(max_duration=1.0),
    Limits(max_fps=25.0),
    Limits(max_frames=59),
    Limits(max_streams=1),
], ids=["width", "height", "pixels", "duration", "fps", "frames", "streams"])
def test_limits_refuse(clip, fresh_out, limits):
    src = clip("h264_mp4")  # 320x240, 30 fps, 60 frames, 2 s, 2 streams
    with pytest.raises(LimitExceededError):
        segenc.probe(src, limits=limits)
    _encode_refused(src, fresh_out, LimitExceededError, settings=Settings(limits=limits))


def test_limits_at_the_boundary_pass(clip):
    src = clip("h264_mp4")
    info = segenc.probe(src, limits=Limits(max_width=320, max_height=240, max_pixels=320 * 240, max_fps=30.0,
                                           max_duration=2.0, max_frames=60, max_streams=2))
    assert (info.width, info.height, info.frames) == (320, 240, 60)


def test_default_limits_refuse_8k_plus(bad_dir, fresh_out):
    path = mediagen.make_huge(bad_dir / "huge.mkv", 8192, 4352)
    with pytest.raises(LimitExceededError):
        segenc.probe(path)
    _encode_refused(path, fresh_out, LimitExceededError)


def test_default_limits_refuse_too_many_streams(bad_dir, fresh_out):
    path = mediagen.make_many_streams(bad_dir / "streams.mkv", audio_streams=17)
    with pytest.raises(LimitExceededError):
        segenc.probe(path)
    _encode_refused(path, fresh_out, LimitExceededError)
