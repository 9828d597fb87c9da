"""CeleryRunner: ``segenc.encode(..., runner=CeleryRunner(url, root))`` runs the plan as a chord on
the cluster's workers and waits for it, relaying progress from Redis."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from celery import Celery
from celery.exceptions import BackendGetMetaError

from .. import layout
from ..errors import JobFailed
from ..model import EncodeResult, Plan
from ..progress import ProgressEvent, Reporter
from ..runners.base import Runner
from ..stages import STOPPED, Stage
from ..storage import resolve
from .app import make_app, state_url_of
from .state import UNAVAILABLE, JobState, until_up
from .tasks import dispatch


class CeleryRunner(Runner):
    # No overlaps_split: a chord is sent whole, so encode() finishes the split first.

    def __init__(self, broker_url: str, root: str | os.PathLike, app: Celery | None = None,
                 timeout: float | None = None, state_url: str | None = None) -> None:
        self.app = app or make_app(broker_url, root=root, state_url=state_url)
        self.root = Path(root).absolute()
        self.state = JobState.from_url(state_url_of(self.app))
        self.timeout = timeout

    def work_root(self, out_dir: Path) -> Path:
        return self.root

    @property
    def workers(self) -> int | None:
        """Worker processes online now (sizes an automatic chunk length)."""
        return self.state.capacity()

    def execute(self, plan: Plan, root, out_dir: Path, report: Reporter, inputs=None) -> EncodeResult:
        out = layout.encoded_dir(plan.job_id)
        until_up(self.state.create, plan.job_id, stage=Stage.ENCODING, tasks_total=len(plan.tasks))
        stop, listening = threading.Event(), threading.Event()
        relay = threading.Thread(target=self._relay, args=(plan.job_id, report, stop, listening), daemon=True)
        relay.start()
        listening.wait(5)  # subscribed before the chord goes out: the first chunks' events are not lost
        try:
            result = dispatch(self.app, self.state, plan, out)
            deadline = time.monotonic() + self.timeout if self.timeout else None
            while not self._ready(result):
                stage = self._stage(plan.job_id)
                if stage in STOPPED:
                    snap = self.state.snapshot(plan.job_id) or {}
                    raise JobFailed(snap.get("error") or f"job {plan.job_id} {stage}")
                if deadline and time.monotonic() > deadline:
                    raise JobFailed(f"job {plan.job_id} did not finish within {self.timeout:.0f} s")
                time.sleep(0.02)  # one GET per poll: cheap, and the job ends when it ends
            if result.failed():
                snap = self.state.snapshot(plan.job_id) or {}
                raise JobFailed(snap.get("error") or str(result.result))
            # Read the stored result; .get() would start Celery's pub/sub result consumer, whose
            # finalizers outlive this call and break when Redis restarts.
            data: dict[str, Any] = result.result
        finally:
            stop.set()
            relay.join(timeout=2)
        produced = resolve(self.root, out)
        if produced != out_dir.resolve():
            out_dir.mkdir(parents=True, exist_ok=True)
            for f in sorted(produced.iterdir(), key=lambda p: p.name == layout.MANIFEST_FILE):
                shutil.move(str(f), out_dir / f.name)  # manifest last
            produced.rmdir()
        data["out_dir"], data["manifest"] = str(out_dir), layout.manifest(str(out_dir))
        return EncodeResult.from_dict(data)

    @staticmethod
    def _ready(result) -> bool:
        try:
            return result.ready()
        except (*UNAVAILABLE, BackendGetMetaError):
            return False  # Redis is restarting: the job lives on in its append-only file

    def _stage(self, job_id: str) -> str | None:
        try:
            return self.state.stage(job_id)
        except UNAVAILABLE:
            return None

    def _relay(self, job_id: str, report: Reporter, stop: threading.Event, listening: threading.Event) -> None:
        """Forward the job's events from Redis pub/sub; resubscribe after a Redis restart."""
        while not stop.is_set():
            try:
                with self.state.subscribe() as sub:
                    listening.set()
                    while not stop.is_set():
                        data = sub.get(timeout=0.05)
                        if data and f'"job_id":"{job_id}"' in data:
                            report(ProgressEvent.from_json(data))
            except UNAVAILABLE:
                stop.wait(0.5)
