"""Runners are interchangeable: the in-process SerialRunner gives the same ladder as the pool, and
the manifest on disk agrees with what encode() returns."""

from __future__ import annotations

import importlib
import json

import pytest

import segenc
from segenc.runners.base import Runner
from tests import checks

pytestmark = pytest.mark.media


def test_serial_runner_encodes_in_this_process_like_the_pool(clip, encoded, tmp_path):
    src = clip("h264_mp4")
    pooled, _ = encoded("h264_mp4", ladder=("240p",), chunk_seconds=1.0)
    workers = set()
    res = segenc.encode(src, tmp_path / "out", ("240p",), chunk_seconds=1.0, runner=segenc.SerialRunner(),
                        on_progress=lambda ev: ev.worker and workers.add(ev.worker))
    out = tmp_path / "out" / "240p.mp4"
    assert res.rendition("240p").frames == pooled.rendition("240p").frames == checks.frame_count(out)
    assert checks.packet_dts_monotonic(out)
    assert res.segments == pooled.segments >= 2
    assert len(workers) == 1 and next(iter(workers)).endswith(f":{__import__('os').getpid()}")  # this process


def test_manifest_timings_are_the_returned_timings(encoded):
    res, out = encoded("h264_mp4", ladder=("240p",), chunk_seconds=1.0)
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["timings"] == pytest.approx(res.timings)
    assert {"probe", "plan", "split", "encode", "concat", "total"} <= set(doc["timings"])
    assert doc["timings"]["total"] >= doc["timings"]["encode"] > 0


def test_runner_contract_defaults_and_context_manager():
    calls = []

    class Minimal(Runner):
        def start(self):
            calls.append("start")

        def close(self):
            calls.append("close")

    r = Minimal()
    assert r.workers is None and r.overlaps_split is False and r.work_root(None) is None
    with pytest.raises(RuntimeError):
        with r:
            raise RuntimeError("boom")
    assert calls == ["start", "close"]
    with pytest.raises(NotImplementedError):
        r.execute(None, None, None, None)


def test_modules_are_not_hidden_by_functions():
    video = importlib.import_module("segenc.video")
    assert callable(video.encode_video_chunks)
    assert callable(segenc.encode) and segenc.encode.__module__ == "segenc.pipeline"
