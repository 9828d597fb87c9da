"""Dispatch order: the tasks that make the stream playable go first."""

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
        first = [g for g in order if g[0].kind == "audio" or any(c.segment == 0 for c in g)]
        assert list(order[:len(first)]) == first and first[-1][0].kind == "audio"
        assert {c.chunk_id for g in first for c in g} == {f"s0000-{r}" for r in ("480p", "720p", "1080p")} | {"audio"}
        costs = [sum(c.cost for c in g) for g in order[len(first):]]
        assert costs == sorted(costs, reverse=True)  # the rest longest first
