"""Dispatch order: the tasks that make the stream playable go first."""

from segenc.model import task_cost
from segenc.plan import plan
from segenc.settings import Settings
from tests.unit.test_plan import info


def test_segment_zero_of_every_rung_and_the_audio_are_dispatched_first():
    for workers, granularity in ((2, "segment"), (4, "segment"), (2, "rendition")):
        p = plan(info(frames=1800, keyint=60), ("480p", "720p", "1080p"),
                 Settings(chunk_seconds=4, granularity=granularity), job_id="j", workdir="w", workers=workers)
        order = p.schedule()
        key = lambda g: [c.chunk_id for c in g]  # noqa: E731
        assert sorted(map(key, order)) == sorted(map(key, p.groups()))  # the same tasks, reordered
        first = [g for g in order if any(c.segment == 0 for c in g)]
        assert list(order[:len(first)]) == first
        assert order[0][0].chunk_id == "a0000" and len(order[0]) == 1  # the audio's part 0, tiny, first
        assert {c.chunk_id for g in first for c in g} == {f"s0000-{r}" for r in ("480p", "720p", "1080p")} | {"a0000"}
        costs = [task_cost(g) for g in order[len(first):]]  # a task's cost: its segment decoded once
        assert costs == sorted(costs, reverse=True)  # the rest longest first


def test_a_lead_segment_is_short_and_its_renditions_are_tasks_of_their_own():
    i = info(frames=1800, keyint=60)  # 60 s, a keyframe every 2 s
    p = plan(i, ("480p", "720p", "1080p"), Settings(chunk_seconds=10, lead_seconds=2), job_id="j", workdir="w",
             workers=2)
    assert [s.frames for s in p.segments[:2]] == [60, 240]  # 2 s, then the rest of the first 10 s
    assert sum(s.frames for s in p.segments) == 1800
    first = [g for g in p.schedule() if any(c.segment == 0 for c in g)]
    assert sorted(len(g) for g in first) == [1, 1, 1, 1]
    order = [g[0].chunk_id for g in p.schedule()]
    assert order[:4] == ["a0000", "s0000-1080p", "s0000-720p", "s0000-480p"], order
    assert p.audio_parts[0].duration == 2.0  # the audio the master waits for is the lead segment's
    without = plan(i, ("480p",), Settings(chunk_seconds=10), job_id="j", workdir="w", workers=2)
    assert without.segments[0].frames == 300
