"""The storage layout: one function per path, and the transfer patterns built from them."""

import uuid

from segenc import layout
from segenc.stages import STOPPED, TERMINAL, Stage, is_terminal

JOB = str(uuid.UUID(int=7))


def test_paths_are_root_relative_and_nest_under_the_job():
    w = layout.work_dir(JOB)
    assert w == f"work/{JOB}"
    assert layout.plan_file(w) == f"work/{JOB}/plan.json"
    assert layout.segment(w, 3) == f"work/{JOB}/segments/s0003.mkv"
    assert layout.chunk(w, "720p", 12) == f"work/{JOB}/chunks/720p/s0012.m4s"
    assert layout.audio_source(w) == f"work/{JOB}/audio-source.mka"
    assert layout.audio_output(w) == f"work/{JOB}/audio.m4a"
    assert layout.audio_part(w, 7) == f"work/{JOB}/audio/s0007.m4a"
    assert layout.upload(JOB) == f"uploads/{JOB}/source"
    assert layout.upload_part(JOB) == f"uploads/{JOB}/source.part"
    out = layout.encoded_dir(JOB)
    assert layout.output(out, "1080p") == f"encoded/{JOB}/1080p.mp4"
    assert layout.manifest(out) == f"encoded/{JOB}/manifest.json"
    assert layout.job_dirs(JOB) == (f"uploads/{JOB}", f"work/{JOB}", f"encoded/{JOB}", f"thumbs/{JOB}")
    assert layout.thumbnail(JOB) == f"thumbs/{JOB}/thumbnail.jpg"


def test_transfer_patterns_accept_exactly_the_job_files():
    w = layout.work_dir(JOB)
    assert layout.fetchable(layout.segment(w, 0)) and layout.fetchable(layout.audio_source(w))
    assert layout.storable(layout.chunk(w, "480p", 9999)) and layout.storable(layout.audio_part(w, 41))
    # any rung name, and the AV1 chunk container
    assert layout.storable(layout.chunk(w, "90p", 0, "nut")) and layout.storable(layout.chunk(w, "2160p", 1))
    assert not layout.storable(layout.chunk(w, "480p", 0, "mp4")) and not layout.storable(layout.chunk(w, "7p", 0))
    for bad in (layout.plan_file(w), layout.upload(JOB), layout.chunk(w, "720p", 1), f"work/{JOB}/../x",
                f"work/not-a-uuid/segments/s0000.mkv", layout.segment(w, 0) + "x", "/" + layout.segment(w, 0)):
        assert not layout.fetchable(bad), bad
    for bad in (layout.segment(w, 0), layout.chunk(w, "..", 1), f"work/{JOB}/chunks/720p/../../x.ts",
                layout.output(layout.encoded_dir(JOB), "720p"), layout.audio_output(w)):
        assert not layout.storable(bad), bad


def test_stage_names_and_terminal_set():
    assert [s.value for s in Stage] == ["queued", "probing", "splitting", "encoding", "concatenating", "done",
                                        "failed", "cancelled"]
    assert TERMINAL == {"done", "failed", "cancelled"} and STOPPED == {"failed", "cancelled"}
    assert Stage("failed") is Stage.FAILED and f"{Stage.DONE}" == "done"
    assert is_terminal("cancelled") and not is_terminal("encoding") and not is_terminal(None)
