"""segenc on a cluster: the job as a Celery chord over Redis.

    app       the Celery app and its polling result backend
    tasks     run_job -> chord([encode_chunk x Plan.tasks], finish); submit()
    runner    CeleryRunner: segenc.encode() on the cluster
    worker    a worker node with heartbeats
    state     every Redis key and channel: job state, progress events, workers, cluster info
    remote    workers without the shared storage: fetch inputs, push outputs
    transfer  the HTTP transfer protocol (client side; the service serves it)
"""

from .app import MAIN_QUEUE, make_app
from .runner import CeleryRunner
from .state import JobState
from .tasks import job_signature, submit
from .worker import run_worker

__all__ = ["make_app", "MAIN_QUEUE", "CeleryRunner", "JobState", "job_signature", "submit", "run_worker"]
