"""LocalRunner: the embedded default. A process pool on this machine, no server needed.

Each task runs libx264 single-threaded, so ``workers`` processes keep that many cores busy.
The pool's processes are spawned (PyAV/FFmpeg state does not survive a fork), but never re-run
the caller's main script: every function they run lives in segenc, so the spawn is told there is
no main module (``_LibraryContext``). A plain script without an ``if __name__ == "__main__"``
guard, ``python -`` and a notebook can therefore all call ``segenc.encode()``.

Tasks start in ``Plan.schedule`` order (segment 0 of every rung and the audio first, then
longest-processing-time), each once its segment has been split; every finished task's chunks are
published to the stream at once (``stream.publish``, from this process only), and a rendition's
MP4 is stitched as soon as its last chunk is done. Specs and results
cross the process boundary as JSON dicts, exactly as they would over Celery.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing as mp
import multiprocessing.context
import os
import queue
import sys
import threading
import time
import types
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

from ..errors import JobCancelled, SegencError
from ..model import ChunkResult, ChunkSpec, EncodeResult, Plan, task_id
from ..progress import ProgressEvent, Reporter
from ..split import BackgroundSplit
from ..steps import concat_rendition, encode_chunks, finish, join_audio
from ..stream import publish
from ..storage import temp_name
from .. import layout
from .base import Runner

_events: "mp.Queue | None" = None


def _init(events: "mp.Queue") -> None:
    global _events
    _events = events


def _task(specs: list[dict], root: str) -> list[dict]:
    def report(ev: ProgressEvent) -> None:
        if _events is not None:
            _events.put(ev.to_dict())

    return [r.to_dict() for r in encode_chunks([ChunkSpec.from_dict(s) for s in specs], root, report)]


def _warm() -> None:
    importlib.import_module("segenc.steps")  # PyAV, numpy: loaded while the caller probes and plans


def _concat(plan: str, name: str, root: str, out: str) -> tuple[dict, float]:
    t = time.perf_counter()
    facts = concat_rendition(Plan.from_json(plan), name, root, Path(out))
    return facts, time.perf_counter() - t


_main_lock = threading.Lock()


@contextlib.contextmanager
def _no_main_module():
    """While a process is launched, show multiprocessing a bare ``__main__`` (no ``__file__``, no
    ``__spec__``), so the child does not import the caller's script (which, unguarded, would
    call encode() again in every child). The swap lasts only the launch, under a lock."""
    with _main_lock:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if main is not None:
                sys.modules["__main__"] = main


class _LibraryProcess(multiprocessing.context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj):
        with _no_main_module():
            return multiprocessing.context.SpawnProcess._Popen(process_obj)


class _LibraryContext(multiprocessing.context.SpawnContext):
    """The spawn start method, for processes that run segenc's own functions only."""
    Process = _LibraryProcess


class LocalRunner(Runner):
    overlaps_split = True  # execute() starts tasks while the split is still running

    def __init__(self, workers: int | None = None) -> None:
        """Args:
            workers: encoder processes (each runs libx264 single-threaded); None: one per core.

        Raises:
            UsageError: ``workers`` is not a whole number >= 1.
        """
        from ..arguments import check_workers

        self.workers = check_workers(workers) or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        self._events: "mp.Queue | None" = None

    def start(self) -> None:
        """Spawn the pool now, so its processes start up while the caller probes and plans."""
        if self._pool is None:
            ctx = _LibraryContext()  # spawn: PyAV/FFmpeg state does not survive fork safely
            self._events = ctx.Queue()
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init,
                                             initargs=(self._events,))
            for _ in range(self.workers):
                self._pool.submit(_warm)

    def close(self, kill: bool = False) -> None:
        """Shut the pool down; ``kill``: stop running chunks now instead of letting them end."""
        if self._pool is not None:
            if kill:
                for proc in list(getattr(self._pool, "_processes", {}).values()):
                    proc.terminate()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def work_root(self, out_dir: Path) -> Path | None:
        return None

    def execute(self, plan: Plan, root: str | os.PathLike, out_dir: Path, report: Reporter,
                inputs: BackgroundSplit | None = None) -> EncodeResult:
        """Run the tasks longest first, each as soon as its segment has landed (``inputs``: a
        split still running), and stitch each rendition in the pool as soon as its last chunk
        is done, while other renditions still encode. ``finish`` then only packages."""
        waiting = list(plan.schedule())
        self.start()
        pool, events = self._pool, self._events
        results: list[ChunkResult] = []
        left = {r.name: len(plan.chunks_of(r.name)) for r in plan.renditions}
        audio_left = len(plan.audio_parts)
        concatenated: dict[str, tuple[Path, dict]] = {}
        stitched = 0.0
        staged: dict[str, Path] = {}
        plan_json = plan.to_json()
        out_dir.mkdir(parents=True, exist_ok=True)
        running: dict[Future, tuple[ChunkSpec, ...] | str] = {}
        cancelled = False
        try:
            try:
                while waiting or running:
                    if self.cancel is not None and self.cancel.is_set():
                        raise JobCancelled("the encode was cancelled")
                    for name in [n for n, k in left.items() if k == 0 and not audio_left]:
                        del left[name]  # complete: stitch it now, ahead of the encodes left
                        staged[name] = temp_name(out_dir / layout.output_name(name))
                        running[pool.submit(_concat, plan_json, name, str(root), str(staged[name]))] = name
                    while waiting and len(running) < self.workers:
                        task = next((t for t in waiting if inputs is None or inputs.ready(t)), None)
                        if task is None:
                            break
                        waiting.remove(task)
                        running[pool.submit(_task, [s.to_dict() for s in task], str(root))] = task
                    if not running and inputs is not None:
                        inputs.wait(0.05)  # nothing has landed yet
                        continue
                    done, _ = wait(running, timeout=0.05, return_when=FIRST_COMPLETED)
                    _drain(events, report)
                    for f in done:
                        job = running.pop(f)
                        exc = f.exception()
                        if exc is not None:
                            what = f"{job} concat" if isinstance(job, str) else f"chunk {task_id(job)}"
                            if isinstance(exc, SegencError):
                                raise exc
                            raise SegencError(f"{what} failed: {exc}") from exc
                        if isinstance(job, str):
                            facts, seconds = f.result()
                            concatenated[job] = (staged[job], facts)
                            stitched += seconds
                            continue
                        results.extend(map(ChunkResult.from_dict, f.result()))
                        publish(plan, root, out_dir)  # this process is the job's one playlist writer
                        for spec in job:
                            if spec.kind == "audio":
                                audio_left -= 1
                                if not audio_left:
                                    join_audio(plan, root)  # every part is in: the downloads' audio (a remux)
                            elif spec.kind == "video":
                                left[spec.rendition.name] -= 1
            finally:
                _drain(events, report)
            result = finish(plan, results, root, out_dir, report, concatenated=concatenated)
            result.timings["stitch"] = stitched  # the renditions' concats, in the pool beside the encodes
            return result
        except (JobCancelled, KeyboardInterrupt):
            cancelled = True  # running chunks are stopped, not awaited
            raise
        finally:
            self.close(kill=cancelled)
            for p in staged.values():
                p.unlink(missing_ok=True)


def _drain(events: "mp.Queue", report: Reporter) -> None:
    while True:
        try:
            ev = events.get_nowait()
        except queue.Empty:
            return
        report(ProgressEvent.from_dict(ev))
