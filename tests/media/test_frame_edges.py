"""A one-frame video keeps its frame's duration; a source whose timestamps jump is refused clearly."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from segenc.errors import UnsupportedInputError
from segenc.pipeline import encode
from segenc.probe import probe
from segenc.runners.serial import SerialRunner
from tests.mediagen import make_clip


def test_one_frame_video_lasts_one_frame(tmp_path):
    src = make_clip(tmp_path / "one.mp4", seconds=1 / 30, audio=False)
    encode(src, tmp_path / "out", ("240p",), runner=SerialRunner())
    with av.open(str(tmp_path / "out" / "240p.mp4")) as c:
        vs = c.streams.video[0]
        seconds = float(vs.duration * vs.time_base)
    assert seconds == pytest.approx(1 / 30, abs=0.002), seconds  # was 22 us


def test_a_one_hour_timestamp_gap_is_refused_with_its_place(tmp_path):
    path = tmp_path / "gap.mp4"
    with av.open(str(path), "w") as oc:
        st = oc.add_stream("libx264", rate=30)
        st.width, st.height, st.pix_fmt = 160, 120, "yuv420p"
        st.codec_context.time_base = Fraction(1, 30)
        for i in range(40):
            f = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 5, np.uint8), format="rgb24")
            f.pts = i + (3600 * 30 if i >= 20 else 0)
            for p in st.encode(f):
                oc.mux(p)
        for p in st.encode(None):
            oc.mux(p)
    with pytest.raises(UnsupportedInputError, match=r"jump by 3600\.0 s after 0\.633 s"):
        probe(path)
