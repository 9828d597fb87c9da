"""The fast probe: MP4/MOV frame times and keyframes from the sample tables agree with the packet
scan on every source kind the media suite uses; other containers, and files whose index cannot
be trusted, are scanned."""

from __future__ import annotations

import av
import pytest

from segenc import mp4index
from segenc.errors import CorruptInputError
from segenc.probe import probe
from tests import mediagen
from tests.media.conftest import CLIPS

pytestmark = pytest.mark.media


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_index_probe_agrees_with_the_packet_scan(clip, name):
    src = clip(name)
    assert probe(src) == probe(src, index=False)
    with av.open(str(src)) as c:
        indexed = mp4index.frame_times(src, c.streams.video[0])
        is_mp4 = "mp4" in c.format.name.split(",")
    assert (indexed is not None) == is_mp4  # every MP4/MOV here takes the fast path; nothing else does


def test_a_truncated_file_is_scanned_and_refused(clip, tmp_path):
    cut = mediagen.write_truncated(clip("h264_faststart"), tmp_path / "cut.mp4", 0.6)
    with av.open(str(cut)) as c:
        assert mp4index.frame_times(cut, c.streams.video[0]) is None  # the index points past the end
    with pytest.raises(CorruptInputError):
        probe(cut)
