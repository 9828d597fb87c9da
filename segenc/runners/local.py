"""LocalRunner: the embedded default. A process pool on this machine, no server needed.

Each task runs libx264 single-threaded, so ``workers`` processes keep that many cores busy.
Tasks are submitted most expensive first (longest-processing-time scheduling). Specs and results
cross the process boundary as JSON dicts, exactly as they would over Celery.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from pathlib import Path

from ..errors import SegencError
from ..model import ChunkResult, ChunkSpec, EncodeResult, Plan, task_id
from ..progress import ProgressEvent, Reporter

_events: "mp.Queue | None" = None


def _init(events: "mp.Queue") -> None:
    global _events
    _events = events


def _task(specs: list[dict], root: str) -> list[dict]:
    from ..pipeline import encode_chunks

    def report(ev: ProgressEvent) -> None:
        if _events is not None:
            _events.put(ev.to_dict())

    return [r.to_dict() for r in encode_chunks([ChunkSpec.from_dict(s) for s in specs], root, report)]


class LocalRunner:
    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)

    def work_root(self, out_dir: Path) -> Path | None:
        return None

    def run_tasks(self, plan: Plan, root: str | os.PathLike, report: Reporter) -> list[ChunkResult]:
        tasks = plan.tasks(self.workers)
        ctx = mp.get_context("spawn")  # PyAV/FFmpeg state does not survive fork safely
        events = ctx.Queue()
        results: list[ChunkResult] = []
        with ProcessPoolExecutor(min(self.workers, len(tasks)), mp_context=ctx, initializer=_init,
                                 initargs=(events,)) as pool:
            futures: dict[Future, tuple[ChunkSpec, ...]] = {
                pool.submit(_task, [s.to_dict() for s in t], str(root)): t for t in tasks}
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, timeout=0.1, return_when=FIRST_EXCEPTION)
                    _drain(events, report)
                    for f in done:
                        exc = f.exception()
                        if exc is not None:
                            if isinstance(exc, SegencError):
                                raise exc
                            raise SegencError(f"chunk {task_id(futures[f])} failed: {exc}") from exc
                        results.extend(ChunkResult.from_dict(r) for r in f.result())
            except BaseException:
                for f in pending:
                    f.cancel()
                raise
            finally:
                _drain(events, report)
        return results

    def execute(self, plan: Plan, root: str | os.PathLike, out_dir: Path, report: Reporter) -> EncodeResult:
        from ..pipeline import finish

        results = self.run_tasks(plan, root, report)
        return finish(plan, results, root, out_dir, report)


def _drain(events: "mp.Queue", report: Reporter) -> None:
    while True:
        try:
            ev = events.get_nowait()
        except queue.Empty:
            return
        report(ProgressEvent.from_dict(ev))
