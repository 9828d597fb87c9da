"""The planner is pure: these run on hand-made MediaInfo, no media needed."""

from fractions import Fraction

import pytest

from segenc.model import ChunkSpec, MediaInfo, Plan, makespan, task_cost
from segenc.plan import AUTO_CHUNK_TOLERANCE, SIZE_TARGET, TASK_OVERHEAD, cut_points, plan, renditions, size_penalty
from segenc.settings import Settings


def info(frames=300, fps=30, keyint=30, w=1920, h=1080, sar="1:1", rotation=0, tb="1/15360", audio=True):
    step = int(Fraction(1, fps) / Fraction(tb))
    sar_f = Fraction(sar.replace(":", "/"))
    dw, dh = round(w * sar_f), h
    if rotation in (90, 270):
        dw, dh = dh, dw
    return MediaInfo(
        path="x", container="mp4", codec="h264", pix_fmt="yuv420p", bit_depth=8, width=w, height=h,
        display_width=dw, display_height=dh, rotation=rotation, sar=sar, time_base=tb, fps=fps,
        frame_rate=f"{fps}/1", vfr=False, frames=frames, duration=frames / fps, start_time=0.0, start_pts=0,
        keyframes=tuple(range(0, frames, keyint)), frame_pts=tuple(i * step for i in range(frames)),
        streams=2, has_audio=audio,
    )


def test_ladder_drops_rungs_above_source_and_follows_aspect():
    assert [(r.name, r.width, r.height) for r in renditions(info(w=1280, h=720), ("480p", "720p", "1080p"))] == [
        ("480p", 854, 480), ("720p", 1280, 720)]


def test_ladder_uses_display_aspect_and_rotation():
    anamorphic = info(w=640, h=480, sar="4:3")  # displays as 853x480
    assert [(r.width, r.height) for r in renditions(anamorphic, ("480p",))] == [(854, 480)]
    portrait = info(w=1920, h=1080, rotation=90)
    assert [(r.width, r.height) for r in renditions(portrait, ("720p",))] == [(720, 1280)]


def test_small_source_gets_lowest_rung_at_source_size_never_upscaled():
    # One rendition at the source size, named by the height it really has (issue 14: no "480p"
    # file that is 240 lines high).
    assert [(r.name, r.width, r.height) for r in renditions(info(w=320, h=240), ("720p", "480p"))] == [
        ("240p", 320, 240)]


def test_unknown_rung_is_refused():
    with pytest.raises(ValueError, match="unknown ladder rung"):
        renditions(info(), ("999p",))


def test_segments_cover_every_frame_once_and_cut_at_keyframes():
    i = info(frames=900, keyint=60)  # 30 s, keyframe every 2 s
    cuts = cut_points(i, 10)
    assert cuts == [0, 300, 600]
    assert all(c in i.keyframes for c in cuts)


def test_long_gop_is_cut_between_keyframes_and_decodes_from_previous_keyframe():
    i = info(frames=1800, keyint=1800)  # one keyframe in 60 s
    p = plan(i, ("480p",), Settings(chunk_seconds=10), job_id="j", workdir="w")
    assert len(p.segments) == 6
    assert all(s.key_frame == 0 for s in p.segments)
    covered = [f for s in p.segments for f in range(s.first_frame, s.end_frame)]
    assert covered == list(range(1800))


def test_short_tail_merges_into_last_segment():
    i = info(frames=330, keyint=30)  # 11 s with 10 s chunks: no 1 s runt
    assert cut_points(i, 10) == [0]


def test_chunks_carry_exact_frame_times_and_are_ordered_by_cost():
    i = info(frames=600, keyint=30)
    p = plan(i, ("480p", "1080p"), Settings(chunk_seconds=5), job_id="j", workdir="w")
    assert len(p.chunks) == len(p.segments) * 2
    for r in ("480p", "1080p"):
        pts = [t for c in p.chunks_of(r) for t in c.frame_pts]
        assert list(pts) == list(i.frame_pts)
    costs = [sum(c.cost for c in t) for t in p.groups()]
    assert costs == sorted(costs, reverse=True)
    # The audio in parts, one per segment, spanning exactly the segments' times, end to end.
    assert [a.segment for a in p.audio_parts] == list(range(len(p.segments)))
    assert [a.span[0] for a in p.audio_parts[1:]] == [a.span[1] for a in p.audio_parts[:-1]]
    assert p.audio_parts[0].span[0] == "0" and p.audio_parts[-1].span[1] == ""
    # One task per segment, decoding once for both renditions (plus the audio tasks).
    video = [t for t in p.groups() if t[0].kind == "video"]
    assert len(video) == len(p.segments) and all({c.rendition.name for c in t} == {"480p", "1080p"} for t in video)
    assert all(len({c.segment for c in t}) == 1 for t in video)
    # 4 segments on 3 workers: tail tasks are split per rendition, which shortens the schedule.
    balanced = plan(i, ("480p", "1080p"), Settings(chunk_seconds=5), job_id="j", workdir="w", workers=3).groups()
    assert len(p.segments) == 4
    assert any(len(t) == 1 and t[0].kind == "video" for t in balanced)
    assert makespan([task_cost(t) for t in balanced], 3) < makespan([task_cost(t) for t in p.groups()], 3)
    assert sorted(c.chunk_id for t in balanced for c in t) == sorted(c.chunk_id for c in p.specs())
    two = plan(i, ("480p", "1080p"), Settings(chunk_seconds=5), job_id="j", workdir="w", workers=2)
    video = lambda q: [g for g in q.groups() if g[0].kind == "video"]  # noqa: E731
    assert len(video(two)) == len(video(p))  # 4 segments fill 2 workers evenly
    fine = plan(i, ("480p", "1080p"), Settings(chunk_seconds=5, granularity="rendition"), job_id="j", workdir="w")
    assert len([g for g in fine.groups() if g[0].kind == "video"]) == len(fine.chunks)
    assert fine.groups()[0][0].rendition.name == "1080p"  # the most expensive first


def test_task_cost_counts_the_shared_decode_once():
    p = plan(info(frames=300, keyint=30), ("480p", "1080p"), Settings(chunk_seconds=5), job_id="j", workdir="w")
    group = p.groups()[0]
    assert len(group) == 2 and group[0].decode_cost > 0
    assert task_cost(group) == sum(c.cost for c in group) - group[0].decode_cost
    assert makespan([3, 3, 2, 2], 2) == 5 and makespan([3, 3, 2, 2, 2], 2) == 7 and makespan([5, 1], 1) == 6


def test_tail_split_only_when_it_shortens_the_schedule():
    p = plan(info(frames=1800, keyint=60), ("480p", "720p", "1080p"), Settings(chunk_seconds=10), job_id="j",
             workdir="w")
    assert len(p.segments) == 6
    # 6 equal segments fill 2 workers: splitting one would only add decodes.
    def on(workers):
        return plan(info(frames=1800, keyint=60), ("480p", "720p", "1080p"), Settings(chunk_seconds=10),
                    job_id="j", workdir="w", workers=workers).groups()

    def video(groups):
        return [g for g in groups if g[0].kind == "video"]

    assert len(video(on(2))) == len(video(p.groups())) == 6
    # 6 segments on 4 workers: the 2 spare slots of the second round get the renditions of some.
    tasks = on(4)
    assert len(video(tasks)) > 6
    assert makespan([task_cost(t) for t in tasks], 4) < makespan([task_cost(t) for t in p.groups()], 4)
    assert sorted(c.chunk_id for t in tasks for c in t) == sorted(c.chunk_id for c in p.specs())


def test_auto_chunk_length_balances_the_schedule():
    ladder = ("480p", "720p", "1080p")
    minute = info(frames=1800, keyint=60)
    assert plan(minute, ladder, Settings(), job_id="j", workdir="w").settings.chunk_seconds == 10  # workers unknown
    assert plan(minute, ladder, Settings(), job_id="j", workdir="w", workers=1).settings.chunk_seconds == 10
    two = plan(minute, ladder, Settings(), job_id="j", workdir="w", workers=2)
    assert 2 <= two.settings.chunk_seconds <= 10  # (six 10 s segments fill two workers: 10 s may win)
    span = {c: makespan([task_cost(t) + TASK_OVERHEAD for t in
                         plan(minute, ladder, Settings(chunk_seconds=c), job_id="j", workdir="w", workers=2).groups()], 2)
            for c in (2, 4, 6, 8, 10, two.settings.chunk_seconds)}
    assert span[two.settings.chunk_seconds] <= min(span.values()) * (1 + AUTO_CHUNK_TOLERANCE)
    # A 10 s clip is no longer one task keeping one core busy.
    short = plan(info(frames=300, keyint=30), ladder, Settings(), job_id="j", workdir="w", workers=2)
    assert len(short.segments) >= 2
    fixed = plan(minute, ladder, Settings(chunk_seconds=4), job_id="j", workdir="w", workers=64)
    assert fixed.settings.chunk_seconds == 4 and len(fixed.segments) == 15


def test_a_short_clip_is_cut_between_keyframes_where_that_balances_two_workers():
    """Keyframes every 2 s: a 10 s clip cut at keyframes is 6 s + 4 s; in exact 5 s halves (the
    second decoding 30 frames from the keyframe at 4 s) both cores finish together."""
    ladder = ("480p", "720p")
    ten = info(frames=300, keyint=60, w=1280, h=720, audio=False)

    def span(p):
        return makespan([t.cost for t in p.tasks], 2)

    exact = plan(ten, ladder, Settings(), job_id="j", workdir="w", workers=2)
    assert exact.settings.keyframe_cuts is False and exact.settings.chunk_seconds == 5
    assert [(s.first_frame, s.key_frame) for s in exact.segments] == [(0, 0), (150, 120)]
    assert len(exact.tasks) == 2  # each segment decoded once for both rungs
    for length in (4.5, 6.5):  # the keyframe layouts of two segments: 4 s + 6 s, 6 s + 4 s
        snapped = plan(ten, ladder, Settings(chunk_seconds=length), job_id="j", workdir="w", workers=2)
        assert all(s.key_frame == s.first_frame for s in snapped.segments) and len(snapped.segments) == 2
        assert span(exact) < 0.9 * span(snapped)
    assert plan(ten, ladder, Settings(keyframe_cuts=True), job_id="j", workdir="w",
                workers=2).settings.keyframe_cuts is True
    # A given chunk length cuts at keyframes unless told otherwise.
    given = plan(ten, ladder, Settings(chunk_seconds=5), job_id="j", workdir="w", workers=2)
    assert given.settings.keyframe_cuts is True and [s.first_frame for s in given.segments] == [0, 120]
    told = plan(ten, ladder, Settings(chunk_seconds=5, keyframe_cuts=False), job_id="j", workdir="w")
    assert [s.first_frame for s in told.segments] == [0, 150]
    # A minute has enough segments to balance at keyframes: no pre-roll to pay for.
    minute = plan(info(frames=1800, keyint=60, audio=False), ladder, Settings(), job_id="j", workdir="w", workers=2)
    assert minute.settings.keyframe_cuts is True
    with pytest.raises(ValueError, match="keyframe_cuts"):
        Settings(keyframe_cuts="yes")


def test_plan_round_trips_through_json():
    p = plan(info(frames=120), ("480p", "720p"), Settings(chunk_seconds=1), job_id="j", workdir="w")
    assert Plan.from_json(p.to_json()) == p
    c = p.chunks[0]
    assert ChunkSpec.from_json(c.to_json()) == c


def test_settings_validate():
    with pytest.raises(ValueError):
        Settings(crf=99)
    with pytest.raises(ValueError):
        Settings(preset="warp")
    assert Settings.from_dict(Settings(crf=20).to_dict()) == Settings(crf=20)


def test_plan_stores_the_tasks_it_will_send():
    p = plan(info(frames=1800, keyint=60), ("480p", "720p", "1080p"), Settings(chunk_seconds=10), job_id="j",
             workdir="w", workers=4)
    assert p.workers == 4
    # Every chunk in exactly one task; ids are the names used in task ids and attempts.
    assert sorted(c for t in p.tasks for c in t.chunks) == sorted(c.chunk_id for c in p.specs())
    assert len({t.id for t in p.tasks}) == len(p.tasks)
    assert [t.cost for t in p.tasks] == sorted((t.cost for t in p.tasks), reverse=True)
    assert [t.cost for t in p.tasks] == [task_cost(g) for g in p.groups()]
    assert {t.id for t in p.tasks} >= {"a0000", "s0000"}
    # What was planned is what is read back from plan.json.
    again = Plan.from_json(p.to_json())
    assert again.tasks == p.tasks and again.groups() == p.groups()
    assert p.task("a0000").chunks == ("a0000",)  # the stream's first audio segment, alone
    audio = [t for t in p.tasks if t.id.startswith("a")]
    assert sorted(c for t in audio for c in t.chunks) == [a.chunk_id for a in p.audio_parts]
    assert all(len(t.chunks) == int(t.id.split("+")[1]) for t in audio if "+" in t.id)  # runs of parts


def _ten_minutes_1080p():
    return info(frames=18000, keyint=60)  # 10 min, 30 fps, a keyframe every 2 s, AAC


@pytest.mark.parametrize("workers", [16, 64, 256])
def test_many_workers_get_enough_tasks_and_a_balanced_schedule(workers):
    ladder = ("480p", "720p", "1080p")
    src = _ten_minutes_1080p()
    p = plan(src, ladder, Settings(), job_id="j", workdir="w", workers=workers)
    assert len(p.tasks) >= workers, (workers, len(p.tasks))
    # The whole schedule, audio parts included, within 10% of the lower bound (the work spread
    # evenly, or the longest task), and no audio task longer than the cheapest video task.
    costs = [t.cost for t in p.tasks]
    bound = max(sum(costs) / workers, max(costs))
    assert makespan(costs, workers) <= bound * 1.10
    audio = [t.cost for t in p.tasks if t.id.startswith("a")]
    assert len(audio) > 1 and max(audio) <= min(t.cost for t in p.tasks if t.id.startswith("s"))
    assert sorted(c for t in p.tasks for c in t.chunks) == sorted(c.chunk_id for c in p.specs())
    # The size budget holds: every cut falls on the output's GOP grid (no extra IDRs).
    assert size_penalty(src, p.segments, p.settings.gop) <= SIZE_TARGET
    expected = {16: (10.0, 100), 64: (10.0, 64), 256: (2.5, 826)}[workers]
    assert (p.settings.chunk_seconds, len(p.tasks)) == expected


def test_short_chunks_that_would_break_the_size_budget_are_not_chosen():
    # A source with a keyframe every second and output GOP 10 s: 2 s chunks would put an extra
    # IDR every 2 s (+10%), so even 256 workers get chunks of 5 s and more (every other cut on
    # the output's GOP grid), where the 10 s GOP alone would allow 2 s.
    src = info(frames=18000, keyint=30)
    p = plan(src, ("480p", "720p", "1080p"), Settings(gop=10), job_id="j", workdir="w", workers=256)
    assert size_penalty(src, p.segments, 10) <= SIZE_TARGET
    assert p.settings.chunk_seconds >= 5
    assert plan(src, ("480p", "720p", "1080p"), Settings(gop=2), job_id="j", workdir="w",
                workers=256).settings.chunk_seconds < 5
    assert size_penalty(src, plan(src, ("480p",), Settings(gop=10, chunk_seconds=2), job_id="j",
                                  workdir="w").segments, 10) > SIZE_TARGET


def test_audio_parts_go_in_runs_of_consecutive_parts_no_longer_than_a_video_task():
    p = plan(info(frames=18000, keyint=60), ("480p", "720p"), Settings(chunk_seconds=4), job_id="j", workdir="w")
    audio = [g for g in p.groups() if g[0].kind == "audio"]
    assert any([c.chunk_id for c in g] == ["a0000"] for g in audio)  # part 0 alone
    runs = [[c.segment for c in g] for g in audio if len(g) > 1]
    assert runs and all(r == list(range(r[0], r[0] + len(r))) for r in runs)  # consecutive parts
    assert sorted(i for g in audio for i in (c.segment for c in g)) == list(range(len(p.segments)))
    cheapest = min(task_cost(g) for g in p.groups() if g[0].kind == "video")
    assert max(task_cost(g) for g in audio) <= cheapest
    assert len(audio) < len(p.segments) / 4  # grouped, not one tiny task per part


def test_a_grainy_source_weighs_its_audio_and_task_overhead_less_against_the_video():
    """Grain makes every pixel dearer for x264, not the audio: a source at 3 bits/pixel weighs
    its audio parts 5.3x lighter against the video than a clean one at 0.14 (measured), and its
    10 s 720p plan on two workers balances the two cores."""
    import dataclasses

    from segenc.plan import COMPLEXITY_MAX, DECODE_COST, DECODE_EXPONENT, DECODE_MAX, complexity, decode_weight

    base = info(frames=300, keyint=60, w=1280, h=720)
    pixels = base.duration * 1280 * 720 * 30

    def at(bpp):
        return dataclasses.replace(base, size=int(bpp * pixels / 8), audio_sample_rate=48000, audio_channels=2)

    clean, grain = at(0.14), at(3.0)
    assert complexity(clean) == pytest.approx(1.0) and complexity(base) == 1.0  # no size known: as before
    assert complexity(grain) == pytest.approx(61.8 / 11.6, rel=1e-3)
    assert complexity(at(1000.0)) == COMPLEXITY_MAX
    ladder = ("480p", "720p")
    pc = plan(clean, ladder, Settings(chunk_seconds=4), job_id="j", workdir="w", workers=2)
    pg = plan(grain, ladder, Settings(chunk_seconds=4), job_id="j", workdir="w", workers=2)
    # x264's share of the video costs the same; the decode weighs 3.5x more (measured: 0.69 of an
    # encoded output pixel per decoded source pixel against 0.20 on clean content).
    video = [(c, g) for c, g in zip(pc.specs(), pg.specs()) if c.kind == "video"]
    assert video and all(c.cost - c.decode_cost == pytest.approx(g.cost - g.decode_cost) for c, g in video)
    assert all(g.decode_cost / c.decode_cost == pytest.approx((3.0 / 0.14) ** DECODE_EXPONENT) for c, g in video)
    assert (3.0 / 0.16) ** DECODE_EXPONENT == pytest.approx((22.8 / 33.1) / (1.83 / 9.25))
    assert decode_weight(clean) == pytest.approx(DECODE_COST) and decode_weight(at(1000.0)) == DECODE_COST * DECODE_MAX
    ratio = [a.cost / b.cost for a, b in zip(pc.audio_parts, pg.audio_parts)]
    assert ratio and all(r == pytest.approx(61.8 / 11.6, rel=1e-3) for r in ratio)
    # Either way the automatic plan keeps both cores busy to within 2.5% of an even split.
    for src in (clean, grain):
        costs = [t.cost for t in plan(src, ladder, Settings(), job_id="j", workdir="w", workers=2).tasks]
        assert makespan(costs, 2) <= 1.025 * sum(costs) / 2


@pytest.mark.parametrize("container,direct", [("mov,mp4,m4a,3gp,3g2,mj2", True), ("matroska,webm", True),
                                              ("mpegts", False), ("avi", False)])
def test_a_source_on_the_storage_in_a_container_with_an_index_is_read_by_the_tasks_not_split(container, direct):
    import dataclasses

    src = dataclasses.replace(info(frames=300, keyint=30), container=container, start_pts=1024)
    p = plan(src, ("480p", "720p"), Settings(chunk_seconds=2.0), job_id="j", workdir="work/j", source="uploads/j.mp4")
    assert (p.source == "uploads/j.mp4") == direct
    assert (p.audio_source is None) == direct  # no audio copy either
    for c in p.specs():
        assert c.direct == direct and (c.source == "uploads/j.mp4") == direct
        assert c.origin == 1024  # the source's first video pts: the specs' pts are relative to it
    by_seg = {c.segment: c for c in p.chunks}
    for s in p.segments:  # a task reads up to the next segment's first frame (the last one: to the end)
        assert by_seg[s.index].end_pts == (src.frame_pts[s.end_frame] if s.end_frame < src.frames else -1)
    unshared = plan(src, ("480p",), Settings(chunk_seconds=2.0), job_id="j", workdir="work/j")
    assert unshared.source is None and not any(c.direct for c in unshared.specs())


def test_audio_already_fit_for_the_output_is_copied_only_when_the_tasks_read_the_source():
    import dataclasses

    src = dataclasses.replace(info(frames=600), audio_copy_bitrate=96_000, audio_languages=("eng",))

    def parts(settings=Settings(chunk_seconds=4.0), source="uploads/j.mp4", **kw):
        return plan(dataclasses.replace(src, **kw), ("480p",), settings, job_id="j", workdir="work/j",
                    source=source).audio_parts

    copied = parts()
    assert copied and all(p.copy for p in copied)
    encoded = parts(settings=Settings(chunk_seconds=4.0, audio_copy=False))
    assert not any(p.copy for p in encoded)
    assert sum(p.cost for p in copied) * 50 < sum(p.cost for p in encoded)  # no decode, no encode
    assert not any(p.copy for p in parts(source=None))  # the split's copy: encoded
    assert not any(p.copy for p in parts(audio_copy_bitrate=None))  # not AAC-LC on the grid
    assert all(p.copy for p in parts(audio_copy_bitrate=130_000))  # within 2% of 128k
    assert not any(p.copy for p in parts(audio_copy_bitrate=192_000))  # over the job's bit rate
